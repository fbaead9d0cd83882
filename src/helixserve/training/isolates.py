"""From gene-level predictions to isolate-level calls (multiple-instance data such as AMR genes).

Contract: an isolate (a *bag*) is the set of its gene sequences; the served model scores one
gene at a time (P(this gene confers resistance)). :func:`isolate_scores` turns gene
probabilities into one score per isolate: the **maximum** over its genes (an isolate is resistant
when at least one of its genes confers resistance). :func:`choose_threshold` picks the cut on
isolate scores that maximises balanced accuracy on *training* isolates only (ties: the cut
nearest 0.5); :func:`isolate_metrics` scores the calls ``score >= threshold`` against isolate
labels. Nothing here imports torch: a served model's probabilities are enough.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import balanced_accuracy_score

from helixserve.errors import HelixError


def isolate_scores(
    gene_probabilities: npt.NDArray[np.floating], bags: Sequence[str]
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Isolate names (sorted) and each one's highest gene probability."""
    if len(gene_probabilities) != len(bags):
        raise HelixError(
            f"{len(gene_probabilities):,} gene predictions but {len(bags):,} isolate ids; "
            "give one isolate id per gene."
        )
    names = sorted(set(bags))
    position = {name: i for i, name in enumerate(names)}
    scores = np.zeros(len(names))
    for probability, bag in zip(gene_probabilities, bags, strict=True):
        scores[position[bag]] = max(scores[position[bag]], float(probability))
    return names, scores


def bag_labels(labels: Sequence[int], bags: Sequence[str]) -> dict[str, int]:
    """Each isolate's label (the label every one of its genes carries)."""
    found: dict[str, int] = {}
    for label, bag in zip(labels, bags, strict=True):
        if found.setdefault(bag, int(label)) != int(label):
            raise HelixError(
                f"isolate {bag} has genes labelled both 0 and 1; every gene of an isolate must "
                "carry the isolate's label."
            )
    return found


def choose_threshold(scores: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]) -> float:
    """The cut (midway between neighbouring scores) with the best balanced accuracy."""
    values = np.unique(scores)
    cuts = np.concatenate([[0.5], (values[1:] + values[:-1]) / 2, [values[0] / 2]])
    best, chosen = -1.0, 0.5
    for cut in cuts:
        score = float(balanced_accuracy_score(labels, (scores >= cut).astype(int)))
        if score > best + 1e-12 or (
            abs(score - best) <= 1e-12 and abs(cut - 0.5) < abs(chosen - 0.5)
        ):
            best, chosen = score, float(cut)
    return chosen


def isolate_metrics(
    scores: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], threshold: float
) -> dict[str, float]:
    """Correct calls (count and share) and balanced accuracy of ``score >= threshold``."""
    calls = (scores >= threshold).astype(int)
    return {
        "isolates": float(len(labels)),
        "isolates_correct": float(np.sum(calls == labels)),
        "isolate_accuracy": float(np.mean(calls == labels)) if len(labels) else 0.0,
        "isolate_balanced_accuracy": float(balanced_accuracy_score(labels, calls)),
    }
