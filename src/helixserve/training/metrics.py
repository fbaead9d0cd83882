"""Evaluation metrics on held-out data.

Contract: :func:`classification_metrics` takes true class indices, predicted probabilities
``(N, K)`` and the labels; it returns accuracy, balanced accuracy, precision, recall, F1 (macro
for multiclass, of the positive class for binary), ROC AUC and PR AUC (binary; one-vs-rest macro
ROC AUC for multiclass when every class is present), Brier score (binary), the confusion matrix
and a per-class report; for three or more classes also each class's ``f1:<class>`` and, when
the class and others are present, its one-vs-rest ``auroc:<class>`` and ``auprc:<class>``.
:func:`multilabel_metrics` takes an ``(N, L)`` 0/1 matrix, the ``(N, L)`` probabilities and the
label names; per label ``auroc:<label>`` and ``auprc:<label>`` (for labels with both values in
the rows), their macro means ``auroc`` and ``auprc``, ``label_accuracy`` (the share of right
0/1 calls at ``threshold``), ``exact_match`` (rows with every label right) and a per-label
report. :func:`regression_metrics` returns R², Pearson r, Spearman rho, MSE and MAE. Scalars
are plain floats (for the manifest); tables are lists and dicts (for JSON).
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
    if not binary:
        result |= _per_class(y_true, probabilities, labels, report)
    return {**result, "confusion_matrix": matrix.tolist(), "per_class": report}


def _per_class(
    y_true: npt.NDArray[np.int64],
    probabilities: npt.NDArray[np.floating],
    labels: list[str],
    report: dict[str, Any],
) -> dict[str, float]:
    """Each class's F1 and, where the class and others are present, one-vs-rest AUCs."""
    scores: dict[str, float] = {}
    for k, label in enumerate(labels):
        scores[f"f1:{label}"] = float(report[label]["f1-score"])
        member = (y_true == k).astype(np.int64)
        if 0 < member.sum() < len(member):
            scores[f"auroc:{label}"] = float(skm.roc_auc_score(member, probabilities[:, k]))
            scores[f"auprc:{label}"] = float(
                skm.average_precision_score(member, probabilities[:, k])
            )
    return scores


def multilabel_metrics(
    y_true: npt.NDArray[np.floating],
    probabilities: npt.NDArray[np.floating],
    labels: list[str],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Per-label and macro AUROC / AUPRC and call accuracies; see the module contract."""
    truth = y_true.astype(np.int64)
    called = (probabilities >= threshold).astype(np.int64)
    result: dict[str, Any] = {
        "label_accuracy": float(np.mean(called == truth)),
        "exact_match": float(np.mean(np.all(called == truth, axis=1))),
    }
    report: dict[str, dict[str, float]] = {}
    for j, label in enumerate(labels):
        column, scores = truth[:, j], probabilities[:, j]
        row = {
            "positives": float(column.sum()),
            "precision": float(skm.precision_score(column, called[:, j], zero_division=0)),
            "recall": float(skm.recall_score(column, called[:, j], zero_division=0)),
            "f1": float(skm.f1_score(column, called[:, j], zero_division=0)),
        }
        if 0 < column.sum() < len(column):
            row["auroc"] = result[f"auroc:{label}"] = float(skm.roc_auc_score(column, scores))
            row["auprc"] = result[f"auprc:{label}"] = float(
                skm.average_precision_score(column, scores)
            )
        report[label] = row
    for name in ("auroc", "auprc"):
        values = [row[name] for row in report.values() if name in row]
        if values:
            result[name] = float(np.mean(values))
    return {**result, "per_label": report}


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
