"""The recipe interface every training recipe implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from helixserve.errors import HelixError
from helixserve.store.manifest import InputSchema, Task
from helixserve.training.loop import History


class Recipe(ABC):
    """A model family: fit on encoded arrays, predict, export to ONNX."""

    name: str = ""
    task: Task = "binary"
    onnx_output: str | None = None  # None: the graph's first output
    uses_validation: bool = True  # False: nothing to stop early; train on the validation rows too

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def input_schema(self) -> InputSchema:
        """The schema served models validate inputs against (also used to encode them here)."""

    @abstractmethod
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
    ) -> History | None:
        """Train; return the per-epoch history for neural recipes."""

    @abstractmethod
    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Probabilities ``(N, K)`` (classifiers) or values ``(N,)`` (regression), natively."""

    @abstractmethod
    def export_onnx(self) -> bytes:
        """An ONNX graph with one input named ``input`` (dynamic batch) giving what
        :meth:`predict_proba` gives (binary: P(positive) as ``(N,)``)."""

    def weights(self) -> bytes | None:
        """Trained weights as an ``.npz`` (no pickle) to continue training from, or ``None``."""
        return None

    def start_from(self, weights: bytes) -> None:
        """Start the next :meth:`fit` from these weights (``--init-from``)."""
        raise HelixError(f"the {self.name} recipe cannot continue from earlier weights.")

    def explain(
        self, x: npt.NDArray[Any], y: npt.NDArray[Any], titles: list[str]
    ) -> tuple[dict[str, bytes], str]:
        """Plots of what the trained model looks at for a few inputs (``plots/...`` files) and
        one sentence for the card; default: none."""
        return {}, ""

    def library_versions(self) -> dict[str, str]:
        """Versions of the libraries the model was trained with (for the manifest)."""
        return {}

    def describe(self) -> str:
        """One line on the architecture and hyper-parameters, for the model card."""
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({shown})"
