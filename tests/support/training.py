"""A run's life without a worker: claim it, record epochs, finish it with a real bundle.

The worker (``helixserve worker``) is built elsewhere; until it lands, tests of the pages drive a
run through :mod:`helixserve.workspace.runs` exactly as a worker would, in
:func:`train_simulated`. The bundle is the shipped ``yeast-utr`` model (a real CNN on 50-nt
UTRs, with its loss, scatter and error plots), published into the workspace's runs store as
``run-<id>``; swap this one function for the real worker when it exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helixserve.store import ModelStore, make_manifest
from helixserve.workspace import runs
from helixserve.workspace.models import Run
from helixserve.workspace.space import Workspace, run_model_name
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[2] / "src" / "helixserve" / "zoo" / "store"
BUNDLE = "yeast-utr@1"
WORKER = "test-worker"


def losses(epoch: int, scale: float = 1.0) -> tuple[float, float]:
    """Made-up train and validation losses that fall, validation bottoming out at epoch 3."""
    return scale / (epoch + 1), scale * (0.5 + 0.1 * abs(epoch - 3))


def publish_bundle(space: Workspace, run_id: str) -> str:
    """The shipped yeast-utr bundle, published into the runs store as this run's bundle."""
    manifest, files = ModelStore.open(str(ZOO)).read_files(BUNDLE)
    fields = manifest.model_dump(exclude={"files", "version", "name", "lineage"})
    name = run_model_name(run_id)
    published = space.runs.publish(make_manifest(files, name=name, **fields), files)
    return f"{name}@{published.version}"


def train_simulated(
    space: Workspace,
    *,
    epochs: int = 4,
    pause_s: float = 0.0,
    scale: float = 1.0,
    recorded: Callable[[int, float], None] | None = None,
) -> Run:
    """Claim the oldest queued run and train it "for real" as far as the database and the runs
    store can tell: ``epochs`` epochs ``pause_s`` apart (``recorded(epoch, when)`` after each is
    committed), log lines, then finish with a bundle, test metrics and the best epoch."""
    claimed = runs.claim(space.db, WORKER)
    if claimed is None:
        raise RuntimeError("no queued run to train")
    with space.db.session() as session:
        runs.log(session, claimed.id, f"claimed by {WORKER}; training {epochs} epochs")
    for epoch in range(1, epochs + 1):
        time.sleep(pause_s)
        train, val = losses(epoch, scale)
        with space.db.session() as session:
            runs.heartbeat(session, claimed.id, worker=WORKER)
            runs.record_epoch(session, claimed.id, epoch, train_loss=train, val_loss=val)
            runs.log(session, claimed.id, f"epoch {epoch}: train {train:.4f}, val {val:.4f}")
        if recorded is not None:
            recorded(epoch, time.monotonic())
    bundle = publish_bundle(space, claimed.id)
    metrics = dict(space.runs.manifest(bundle).metrics)
    best = min(range(1, epochs + 1), key=lambda e: losses(e, scale)[1])
    with space.db.session() as session:
        runs.log(session, claimed.id, f"finished: best epoch {best}")
        return runs.finish(session, claimed.id, bundle, metrics, {"metric": "r2"}, best_epoch=best)


@contextmanager
def serving_workspace(tmp: Path, **settings: Any) -> Iterator[tuple[Running, Workspace]]:
    """A server with an empty model store and its workspace, and that workspace opened here (the
    test's side: it trains runs as a worker would)."""
    (tmp / "store").mkdir()
    with running(tmp / "store", tmp, access_log=False, **settings) as server:
        space = Workspace.from_settings(server.settings).open()
        try:
            yield server, space
        finally:
            space.db.close()
