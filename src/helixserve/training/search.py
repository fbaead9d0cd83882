"""Hyper-parameter search with optuna over a space each recipe declares.

Contract: :func:`search` runs ``trials`` optuna trials (TPE sampler seeded with ``seed``, so a
search is repeatable). Each trial builds the recipe with the trial's hyper-parameters and scores
it by k-fold cross-validation on the data it is given (the caller passes the non-test part: the
test split never influences the choice). The score is mean accuracy for classifiers and mean R²
for regression. It returns the best hyper-parameters and a Markdown table of the best trials.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from helixserve.errors import HelixError
from helixserve.training.cv import cross_validate
from helixserve.training.data import Dataset
from helixserve.training.recipes import (
    DnaBinary,
    DnaClassify,
    DnaRegression,
    DnaVariable,
    ImageCNN,
    Recipe,
    TabularForest,
)

Space = Callable[[optuna.Trial], dict[str, Any]]


def _dna_binary(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "filters": trial.suggest_categorical("filters", [16, 32, 64, 128]),
        "kernel": trial.suggest_int("kernel", 6, 16),
        "hidden": trial.suggest_categorical("hidden", [16, 32, 64]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
    }


def _dna_classify(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "filters": trial.suggest_categorical("filters", [32, 64, 128]),
        "kernel": trial.suggest_int("kernel", 6, 20),
        "bins": trial.suggest_categorical("bins", [4, 8, 16]),
        "hidden": trial.suggest_categorical("hidden", [16, 32, 64]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
    }


def _dna_regression(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "dropout": trial.suggest_float("dropout", 0.0, 0.4),
        "dense": trial.suggest_categorical("dense", [32, 64, 128]),
        "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
    }


def _dna_variable(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "units": trial.suggest_categorical("units", [16, 32, 64]),
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
    }


def _tabular(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 800, step=100),
        "max_features": trial.suggest_categorical("max_features", ["sqrt", 0.5, 1.0]),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 6),
    }


def _image(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
    }


SPACES: dict[type[Recipe], Space] = {
    DnaClassify: _dna_classify,
    DnaBinary: _dna_binary,
    DnaRegression: _dna_regression,
    DnaVariable: _dna_variable,
    TabularForest: _tabular,
    ImageCNN: _image,
}


def with_params(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """A fresh, unfitted recipe like ``recipe`` with some hyper-parameters changed."""
    return copy.deepcopy(recipe).set_params(**overrides)


@dataclass
class SearchResult:
    best: dict[str, Any]
    score: float
    table: str


def search(recipe: Recipe, data: Dataset, *, trials: int, folds: int, seed: int) -> SearchResult:
    """Run the search; see the module contract."""
    space = SPACES.get(type(recipe))
    if space is None:
        raise HelixError(f"recipe {recipe.name} declares no search space.")
    metric = "r2" if recipe.task == "regression" else "accuracy"
    if data.label_columns is not None:
        metric = "auroc"

    def objective(trial: optuna.Trial) -> float:
        candidate = with_params(recipe, space(trial))
        result = cross_validate(lambda: copy.deepcopy(candidate), data, folds=folds, seed=seed)
        return result.mean(metric)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    ranked = sorted(
        (t for t in study.trials if t.value is not None), key=lambda t: -(t.value or 0.0)
    )
    rows = "\n".join(f"| {t.number} | {t.value:.4f} | {_params(t.params)} |" for t in ranked[:5])
    table = (
        f"## Hyper-parameter search ({trials} trials, {folds}-fold CV {metric}, "
        f"train + validation part)\n\n| trial | CV {metric} | hyper-parameters |\n"
        f"|---|---|---|\n{rows}\n"
    )
    return SearchResult(dict(study.best_params), float(study.best_value), table)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )
