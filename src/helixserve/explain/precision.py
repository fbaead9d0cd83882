"""Which model computes an explanation — a version or its int8 sibling — and how closely the two
agree.

Contract:
- :func:`spearman` is the rank correlation of two equal-length vectors (ties take their average
  rank), or ``None`` when either holds a single value throughout (no ranking to compare).
- :func:`ism_agreement` runs :func:`~helixserve.explain.ism.ism` with the original and the int8
  model on each of the first ``limit`` inputs that are DNA strings the original accepts (others
  are skipped; for classifiers both score the target the original chose) and compares, per
  sequence, the ranking of its single-base substitution effects (3 per position holding A, C, G
  or T): an :class:`IsmAgreement` with the mean and the lowest per-sequence Spearman, or ``None``
  when no sequence could be ranked.
- :func:`compare_ism` is the :data:`~helixserve.runtime.quantize.Compare` hook of
  ``models quantize`` and the zoo build: for a DNA model, the figures as manifest metrics
  (:data:`ISM_SPEARMAN`, :data:`ISM_SPEARMAN_MIN`, :data:`ISM_SEQUENCES`) and a sentence for the
  card; ``None`` for other models. :func:`agreement_line` says it in one line (the CLI's).
- :func:`choose` picks the version that explains for a request of ``requested`` at ``precision``
  among the ``served`` versions of its name. An *int8 sibling* of ``name@v`` is a served version
  whose lineage is ``quantize`` of ``name@v`` with the same input and output schema; it is
  *vetted* when its :data:`ISM_SPEARMAN` is at least :data:`AGREEMENT_BAR` (the newest vetted one
  is used). ``auto``: the requested version if it is int8 itself, else its vetted sibling, else
  the requested version. ``fp32``: the requested version, or, if that is an int8 version, its
  served fp32 parent. ``int8``: the requested version if it is int8, else its vetted sibling.
  What cannot be honoured raises :class:`PrecisionUnavailable` (field ``precision``) saying why
  (no sibling, a sibling without the figure or below the bar, an unserved parent, a precision
  that is none of the three) and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from helixserve.errors import InputError
from helixserve.explain.ism import BASES, dna_schema, ism
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.quantize import Comparison
from helixserve.store.manifest import Manifest

AGREEMENT_BAR = 0.99
ISM_SPEARMAN = "ism_spearman_vs_fp32"
ISM_SPEARMAN_MIN = "ism_spearman_min_vs_fp32"
ISM_SEQUENCES = "ism_sequences"
ISM_CHECK_LIMIT = 2000
PRECISIONS = ("auto", "fp32", "int8")
Precision = Literal["auto", "fp32", "int8"]


class PrecisionUnavailable(InputError):
    """The precision asked for cannot be honoured for this model version."""


@dataclass(frozen=True)
class IsmAgreement:
    sequences: int
    mean: float
    lowest: float


@dataclass(frozen=True)
class Choice:
    """The version that computes an explanation; ``spearman``/``sequences``: its measured ISM
    agreement with its fp32 parent (int8 only)."""

    version: int
    precision: Literal["fp32", "int8"]
    spearman: float | None = None
    sequences: int | None = None


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0
    return np.asarray(average[inverse], dtype=np.float64)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation; see the module contract."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    scale = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return None if scale == 0 else float((ra * rb).sum() / scale)


def _substitutions(sequence: str, effects: list[list[float]]) -> list[float]:
    return [
        effects[i][b]
        for i, base in enumerate(sequence)
        if base in BASES
        for b, alt in enumerate(BASES)
        if alt != base
    ]


def ism_agreement(
    original: Predictor, int8: Predictor, inputs: Iterable[object], limit: int = ISM_CHECK_LIMIT
) -> IsmAgreement | None:
    """Per-sequence rank agreement of both models' ISM effects; see the module contract."""
    found: list[float] = []
    tried = 0
    for item in inputs:
        if tried >= limit:
            break
        if not isinstance(item, str):
            continue
        tried += 1
        try:
            before = ism(original, item)
        except InputError:
            continue
        after = ism(int8, item, before.target)
        rho = spearman(
            _substitutions(before.sequence, before.effects),
            _substitutions(after.sequence, after.effects),
        )
        if rho is not None:
            found.append(rho)
    if not found:
        return None
    return IsmAgreement(len(found), float(np.mean(found)), float(np.min(found)))


