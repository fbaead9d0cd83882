"""In-silico mutagenesis (ISM) and variant effects for DNA models, in one batched model call.

Contract:
- The *score* of a prediction is P(positive) for binary models, the value for regression models,
  for multiclass models the probability of ``target`` (default: the class predicted for the
  unchanged sequence), and for multilabel models the probability of the label ``target``
  (default: the label most probable for the unchanged sequence). A ``target`` that is not one of
  the labels raises :class:`~helixserve.errors.InputError` naming them.
- :func:`ism` validates the sequence with the model's schema (same messages as everywhere), builds
  every single-base substitution (3 per position, A/C/G/T) plus the original, scores all of them
  in one ``predict_batch`` call and returns an :class:`IsmResult`: ``effects[i][b]`` is the score
  change when position ``i`` becomes base ``"ACGT"[b]`` (0 for the base already there; positions
  holding N score nothing), ``importance[i]`` the mean absolute change over the three
  substitutions.
- :func:`variant_effects` scores listed variants (1-based ``position``, ``ref``, ``alt``; alt may
  be several bases or empty for indels; :func:`allele_bases` reads ``-`` or ``.`` as no bases,
  the notation of the web page and the API) after checking that ``ref`` matches the sequence;
  a mismatch or an out-of-range position raises :class:`InvalidVariant` naming the variant, what
  the sequence holds there and how to fix it. All variants go in one batch.
- :func:`screen_variants` does the same per variant, for tables: a variant that does not fit (or
  whose changed sequence the model cannot take, e.g. a deletion under an exact-length rule) gets
  its :class:`InvalidVariant` in its :class:`VariantOutcome` and the others are still scored, in
  one batch. Only a bad reference sequence raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from helixserve.errors import InputError
from helixserve.inputs.sequence import SequenceSchema, validate_sequence
from helixserve.runtime.predictor import Decoded, Predictor

BASES = "ACGT"
NO_BASES = ("-", ".")  # how a variant written by hand says "no bases" (a deletion's alt)


class InvalidVariant(InputError):
    """A variant does not fit the sequence (position out of range, ref mismatch, bad bases)."""


@dataclass(frozen=True)
class IsmResult:
    sequence: str
    score: float
    effects: list[list[float]]
    importance: list[float]
    target: str | None


@dataclass(frozen=True)
class Variant:
    position: int
    ref: str
    alt: str


def allele_bases(text: str) -> str:
    """An allele as written by hand: ``-`` or ``.`` mean no bases; letters are upper-cased."""
    return "" if text.strip() in NO_BASES else text.strip().upper()


def dna_schema(predictor: Predictor) -> SequenceSchema:
    schema = predictor.manifest.input
    if not isinstance(schema, SequenceSchema):
        raise InputError(
            f"{predictor.label} takes {schema.kind} inputs; explanations are for DNA models."
        )
    return schema


def scores(predictor: Predictor, sequences: Sequence[str], target: str | None) -> list[float]:
    """One score per sequence (see the module contract); invalid ones raise their error."""
    result = predictor.predict_batch(list(sequences))
    if result.errors:
        raise result.errors[0].error
    return _values(predictor, result.decoded, target)


def _values(predictor: Predictor, d: Decoded, target: str | None) -> list[float]:
    """The score of each predicted item of a decoded batch."""
    if d.values is not None:
        return [float(v) for v in d.values]
    labels = predictor.manifest.output.labels or []
    assert d.probabilities is not None
    column = labels.index(target) if target is not None else len(labels) - 1
    return [float(p) for p in d.probabilities[:, column]]


def scored_target(predictor: Predictor, sequence: str, target: str | None) -> str | None:
    """The class or label whose probability is the score (see the module contract)."""
    labels = predictor.manifest.output.labels
    if predictor.manifest.task == "regression" or labels is None:
        return None
    if predictor.manifest.task == "binary":
        return labels[-1]
    if target is not None:
        if target not in labels:
            kind = "label" if predictor.manifest.task == "multilabel" else "class"
            raise InputError(f"target {kind} {target!r} is not one of {', '.join(labels)}.")
        return target
    batch = predictor.predict_batch([sequence])
    if predictor.manifest.task == "multilabel":
        probabilities = batch.decoded.probabilities
        if probabilities is None or len(probabilities) == 0:
            return labels[0]
        return labels[int(probabilities[0].argmax())]
    result = batch.labels()
    return result[0] if result else labels[0]


def ism(predictor: Predictor, raw: str, target: str | None = None) -> IsmResult:
    """Every single-base substitution scored; see the module contract."""
    sequence = validate_sequence(raw, dna_schema(predictor))
    chosen = scored_target(predictor, sequence, target)
    variants, where = [sequence], []
    for i, base in enumerate(sequence):
        for b, alt in enumerate(BASES):
            if base in BASES and alt != base:
                variants.append(sequence[:i] + alt + sequence[i + 1 :])
                where.append((i, b))
    values = scores(predictor, variants, chosen)
    reference = values[0]
    effects = np.zeros((len(sequence), 4))
    for (i, b), value in zip(where, values[1:], strict=True):
        effects[i, b] = value - reference
    importance = np.abs(effects).sum(axis=1) / 3
    return IsmResult(sequence, reference, effects.tolist(), importance.tolist(), chosen)


def _apply(sequence: str, variant: Variant, number: int) -> str:
    start = variant.position - 1
    found = sequence[start : start + len(variant.ref)]
    if start < 0 or start + len(variant.ref) > len(sequence):
        raise InvalidVariant(
            f"variant {number}: position {variant.position} is outside the "
            f"sequence (1 to {len(sequence)}); positions are 1-based.",
            field=f"variants[{number - 1}]",
        )
    if found != variant.ref.upper():
        raise InvalidVariant(
            f"variant {number}: the sequence has {found!r} at position "
            f"{variant.position}, not {variant.ref!r} as the variant says; check "
            "the position (1-based) and the reference base.",
            field=f"variants[{number - 1}]",
        )
    bad = sorted(set(variant.alt.upper()) - set(BASES))
    if bad:
        raise InvalidVariant(
            f"variant {number}: alt {variant.alt!r} has {bad[0]!r}; use A, C, G or T.",
            field=f"variants[{number - 1}]",
        )
    return sequence[:start] + variant.alt.upper() + sequence[start + len(variant.ref) :]


def variant_effects(
    predictor: Predictor, raw: str, variants: Sequence[Variant], target: str | None = None
) -> tuple[float, list[float]]:
    """The reference score and each variant's score change; see the module contract."""
    sequence = validate_sequence(raw, dna_schema(predictor))
    chosen = scored_target(predictor, sequence, target)
    altered = [_apply(sequence, v, n) for n, v in enumerate(variants, start=1)]
    values = scores(predictor, [sequence, *altered], chosen)
    return values[0], [v - values[0] for v in values[1:]]


