"""k-fold cross-validation of a recipe, and the k-mer ridge baseline for DNA regression.

Contract: :func:`cross_validate` encodes the data once with the recipe's schema, and for each of
``folds`` folds (stratified for classification, shuffled with ``seed``) fits a fresh recipe on
the other folds (early stopping on 10% of them) and scores the held-out fold. It returns the
per-fold metrics and their mean and standard deviation (multi-label targets: unstratified folds,
:func:`~helixserve.training.metrics.multilabel_metrics`). :func:`kmer_ridge_cv` scores the
baseline of k-mer counts (k = 1..6) with ridge regression (alpha chosen by inner CV) on the same
folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import (
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from helixserve.training.data import Dataset, encode_targets
from helixserve.training.metrics import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    scalars,
)
from helixserve.training.publish import encode_inputs, target_task
from helixserve.training.recipes.base import Recipe


@dataclass
class CVResult:
    folds: list[dict[str, float]]

    def mean(self, metric: str) -> float:
        return float(np.mean([f[metric] for f in self.folds]))

    def std(self, metric: str) -> float:
        return float(np.std([f[metric] for f in self.folds]))


def fold_indices(
    n: int, y: npt.NDArray[Any] | None, folds: int, seed: int, groups: list[str] | None = None
) -> list[Any]:
    """Fold (train, test) index pairs: stratified for classes; groups never split."""
    x = np.zeros(n)
    if groups is not None and y is not None:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        return list(splitter.split(x, y, groups))
    if y is None:
        return list(KFold(folds, shuffle=True, random_state=seed).split(x))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))


def cross_validate(
    make: Callable[[], Recipe], data: Dataset, *, folds: int = 5, seed: int = 0
) -> CVResult:
    first = make()
    if not first.adapted:
        first.adapt(data)
    x = encode_inputs(first, data.inputs)
    task = target_task(first, data)
    y, labels = encode_targets(data.targets, task, data.positive, data.label_columns)
    scores = []
    targets = y if task in ("binary", "multiclass") else None
    for train, test in fold_indices(len(x), targets, folds, seed, data.groups):
        recipe = make()
        fit_part, val_part = train, train
        if recipe.uses_validation:
            fit_part, val_part = train_test_split(train, test_size=0.1, random_state=seed)
        recipe.fit(x[fit_part], y[fit_part], x[val_part], y[val_part], labels=labels, seed=seed)
        predicted = recipe.predict_proba(x[test])
        if labels is None:
            scores.append(scalars(regression_metrics(y[test].astype(np.float64), predicted)))
        elif task == "multilabel":
            scores.append(scalars(multilabel_metrics(y[test], predicted, labels)))
        else:
            scores.append(scalars(classification_metrics(y[test], predicted, labels)))
    return CVResult(scores)


def kmer_counts(sequences: Sequence[str], k_max: int = 6) -> sparse.csr_matrix:
    """Counts of every k-mer, k = 1..k_max (4 + 16 + ... + 4**k_max columns)."""
    columns: dict[str, int] = {}
    for k in range(1, k_max + 1):
        for kmer in product("ACGT", repeat=k):
            columns["".join(kmer)] = len(columns)
    rows, cols, values = [], [], []
    for i, seq in enumerate(sequences):
        counts: dict[int, int] = {}
        for k in range(1, k_max + 1):
            for start in range(len(seq) - k + 1):
                column = columns.get(seq[start : start + k])
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
        rows += [i] * len(counts)
        cols += list(counts)
        values += list(counts.values())
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(sequences), len(columns)))


def kmer_ridge_cv(data: Dataset, *, folds: int = 5, seed: int = 0) -> CVResult:
    x = kmer_counts([str(s) for s in data.inputs])
    y = np.array([float(t) for t in data.targets])
    scores = []
    for train, test in fold_indices(len(y), None, folds, seed):
        model = RidgeCV(alphas=np.logspace(-1, 4, 12)).fit(x[train], y[train])
        scores.append(scalars(regression_metrics(y[test], model.predict(x[test]))))
    return CVResult(scores)
