"""The ``dna-variable`` recipe: variable-length genes -> resistant or not (the seed's BiLSTM).

Sequences (A, C, G, T, N; any length) become integer tokens padded or truncated to ``pad_to``
(keeping the 5' start); an embedding, two BiLSTM layers, dropout 0.18 and a sigmoid give
P(positive). Classes are weighted "balanced" by default (the data are imbalanced).
"""

from __future__ import annotations

import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.training.nets import GeneBiLSTM
from helixserve.training.recipes.torch_base import TorchRecipe


class DnaVariable(TorchRecipe):
    """Variable-length DNA -> class 0/1."""

    name = "dna-variable"
    task = "binary"
    loss = "bce"

    def __init__(self, pad_to: int = 1024, embed: int = 8, units: int = 32,
                 dropout: float = 0.18, epochs: int = 30, batch_size: int = 32, lr: float = 2e-3,
                 patience: int = 5, class_weight: str | None = "balanced",
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(pad_to=pad_to, embed=embed, units=units, dropout=dropout, epochs=epochs,
                         batch_size=batch_size, lr=lr, patience=patience,
                         class_weight=class_weight, device=device)  # fmt: skip

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(alphabet="ACGTN", min_length=1, encoding="tokens",
                              pad_to=self.params["pad_to"])  # fmt: skip

    def build(self, classes: int) -> torch.nn.Module:
        p = self.params
        return GeneBiLSTM(p["embed"], p["units"], p["dropout"])

    def example(self) -> torch.Tensor:
        return torch.ones(2, self.params["pad_to"], dtype=torch.int64)
