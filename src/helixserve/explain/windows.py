"""The sequence a DNA model sees around a variant on a reference: the window, with REF and ALT.

Contract:
- :func:`windowing` reads what a model needs from its input schema: an exact-length model (e.g.
  50 nt) needs exactly that window; a model with a maximum length takes windows of that size (or
  of ``window`` nt, if smaller); a model that takes any length sees the **whole contig** (a gene
  in a FASTA of genes), or a window of ``window`` nt when given; a whole contig over
  :data:`MAX_WHOLE_CONTIG` nt is not scored (give a window instead). A token model that
  truncates long inputs (``pad_to`` without a maximum) sees only their first ``pad_to`` bases,
  which :func:`cut` takes into account. A ``window`` the model cannot take raises
  :class:`~helixserve.errors.InputError`.
- :func:`check_ref` checks a record's contig, span and REF bases against the reference; :func:`cut`
  gives the REF and ALT windows of one ALT allele. A fixed-size window is centred on the REF span
  and moved inward at a contig's ends (it never runs off the contig; ``start``/``end`` say where it
  lies). The ALT window holds the same span with REF replaced by ALT; it keeps the window's size
  where the reference allows: after a deletion it is filled with the reference bases that follow
  (at a contig's end: that precede) the window, after an insertion the bases farthest from the
  variant on the right (then on the left) are dropped. A whole-contig window changes length with
  the variant, as the gene itself would.
- Anything that cannot be scored raises :class:`UnscorableVariant` with a ``reason`` code
  (:data:`REASONS`) and a message saying what was found and what to do: a contig the reference
  does not hold (``unknown_contig``), a REF span past the contig's end (``off_contig``), REF bases
  that differ from the reference (``ref_mismatch``), a window that cannot be made (``window``: the
  contig is shorter than the model's window, REF or ALT is longer than it, a deletion leaves too
  few bases, the variant lies beyond what a truncating model reads).
"""

from __future__ import annotations

from dataclasses import dataclass

from helixserve.errors import InputError
from helixserve.explain.ism import InvalidVariant
from helixserve.inputs.reference import Reference
from helixserve.inputs.sequence import SequenceSchema

MAX_WHOLE_CONTIG = 100_000
REASONS = (
    "unreadable",
    "unknown_contig",
    "off_contig",
    "ref_mismatch",
    "no_alt",
    "symbolic",
    "bad_allele",
    "window",
    "model",
)
_COMPLEMENT = str.maketrans("ACGTNRYSWKMBDHV", "TGCANYRSWMKVHDB")


