"""The ``image`` recipe: a small CNN over single- or three-channel images, with augmentation.

Images are decoded by :mod:`helixserve.inputs.images` to ``(C, size, size)`` in [0, 1] (exactly
as serving does); the network standardises each image itself (so an experiment's brightness is
not a shortcut), then conv 32 3x3 + pool, conv 64 3x3 + pool, dense 128, softmax over classes.
Augmentation: the eight flips/rotations of the square (microscopy has no "up"), applied to the
training images before each run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.images import ImageSchema
from helixserve.store.manifest import Task
from helixserve.training.nets import SmallImageCNN
from helixserve.training.recipes.torch_base import TorchRecipe


def dihedral(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The 8 flips/rotations of every image, with their labels repeated."""
    views = []
    for k in range(4):
        rotated = np.rot90(x, k, axes=(2, 3))
        views += [rotated, rotated[:, :, :, ::-1]]
    return np.ascontiguousarray(np.concatenate(views)), np.tile(y, 8)


class ImageCNN(TorchRecipe):
    """Image -> one of K classes."""

    name = "image"
    task: Task = "multiclass"
    loss = "ce"

    def __init__(self, size: int = 128, channels: int = 1, augment: bool = True,
                 dropout: float = 0.3, epochs: int = 40, batch_size: int = 32, lr: float = 1e-3,
                 patience: int = 8, class_weight: str | None = "balanced",
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(size=size, channels=channels, augment=augment, dropout=dropout,
                         epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                         class_weight=class_weight, device=device)  # fmt: skip

    def input_schema(self) -> ImageSchema:
        p = self.params
        return ImageSchema(width=p["size"], height=p["size"], channels=p["channels"])

    def build(self, classes: int) -> torch.nn.Module:
        self.task = "binary" if classes == 2 else "multiclass"
        p = self.params
        return SmallImageCNN(p["channels"], p["size"], classes, p["dropout"])

    def prepare(
        self, x: npt.NDArray[Any], y: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        return dihedral(x, y) if self.params["augment"] else (x, y)

    def example(self) -> torch.Tensor:
        p = self.params
        return torch.zeros(2, p["channels"], p["size"], p["size"])
