"""The ``image`` recipe: a small CNN over single- or three-channel images, with augmentation.

Images are decoded by :mod:`helixserve.inputs.images` to ``(C, size, size)`` in [0, 1] (exactly
as serving does); the network standardises each image itself (so an experiment's brightness is
not a shortcut), then conv 32 3x3 + pool, conv 64 3x3 + pool, dense 128, softmax over classes.
Augmentation: the eight flips/rotations of the square (microscopy has no "up"), applied to the
training images before each run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.images import ImageSchema
from helixserve.store.manifest import Task
from helixserve.training.export import torch_to_onnx
from helixserve.training.loop import History, balanced_weights, fit
from helixserve.training.nets import SmallImageCNN, WithSoftmax
from helixserve.training.recipes.base import Recipe


def dihedral(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The 8 flips/rotations of every image, with their labels repeated."""
    views = []
    for k in range(4):
        rotated = np.rot90(x, k, axes=(2, 3))
        views += [rotated, rotated[:, :, :, ::-1]]
    return np.ascontiguousarray(np.concatenate(views)), np.tile(y, 8)


class ImageCNN(Recipe):
    """Image -> one of K classes."""

    name = "image"
    task: Task = "multiclass"

    def __init__(self, size: int = 128, channels: int = 1, augment: bool = True,
                 dropout: float = 0.3, epochs: int = 40, batch_size: int = 32, lr: float = 1e-3,
                 patience: int = 8, class_weight: str | None = "balanced",
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(size=size, channels=channels, augment=augment, dropout=dropout,
                         epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                         class_weight=class_weight, device=device)  # fmt: skip
        self.model: torch.nn.Module | None = None

    def input_schema(self) -> ImageSchema:
        p = self.params
        return ImageSchema(width=p["size"], height=p["size"], channels=p["channels"])

    def fit(self, x_train: npt.NDArray[Any], y_train: npt.NDArray[Any], x_val: npt.NDArray[Any],
            y_val: npt.NDArray[Any], *, labels: list[str] | None, seed: int,
            progress: bool = False, on_epoch: Callable[[History], None] | None = None,
            ) -> History:  # fmt: skip
        p = self.params
        classes = len(labels or [])
        self.task = "binary" if classes == 2 else "multiclass"
        torch.manual_seed(seed)
        self.model = SmallImageCNN(p["channels"], p["size"], classes, p["dropout"])
        if p["augment"]:
            x_train, y_train = dihedral(x_train, y_train)
        weights = balanced_weights(y_train, classes) if p["class_weight"] == "balanced" else None
        return fit(self.model, x_train, y_train, x_val, y_val, loss="ce", epochs=p["epochs"],
                   batch_size=p["batch_size"], lr=p["lr"], patience=p["patience"],
                   class_weights=weights, seed=seed, device=p["device"], progress=progress,
                   on_epoch=on_epoch)  # fmt: skip

    def _trained(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("call fit() before predicting or exporting")
        return WithSoftmax(self.model.cpu().eval()).eval()

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        model = self._trained()
        with torch.no_grad():
            parts = [model(torch.as_tensor(x[i : i + 64])) for i in range(0, len(x), 64)]
        return torch.cat(parts).numpy().astype(np.float64)

    def library_versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def export_onnx(self) -> bytes:
        p = self.params
        return torch_to_onnx(self._trained(), torch.zeros(2, p["channels"], p["size"], p["size"]))
