"""The ``dna-regression`` recipe: the Cuperus et al. 2017 CNN for yeast 5' UTRs.

Sequences of up to ``max_length`` nt are one-hot encoded, padded on the 5' side (so every UTR
stays aligned at its 3' end, next to the start codon) to ``max_length``, with ``flank`` all-zero
positions each side (50 nt -> 70 x 4). Targets are standardised with the training rows' mean and
standard deviation; the exported graph undoes it, so served values are in the target's units.
"""

from __future__ import annotations

import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.store.manifest import Task
from helixserve.training.nets import UtrCNN
from helixserve.training.recipes.torch_base import TorchRecipe


class DnaRegression(TorchRecipe):
    """DNA (up to ``max_length`` nt, 5'-padded) -> a value."""

    name = "dna-regression"
    task: Task = "regression"
    loss = "mse"

    def __init__(self, max_length: int = 50, flank: int = 10, filters: int = 128,
                 kernel: int = 13, dropout: float = 0.15, dense: int = 64, epochs: int = 60,
                 batch_size: int = 32, lr: float = 1e-3, patience: int = 8,
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(max_length=max_length, flank=flank, filters=filters, kernel=kernel,
                         dropout=dropout, dense=dense, epochs=epochs, batch_size=batch_size,
                         lr=lr, patience=patience, device=device)  # fmt: skip

    def _width(self) -> int:
        return int(self.params["max_length"] + 2 * self.params["flank"])

    def input_schema(self) -> SequenceSchema:
        p = self.params
        return SequenceSchema(min_length=1, max_length=p["max_length"], pad_to=p["max_length"],
                              padding="left", flank_left="N" * p["flank"],
                              flank_right="N" * p["flank"])  # fmt: skip

    def build(self, classes: int) -> torch.nn.Module:
        p = self.params
        return UtrCNN(self._width(), p["filters"], p["kernel"], p["dropout"], p["dense"])

    def example(self) -> torch.Tensor:
        return torch.zeros(2, 4, self._width())
