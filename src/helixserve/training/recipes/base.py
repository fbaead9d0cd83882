"""The recipe interface every training recipe implements.

Contract: a recipe is built from keyword hyper-parameters, which its :attr:`Recipe.params_class`
declares (:mod:`helixserve.params.recipes`) and checks at once (a bad value or an
unknown name raises :class:`~helixserve.params.declare.InvalidParameter`); they are kept as
given, read back with :meth:`Recipe.get_params` and changed with :meth:`Recipe.set_params`
(scikit-learn's manner). What :func:`~helixserve.training.publish.train_and_publish` may need
beyond fit / predict / export goes through explicit hooks with a default here:
:meth:`Recipe.adapt` (what the data decide before they are encoded, e.g. the input length; its
:attr:`Recipe.notes` go to the console and the card),
:meth:`Recipe.use_work_dir` (where to keep training state), :meth:`Recipe.learns_from_bags`
and :meth:`Recipe.use_bags` (multiple-instance learning), :meth:`Recipe.use_blocks` (a block
stack instead of the recipe's network; the neural recipes only).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from helixserve.errors import HelixError, InvalidBlocks
from helixserve.params.declare import Param, Params, declarations
from helixserve.store.manifest import InputSchema, Task
from helixserve.training.data import Dataset
from helixserve.training.loop import History


class Recipe(ABC):
    """A model family: fit on encoded arrays, predict, export to ONNX."""

    name: ClassVar[str] = ""
    params_class: ClassVar[type[Params]] = Params
    task: Task = "binary"
    onnx_output: str | None = None  # None: the graph's first output
    uses_validation: bool = True  # False: nothing to stop early; train on the validation rows too
    binary_only: ClassVar[bool] = False  # True: refuses targets of other than two classes
    hp: Params  # the hyper-parameters, as given (subclasses narrow the type)
    blocks: list[dict[str, Any]] | None = None  # a block stack replacing the network (use_blocks)

    def __init__(self, **params: Any) -> None:
        self.hp = self.params_class.build(params)
        self.notes: list[str] = []  # what adapt() decided, and warnings, for console and card
        self.adapted = False

    def reading_schema(self) -> InputSchema:
        r"""The schema the training data are read and validated with (default: the served
        one; a recipe whose input rule the data decide reads more, then :meth:`adapt`\ s)."""
        return self.input_schema()

    def adapt(self, data: Dataset) -> None:
        """Decide from the data what the hyper-parameters leave open (e.g. the input length),
        before encoding; may change ``data.inputs`` (e.g. cut sequences to a cap) and adds
        what it decided to :attr:`notes` (a warning starts with ``warning:``). Called once per
        recipe, before :meth:`fit`; default: nothing to decide."""
        self.adapted = True

    @classmethod
    def declared(cls) -> list[Param]:
        """The hyper-parameters this recipe takes (name, type, default, choices or range, help)."""
        return declarations(cls.params_class)

    def get_params(self) -> dict[str, Any]:
        """Every hyper-parameter's value, as given."""
        return self.hp.values()

    def set_params(self, **params: Any) -> Self:
        """Change some hyper-parameters (checked like new ones); returns the recipe."""
        self.hp = self.hp.replaced(params)
        return self

    def use_work_dir(self, work_dir: Path) -> None:
        """Keep training state (a checkpoint) in ``work_dir``; default: nothing to keep."""
        return None

    def use_blocks(self, blocks: list[dict[str, Any]]) -> None:
        """Train the network of this block stack (plain dicts) instead of the recipe's own."""
        raise InvalidBlocks(
            f"the {self.name} recipe takes no block stack (it trains no neural network); leave "
            "the blocks out, or choose a neural recipe."
        )

    def learns_from_bags(self) -> bool:
        """Whether :meth:`fit` learns from bags of rows (multiple-instance); default: no."""
        return False

    def use_bags(self, train: list[str], val: list[str]) -> None:
        """The bag id of each training and validation row, before :meth:`fit`."""
        raise HelixError(f"the {self.name} recipe does not learn from bags.")

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
        """Probabilities ``(N, K)`` (classifiers), ``(N, L)`` (multi-label: one independent
        probability per label) or values ``(N,)`` (regression), natively."""

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
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.get_params().items()))
        return f"{type(self).__name__}({shown})"
