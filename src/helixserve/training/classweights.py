"""Class weights: the ``class_weight`` hyper-parameter of the classifier recipes.

Contract: a ``class_weight`` is ``None`` (every example counts once), ``"balanced"``
(scikit-learn's rule: ``n_samples / (n_classes * count of the class)``) or explicit weights as
text, ``"LABEL=WEIGHT,LABEL=WEIGHT"`` (e.g. ``"0=1,1=4"``; labels as the targets name them after
``--label-names``; classes not named weigh 1). Recipes store it as given, so it shows as-is in
``recipe.json`` and the card (its form is checked when the recipe is built, see
:mod:`helixserve.params.recipes`; the labels it names, when fitting).

- :func:`check_class_weight` validates the text (``"none"`` becomes ``None``) and returns it;
- :func:`class_weight_vector` gives one weight per class (in the order of ``labels``) for the
  PyTorch losses, :func:`sklearn_class_weight` what scikit-learn's ``class_weight=`` takes for
  targets encoded as class indices, :func:`label_weight_vector` the positive-row weight of
  each label of a multi-label target (the labels are its columns).

All raise :class:`~helixserve.errors.HelixError` saying what was wrong, what arrived and how to
write it instead.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from helixserve.errors import HelixError
from helixserve.training.loop import balanced_weights

FORMAT = "none, balanced, or LABEL=WEIGHT pairs such as 0=1,1=4"


def check_class_weight(spec: str | None) -> str | None:
    """``spec`` if it is a valid class weight (``"none"``: ``None``); see the module contract."""
    if spec is None or spec.strip().lower() == "none":
        return None
    if spec.strip().lower() == "balanced":
        return "balanced"
    _pairs(spec)
    return spec.strip()


def _pairs(spec: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in spec.split(","):
        label, sep, text = (part.strip() for part in item.partition("="))
        if not sep or not label or not text:
            raise HelixError(
                f"The 'class_weight' parameter must be {FORMAT}. Got {spec!r} instead."
            )
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight <= 0:
            raise HelixError(
                f"The 'class_weight' parameter must give class {label!r} a positive weight. "
                f"Got {spec!r} instead."
            )
        if label in weights:
            raise HelixError(
                f"The 'class_weight' parameter must name class {label!r} once. "
                f"Got {spec!r} instead."
            )
        weights[label] = weight
    return weights


def _explicit(spec: str, labels: list[str]) -> list[float]:
    weights = _pairs(spec)
    unknown = [label for label in weights if label not in labels]
    if unknown:
        raise HelixError(
            f"The 'class_weight' parameter names class {', '.join(map(repr, unknown))}, which "
            f"the targets do not hold; they hold {', '.join(labels)}."
        )
    return [weights.get(label, 1.0) for label in labels]


def class_weight_vector(
    spec: str | None, labels: list[str], y: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32] | None:
    """One weight per class of ``labels`` (``y``: the training targets as class indices)."""
    spec = check_class_weight(spec)
    if spec is None:
        return None
    if spec == "balanced":
        return balanced_weights(y, len(labels))
    return np.array(_explicit(spec, labels), dtype=np.float32)


def sklearn_class_weight(spec: str | None, labels: list[str]) -> str | dict[int, float] | None:
    """``class_weight=`` for a scikit-learn classifier fitted on class indices."""
    spec = check_class_weight(spec)
    if spec is None or spec == "balanced":
        return spec
    return dict(enumerate(_explicit(spec, labels)))


def label_weight_vector(
    spec: str | None, columns: list[str], y: npt.NDArray[np.floating]
) -> npt.NDArray[np.float32] | None:
    """Multi-label: the weight of each label's positive rows (``y``: the ``(N, L)`` 0/1
    training targets). ``balanced``: negatives / positives of each label (1 for a label
    without positives); explicit weights name label columns (``enhancer=3``)."""
    spec = check_class_weight(spec)
    if spec is None:
        return None
    if spec == "balanced":
        positives = y.sum(axis=0)
        ratio = np.where(positives > 0, (len(y) - positives) / np.maximum(positives, 1), 1.0)
        return ratio.astype(np.float32)
    return np.array(_explicit(spec, columns), dtype=np.float32)
