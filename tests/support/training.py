"""A run's life in tests: trained by the real worker, or driven through the database.

:func:`worker_once` starts ``helixserve worker --once`` as its own process on a server's
workspace: the real training, as a person gets it. The page tests that only need a run's states
and epochs in the database (fast, exact losses) use :func:`train_simulated`, which claims the run
and records epochs through :mod:`helixserve.workspace.runs` as a worker does, then finishes it
with the shipped ``yeast-utr`` bundle (a real CNN on 50-nt UTRs with its plots) published into
the runs store as ``run-<id>``.

:func:`serving_workspace` is a server with its workspace opened on the test's side too; a page
test module gets one as the module-scoped ``server`` and ``space`` fixtures by importing
:func:`served_server` and :func:`served_space` (and :func:`served_workspace`, which they share).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helixserve.store import ModelStore, make_manifest
from helixserve.workspace import runs
from helixserve.workspace.models import Run
from helixserve.workspace.space import Workspace, run_model_name
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[2] / "src" / "helixserve" / "zoo" / "store"
BUNDLE = "yeast-utr@1"
WORKER = "test-worker"


def worker_once(server: Running) -> subprocess.Popen[bytes]:
    """``helixserve worker --once`` on ``server``'s workspace and store (the real worker): it
    trains the oldest queued run, then exits."""
    chosen = server.settings
    env = {
        **os.environ,
        "HELIXSERVE_DATABASE_URL": chosen.database_url,
        "HELIXSERVE_WORKSPACE_STORE": chosen.workspace_store,
        "HELIXSERVE_STORE": chosen.store,
        "HELIXSERVE_CACHE_DIR": chosen.cache_dir or "",
    }
    command = [sys.executable, "-m", "helixserve", "worker", "--once", "--poll", "0.2"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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


@pytest.fixture(scope="module", name="served")
def served_workspace(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Running, Workspace]]:
    """:func:`serving_workspace` for a test module, in a folder named after it."""
    with serving_workspace(tmp_path_factory.mktemp(request.module.__name__)) as both:
        yield both


@pytest.fixture(scope="module", name="server")
def served_server(served: tuple[Running, Workspace]) -> Running:
    return served[0]


@pytest.fixture(scope="module", name="space")
def served_space(served: tuple[Running, Workspace]) -> Workspace:
    return served[1]
