"""What the DNA classification recipes share (``dna-classify``, ``dna-binary``): the input rule
from the data, the ambiguity codes, and the task from the targets.

Contract:
- **Length.** Unless a hyper-parameter fixes it (``dna-binary``'s ``length``), the data decide
  (:meth:`DnaFamily.adapt`, called before anything is encoded): sequences of one length ->
  exactly that length; of several -> any length up to the longest seen, one-hot padded with
  all-zero positions on the 3' side to it. ``dna-classify``'s ``max_length`` caps it: longer
  sequences are cut to their first ``max_length`` nt for training, a warning says how many,
  and served they are refused with a message naming the cap. What was decided is in
  :attr:`~helixserve.training.recipes.base.Recipe.notes` (console and card) and in the served
  schema, so training and serving encode alike.
- **Ambiguity codes.** :meth:`DnaFamily.alphabet` says which letters a record may hold; N and
  the IUPAC codes are encoded as the probabilities of the bases they stand for (schema
  ``ambiguity="frequencies"``: N = 0.25 each), at training and when served (the fast path
  too). Records with letters outside the alphabet are refused one by one, each reported with
  its position: no record is dropped silently.
- **Task.** :meth:`DnaFamily.set_task` reads it from the targets given to ``fit``: two classes
  -> ``binary`` (one logit, sigmoid), more -> ``multiclass`` (softmax), an ``(N, L)`` 0/1
  matrix -> ``multilabel`` (L independent sigmoids). ``binary_only`` recipes refuse the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy.typing as npt

from helixserve.errors import HelixError
from helixserve.inputs.sequence import SequenceSchema
from helixserve.training.data import Dataset
from helixserve.training.recipes.torch_base import TorchRecipe

Alphabet = tuple[Literal["ACGT", "ACGTN", "IUPAC"], Literal["zeros", "frequencies"]]


@dataclass(frozen=True)
class LengthRule:
    """The input rule the data decided: exactly ``length`` nt, or up to ``length`` nt padded."""

    exact: bool
    length: int
    shortest: int
    cut: int = 0  # sequences cut to a cap


def length_rule(sequences: list[str], cut: int = 0) -> LengthRule:
    """One length -> exact; several -> padded to the longest."""
    lengths = {len(s) for s in sequences}
    return LengthRule(len(lengths) == 1, max(lengths), min(lengths), cut)


class DnaFamily(TorchRecipe):
    """A DNA classifier whose input rule the data decide; see the module contract."""

    takes_multilabel: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.rule: LengthRule | None = None

    # --- what subclasses say --------------------------------------------------------------

    def alphabet(self) -> Alphabet:
        """The schema alphabet and ambiguity rule (default: IUPAC codes, as frequencies)."""
        return "IUPAC", "frequencies"

    def fixed_length(self) -> int | None:
        """An exact length a hyper-parameter gives (default: none, the data decide)."""
        return None

    def cap(self) -> int | None:
        """The longest sequence trained on (longer ones cut), or ``None``: the longest seen."""
        return None

    # --- the input rule -------------------------------------------------------------------

    def reading_schema(self) -> SequenceSchema:
        alphabet, ambiguity = self.alphabet()
        fixed = self.fixed_length()
        if fixed is not None:
            return SequenceSchema(alphabet=alphabet, length=fixed, ambiguity=ambiguity)
        return SequenceSchema(alphabet=alphabet, min_length=1, ambiguity=ambiguity)

    def input_schema(self) -> SequenceSchema:
        rule = self.rule
        if rule is None:
            return self.reading_schema()
        alphabet, ambiguity = self.alphabet()
        if rule.exact:
            return SequenceSchema(alphabet=alphabet, length=rule.length, ambiguity=ambiguity)
        return SequenceSchema(
            alphabet=alphabet,
            min_length=1,
            max_length=rule.length,
            pad_to=rule.length,
            ambiguity=ambiguity,
        )

    def adapt(self, data: Dataset) -> None:
        cap, cut = self.cap(), 0
        if cap is not None:
            for i, sequence in enumerate(data.inputs):
                if len(str(sequence)) > cap:
                    data.inputs[i], cut = str(sequence)[:cap], cut + 1
        self.rule = length_rule([str(s) for s in data.inputs], cut)
        self.notes += self._rule_notes(self.rule, len(data), cap)
        self.adapted = True

    def _rule_notes(self, rule: LengthRule, rows: int, cap: int | None) -> list[str]:
        fixed = self.fixed_length()
        if fixed is not None:
            notes = [f"input rule: exactly {fixed:,} nt (the 'length' parameter)"]
        elif rule.exact:
            notes = [f"input rule from the data: every sequence is {rule.length:,} nt, exactly"]
        else:
            notes = [
                f"input rule from the data: sequences of {rule.shortest:,} to {rule.length:,} nt, "
                f"padded on the 3' side to {rule.length:,} nt; longer ones are refused when served"
            ]
        if rule.cut:
            notes.append(
                f"warning: {rule.cut:,} of {rows:,} sequences are longer than max_length "
                f"{cap:,} nt and were cut to their first {cap:,} nt for training; served, longer "
                "sequences are refused (leave max_length at 0 to keep the whole sequences)"
            )
        return notes

    def width(self) -> int:
        """The one-hot width the network reads: the decided length, else a fixed one, else the
        cap (a network built before the data are read, e.g. a block preset)."""
        width = self.rule.length if self.rule is not None else self.fixed_length() or self.cap()
        if not width:
            raise HelixError(
                f"the {self.name} recipe takes its input length from the data: read them "
                "(adapt) before building the network, or set the length."
            )
        return width

    def use_blocks(self, blocks: list[dict[str, Any]]) -> None:
        """Checked now when the input width is known; else once the data have decided it."""
        if self.rule is None and not (self.fixed_length() or self.cap()):
            self.blocks = [dict(block) for block in blocks]
            return
        super().use_blocks(blocks)

    # --- the task -------------------------------------------------------------------------

    def set_task(self, y: npt.NDArray[Any], labels: list[str] | None) -> None:
        """The task and loss for these targets; see the module contract."""
        if y.ndim == 2:
            self.task, self.loss = "multilabel", "multilabel"
        elif labels is not None and len(labels) == 2:
            self.task, self.loss = "binary", "bce"
        else:
            self.task, self.loss = "multiclass", "ce"
        if self.task == "multilabel" and not self.takes_multilabel:
            raise HelixError(
                f"{self.name} learns one target column; for several label columns (multi-label) "
                "use dna-classify."
            )
        if self.binary_only and self.task != "binary":
            raise HelixError(
                f"{self.name} is a binary recipe, but the targets hold {len(labels or [])} "
                "classes; use dna-classify for three or more classes."
            )

    def outputs(self, classes: int) -> int:
        """Values per example: one logit (binary), one per class, or one per label."""
        return classes if self.loss == "multilabel" or classes > 2 else 1
