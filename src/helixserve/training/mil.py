"""Multiple-instance training: a gene-level network trained from isolate-level labels.

Contract: a *bag* (an isolate) holds several instances (its gene sequences) and carries one
label; only the bag label is known. :func:`make_bags` groups encoded rows by bag id, keeping
each distinct sequence once (genes repeat across isolates). :func:`fit_bags` trains a network
that scores one instance (one logit) so that the **pooled** bag logit fits the bag label:

- ``max``: the bag logit is its highest gene logit (resistant iff some gene confers it);
- ``noisy-or``: P(bag) = 1 - prod(1 - P(gene)), as a logit;
- ``lse``: a smooth maximum, log-mean-exp of ``4 * logit`` divided by 4.

Loss: binary cross-entropy on bag logits, positive bags weighted ``n_neg / n_pos`` when
``balanced``; Adam; early stopping on the validation bags' loss with the best epoch's weights
restored; the whole training state written to ``checkpoint`` after every epoch (and continued
from it with ``resume``, see :mod:`helixserve.training.loop`); the per-epoch
:class:`~helixserve.training.loop.History` passed to ``on_epoch``. The trained network stays an
instance scorer: that is what is exported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from helixserve.errors import HelixError
from helixserve.training.isolates import bag_labels
from helixserve.training.loop import (
    BestKeeper,
    EpochLines,
    History,
    progress_bar,
    seed_everything,
)

Pool = Literal["max", "noisy-or", "lse"]
POOLS: tuple[str, ...] = ("max", "noisy-or", "lse")
LSE_SHARPNESS = 4.0


@dataclass
class Bags:
    """Distinct encoded instances, each bag's member rows into them, and bag labels."""

    x: npt.NDArray[Any]
    members: list[npt.NDArray[np.intp]]
    y: npt.NDArray[np.float32]


def make_bags(x: npt.NDArray[Any], y: npt.NDArray[Any], bags: Sequence[str]) -> Bags:
    """Group rows by bag id (sorted), each distinct row stored once."""
    if len(bags) != len(x):
        raise HelixError(f"{len(x):,} rows but {len(bags):,} bag ids; give one per row.")
    labels = bag_labels([int(v) for v in y], bags)
    unique, inverse = np.unique(x, axis=0, return_inverse=True)
    names = sorted(labels)
    position = {name: i for i, name in enumerate(names)}
    rows: list[list[int]] = [[] for _ in names]
    for row, bag in zip(inverse.reshape(-1).tolist(), bags, strict=True):
        rows[position[bag]].append(row)
    members = [np.unique(np.array(r, dtype=np.intp)) for r in rows]
    return Bags(unique, members, np.array([labels[n] for n in names], dtype=np.float32))


def pool_logits(
    logits: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, pool: Pool
) -> torch.Tensor:
    """Bag logits ``(B,)`` from instance logits ``(U,)``, a member index ``(B, M)`` into them,
    and a mask ``(B, M)`` (true for real members)."""
    z = logits[index]
    if pool == "max":
        return z.masked_fill(~mask, -1e4).max(dim=1).values
    if pool == "lse":
        sharp = (z * LSE_SHARPNESS).masked_fill(~mask, -1e4)
        count = mask.sum(dim=1).clamp_min(1).float()
        return (torch.logsumexp(sharp, dim=1) - torch.log(count)) / LSE_SHARPNESS
    log_none = (nn.functional.logsigmoid(-z) * mask).sum(dim=1).clamp_max(-1e-6)
    return torch.log(-torch.expm1(log_none)) - log_none  # logit of 1 - prod(1 - p)


def _batch(
    members: list[npt.NDArray[np.intp]],
) -> tuple[npt.NDArray[np.intp], torch.Tensor, torch.Tensor]:
    """The distinct rows a batch of bags needs, and the padded member index into them."""
    rows, inverse = np.unique(np.concatenate(members), return_inverse=True)
    width = max(len(m) for m in members)
    index = np.zeros((len(members), width), dtype=np.int64)
    mask = np.zeros((len(members), width), dtype=bool)
    start = 0
    for b, m in enumerate(members):
        index[b, : len(m)], mask[b, : len(m)] = inverse[start : start + len(m)], True
        start += len(m)
    return rows, torch.as_tensor(index), torch.as_tensor(mask)


def _bag_logits(
    model: nn.Module, bags: Bags, chosen: Sequence[int], pool: Pool, chunk: int = 256
) -> torch.Tensor:
    rows, index, mask = _batch([bags.members[i] for i in chosen])
    x = torch.as_tensor(bags.x[rows])
    logits = torch.cat([model(x[s : s + chunk]).squeeze(1) for s in range(0, len(x), chunk)])
    return pool_logits(logits, index, mask, pool)


def _loss(model: nn.Module, bags: Bags, pool: Pool, criterion: nn.Module) -> float:
    model.eval()
    with torch.no_grad():
        logits = _bag_logits(model, bags, range(len(bags.members)), pool)
        return float(criterion(logits, torch.as_tensor(bags.y)))


def fit_bags(
    model: nn.Module,
    train: Bags,
    val: Bags,
    *,
    pool: Pool,
    epochs: int = 30,
    bag_batch: int = 8,
    lr: float = 2e-3,
    patience: int = 5,
    balanced: bool = True,
    seed: int = 0,
    progress: bool = False,
    on_epoch: Callable[[History], None] | None = None,
    checkpoint: Path | None = None,
    fingerprint: dict[str, Any] | None = None,
    resume: bool = False,
) -> History:
    """Train ``model`` on bag labels; see the module contract."""
    seed_everything(seed)
    positives = float(train.y.sum())
    weight = (len(train.y) - positives) / max(positives, 1.0) if balanced else 1.0
    criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight))
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
    y = torch.as_tensor(train.y)
    with progress_bar(progress, epochs) as bar:
        task = bar.add_task("training (bags)", total=epochs, loss="-", completed=keeper.epoch)
        for epoch in keeper.remaining(epochs):
            model.train()
            order = torch.randperm(len(train.members), generator=generator).tolist()
            for start in range(0, len(order), bag_batch):
                chosen = order[start : start + bag_batch]
                optimizer.zero_grad()
                criterion(_bag_logits(model, train, chosen, pool), y[chosen]).backward()
                optimizer.step()
            history.train_loss.append(_loss(model, train, pool, criterion))
            history.val_loss.append(_loss(model, val, pool, criterion))
            if keeper.after_epoch(epoch, bar, task):
                break
    return keeper.restore()
