"""The PyTorch training loop shared by the neural recipes.

Contract:
- :func:`fit` trains ``model`` with Adam on ``(x_train, y_train)`` in mini-batches, evaluates the
  validation loss after every epoch, stops early after ``patience`` epochs without improvement,
  and restores the weights of the best epoch. It returns the :class:`History` (per-epoch train and
  validation loss, best epoch); ``on_epoch`` is called after every epoch with the history so far
  (the recipes write ``history.json`` from it as training goes, so a watcher can draw live curves),
  after that epoch's checkpoint is written: an exception it raises ends training at once and
  propagates, leaving the checkpoint to resume from (how a worker stops a run).
- Losses: ``bce`` (one logit, binary; ``class_weights`` weight the two classes), ``ce`` (K
  logits; weighted cross-entropy), ``multilabel`` (L logits, each its own binary cross-entropy
  against a 0/1 target column; ``class_weights`` are the L positive-class weights), ``mse``
  (regression).
- Determinism: :func:`seed_everything` seeds Python, NumPy and torch; with the same seed, data
  and thread count, a CPU run gives the same weights.
- ``progress``: on a terminal (stdout), a rich progress bar with the live loss; otherwise (a log
  file, CI, ``nohup``) one plain line per epoch, printed as soon as the epoch ends
  (:class:`EpochLines`): ``epoch 3/60  loss 0.4120  val_loss 0.3980  val_auroc 0.910  4.2 s``
  (``val_auroc`` for a binary model, ``val_accuracy`` for K classes, ``val_r2`` for a regression).
  :func:`stage` says the same way when a long step after the epochs starts and ends, and tells
  the listener set by :func:`stages_to` (the workspace's worker: a line in the run's log), on a
  terminal or not.
- ``checkpoint``: after every epoch the whole training state is written there
  (:mod:`helixserve.training.checkpoint`: weights now and best so far, optimiser state, epoch,
  best validation loss, early-stopping counter, history, RNG states, and ``fingerprint``: what the
  run was started with), so an interrupted run leaves its best model on disk and can go on.
- ``resume``: continue from ``checkpoint`` instead of starting afresh; with the same data,
  hyper-parameters, seed and thread count the result equals an uninterrupted run's. A checkpoint
  whose ``fingerprint`` differs is refused (:class:`~helixserve.errors.HelixError`).
- ``resample``: when given, ``resample(epoch)`` returns that epoch's training arrays (e.g. fresh
  random crops of the training images, augmented); the train loss is measured on them.
- :func:`train_epochs` trains for a fixed number of epochs with no validation rows (a final
  refit on training + validation rows at the epoch count early stopping chose).
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sklearn.metrics import roc_auc_score
from torch import nn

from helixserve.errors import HelixError
from helixserve.training import checkpoint as checkpoints

Loss = Literal["bce", "ce", "multilabel", "mse"]


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "best_epoch": self.best_epoch,
            "epochs": len(self.train_loss),
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _criterion(loss: Loss, class_weights: npt.NDArray[np.float32] | None) -> nn.Module:
    if loss == "bce":
        if class_weights is not None:
            return nn.BCEWithLogitsLoss(
                pos_weight=torch.tensor(class_weights[1] / class_weights[0])
            )
        return nn.BCEWithLogitsLoss()
    if loss == "ce":
        weight = torch.tensor(class_weights) if class_weights is not None else None
        return nn.CrossEntropyLoss(weight=weight)
    if loss == "multilabel":
        positive = torch.tensor(class_weights) if class_weights is not None else None
        return nn.BCEWithLogitsLoss(pos_weight=positive)
    return nn.MSELoss()


def _prepare_target(y: torch.Tensor, loss: Loss) -> torch.Tensor:
    if loss == "multilabel":
        return y.float()
    return y.float().unsqueeze(1) if loss in ("bce", "mse") else y.long()


def _epoch_loss(
    model: nn.Module,
    criterion: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Loss,
    batch: int,
    outputs: list[torch.Tensor] | None = None,
) -> float:
    """The mean loss over ``(x, y)``; the model's outputs are appended to ``outputs`` if given."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            out = model(xb)
            total += float(criterion(out, _prepare_target(yb, loss))) * len(xb)
            if outputs is not None:
                outputs.append(out.detach().cpu())
    return total / max(1, len(x))


def val_metric(outputs: list[torch.Tensor], y: torch.Tensor, loss: Loss) -> dict[str, float]:
    """A validation figure for the epoch line: AUROC (binary), accuracy (K classes), R2."""
    if not outputs or len(y) == 0:
        return {}
    out, truth = torch.cat(outputs).float(), y.detach().cpu()
    if loss == "ce":
        return {"val_accuracy": float((out.argmax(1) == truth).float().mean())}
    out, truth = out.reshape(-1).double(), truth.reshape(-1).double()
    if loss == "mse":
        total = float(((truth - truth.mean()) ** 2).sum())
        return {} if total == 0 else {"val_r2": 1 - float(((truth - out) ** 2).sum()) / total}
    classes = (truth > 0.5).numpy()
    if classes.all() or not classes.any():
        return {}
    return {"val_auroc": float(roc_auc_score(classes, out.numpy()))}