@dataclass(frozen=True)
class VariantOutcome:
    """One listed variant (``number`` is 1-based, as listed): its score change, or why not."""

    number: int
    variant: Variant
    change: float | None
    error: InputError | None


def screen_variants(
    predictor: Predictor, raw: str, variants: Sequence[Variant], target: str | None = None
) -> tuple[float, list[VariantOutcome]]:
    """The reference score and one outcome per variant; see the module contract."""
    sequence = validate_sequence(raw, dna_schema(predictor))
    chosen = scored_target(predictor, sequence, target)
    errors: dict[int, InputError] = {}
    altered: list[str] = []
    for number, variant in enumerate(variants, start=1):
        try:
            altered.append(_apply(sequence, variant, number))
        except InvalidVariant as err:
            errors[number] = err
    scored = [n for n in range(1, len(variants) + 1) if n not in errors]
    batch = predictor.predict_batch([sequence, *altered])
    for failed in batch.errors:
        if failed.index == 0:
            raise failed.error
        number = scored[failed.index - 1]
        errors[number] = InvalidVariant(
            f"variant {number}: the changed sequence does not fit the model: "
            f"{failed.error.problem}",
            field=f"variants[{number - 1}]",
        )
    values = dict(
        zip(batch.positions.tolist(), _values(predictor, batch.decoded, chosen), strict=True)
    )
    reference = values[0]
    changes = {n: values[i] - reference for i, n in enumerate(scored, start=1) if i in values}
    outcomes = [
        VariantOutcome(n, v, changes.get(n), errors.get(n)) for n, v in enumerate(variants, start=1)
    ]
    return reference, outcomes
