"""Estimator-like training recipes: ``fit`` / ``predict_proba`` / ``export_onnx``.

Each recipe keeps its hyper-parameters as the keyword arguments it was built with (scikit-learn
style), declares the input schema served models will validate against, and exports an ONNX graph
that outputs probabilities (classifiers) or values (regression).
"""

from __future__ import annotations

from helixserve.training.recipes.base import Recipe
from helixserve.training.recipes.dna import DnaBinary
from helixserve.training.recipes.image import ImageCNN
from helixserve.training.recipes.tabular import TabularForest
from helixserve.training.recipes.utr import DnaRegression
from helixserve.training.recipes.variable import DnaVariable

RECIPES: dict[str, type[Recipe]] = {
    "dna-binary": DnaBinary,
    "dna-regression": DnaRegression,
    "dna-variable": DnaVariable,
    "tabular": TabularForest,
    "image": ImageCNN,
}

__all__ = [
    "RECIPES",
    "DnaBinary",
    "DnaRegression",
    "DnaVariable",
    "ImageCNN",
    "Recipe",
    "TabularForest",
]