def fit(
    model: nn.Module,
    x_train: npt.NDArray[np.generic],
    y_train: npt.NDArray[np.generic],
    x_val: npt.NDArray[np.generic],
    y_val: npt.NDArray[np.generic],
    *,
    loss: Loss,
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int = 5,
    class_weights: npt.NDArray[np.float32] | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    on_epoch: Callable[[History], None] | None = None,
    checkpoint: Path | None = None,
    resample: Callable[[int], tuple[npt.NDArray[Any], npt.NDArray[Any]]] | None = None,
    fingerprint: dict[str, Any] | None = None,
    resume: bool = False,
) -> History:
    """Train with early stopping; see the module contract."""
    seed_everything(seed)
    model.to(device)
    tensors = [torch.as_tensor(a).to(device) for a in (x_train, y_train, x_val, y_val)]
    xt, yt, xv, yv = tensors
    criterion = _criterion(loss, class_weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    keeper = BestKeeper(
        model,
        optimizer,
        generator,
        patience=patience,
        on_epoch=on_epoch,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
    )
    if resume:
        keeper.resume()
    keeper.lines = EpochLines(progress, epochs)
    history = keeper.history
    with progress_bar(progress, epochs) as bar:
        task = bar.add_task("training", total=epochs, loss="-", completed=keeper.epoch)
        for epoch in keeper.remaining(epochs):
            if resample is not None:
                xt, yt = (torch.as_tensor(a).to(device) for a in resample(epoch))
            model.train()
            order = torch.randperm(len(xt), generator=generator).to(device)
            for start in range(0, len(xt), batch_size):
                index = order[start : start + batch_size]
                optimizer.zero_grad()
                criterion(model(xt[index]), _prepare_target(yt[index], loss)).backward()
                optimizer.step()
            history.train_loss.append(_epoch_loss(model, criterion, xt, yt, loss, 1024))
            outputs: list[torch.Tensor] | None = [] if keeper.lines.on else None
            history.val_loss.append(_epoch_loss(model, criterion, xv, yv, loss, 1024, outputs))
            figures = val_metric(outputs, yv, loss) if outputs is not None else {}
            if keeper.after_epoch(epoch, bar, task, figures):
                break
    return keeper.restore()


class BestKeeper:
    """Early stopping and checkpoints, shared by every training loop: keeps the best validation
    epoch's weights, writes the checkpoint after every epoch (when given a path), resumes from
    it, updates the progress bar, calls ``on_epoch``, says when to stop."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        *,
        patience: int,
        on_epoch: Callable[[History], None] | None,
        checkpoint: Path | None = None,
        fingerprint: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.optimizer, self.generator = model, optimizer, generator
        self.patience, self.on_epoch, self.checkpoint = patience, on_epoch, checkpoint
        self.fingerprint = json.loads(json.dumps(fingerprint or {}, default=str))
        self.history = History()
        self.lines = EpochLines(False, 0)  # the training loop sets its own
        self.best = float("inf")
        self.state = copy.deepcopy(model.state_dict())
        self.epoch, self.stopped = 0, False  # epochs done; whether early stopping ended it

    def remaining(self, epochs: int) -> range:
        """The 0-based epochs still to train."""
        return range(self.epoch, self.epoch if self.stopped else epochs)

    def after_epoch(
        self, epoch: int, bar: Progress, task: TaskID, figures: dict[str, float] | None = None
    ) -> bool:
        """Record epoch ``epoch`` (0-based) and checkpoint it; True when training should stop.
        ``figures`` (e.g. ``val_auroc``) go into the epoch's line when lines are printed."""
        history = self.history
        if history.val_loss[-1] < self.best - 1e-6:
            self.best, history.best_epoch = history.val_loss[-1], epoch + 1
            self.state = copy.deepcopy(self.model.state_dict())
        self.epoch = epoch + 1
        self.stopped = self.epoch - history.best_epoch >= self.patience
        self._save()
        bar.update(task, advance=1, loss=f"{history.train_loss[-1]:.4f}/{self.best:.4f}")
        self.lines.epoch_done(self.epoch, history, figures or {})
        if self.on_epoch is not None:
            self.on_epoch(history)
        return self.stopped

    def _save(self) -> None:
        if self.checkpoint is None:
            return
        history = self.history
        meta = {
            "epoch": self.epoch,
            "stopped": self.stopped,
            "best_epoch": history.best_epoch,
            "best_loss": self.best,
            "epochs_without_improvement": self.epoch - history.best_epoch,
            "history": {"train_loss": history.train_loss, "val_loss": history.val_loss},
            "fingerprint": self.fingerprint,
        }
        checkpoints.save(
            self.checkpoint,
            model=self.model,
            optimizer=self.optimizer,
            generator=self.generator,
            best=self.state,
            meta=meta,
        )

    def resume(self) -> None:
        """Continue from the checkpoint: weights, optimiser, RNGs, best so far, history."""
        if self.checkpoint is None:
            raise HelixError("--resume needs the checkpoint of the interrupted run; none given.")
        meta = checkpoints.read_meta(self.checkpoint)
        checkpoints.check_fingerprint(self.checkpoint, meta, self.fingerprint)
        self.state, meta = checkpoints.load(
            self.checkpoint, model=self.model, optimizer=self.optimizer, generator=self.generator
        )
        self.history = History(
            list(meta["history"]["train_loss"]),
            list(meta["history"]["val_loss"]),
            int(meta["best_epoch"]),
        )
        self.best, self.epoch = float(meta["best_loss"]), int(meta["epoch"])
        self.stopped = bool(meta["stopped"])

    def restore(self) -> History:
        """Put the best weights back, switch to evaluation mode, return the history."""
        self.model.load_state_dict(self.state)
        self.model.eval()
        return self.history


def on_terminal() -> bool:
    """Whether stdout is a terminal (by rich's rule: ``TTY_COMPATIBLE=1`` or ``FORCE_COLOR``)."""
    return Console().is_terminal


class EpochLines:
    """One plain line per epoch, flushed at once, when ``show`` and stdout is not a terminal."""

    def __init__(self, show: bool, epochs: int) -> None:
        self.on = show and not on_terminal()
        self.epochs = epochs
        self.since = time.perf_counter()

    def epoch_done(self, epoch: int, history: History, figures: dict[str, float]) -> None:
        """Print epoch ``epoch`` (1-based) of ``history``: losses, ``figures``, seconds."""
        now = time.perf_counter()
        seconds, self.since = now - self.since, now
        if not self.on:
            return
        shown = [
            f"epoch {epoch}/{self.epochs}",
            f"loss {history.train_loss[-1]:.4f}",
            f"val_loss {history.val_loss[-1]:.4f}",
            *[f"{name} {value:.3f}" for name, value in figures.items()],
            f"{seconds:.1f} s",
        ]
        print("  ".join(shown), flush=True)


_STAGE_LISTENER: ContextVar[Callable[[str], None] | None] = ContextVar(
    "stage_listener", default=None
)


@contextmanager
def stages_to(listener: Callable[[str], None]) -> Iterator[None]:
    """Within the block, :func:`stage` also hands its two lines to ``listener``."""
    token = _STAGE_LISTENER.set(listener)
    try:
        yield
    finally:
        _STAGE_LISTENER.reset(token)


@contextmanager
def stage(text: str, show: bool) -> Iterator[None]:
    """Say that a step after the epochs (``text``) runs, and when it is done: printed when
    ``show``, and to the listener of :func:`stages_to` if there is one."""
    started = time.perf_counter()
    _tell(f"{text} ...", show)
    yield
    _tell(f"{text}: done in {time.perf_counter() - started:.1f} s", show)


def _tell(line: str, show: bool) -> None:
    if show:
        print(line, flush=True)
    listener = _STAGE_LISTENER.get()
    if listener is not None:
        listener(line)


def progress_bar(show: bool, epochs: int) -> Progress:
    """A rich progress bar, shown when ``show`` and stdout is a terminal (else: lines)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("epoch {task.completed}"),
        TextColumn("loss train/best-val {task.fields[loss]}"),
        TimeElapsedColumn(),
        disable=not (show and on_terminal()),
        transient=False,
    )


def balanced_weights(y: npt.NDArray[np.int64], classes: int) -> npt.NDArray[np.float32]:
    """scikit-learn's "balanced" class weights: n_samples / (n_classes * count)."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    counts[counts == 0] = 1.0
    return (len(y) / (classes * counts)).astype(np.float32)


def train_epochs(
    model: nn.Module,
    x: npt.NDArray[np.generic],
    y: npt.NDArray[np.generic],
    *,
    loss: Loss,
    epochs: int,
    batch_size: int,
    lr: float,
    class_weights: npt.NDArray[np.float32] | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Train ``model`` for exactly ``epochs`` epochs on all of ``(x, y)``, with no validation
    and no early stopping (a refit at a known epoch count); the per-epoch training loss. The
    model is left in evaluation mode, with the last epoch's weights."""
    seed_everything(seed)
    model.to(device)
    xt, yt = (torch.as_tensor(a).to(device) for a in (x, y))
    criterion = _criterion(loss, class_weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator).to(device)
        for start in range(0, len(xt), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            criterion(model(xt[index]), _prepare_target(yt[index], loss)).backward()
            optimizer.step()
        losses.append(_epoch_loss(model, criterion, xt, yt, loss, 1024))
    model.eval()
    return losses
