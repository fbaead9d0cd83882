"""The ``dna-variable`` recipe: variable-length genes -> resistant or not (the seed's BiLSTM).

Sequences (A, C, G, T, N; any length) become integer tokens padded or truncated to ``pad_to``
(keeping the 5' start); an embedding, [a k-mer convolution of stride ``stride``,] two BiLSTM
layers, dropout 0.18 and a sigmoid give P(positive) (``arch="bilstm"``, the seed's); or, with
``arch="cnn"``, ``filters`` k-mer detectors of width ``kernel`` max-pooled over the gene (much
faster on long genes). Classes are weighted "balanced" by default (the data are imbalanced).

Two ways to learn from labels:

- ``pool=""`` (default): every sequence carries its own label (plain supervised learning).
- ``pool="max"`` / ``"noisy-or"`` / ``"lse"``: multiple-instance learning. Labels belong to bags
  (isolates; :attr:`DnaVariable.bags` gives each training and validation row's bag id) and the
  network learns, through the pooled bag score (:mod:`helixserve.training.mil`), which single
  sequences make a bag positive. The model still scores one sequence: what is served is
  P(this gene confers resistance); isolate calls come from
  :mod:`helixserve.training.isolates` (an isolate's highest gene probability vs a threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy.typing as npt
import torch

from helixserve.errors import HelixError
from helixserve.inputs.sequence import SequenceSchema
from helixserve.training.loop import History
from helixserve.training.mil import POOLS, fit_bags, make_bags
from helixserve.training.nets import GeneBiLSTM, GeneCNN
from helixserve.training.recipes.torch_base import TorchRecipe


class DnaVariable(TorchRecipe):
    """Variable-length DNA -> class 0/1, per sequence or through bags (see the module)."""

    name = "dna-variable"
    task = "binary"
    loss = "bce"

    def __init__(
        self,
        pad_to: int = 1024,
        embed: int = 8,
        units: int = 32,
        dropout: float = 0.18,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 2e-3,
        patience: int = 5,
        class_weight: str | None = "balanced",
        stride: int = 1,
        pool: str = "",
        bag_batch: int = 8,
        arch: str = "bilstm",
        filters: int = 64,
        kernel: int = 12,
        device: str = "cpu",
    ) -> None:
        if arch not in ("bilstm", "cnn"):
            raise HelixError(f"dna-variable --arch must be bilstm or cnn, got {arch!r}.")
        if pool and pool not in POOLS:
            raise HelixError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}.")
        if stride < 1 or pad_to % stride:
            raise HelixError(
                f"--stride must be at least 1 and divide --pad-to; got stride {stride} and "
                f"pad-to {pad_to}."
            )
        super().__init__(
            pad_to=pad_to,
            embed=embed,
            units=units,
            dropout=dropout,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience=patience,
            class_weight=class_weight,
            stride=stride,
            pool=pool,
            bag_batch=bag_batch,
            arch=arch,
            filters=filters,
            kernel=kernel,
            device=device,
        )
        self.bags: tuple[list[str], list[str]] | None = None  # (train, val) bag id of each row

    def input_schema(self) -> SequenceSchema:
        return SequenceSchema(
            alphabet="ACGTN", min_length=1, encoding="tokens", pad_to=self.params["pad_to"]
        )

    def build(self, classes: int) -> torch.nn.Module:
        p = self.params
        if p["arch"] == "cnn":
            return GeneCNN(p["embed"], p["filters"], p["kernel"], p["dropout"])
        return GeneBiLSTM(p["embed"], p["units"], p["dropout"], p["stride"])

    def example(self) -> torch.Tensor:
        return torch.ones(2, self.params["pad_to"], dtype=torch.int64)

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
        p = self.params
        if not p["pool"]:
            return super().fit(
                x_train,
                y_train,
                x_val,
                y_val,
                labels=labels,
                seed=seed,
                progress=progress,
                on_epoch=on_epoch,
            )
        if self.bags is None:
            raise HelixError(
                f"--pool {p['pool']} learns from bags: give the column naming each sequence's "
                "bag (e.g. --bag-col isolate_id)."
            )
        train, val = (
            make_bags(x_train, y_train, self.bags[0]),
            make_bags(x_val, y_val, self.bags[1]),
        )
        torch.manual_seed(seed)
        self.model = self.build(2)
        if self.initial is not None:
            self._load_initial(self.model, self.initial)
        return fit_bags(
            self.model,
            train,
            val,
            pool=p["pool"],
            epochs=p["epochs"],
            bag_batch=p["bag_batch"],
            lr=p["lr"],
            patience=p["patience"],
            balanced=p["class_weight"] == "balanced",
            seed=seed,
            progress=progress,
            on_epoch=on_epoch,
            checkpoint=self.checkpoint,
            fingerprint=self.fingerprint,
            resume=self.resume,
        )
