"""The ``dna-variable`` recipe: variable-length genes -> resistant or not (a CNN, or the seed's
BiLSTM).

Sequences (A, C, G, T, N; any length) become integer tokens padded to the longest sequence in
the data (``pad_to=0``, the default; rounded up to a multiple of ``stride``; served, a longer
sequence is refused with a message naming the length), or padded and cut to a ``pad_to`` given
(keeping the 5' start; training warns how many sequences were cut, and served sequences are cut
the same way); an embedding, ``filters`` k-mer detectors of width ``kernel`` max-pooled over
the gene, dropout and a sigmoid give P(positive) (``arch="cnn"``, the default: on simulated
motif tasks of 100-600 nt it was 3.6 to 16 times faster than the BiLSTM and more accurate,
``make bench-science``); or, with ``arch="bilstm"`` (the seed's), an embedding, [a k-mer
convolution of stride ``stride``,] two BiLSTM layers and dropout 0.18. Classes are weighted
"balanced" by default (the data are imbalanced).

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
from helixserve.training.data import Dataset
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
        self.longest: int | None = None  # pad_to=0: the longest sequence in the data

    def padded_length(self) -> int:
        """``pad_to``, or (0) the longest sequence in the data rounded up to the stride."""
        if self.hp.pad_to:
            return self.hp.pad_to
        if self.longest is None:
            raise HelixError(
                "the dna-variable recipe pads to the longest sequence in the data: read them "
                "(adapt) before building the network, or set pad_to."
            )
        return -(-self.longest // self.hp.stride) * self.hp.stride

    def adapt(self, data: Dataset) -> None:
        lengths = [len(str(s)) for s in data.inputs]
        pad_to = self.hp.pad_to
        if pad_to:
            cut = sum(length > pad_to for length in lengths)
            self.notes.append(f"input: tokens padded and cut to pad_to {pad_to:,} nt")
            if cut:
                self.notes.append(
                    f"warning: {cut:,} of {len(lengths):,} sequences are longer than pad_to "
                    f"{pad_to:,} nt; the model reads their first {pad_to:,} nt (served too); "
                    f"the longest is {max(lengths):,} nt (leave pad_to at 0 to read all of it)"
                )
        else:
            self.longest = max(lengths)
            self.notes.append(
                f"input rule from the data: sequences up to {self.longest:,} nt, padded to "
                f"{self.padded_length():,} tokens; longer ones are refused when served"
            )
        self.adapted = True

    def learns_from_bags(self) -> bool:
        return bool(self.hp.pool)

    def use_bags(self, train: list[str], val: list[str]) -> None:
        self.bags = (train, val)

    def class_weight(self) -> str | None:
        return self.hp.class_weight

    def use_blocks(self, blocks: list[dict[str, Any]]) -> None:
        """Checked now when the padded length is known; else once the data have decided it."""
        if not self.hp.pad_to and self.longest is None:
            self.blocks = [dict(block) for block in blocks]
            return
        super().use_blocks(blocks)

    def reading_schema(self) -> SequenceSchema:
        return SequenceSchema(alphabet="ACGTN", min_length=1)

    def input_schema(self) -> SequenceSchema:
        if not self.hp.pad_to and self.longest is None:
            return self.reading_schema()
        return SequenceSchema(
            alphabet="ACGTN",
            min_length=1,
            max_length=None if self.hp.pad_to else self.longest,
            encoding="tokens",
            pad_to=self.padded_length(),
        )

    def build(self, classes: int) -> torch.nn.Module:
        hp = self.hp
        if hp.arch == "cnn":
            return GeneCNN(hp.embed, hp.filters, hp.kernel, hp.dropout)
        return GeneBiLSTM(hp.embed, hp.units, hp.dropout, hp.stride)

    def example(self) -> torch.Tensor:
        return torch.ones(2, self.padded_length(), dtype=torch.int64)

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
