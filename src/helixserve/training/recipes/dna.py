"""DNA recipes: ``dna-binary`` (fixed-length binary classifier, CNN or (Bi)LSTM)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.training.export import torch_to_onnx
from helixserve.training.loop import History, balanced_weights, fit
from helixserve.training.nets import DnaCNN, DnaLSTM, WithSigmoid
from helixserve.training.recipes.base import Recipe


class DnaBinary(Recipe):
    """Fixed-length DNA -> class 0/1. ``arch="cnn"`` (default) or ``"lstm"`` (the seed's)."""

    name = "dna-binary"
    task = "binary"

    def __init__(
        self,
        length: int = 50,
        arch: str = "cnn",
        alphabet: str = "ACGT",
        filters: int = 64,
        kernel: int = 12,
        pool: int = 0,
        hidden: int = 32,
        units: int = 32,
        bidirectional: bool = True,
        dropout: float = 0.2,
        epochs: int = 60,
        batch_size: int = 32,
        lr: float = 1e-3,
        patience: int = 8,
        class_weight: str | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            length=length,
            arch=arch,
            alphabet=alphabet,
            filters=filters,
            kernel=kernel,
            pool=pool,
            hidden=hidden,
            units=units,
            bidirectional=bidirectional,
            dropout=dropout,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience=patience,
            class_weight=class_weight,
            device=device,
        )
        self.model: torch.nn.Module | None = None

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(length=self.params["length"], alphabet=self.params["alphabet"])

    def _build(self) -> torch.nn.Module:
        p = self.params
        if p["arch"] == "lstm":
            return DnaLSTM(p["units"], p["bidirectional"], p["dropout"])
        return DnaCNN(p["length"], p["filters"], p["kernel"], p["pool"], p["hidden"], p["dropout"])

    def fit(
        self,
        x_train: npt.NDArray[Any],
        y_train: npt.NDArray[Any],
        x_val: npt.NDArray[Any],
        y_val: npt.NDArray[Any],
        *,
        labels: list[str] | None,
        seed: int,
        progress: bool = False,
        on_epoch: Callable[[History], None] | None = None,
    ) -> History:
        torch.manual_seed(seed)
        self.model = self._build()
        p = self.params
        weights = balanced_weights(y_train, 2) if p["class_weight"] == "balanced" else None
        return fit(
            self.model,
            x_train,
            y_train,
            x_val,
            y_val,
            loss="bce",
            epochs=p["epochs"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            patience=p["patience"],
            class_weights=weights,
            seed=seed,
            device=p["device"],
            progress=progress,
            on_epoch=on_epoch,
        )

    def _trained(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("call fit() before predicting or exporting")
        return self.model.cpu().eval()

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        model = WithSigmoid(self._trained())
        with torch.no_grad():
            positive = model(torch.as_tensor(x)).numpy().astype(np.float64)
        return np.stack([1.0 - positive, positive], axis=1)

    def library_versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def export_onnx(self) -> bytes:
        example = torch.zeros(2, 4, self.params["length"])
        return torch_to_onnx(WithSigmoid(self._trained()), example)
