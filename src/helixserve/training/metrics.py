"""Evaluation metrics on held-out data.

Contract: :func:`classification_metrics` takes true class indices, predicted probabilities
``(N, K)`` and the labels; it returns accuracy, balanced accuracy, precision, recall, F1 (macro
for multiclass, of the positive class for binary), ROC AUC and PR AUC (binary; one-vs-rest macro
ROC AUC for multiclass when every class is present), Brier score (binary), the confusion matrix
and a per-class report. :func:`regression_metrics` returns R², Pearson r, Spearman rho, MSE and
MAE. Scalars are plain floats (for the manifest); tables are lists (for JSON).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn import metrics as skm


def classification_metrics(
    y_true: npt.NDArray[np.int64], probabilities: npt.NDArray[np.floating], labels: list[str]
) -> dict[str, Any]:
    y_pred = probabilities.argmax(axis=1)
    binary = len(labels) == 2
    average = "binary" if binary else "macro"
    result: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, average=average, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average=average, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, average=average, zero_division=0)),
    }
    present = len(np.unique(y_true)) == len(labels)
    if binary and present:
        result["roc_auc"] = float(skm.roc_auc_score(y_true, probabilities[:, 1]))
        result["pr_auc"] = float(skm.average_precision_score(y_true, probabilities[:, 1]))
        result["brier"] = float(skm.brier_score_loss(y_true, probabilities[:, 1]))
    elif present:
        result["roc_auc"] = float(skm.roc_auc_score(y_true, probabilities, multi_class="ovr"))
    matrix = skm.confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    report = skm.classification_report(
        y_true,
        y_pred,
        labels=list(range(len(labels))),
        target_names=labels,
        output_dict=True,
        zero_division=0,
    )
    return {**result, "confusion_matrix": matrix.tolist(), "per_class": report}


def regression_metrics(
    y_true: npt.NDArray[np.floating], y_pred: npt.NDArray[np.floating]
) -> dict[str, Any]:
    pearson = stats.pearsonr(y_true, y_pred)[0] if len(y_true) > 1 else float("nan")
    spearman = stats.spearmanr(y_true, y_pred)[0] if len(y_true) > 1 else float("nan")
    return {
        "r2": float(skm.r2_score(y_true, y_pred)),
        "pearson_r": float(pearson),
        "pearson_r2": float(pearson) ** 2,
        "spearman_rho": float(spearman),
        "mse": float(skm.mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
    }


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics that are single numbers (what the manifest keeps)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
