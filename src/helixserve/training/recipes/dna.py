"""The ``dna-binary`` recipe: fixed-length DNA -> class 0/1, CNN (default) or (Bi)LSTM.

Hyper-parameters: :class:`~helixserve.params.recipes.DnaBinaryParams`."""

from __future__ import annotations

import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.params.recipes import DnaBinaryParams
from helixserve.training.nets import DnaCNN, DnaLSTM
from helixserve.training.recipes.torch_base import TorchRecipe


class DnaBinary(TorchRecipe):
    """Fixed-length DNA -> class 0/1. ``arch="cnn"`` (default) or ``"lstm"`` (the seed's).

    ``class_weight`` (none, ``"balanced"`` or ``"0=1,1=4"``, see
    :mod:`~helixserve.training.classweights`) weights the binary cross-entropy per class."""

    name = DnaBinaryParams.recipe
    params_class = DnaBinaryParams
    binary_only = True
    task = "binary"
    loss = "bce"

    hp: DnaBinaryParams

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(length=self.hp.length, alphabet=self.hp.alphabet)

    def class_weight(self) -> str | None:
        return self.hp.class_weight

    def build(self, classes: int) -> torch.nn.Module:
        hp = self.hp
        if hp.arch == "lstm":
            return DnaLSTM(hp.units, hp.bidirectional, hp.dropout)
        return DnaCNN(hp.length, hp.filters, hp.kernel, hp.pool, hp.hidden, hp.dropout)

    def example(self) -> torch.Tensor:
        return torch.zeros(2, 4, self.hp.length)
