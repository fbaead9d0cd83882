"""Estimator-like training recipes: ``fit`` / ``predict_proba`` / ``export_onnx``.

Each recipe keeps its hyper-parameters as the keyword arguments it was built with (scikit-learn
style), declares the input schema served models will validate against, and exports an ONNX graph
that outputs probabilities (classifiers) or values (regression).
"""

from __future__ import annotations

from helixserve.training.recipes.base import Recipe
from helixserve.training.recipes.dna import DnaBinary
from helixserve.training.recipes.tabular import TabularForest

RECIPES: dict[str, type[Recipe]] = {"dna-binary": DnaBinary, "tabular": TabularForest}

__all__ = ["RECIPES", "DnaBinary", "Recipe", "TabularForest"]
