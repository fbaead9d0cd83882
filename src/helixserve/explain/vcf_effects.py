"""Variant effects from VCF records against a reference: each ALT allele's change of the score.

Contract:
- :class:`VcfScorer` is made for one DNA model (:func:`~helixserve.explain.ism.dna_schema`), one
  opened reference and :class:`VcfOptions`; :meth:`VcfScorer.score` takes a chunk of
  :class:`~helixserve.inputs.vcf.VcfRecord` s and returns one :class:`Effect` per ALT allele, in
  record then allele order. The windows of the whole chunk (:mod:`helixserve.explain.windows`;
  identical ones once) are encoded together; memory is bounded by the chunk, never by
  the file (the model runs on at most :data:`MODEL_NT` window positions a call, e.g. 32 windows of
  2,048 nt). ``score`` is :meth:`~VcfScorer.prepare` (cut, validate, encode: CPU) then
  :meth:`~VcfScorer.finish` (the model), so a file run can prepare the next chunk meanwhile.
- The *score* is the one of :mod:`helixserve.explain.ism`: P(positive) for binary models, the
  value for regression models, and for multiclass and multilabel models the probability of
  ``target`` (default: the class or label most probable for the record's REF window, named in
  ``Effect.target``). ``effect`` = ALT score - REF score.
- ``strands="both"`` also scores the reverse complement of both windows (for models that are not
  strand-symmetric); ``ref_score``, ``alt_score`` and ``effect`` are then the means over the two
  strands and ``strand_effects`` holds (forward, reverse).
- An allele that cannot be scored gets its :class:`~helixserve.explain.windows.UnscorableVariant`
  (``reason`` code, message located at the record: ``record 3 (id chr1:1200), line 14: ...``) and
  the others are still scored: the contig is unknown, REF runs past the contig or differs from the
  reference (every ALT of the record), ALT is ``.`` (``no_alt``), symbolic, ``*`` or a breakend
  (``symbolic``), holds other letters (``bad_allele``), the window cannot be made (``window``), or
  the model refuses a window (``model``, e.g. an ``N`` for a model of A/C/G/T).
- :func:`check_target` refuses a ``target`` that is not one of the model's labels (or given for a
  model without classes) with :class:`~helixserve.errors.InputError` naming them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from helixserve.errors import InputError
from helixserve.explain.ism import dna_schema
from helixserve.explain.windows import (
    Cut,
    UnscorableVariant,
    Windowing,
    check_ref,
    cut,
    revcomp,
    windowing,
)
from helixserve.inputs.reference import Reference
from helixserve.inputs.vcf import VcfRecord, allele_problem
from helixserve.runtime.predictor import BatchPrediction, Predictor, Prepared

Strands = Literal["forward", "both"]
MODEL_NT = 65_536  # window positions per model call (rows x window length)


@dataclass(frozen=True)
class VcfOptions:
    """How to score: ``strands``, a ``window`` size (``None``: the model's own), ``target``."""

    strands: Strands = "forward"
    window: int | None = None
    target: str | None = None


@dataclass(frozen=True)
class Effect:
    """One ALT allele (``allele``: 1-based among the record's ALTs) scored, or why not."""

    record: VcfRecord
    allele: int
    alt: str
    window: tuple[int, int] | None = None  # 0-based [start, end) of the REF window
    ref_score: float | None = None
    alt_score: float | None = None
    effect: float | None = None
    strand_effects: tuple[float, float] | None = None
    target: str | None = None
    error: UnscorableVariant | None = None


@dataclass
class _Planned:
    record: VcfRecord
    allele: int
    alt: str
    cut: Cut | None = None
    slots: list[int] = field(default_factory=list)  # ref fwd, alt fwd[, ref rev, alt rev]
    error: UnscorableVariant | None = None


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk's alleles and its windows validated and encoded, waiting for the model."""

    planned: list[_Planned]
    prepared: Prepared


def check_target(predictor: Predictor, target: str | None) -> str | None:
    """``target`` if the model has that class or label (see the module contract)."""
    labels = predictor.manifest.output.labels
    task = predictor.manifest.task
    if target is None:
        return None
    if task in ("regression", "binary") or labels is None:
        raise InputError(
            f"{predictor.label} is a {task} model: its score needs no target; leave it out.",
            field="target",
        )
    if target not in labels:
        kind = "label" if task == "multilabel" else "class"
        raise InputError(
            f"target {kind} {target!r} is not one of {', '.join(labels)}.", field="target"
        )
    return target


def _allele_reason(alt: str) -> str:
    if alt == ".":
        return "no_alt"
    if alt.startswith("<") or alt == "*" or "[" in alt or "]" in alt:
        return "symbolic"
    return "bad_allele"


class VcfScorer:
    """Scores chunks of VCF records with one model against one reference."""

    def __init__(self, predictor: Predictor, reference: Reference, options: VcfOptions) -> None:
        self.predictor = predictor
        self.reference = reference
        self.options = options
        self.need: Windowing = windowing(dna_schema(predictor), options.window)
        self.target = check_target(predictor, options.target)

    def score(self, records: Sequence[VcfRecord]) -> list[Effect]:
        """One :class:`Effect` per ALT of each record (see the module contract)."""
        return self.finish(self.prepare(records))

    def prepare(self, records: Sequence[VcfRecord]) -> PreparedChunk:
        """The CPU work before the model call: windows cut, checked and encoded (a reader thread
        may do it for the next chunk while the model runs on this one)."""
        planned = [p for record in records for p in self._plan(record)]
        sequences: dict[str, int] = {}
        for item in planned:
            if item.cut is not None:
                item.slots = [sequences.setdefault(s, len(sequences)) for s in self._windows(item)]
        return PreparedChunk(planned, self.predictor.prepare(list(sequences)))

    def finish(self, chunk: PreparedChunk) -> list[Effect]:
        """Run the model on a prepared chunk, :data:`MODEL_NT` window positions a call (a model's
        activations grow with the rows times the window: whole genes are long), and give its
        effects."""
        batch = self._run(chunk.prepared)
        rows = {int(p): r for r, p in enumerate(batch.positions.tolist())}
        failed = {e.index: e.error for e in batch.errors}
        return [self._effect(item, batch, rows, failed) for item in chunk.planned]

    def _run(self, prepared: Prepared) -> BatchPrediction:
        tensor = prepared.tensor
        rows = max(1, MODEL_NT // tensor.shape[-1]) if tensor is not None else 0
        if tensor is None or len(tensor) <= rows:
            return self.predictor.finish(prepared)
        outputs = [
            self.predictor.run(tensor[start : start + rows])
            for start in range(0, len(tensor), rows)
        ]
        decoded = self.predictor.decode(np.concatenate(outputs))
        labels = self.predictor.manifest.output.labels
        return BatchPrediction(prepared.size, prepared.positions, prepared.errors, labels, decoded)

    def _plan(self, record: VcfRecord) -> list[_Planned]:
        planned = [_Planned(record, n, alt) for n, alt in enumerate(record.alts, start=1)]
        try:
            span = check_ref(self.reference, record.chrom, record.pos, record.ref)
        except UnscorableVariant as err:
            for item in planned:
                item.error = err
            return planned
        for item in planned:
            problem = allele_problem(item.alt)
            if problem is not None:
                item.error = UnscorableVariant(problem + ".", reason=_allele_reason(item.alt))
                continue
            try:
                item.cut = cut(self.reference, span, item.alt, self.need)
            except UnscorableVariant as err:
                item.error = err
        return planned

    def _windows(self, item: _Planned) -> list[str]:
        assert item.cut is not None
        forward = [item.cut.ref, item.cut.alt]
        if self.options.strands == "both":
            return [*forward, revcomp(item.cut.ref), revcomp(item.cut.alt)]
        return forward

    def _effect(
        self,
        item: _Planned,
        batch: BatchPrediction,
        rows: dict[int, int],
        failed: dict[int, InputError],
    ) -> Effect:
        record = item.record
        base = Effect(record, item.allele, item.alt)
        if item.cut is None:
            error = item.error or UnscorableVariant("no window could be made.", reason="window")
            return _failed(base, error)
        window = (item.cut.start, item.cut.end)
        for k, slot in enumerate(item.slots):
            if slot in failed:
                which = "REF" if k % 2 == 0 else "ALT"
                error = UnscorableVariant(
                    f"the model cannot take the {which} window ({record.chrom}:{window[0] + 1:,}-"
                    f"{window[1]:,}): {failed[slot].problem}",
                    reason="model",
                )
                return _failed(Effect(record, item.allele, item.alt, window), error)
        return self._scored(item, batch, rows, window)

    def _scored(
        self, item: _Planned, batch: BatchPrediction, rows: dict[int, int], window: tuple[int, int]
    ) -> Effect:
        target, column = self._column(batch, rows[item.slots[0]])
        values = [self._value(batch, rows[slot], column) for slot in item.slots]
        effects = [values[k + 1] - values[k] for k in range(0, len(values), 2)]
        ref_score = float(np.mean(values[0::2]))
        alt_score = float(np.mean(values[1::2]))
        return Effect(
            item.record,
            item.allele,
            item.alt,
            window,
            ref_score,
            alt_score,
            alt_score - ref_score,
            (effects[0], effects[1]) if len(effects) == 2 else None,
            target,
        )

    def _column(self, batch: BatchPrediction, ref_row: int) -> tuple[str | None, int]:
        """The scored class or label and its output column (-1: the value or P(positive))."""
        manifest = self.predictor.manifest
        labels = manifest.output.labels
        if manifest.task in ("regression", "binary") or labels is None:
            return None, -1
        if self.target is not None:
            return self.target, labels.index(self.target)
        probabilities = batch.decoded.probabilities
        assert probabilities is not None
        best = int(probabilities[ref_row].argmax())
        return labels[best], best

    @staticmethod
    def _value(batch: BatchPrediction, row: int, column: int) -> float:
        decoded = batch.decoded
        if decoded.values is not None:
            return float(decoded.values[row])
        assert decoded.probabilities is not None
        return float(decoded.probabilities[row, column])


def _failed(base: Effect, error: UnscorableVariant) -> Effect:
    record = base.record
    located = error.at(index=record.index, record_id=record.where, line=record.line)
    return Effect(record, base.allele, base.alt, base.window, error=located)
