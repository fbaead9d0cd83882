"""The ``tabular`` recipe: random forest (or gradient boosting) on named numeric features.

Missing values are imputed (median of the training rows) inside the exported pipeline, so the
served model accepts them too. Exported with skl2onnx; the graph outputs class probabilities.
``class_weight`` (none, ``"balanced"`` or ``"benign=1,malignant=3"``, see
:mod:`helixserve.training.classweights`) goes to scikit-learn's ``class_weight=``; with
``model="gb"``, ``n_estimators`` is the number of boosting iterations (``max_iter``).
Hyper-parameters: :class:`~helixserve.params.recipes.TabularParams`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import skl2onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from helixserve.inputs.tabular import Feature, TabularSchema
from helixserve.params.recipes import TabularParams
from helixserve.store.manifest import Task
from helixserve.training.classweights import sklearn_class_weight
from helixserve.training.loop import History
from helixserve.training.recipes.base import Recipe


class TabularForest(Recipe):
    """Rows of numeric features -> class. ``model="rf"`` (default) or ``"gb"``."""

    name = TabularParams.recipe
    params_class = TabularParams
    task: Task = "binary"
    onnx_output = "probabilities"
    uses_validation = False

    hp: TabularParams

    def __init__(self, features: list[Feature], **params: Any) -> None:
        super().__init__(**params)
        self.features = features
        self.pipeline: Pipeline | None = None

    def input_schema(self) -> TabularSchema:
        return TabularSchema(features=self.features, allow_missing=True)

    def _classifier(self, seed: int, weights: str | dict[int, float] | None) -> Any:
        """The model, wrapped in 5-fold probability calibration when ``calibrate`` is set."""
        base = self._base(seed, weights)
        method = self.hp.calibrate
        if method is None:
            return base
        return CalibratedClassifierCV(base, method=method, cv=5)

    def _base(self, seed: int, weights: str | dict[int, float] | None) -> Any:
        hp = self.hp
        if hp.model == "gb":
            return HistGradientBoostingClassifier(
                max_iter=hp.n_estimators,
                max_depth=hp.max_depth,
                random_state=seed,
                class_weight=weights,
            )
        return RandomForestClassifier(
            n_estimators=hp.n_estimators,
            max_depth=hp.max_depth,
            min_samples_leaf=hp.min_samples_leaf,
            max_features=hp.max_features,
            class_weight=weights,
            random_state=seed,
            n_jobs=1,
        )

    def fit(
        self,
        x_train: npt.NDArray[Any],
        y_train: npt.NDArray[Any],
        x_val: npt.NDArray[Any],
        y_val: npt.NDArray[Any],
        *,
        labels: list[str] | None,
        seed: int,
        progress: bool = False,
        on_epoch: Callable[[History], None] | None = None,
    ) -> None:
        self.task = "binary" if labels is not None and len(labels) == 2 else "multiclass"
        weights = sklearn_class_weight(self.hp.class_weight, labels or [])
        self.pipeline = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("model", self._classifier(seed, weights)),
            ]
        )
        self.pipeline.fit(x_train, y_train)

    def _trained(self) -> Pipeline:
        if self.pipeline is None:
            raise RuntimeError("call fit() before predicting or exporting")
        return self.pipeline

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(self._trained().predict_proba(x), dtype=np.float64)

    def library_versions(self) -> dict[str, str]:
        return {"skl2onnx": skl2onnx.__version__}

    def export_onnx(self) -> bytes:
        pipeline = self._trained()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # onnx.helper chatter
            model = self._convert(pipeline)
        data: bytes = model.SerializeToString()
        return data

    def _convert(self, pipeline: Pipeline) -> Any:
        return convert_sklearn(
            pipeline,
            initial_types=[("input", FloatTensorType([None, len(self.features)]))],
            options={id(pipeline.named_steps["model"]): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
