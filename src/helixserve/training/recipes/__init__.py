"""Estimator-like training recipes: ``fit`` / ``predict_proba`` / ``export_onnx``.

Each recipe keeps its hyper-parameters as the keyword arguments it was built with (scikit-learn
style; declared and checked by :mod:`helixserve.params.recipes`), declares the input
schema served models will validate against, and exports an ONNX graph that outputs
probabilities (classifiers) or values (regression). :data:`RECIPES` (name -> class) is the
registry the CLI, the zoo and the conformance test read; its names are the declared ones.
"""

from __future__ import annotations

from helixserve.params.recipes import RECIPE_NAMES
from helixserve.training.recipes.base import Recipe
from helixserve.training.recipes.classify import DnaClassify
from helixserve.training.recipes.dna import DnaBinary
from helixserve.training.recipes.image import ImageCNN
from helixserve.training.recipes.tabular import TabularForest
from helixserve.training.recipes.utr import DnaRegression
from helixserve.training.recipes.variable import DnaVariable

RECIPES: dict[str, type[Recipe]] = {
    recipe.name: recipe
    for recipe in (DnaClassify, DnaBinary, DnaRegression, DnaVariable, TabularForest, ImageCNN)
}
if tuple(RECIPES) != RECIPE_NAMES:  # names and order: helixserve.params.recipes
    raise ImportError(f"RECIPES {tuple(RECIPES)} do not match the declared {RECIPE_NAMES}")

__all__ = [
    "RECIPES",
    "DnaBinary",
    "DnaClassify",
    "DnaRegression",
    "DnaVariable",
    "ImageCNN",
    "Recipe",
    "TabularForest",
]
