"""Plots saved into a bundle: PNG for reports, and the JSON data behind each (the UI draws it).

Contract: every function returns ``{relative_path: bytes}`` for ``plots/<name>.png`` and
``plots/<name>.json``. Plots: training curves (train/validation loss per epoch), confusion
matrix, ROC curve (binary), predicted-vs-true scatter and error distribution (regression).
Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_curve

Files = dict[str, bytes]


def _save(name: str, figure: Any, data: dict[str, Any]) -> Files:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    payload = json.dumps(data, indent=1, sort_keys=True).encode()
    return {f"plots/{name}.png": buffer.getvalue(), f"plots/{name}.json": payload}


def loss_curves(train: list[float], val: list[float], best_epoch: int) -> Files:
    figure, axes = plt.subplots(figsize=(5, 3.5))
    epochs = list(range(1, len(train) + 1))
    axes.plot(epochs, train, label="train")
    axes.plot(epochs, val, label="validation")
    if best_epoch:
        axes.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    axes.set(xlabel="epoch", ylabel="loss", title="Training curves")
    axes.legend()
    return _save(
        "loss",
        figure,
        {"epoch": epochs, "train_loss": train, "val_loss": val, "best_epoch": best_epoch},
    )


def confusion(matrix: list[list[int]], labels: list[str]) -> Files:
    figure, axes = plt.subplots(figsize=(4, 3.5))
    axes.imshow(np.array(matrix), cmap="Blues")
    cells = np.array(matrix)
    for (i, j), value in np.ndenumerate(cells):
        dark = value > cells.max() / 2
        axes.text(j, i, str(value), ha="center", va="center", color="white" if dark else "black")
    axes.set_xticks(range(len(labels)), labels, rotation=45)
    axes.set_yticks(range(len(labels)), labels)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test)")
    return _save("confusion", figure, {"labels": labels, "matrix": matrix})


def roc(y_true: npt.NDArray[np.int64], positive: npt.NDArray[np.floating], auc: float) -> Files:
    fpr, tpr, _ = roc_curve(y_true, positive)
    figure, axes = plt.subplots(figsize=(4, 3.5))
    axes.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    axes.legend()
    return _save("roc", figure, {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc})


def regression_plots(y_true: npt.NDArray[np.floating], y_pred: npt.NDArray[np.floating]) -> Files:
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.scatter(y_true, y_pred, s=4, alpha=0.4)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    axes.plot([low, high], [low, high], color="grey", linestyle=":")
    axes.set(xlabel="measured", ylabel="predicted", title="Predicted vs measured (test)")
    files = _save("scatter", figure, {"true": y_true.tolist(), "predicted": y_pred.tolist()})
    errors = y_pred - y_true
    figure, axes = plt.subplots(figsize=(4, 3))
    counts, edges = np.histogram(errors, bins=40)
    axes.stairs(counts, edges, fill=True)
    axes.set(xlabel="predicted - measured", ylabel="count", title="Error distribution (test)")
    return {
        **files,
        **_save("errors", figure, {"bin_edges": edges.tolist(), "counts": counts.tolist()}),
    }
