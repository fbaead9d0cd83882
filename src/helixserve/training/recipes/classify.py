"""The ``dna-classify`` recipe: DNA -> one of two or more classes, or several labels at once.

One recipe for the DNA classification tasks (family rules: input length from the data, N and
IUPAC codes as base probabilities, task from the targets; see
:mod:`~helixserve.training.recipes.family`): binary (one sigmoid), multi-class (softmax) and
multi-label (several 0/1 label columns, one independent sigmoid each, DeepSEA-style).

The network (:class:`~helixserve.training.nets.MotifCNN`): one convolution of ``filters``
motif detectors ``kernel`` nt wide, then

- ``positional``: a max-pool into about ``bins`` windows along the sequence and a dense head,
  so the model can tell where a motif sits (a promoter box at a set distance, a motif in the 5'
  or the 3' half);
- ``global``: one max-pool over the whole sequence (DeepBind-style: a motif anywhere counts the
  same; best for long sequences whose signal has no place);
- ``auto`` (default): a quick run of both (at most :data:`QUICK_EPOCHS` epochs, patience
  :data:`QUICK_PATIENCE`, on the same training rows), then the chosen one is trained in full:
  the positional network when its best validation loss is clearly lower (below
  :data:`MARGIN` times the global one's), else the global one. The global network has fewer
  weights and starts slower (its loss can stay flat for several epochs before it finds a
  motif), so after a short run a small lead of the positional one says little; a large lead
  (a motif whose place matters) does. The choice is in :attr:`notes` (console and card) and in
  :attr:`chosen`; the hyper-parameters keep ``auto`` as given.

``refit=True``: after early stopping, a fresh network is trained on the training and
validation rows for the best epoch count, with no early stopping, and that model is the one
evaluated and published; the notes say so (the loss curves are the first fit's).
Hyper-parameters: :class:`~helixserve.params.recipes.DnaClassifyParams`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from helixserve.params.recipes import DnaClassifyParams
from helixserve.training.loop import History, fit, train_epochs
from helixserve.training.nets import MotifCNN
from helixserve.training.recipes.family import Alphabet, DnaFamily

QUICK_EPOCHS = 10
QUICK_PATIENCE = 3
MARGIN = 0.9  # positional only when its quick validation loss is at least 10 % lower
Arch = Literal["positional", "global"]
ARCHES: tuple[Arch, ...] = ("positional", "global")


class DnaClassify(DnaFamily):
    """DNA -> binary, multi-class or multi-label; see the module contract."""

    name = DnaClassifyParams.recipe
    params_class = DnaClassifyParams
    takes_multilabel = True
    task = "binary"
    loss = "bce"

    hp: DnaClassifyParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.chosen: Arch | None = None  # the architecture arch="auto" chose

    def alphabet(self) -> Alphabet:
        return ("IUPAC", "frequencies") if self.hp.ambiguity == "encode" else ("ACGT", "zeros")

    def cap(self) -> int | None:
        return self.hp.max_length or None

    def class_weight(self) -> str | None:
        return self.hp.class_weight

    def arch(self) -> Arch:
        """The architecture built: the one given, or (``auto``) the one chosen, else
        positional."""
        arch = self.hp.arch
        return arch if arch != "auto" else self.chosen or "positional"

    def build(self, classes: int) -> torch.nn.Module:
        hp, width = self.hp, self.width()
        padding, window = hp.layout(width, self.arch())
        return MotifCNN(
            width,
            self.outputs(classes),
            filters=hp.filters,
            kernel=hp.kernel,
            padding=padding,
            window=window,
            hidden=hp.hidden,
            dropout=hp.dropout,
        )

    def example(self) -> torch.Tensor:
        return torch.zeros(2, 4, self.width())

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
        self.set_task(y_train, labels)
        if self.hp.arch == "auto" and self.blocks is None:
            self._choose(x_train, y_train, x_val, y_val, labels, seed)
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
        if self.hp.refit and history.best_epoch:
            self._refit(x_train, y_train, x_val, y_val, labels, seed, history.best_epoch)
        return history

    def _choose(
        self,
        x_train: npt.NDArray[Any],
        y_train: npt.NDArray[Any],
        x_val: npt.NDArray[Any],
        y_val: npt.NDArray[Any],
        labels: list[str] | None,
        seed: int,
    ) -> None:
        """``auto``: a quick run of each architecture; the lower validation loss wins."""
        if self.initial is not None:  # --init-from: the architecture the weights fit
            self.chosen = self._fitting_arch(len(labels or []))
            self.notes.append(f"arch auto: {self.chosen}, the architecture of the weights given")
            return
        losses: dict[Arch, float] = {}
        for arch in ARCHES:
            self.chosen = arch
            torch.manual_seed(seed)
            history = fit(
                self.network(len(labels or [])),
                x_train,
                y_train,
                x_val,
                y_val,
                loss=self.loss,
                epochs=min(self.hp.epochs, QUICK_EPOCHS),
                batch_size=self.hp.batch_size,
                lr=self.hp.lr,
                patience=min(self.hp.patience, QUICK_PATIENCE),
                class_weights=self._class_weights(labels, y_train),
                seed=seed,
                device=self.hp.device,
            )
            losses[arch] = min(history.val_loss)
        clearly = losses["positional"] < MARGIN * losses["global"]
        self.chosen = "positional" if clearly else "global"
        self.notes.append(
            f"arch auto: {self.chosen} (best validation loss of a quick run of at most "
            f"{QUICK_EPOCHS} epochs: positional {losses['positional']:.4f}, global "
            f"{losses['global']:.4f}; positional when at least {1 - MARGIN:.0%} lower)"
        )

    def _fitting_arch(self, classes: int) -> Arch:
        for arch in ARCHES:
            self.chosen = arch
            shapes = [tuple(p.shape) for p in self.build(classes).state_dict().values()]
            given = [v.shape for k, v in (self.initial or {}).items() if not k.startswith("__")]
            if shapes == given:
                return arch
        return "positional"  # neither fits: loading the weights says so

    def _refit(
        self,
        x_train: npt.NDArray[Any],
        y_train: npt.NDArray[Any],
        x_val: npt.NDArray[Any],
        y_val: npt.NDArray[Any],
        labels: list[str] | None,
        seed: int,
        epochs: int,
    ) -> None:
        """A fresh network on training + validation rows for ``epochs`` epochs."""
        x, y = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
        torch.manual_seed(seed)
        model = self.network(len(labels or []))
        train_epochs(
            model,
            x,
            y,
            loss=self.loss,
            epochs=epochs,
            batch_size=self.hp.batch_size,
            lr=self.hp.lr,
            class_weights=self._class_weights(labels, y),
            seed=seed,
            device=self.hp.device,
        )
        self.model = model
        self.notes.append(
            f"refit: the published model was trained afresh on the {len(x):,} training and "
            f"validation rows for {epochs} epochs (the best epoch count of early stopping); "
            "its metrics are on the test rows, which it never saw; the loss curves are the "
            "first fit's"
        )

    def describe(self) -> str:
        text = super().describe()
        return text if self.hp.arch != "auto" else f"{text}; architecture chosen: {self.arch()}"
