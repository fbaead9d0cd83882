"""The ``dna-regression`` recipe: the Cuperus et al. 2017 CNN for yeast 5' UTRs, optionally
blended with a k-mer ridge regression.

Sequences of up to ``max_length`` nt are one-hot encoded, padded on the 5' side (so every UTR
stays aligned at its 3' end, next to the start codon) to ``max_length``, with ``flank`` all-zero
positions each side (50 nt -> 70 x 4). Targets are standardised with the training rows' mean and
standard deviation; the exported graph undoes it, so served values are in the target's units.

With ``kmer_ridge`` (the default), after the CNN is trained (early stopping on the validation
rows) a ridge regression is fitted in closed form on the training rows' k-mer counts (k = 1..
``k_max``) and, with ``positional``, the one-hot positions (alpha by leave-one-out error, see
:mod:`helixserve.training.kmers`); the model is then ``(1 - share) * ridge + share * CNN`` with
the share (0, 0.1, ..., 1) that fits the validation rows best. The features are computed inside
the network from the one-hot input, so the exported graph, its input and serving are unchanged.
Hyper-parameters: :class:`~helixserve.params.recipes.DnaRegressionParams`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from helixserve.inputs.sequence import SequenceSchema
from helixserve.params.recipes import DnaRegressionParams
from helixserve.store.manifest import Task
from helixserve.training.kmers import (
    Blend,
    KmerFeatures,
    RidgeHead,
    best_share,
    features_of,
    fit_ridge,
)
from helixserve.training.loop import History, stage
from helixserve.training.nets import UtrCNN
from helixserve.training.recipes.torch_base import CHUNK, TorchRecipe


class DnaRegression(TorchRecipe):
    """DNA (up to ``max_length`` nt, 5'-padded) -> a value."""

    name = DnaRegressionParams.recipe
    params_class = DnaRegressionParams
    task: Task = "regression"
    loss = "mse"

    hp: DnaRegressionParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.fitted: dict[str, float] = {}  # ridge alpha and CNN share, once fitted

    def _width(self) -> int:
        return self.hp.max_length + 2 * self.hp.flank

    def input_schema(self) -> SequenceSchema:
        hp = self.hp
        return SequenceSchema(
            min_length=1,
            max_length=hp.max_length,
            pad_to=hp.max_length,
            padding="left",
            flank_left="N" * hp.flank,
            flank_right="N" * hp.flank,
        )

    def build(self, classes: int) -> torch.nn.Module:
        hp = self.hp
        return UtrCNN(self._width(), hp.filters, hp.kernel, hp.dropout, hp.dense)

    def example(self) -> torch.Tensor:
        return torch.zeros(2, 4, self._width())

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
    ) -> History:
        history = super().fit(
            x_train,
            y_train,
            x_val,
            y_val,
            labels=labels,
            seed=seed,
            progress=progress,
            on_epoch=on_epoch,
        )
        if self.hp.kmer_ridge and self.model is not None:
            blending = f"blending the CNN with a k-mer (k = 1..{self.hp.k_max}) ridge regression"
            with stage(blending, progress):
                self.model = self._blend(self.model, x_train, y_train, x_val, y_val)
        return history

    def _blend(
        self,
        cnn: torch.nn.Module,
        x_train: npt.NDArray[Any],
        y_train: npt.NDArray[Any],
        x_val: npt.NDArray[Any],
        y_val: npt.NDArray[Any],
    ) -> Blend:
        """The CNN blended with a k-mer ridge fitted on the training rows (standardised units)."""
        features = KmerFeatures(self._width(), self.hp.k_max, self.hp.positional)
        scaled = [
            (np.asarray(y, dtype=np.float64) - self.shift) / self.scale for y in (y_train, y_val)
        ]
        ridge = fit_ridge(features_of(features, x_train), scaled[0])
        head = RidgeHead(features, ridge.weights, ridge.bias).eval()
        cnn = cnn.cpu().eval()
        outputs = [_predict(m, x_val) for m in (head, cnn)]
        share = best_share(outputs[0], outputs[1], scaled[1]) if len(x_val) else 0.0
        self.fitted = {"ridge_alpha": ridge.alpha, "cnn_share": share}
        return Blend(head, cnn, share).eval()

    def _load_initial(self, model: torch.nn.Module, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """An earlier blend's CNN weights start the CNN (the ridge part is refitted)."""
        prefix = "network."
        if any(k.startswith(prefix) for k in arrays):
            arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        super()._load_initial(model, arrays)

    def describe(self) -> str:
        fitted = ", ".join(f"{k}={v:.3g}" for k, v in sorted(self.fitted.items()))
        return super().describe() + (f"; fitted {fitted}" if fitted else "")


def _predict(model: torch.nn.Module, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    with torch.no_grad():
        parts = [
            model(torch.as_tensor(x[i : i + CHUNK])).squeeze(1) for i in range(0, len(x), CHUNK)
        ]
    return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0)