def compare_ism(
    original: Predictor, int8: Predictor, inputs: Sequence[object], source: str
) -> Comparison | None:
    """The ISM agreement as manifest metrics and a card sentence; see the module contract."""
    try:
        dna_schema(original)
    except InputError:
        return None
    agreement = ism_agreement(original, int8, inputs)
    if agreement is None:
        return None
    passed = "at or above" if agreement.mean >= AGREEMENT_BAR else "below"
    use = "uses" if agreement.mean >= AGREEMENT_BAR else "does not use"
    note = (
        f"In-silico mutagenesis of {agreement.sequences:,} sequences of {source}: the ranking "
        f"of each sequence's single-base substitution effects agrees with the original's at "
        f"a mean Spearman of {agreement.mean:.4f} (lowest {agreement.lowest:.4f}), {passed} "
        f"the bar of {AGREEMENT_BAR}: the server {use} this version to explain the original "
        "(see docs/explain.md).\n"
    )
    metrics = {
        ISM_SPEARMAN: agreement.mean,
        ISM_SPEARMAN_MIN: agreement.lowest,
        ISM_SEQUENCES: float(agreement.sequences),
    }
    return Comparison(metrics, note)


def agreement_line(manifest: Manifest, original: str) -> str | None:
    """One line on an int8 version's measured ISM agreement with ``original`` (the CLI's), or
    ``None`` without the figure."""
    figure, count = _agreement(manifest)
    if figure is None:
        return None
    verdict = (
        "it explains the original (precision auto)"
        if figure >= AGREEMENT_BAR
        else f"below {AGREEMENT_BAR}: the server will not explain {original} with it"
    )
    return (
        f"ISM effects vs {original}: Spearman {figure:.4f} on average over {count or 0:,} "
        f"sequences (lowest {manifest.metrics.get(ISM_SPEARMAN_MIN, figure):.4f}); {verdict}"
    )


# --- which version explains -------------------------------------------------------------------


def _label(manifest: Manifest) -> str:
    return f"{manifest.name}@{manifest.version}"


def int8_parent(manifest: Manifest) -> str | None:
    """The ``name@version`` an int8 version was quantised from, or ``None``."""
    lineage = manifest.lineage
    return lineage.parent if lineage is not None and lineage.how == "quantize" else None


def _agreement(manifest: Manifest) -> tuple[float | None, int | None]:
    figure, count = manifest.metrics.get(ISM_SPEARMAN), manifest.metrics.get(ISM_SEQUENCES)
    return figure, None if count is None else int(count)


def _int8_choice(manifest: Manifest) -> Choice:
    return Choice(manifest.version, "int8", *_agreement(manifest))


def _siblings(requested: Manifest, served: Iterable[Manifest]) -> list[Manifest]:
    """The int8 siblings of ``requested``, newest first."""
    found = [
        m
        for m in served
        if int8_parent(m) == _label(requested)
        and m.input == requested.input
        and m.output == requested.output
    ]
    return sorted(found, key=lambda m: m.version, reverse=True)


def _vetted(manifest: Manifest) -> bool:
    figure = manifest.metrics.get(ISM_SPEARMAN)
    return figure is not None and figure >= AGREEMENT_BAR


def choose(requested: Manifest, served: Iterable[Manifest], precision: str) -> Choice:
    """The version that explains; see the module contract."""
    if precision not in PRECISIONS:
        raise PrecisionUnavailable(
            f"precision {precision!r} is not one of {', '.join(PRECISIONS)}.", field="precision"
        )
    versions = list(served)
    if int8_parent(requested) is not None:
        return _from_int8(requested, versions) if precision == "fp32" else _int8_choice(requested)
    if precision == "fp32":
        return Choice(requested.version, "fp32")
    siblings = _siblings(requested, versions)
    vetted = [m for m in siblings if _vetted(m)]
    if vetted:
        return _int8_choice(vetted[0])
    if precision == "auto":
        return Choice(requested.version, "fp32")
    raise PrecisionUnavailable(_no_int8(requested, siblings), field="precision")


def _from_int8(requested: Manifest, served: list[Manifest]) -> Choice:
    parent = int8_parent(requested)
    for manifest in served:
        same = manifest.input == requested.input and manifest.output == requested.output
        if _label(manifest) == parent and same:
            return Choice(manifest.version, "fp32")
    raise PrecisionUnavailable(
        f"{_label(requested)} is an int8 version and its fp32 parent {parent} is not served; "
        f"send precision auto or int8 to explain with {_label(requested)} itself.",
        field="precision",
    )


def _no_int8(requested: Manifest, siblings: list[Manifest]) -> str:
    label = _label(requested)
    if not siblings:
        return (
            f"{label} has no int8 version to explain with; make one with `helixserve models "
            f"quantize {label} --test-file FILE` (it measures how well its ISM effects agree), "
            "or send precision auto or fp32."
        )
    newest = siblings[0]
    figure, count = _agreement(newest)
    if figure is None:
        return (
            f"{_label(newest)} (int8 of {label}) has no measured ISM agreement with it, so it "
            f"is not used for explanations; quantize again with `helixserve models quantize "
            f"{label} --test-file FILE`, or send precision auto or fp32."
        )
    return (
        f"{_label(newest)} (int8 of {label}) is not used for explanations: its ISM effects "
        f"rank like {label}'s at a Spearman of {figure:.4f} over {count or 0:,} sequences, "
        f"below the bar of {AGREEMENT_BAR}; send precision auto or fp32."
    )
