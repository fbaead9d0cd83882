"""The ``dna-binary`` recipe: DNA -> class 0/1, CNN (default) or (Bi)LSTM; the primer tutorial's.

A member of the DNA classification family (:mod:`~helixserve.training.recipes.family`): the
length comes from the data unless ``length`` fixes it; ``alphabet`` says whether N (``ACGTN``)
or every IUPAC code (``IUPAC``) is accepted, each encoded as the probabilities of its bases.
Two classes only (``dna-classify`` takes more, and several label columns).
Hyper-parameters: :class:`~helixserve.params.recipes.DnaBinaryParams`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy.typing as npt
import torch

from helixserve.params.recipes import DnaBinaryParams
from helixserve.training.loop import History
from helixserve.training.nets import DnaCNN, DnaLSTM
from helixserve.training.recipes.family import Alphabet, DnaFamily


class DnaBinary(DnaFamily):
    """DNA -> class 0/1. ``arch="cnn"`` (default) or ``"lstm"`` (the seed's).

    ``class_weight`` (none, ``"balanced"`` or ``"0=1,1=4"``, see
    :mod:`~helixserve.training.classweights`) weights the binary cross-entropy per class."""

    name = DnaBinaryParams.recipe
    params_class = DnaBinaryParams
    binary_only = True
    task = "binary"
    loss = "bce"

    hp: DnaBinaryParams

    def alphabet(self) -> Alphabet:
        alphabet = self.hp.alphabet
        return alphabet, "zeros" if alphabet == "ACGT" else "frequencies"

    def fixed_length(self) -> int | None:
        return self.hp.length or None

    def class_weight(self) -> str | None:
        return self.hp.class_weight

    def build(self, classes: int) -> torch.nn.Module:
        hp = self.hp
        if hp.arch == "lstm":
            return DnaLSTM(hp.units, hp.bidirectional, hp.dropout)
        return DnaCNN(self.width(), hp.filters, hp.kernel, hp.pool, hp.hidden, hp.dropout)

    def example(self) -> torch.Tensor:
        return torch.zeros(2, 4, self.width())

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
        self.set_task(y_train, labels)
        return super().fit(
            x_train,
            y_train,
            x_val,
            y_val,
            labels=labels,
            seed=seed,
            progress=progress,
            on_epoch=on_epoch,
        )
