"""Explanations that scale to long sequences (genes of 1-3 kb and more), each at a stated cost.

Contract:
- The cost of an explanation is the number of sequences the model scores (:func:`ism_cost`,
  :func:`occlusion_cost`): full in-silico mutagenesis of ``L`` nt scores ``3L + 1`` sequences of
  ``L`` nt, so its work grows with ``L²``; block occlusion of ``L`` nt in blocks of ``b`` scores
  ``ceil(L / b) + 1``, whatever ``b`` is chosen, and ISM of a region of ``w`` nt ``3w + 1``.
- :func:`occlusion` replaces each block of ``block`` bases in turn (default: :func:`auto_block`,
  so that at most :data:`MAX_BLOCKS` blocks cover the sequence) and scores every such sequence
  and the original in one batched call. The block is replaced by ``N`` where the model's alphabet
  has ``N`` (an unknown base), else by its complement (A<->T, C<->G: same GC content, every motif
  broken); ``fill`` says which. ``effects[k]`` is the score change when block ``k`` (0-based
  ``starts[k]``) is replaced: negative where the block supports the prediction; ``importance`` is
  ``|effect|`` of each position's block, one value per base (a strip as long as the sequence).
- :func:`check_ism` refuses full ISM of a sequence over :data:`MAX_ISM` nt (or the limit given),
  naming the cheaper choices and their cost.
- :func:`ism_region` is :func:`~helixserve.explain.ism.ism` restricted to the 1-based, inclusive
  positions ``start``..``end`` (at most :data:`MAX_REGION` nt), with the rest of the sequence kept
  around them as the model sees it: ``effects`` and ``importance`` are for the region only.
- The score is :mod:`helixserve.explain.ism`'s (``target`` for multiclass and multilabel models).
  Bad input raises :class:`~helixserve.errors.InputError` naming the field: a sequence the model
  refuses (its own message), a block outside 1..``L``, a region outside the sequence or longer than
  :data:`MAX_REGION`.
"""

from __future__ import annotations

from dataclasses import dataclass

from helixserve.errors import InputError
from helixserve.explain.ism import BASES, IsmResult, dna_schema, scored_target, scores
from helixserve.inputs.sequence import validate_sequence
from helixserve.runtime.predictor import Predictor

MAX_BLOCKS = 200
MAX_REGION = 500
MAX_ISM = 5_000  # full ISM over the API: 15,001 sequences of 5,000 nt
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass(frozen=True)
class Occlusion:
    """Block occlusion of one sequence (see the module contract)."""

    sequence: str
    score: float
    block: int
    fill: str  # "N" or "complement"
    starts: list[int]
    effects: list[float]
    importance: list[float]
    target: str | None
    sequences: int


def ism_cost(length: int) -> int:
    """Sequences scored by full ISM of ``length`` nt (every base to each of the other three)."""
    return 3 * length + 1


def occlusion_cost(length: int, block: int) -> int:
    """Sequences scored by block occlusion of ``length`` nt in blocks of ``block``."""
    return -(-length // block) + 1


def auto_block(length: int) -> int:
    """The smallest block that covers ``length`` nt in at most :data:`MAX_BLOCKS` blocks."""
    return max(1, -(-length // MAX_BLOCKS))


def _filled(predictor: Predictor, part: str) -> tuple[str, str]:
    """``part`` occluded, and how: by N where the model takes N, else by its complement."""
    if "N" in dna_schema(predictor).alphabet:
        return "N" * len(part), "N"
    return part.translate(_COMPLEMENT), "complement"


def occlusion(
    predictor: Predictor, raw: str, block: int | None = None, target: str | None = None
) -> Occlusion:
    """Score the sequence with each block replaced in turn (see the module contract)."""
    sequence = validate_sequence(raw, dna_schema(predictor))
    size = block if block is not None else auto_block(len(sequence))
    if not 1 <= size <= len(sequence):
        raise InputError(
            f"block must be from 1 to the sequence's length ({len(sequence):,} nt), got {size}.",
            field="block",
        )
    chosen = scored_target(predictor, sequence, target)
    starts = list(range(0, len(sequence), size))
    variants, fill = [sequence], "N"
    for start in starts:
        replaced, fill = _filled(predictor, sequence[start : start + size])
        variants.append(sequence[:start] + replaced + sequence[start + size :])
    values = scores(predictor, variants, chosen)
    effects = [v - values[0] for v in values[1:]]
    importance = [abs(effects[i // size]) for i in range(len(sequence))]
    return Occlusion(
        sequence, values[0], size, fill, starts, effects, importance, chosen, len(variants)
    )


def check_ism(length: int, limit: int = MAX_ISM) -> None:
    """Refuse full ISM of a sequence over ``limit`` nt, naming the cheaper choices."""
    if length > limit:
        raise InputError(
            f"the sequence is {length:,} nt: in-silico mutagenesis of every position would score "
            f"{ism_cost(length):,} sequences of {length:,} nt, over the limit of {limit:,} nt. "
            f"Explain it by block occlusion ({occlusion_cost(length, auto_block(length)):,} "
            f"sequences), or give a region of up to {MAX_REGION} nt for per-base effects.",
            field="sequence",
        )


def check_region(length: int, start: int, end: int) -> None:
    """Refuse a region outside ``1..length`` or longer than :data:`MAX_REGION` nt."""
    if not 1 <= start <= end <= length:
        raise InputError(
            f"the region {start}-{end} is not inside the sequence (positions 1 to {length:,}, "
            "1-based, start before end).",
            field="region",
        )
    if end - start + 1 > MAX_REGION:
        raise InputError(
            f"the region {start:,}-{end:,} is {end - start + 1:,} nt; in-silico mutagenesis of a "
            f"region takes at most {MAX_REGION} nt (choose a shorter one, or block occlusion for "
            "the whole sequence).",
            field="region",
        )


def ism_region(
    predictor: Predictor, raw: str, start: int, end: int, target: str | None = None
) -> IsmResult:
    """ISM of positions ``start``..``end`` (1-based, inclusive) in their whole sequence."""
    sequence = validate_sequence(raw, dna_schema(predictor))
    check_region(len(sequence), start, end)
    chosen = scored_target(predictor, sequence, target)
    variants, where = [sequence], []
    for i in range(start - 1, end):
        for b, alt in enumerate(BASES):
            if sequence[i] in BASES and alt != sequence[i]:
                variants.append(sequence[:i] + alt + sequence[i + 1 :])
                where.append((i - start + 1, b))
    values = scores(predictor, variants, chosen)
    effects = [[0.0] * 4 for _ in range(end - start + 1)]
    for (i, b), value in zip(where, values[1:], strict=True):
        effects[i][b] = value - values[0]
    importance = [sum(abs(v) for v in row) / 3 for row in effects]
    return IsmResult(sequence[start - 1 : end], values[0], effects, importance, chosen)
