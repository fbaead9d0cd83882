"""The ``dna-regression`` recipe: the Cuperus et al. 2017 CNN for yeast 5' UTRs.

Sequences of up to ``max_length`` nt are one-hot encoded, padded on the 5' side (so every UTR
stays aligned at its 3' end, next to the start codon) to ``max_length``, with ``flank`` all-zero
positions each side (50 nt -> 70 x 4). Targets are standardised with the training rows' mean and
standard deviation; the exported graph undoes it, so served values are in the target's units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.store.manifest import Task
from helixserve.training.export import torch_to_onnx
from helixserve.training.loop import History, fit
from helixserve.training.nets import Rescaled, UtrCNN
from helixserve.training.recipes.base import Recipe


class DnaRegression(Recipe):
    """DNA (up to ``max_length`` nt, 5'-padded) -> a value."""

    name = "dna-regression"
    task: Task = "regression"

    def __init__(self, max_length: int = 50, flank: int = 10, filters: int = 128,
                 kernel: int = 13, dropout: float = 0.15, dense: int = 64, epochs: int = 60,
                 batch_size: int = 32, lr: float = 1e-3, patience: int = 8,
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(max_length=max_length, flank=flank, filters=filters, kernel=kernel,
                         dropout=dropout, dense=dense, epochs=epochs, batch_size=batch_size,
                         lr=lr, patience=patience, device=device)  # fmt: skip
        self.model: torch.nn.Module | None = None
        self.shift, self.scale = 0.0, 1.0

    def input_schema(self) -> SequenceSchema:
        p = self.params
        return SequenceSchema(min_length=1, max_length=p["max_length"], pad_to=p["max_length"],
                              padding="left", flank_left="N" * p["flank"],
                              flank_right="N" * p["flank"])  # fmt: skip

    def fit(self, x_train: npt.NDArray[Any], y_train: npt.NDArray[Any], x_val: npt.NDArray[Any],
            y_val: npt.NDArray[Any], *, labels: list[str] | None, seed: int,
            progress: bool = False, on_epoch: Callable[[History], None] | None = None,
            ) -> History:  # fmt: skip
        p = self.params
        self.shift = float(np.mean(y_train))
        self.scale = float(np.std(y_train)) or 1.0
        torch.manual_seed(seed)
        self.model = UtrCNN(p["max_length"] + 2 * p["flank"], p["filters"], p["kernel"],
                            p["dropout"], p["dense"])  # fmt: skip
        scaled = [((y - self.shift) / self.scale).astype(np.float32) for y in (y_train, y_val)]
        return fit(self.model, x_train, scaled[0], x_val, scaled[1], loss="mse",
                   epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                   patience=p["patience"], seed=seed, device=p["device"], progress=progress,
                   on_epoch=on_epoch)  # fmt: skip

    def _exported(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("call fit() before predicting or exporting")
        return Rescaled(self.model.cpu().eval(), self.scale, self.shift).eval()

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        model = self._exported()
        with torch.no_grad():
            parts = [model(torch.as_tensor(x[i : i + 2048])) for i in range(0, len(x), 2048)]
        return torch.cat(parts).numpy().astype(np.float64)

    def library_versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def export_onnx(self) -> bytes:
        p = self.params
        return torch_to_onnx(self._exported(), torch.zeros(2, 4, p["max_length"] + 2 * p["flank"]))
