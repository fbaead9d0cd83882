"""The ``dna-variable`` recipe: variable-length genes -> resistant or not (the seed's BiLSTM).

Sequences (A, C, G, T, N; any length) become integer tokens padded or truncated to ``pad_to``
(keeping the 5' start); an embedding, [a k-mer convolution of stride ``stride``,] two BiLSTM
layers, dropout 0.18 and a sigmoid give P(positive) (``arch="bilstm"``, the seed's); or, with
``arch="cnn"``, ``filters`` k-mer detectors of width ``kernel`` max-pooled over the gene (much
faster on long genes). Classes are weighted "balanced" by default (the data are imbalanced).

Two ways to learn from labels:

- ``pool=""`` (default): every sequence carries its own label (plain supervised learning).
- ``pool="max"`` / ``"noisy-or"`` / ``"lse"``: multiple-instance learning. Labels belong to bags
  (isolates; :attr:`DnaVariable.bags` gives each training and validation row's bag id) and the
  network learns, through the pooled bag score (:mod:`helixserve.training.mil`), which single
  sequences make a bag positive. The model still scores one sequence: what is served is
  P(this gene confers resistance); isolate calls come from
  :mod:`helixserve.training.isolates` (an isolate's highest gene probability vs a threshold).

Hyper-parameters: :class:`~helixserve.params.recipes.DnaVariableParams`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy.typing as npt
import torch

from helixserve.errors import HelixError
from helixserve.inputs.sequence import SequenceSchema
from helixserve.params.recipes import DnaVariableParams
from helixserve.training.classweights import check_class_weight
from helixserve.training.loop import History
from helixserve.training.mil import fit_bags, make_bags
from helixserve.training.nets import GeneBiLSTM, GeneCNN
from helixserve.training.recipes.torch_base import TorchRecipe


class DnaVariable(TorchRecipe):
    """Variable-length DNA -> class 0/1, per sequence or through bags (see the module)."""

    name = DnaVariableParams.recipe
    params_class = DnaVariableParams
    binary_only = True
    task = "binary"
    loss = "bce"

    hp: DnaVariableParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.bags: tuple[list[str], list[str]] | None = None  # (train, val) bag id of each row

    def learns_from_bags(self) -> bool:
        return bool(self.hp.pool)

    def use_bags(self, train: list[str], val: list[str]) -> None:
        self.bags = (train, val)

    def class_weight(self) -> str | None:
        return self.hp.class_weight

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(
            alphabet="ACGTN", min_length=1, encoding="tokens", pad_to=self.hp.pad_to
        )

    def build(self, classes: int) -> torch.nn.Module:
        hp = self.hp
        if hp.arch == "cnn":
            return GeneCNN(hp.embed, hp.filters, hp.kernel, hp.dropout)
        return GeneBiLSTM(hp.embed, hp.units, hp.dropout, hp.stride)

    def example(self) -> torch.Tensor:
        return torch.ones(2, self.hp.pad_to, dtype=torch.int64)

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
        hp = self.hp
        if not hp.pool:
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
        if self.bags is None:
            raise HelixError(
                f"pool={hp.pool!r} learns from bags: give the bag id of each training and "
                "validation row (use_bags) before fitting."
            )
        train, val = (
            make_bags(x_train, y_train, self.bags[0]),
            make_bags(x_val, y_val, self.bags[1]),
        )
        torch.manual_seed(seed)
        self.model = self.network(2)
        if self.initial is not None:
            self._load_initial(self.model, self.initial)
        return fit_bags(
            self.model,
            train,
            val,
            pool=hp.pool,
            epochs=hp.epochs,
            bag_batch=hp.bag_batch,
            lr=hp.lr,
            patience=hp.patience,
            balanced=check_class_weight(hp.class_weight) == "balanced",
            seed=seed,
            progress=progress,
            on_epoch=on_epoch,
            checkpoint=self.checkpoint,
            fingerprint=self.fingerprint,
            resume=self.resume,
        )