class UnscorableVariant(InvalidVariant):
    """A variant (one ALT of a VCF record) that cannot be scored; ``reason`` is a code of
    :data:`REASONS`, the message says why in words."""

    def __init__(self, problem: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(problem, field="variant")


@dataclass(frozen=True)
class Windowing:
    """The window a model needs: ``size`` nt (``None``: the whole contig), ``exact`` when the
    model takes no other length, ``reads``: how many leading bases a truncating model sees."""

    size: int | None
    exact: bool
    min_length: int
    max_length: int | None
    reads: int | None

    def words(self) -> str:
        if self.size is None:
            return "the whole contig"
        return f"{self.size:,} nt around the variant"


@dataclass(frozen=True)
class Span:
    """A checked record: REF's 0-based ``[start, end)`` on a contig of ``length`` nt."""

    chrom: str
    start: int
    end: int
    length: int


@dataclass(frozen=True)
class Cut:
    """The REF and ALT windows of one allele; ``start``/``end``: the REF window, 0-based."""

    ref: str
    alt: str
    start: int
    end: int


def windowing(schema: SequenceSchema, window: int | None = None) -> Windowing:
    """What a model with ``schema`` needs (see the module contract)."""
    low = schema.length or schema.min_length or 1
    high = schema.length or schema.max_length
    if window is not None and (window < low or (high is not None and window > high)):
        raise InputError(
            f"a window of {window:,} nt does not fit this model, which takes "
            f"{schema.length_rule()}; choose a window in that range, or leave it out.",
            field="window",
        )
    truncates = schema.encoding == "tokens" and high is None
    reads = schema.pad_to if truncates else None
    size = window or high
    return Windowing(size, schema.length is not None, low, high, reads)


def revcomp(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def check_ref(reference: Reference, chrom: str, pos: int, ref: str) -> Span:
    """The record's REF span, after checking it against the reference."""
    length = reference.length(chrom)
    if length is None:
        shown = ", ".join(reference.names[:5]) + (", ..." if len(reference.names) > 5 else "")
        raise UnscorableVariant(
            f"contig {chrom!r} is not in the reference, which holds {len(reference.names):,} "
            f"({shown}); check that the VCF and the reference name contigs alike "
            "(e.g. 'chr1' and '1').",
            reason="unknown_contig",
        )
    start, end = pos - 1, pos - 1 + len(ref)
    if end > length:
        raise UnscorableVariant(
            f"REF {_short(ref)} at {chrom}:{pos} runs past the end of {chrom}, which is "
            f"{length:,} nt long; check the position and the reference build.",
            reason="off_contig",
        )
    found = reference.fetch(chrom, start, end)
    if not _same(found, ref):
        raise UnscorableVariant(
            f"the reference has {_short(found)} at {chrom}:{pos}, not {_short(ref)} as REF says; "
            "check that the VCF was called against this reference (the same build).",
            reason="ref_mismatch",
        )
    return Span(chrom, start, end, length)


def _same(found: str, ref: str) -> bool:
    return len(found) == len(ref) and all(r in ("N", f) for f, r in zip(found, ref, strict=True))


def _short(bases: str) -> str:
    return repr(bases) if len(bases) <= 20 else f"{bases[:10]!r}...({len(bases):,} nt)"


def cut(reference: Reference, span: Span, alt: str, need: Windowing) -> Cut:
    """The REF and ALT windows of ``alt`` at ``span`` (see the module contract)."""
    alt = alt.upper()
    if need.size is None or (span.length <= need.size and not need.exact):
        return _whole(reference, span, alt, need)
    size = need.size
    if span.length < size:
        raise UnscorableVariant(
            f"contig {span.chrom} is {span.length:,} nt, shorter than the {size:,}-nt window "
            "this model needs.",
            reason="window",
        )
    for what, bases in (("REF", span.end - span.start), ("ALT", len(alt))):
        if bases > size:
            raise UnscorableVariant(
                f"{what} is {bases:,} nt, longer than the {size:,}-nt window this model sees; "
                "such a variant cannot be scored with this model.",
                reason="window",
            )
    middle = (span.start + span.end) // 2
    start = min(max(middle - size // 2, 0, span.end - size), span.start, span.length - size)
    end = start + size
    if need.reads is not None and span.start - start >= need.reads:
        raise _unseen(need.reads, span.start - start, f"the {size:,}-nt window")
    ref_window = reference.fetch(span.chrom, start, end)
    left, right = ref_window[: span.start - start], ref_window[span.end - start :]
    alt_window = _refit(reference, span, (start, end), (left, alt, right), need)
    return Cut(ref_window, alt_window, start, end)


def _refit(
    reference: Reference,
    span: Span,
    bounds: tuple[int, int],
    parts: tuple[str, str, str],
    need: Windowing,
) -> str:
    """The ALT window (left + ALT + right) brought back to the window's size (see the module
    contract)."""
    size = bounds[1] - bounds[0]
    left, alt, right = parts
    changed = left + alt + right
    if len(changed) > size:
        excess = len(changed) - size
        from_right = min(excess, len(right))
        return changed[excess - from_right : len(changed) - from_right]
    missing = size - len(changed)
    after = reference.fetch(span.chrom, bounds[1], min(bounds[1] + missing, span.length))
    still = missing - len(after)
    before = reference.fetch(span.chrom, max(bounds[0] - still, 0), bounds[0]) if still else ""
    filled = before + changed + after
    if len(filled) < size and (need.exact or len(filled) < need.min_length):
        raise UnscorableVariant(
            f"after this deletion contig {span.chrom} ({span.length:,} nt) has too few bases to "
            f"fill the {size:,}-nt window this model needs.",
            reason="window",
        )
    return filled


def _unseen(reads: int, at: int, what: str) -> UnscorableVariant:
    return UnscorableVariant(
        f"this model reads only the first {reads:,} nt of a sequence, and the variant is at nt "
        f"{at + 1:,} of {what}: the model cannot see it. Give a smaller window.",
        reason="window",
    )


def _whole(reference: Reference, span: Span, alt: str, need: Windowing) -> Cut:
    if span.length > MAX_WHOLE_CONTIG:
        raise UnscorableVariant(
            f"this model reads whole sequences, and contig {span.chrom} is {span.length:,} nt "
            f"(over {MAX_WHOLE_CONTIG:,}); give a window size to score variants on it.",
            reason="window",
        )
    if need.reads is not None and span.start >= need.reads:
        raise _unseen(need.reads, span.start, f"contig {span.chrom}")
    whole = reference.fetch(span.chrom, 0, span.length)
    changed = whole[: span.start] + alt + whole[span.end :]
    if need.max_length is not None and len(changed) > need.max_length:
        changed = changed[: need.max_length]
    return Cut(whole, changed, 0, span.length)
