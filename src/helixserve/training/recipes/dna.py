"""The ``dna-binary`` recipe: fixed-length DNA -> class 0/1, CNN (default) or (Bi)LSTM."""

from __future__ import annotations

import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.training.classweights import check_class_weight
from helixserve.training.nets import DnaCNN, DnaLSTM
from helixserve.training.recipes.torch_base import TorchRecipe


class DnaBinary(TorchRecipe):
    """Fixed-length DNA -> class 0/1. ``arch="cnn"`` (default) or ``"lstm"`` (the seed's).

    ``class_weight`` (none, ``"balanced"`` or ``"0=1,1=4"``, see
    :mod:`~helixserve.training.classweights`) weights the binary cross-entropy per class."""

    name = "dna-binary"
    task = "binary"
    loss = "bce"

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
            class_weight=check_class_weight(class_weight),
            device=device,
        )

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(length=self.params["length"], alphabet=self.params["alphabet"])

    def build(self, classes: int) -> torch.nn.Module:
        p = self.params
        if p["arch"] == "lstm":
            return DnaLSTM(p["units"], p["bidirectional"], p["dropout"])
        return DnaCNN(p["length"], p["filters"], p["kernel"], p["pool"], p["hidden"], p["dropout"])

    def example(self) -> torch.Tensor:
        return torch.zeros(2, 4, self.params["length"])
