"""The ``dna-variable`` recipe: variable-length genes -> resistant or not (the seed's BiLSTM).

Sequences (A, C, G, T, N; any length) become integer tokens padded or truncated to ``pad_to``
(keeping the 5' start); an embedding, two BiLSTM layers, dropout 0.18 and a sigmoid give
P(positive). Classes are weighted "balanced" by default (the data are imbalanced).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.training.export import torch_to_onnx
from helixserve.training.loop import History, balanced_weights, fit
from helixserve.training.nets import GeneBiLSTM, WithSigmoid
from helixserve.training.recipes.base import Recipe


class DnaVariable(Recipe):
    """Variable-length DNA -> class 0/1."""

    name = "dna-variable"
    task = "binary"

    def __init__(self, pad_to: int = 1024, embed: int = 8, units: int = 32,
                 dropout: float = 0.18, epochs: int = 30, batch_size: int = 32, lr: float = 2e-3,
                 patience: int = 5, class_weight: str | None = "balanced",
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(pad_to=pad_to, embed=embed, units=units, dropout=dropout, epochs=epochs,
                         batch_size=batch_size, lr=lr, patience=patience,
                         class_weight=class_weight, device=device)  # fmt: skip
        self.model: torch.nn.Module | None = None

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(alphabet="ACGTN", min_length=1, encoding="tokens",
                              pad_to=self.params["pad_to"])  # fmt: skip

    def fit(self, x_train: npt.NDArray[Any], y_train: npt.NDArray[Any], x_val: npt.NDArray[Any],
            y_val: npt.NDArray[Any], *, labels: list[str] | None, seed: int,
            progress: bool = False, on_epoch: Callable[[History], None] | None = None,
            ) -> History:  # fmt: skip
        p = self.params
        torch.manual_seed(seed)
        self.model = GeneBiLSTM(p["embed"], p["units"], p["dropout"])
        weights = balanced_weights(y_train, 2) if p["class_weight"] == "balanced" else None
        return fit(self.model, x_train, y_train, x_val, y_val, loss="bce", epochs=p["epochs"],
                   batch_size=p["batch_size"], lr=p["lr"], patience=p["patience"],
                   class_weights=weights, seed=seed, device=p["device"], progress=progress,
                   on_epoch=on_epoch)  # fmt: skip

    def _trained(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("call fit() before predicting or exporting")
        return WithSigmoid(self.model.cpu().eval()).eval()

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        model = self._trained()
        with torch.no_grad():
            parts = [model(torch.as_tensor(x[i : i + 512])) for i in range(0, len(x), 512)]
        positive = torch.cat(parts).numpy().astype(np.float64)
        return np.stack([1.0 - positive, positive], axis=1)

    def library_versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def export_onnx(self) -> bytes:
        example = torch.ones(2, self.params["pad_to"], dtype=torch.int64)
        return torch_to_onnx(self._trained(), example)
