"""The worker as processes (issue 16, crash safety): a ``helixserve worker`` killed with SIGKILL
mid-run is swept ``interrupted`` within 30 s and a new worker finishes the run from its last
checkpoint; two workers on one queue never train the same run; ``helixserve serve`` starts a
worker that trains queued runs and ends with the server (or none, when told or without the
train extra)."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helixserve.cli import serve as serve_cli
from helixserve.settings import Settings
from helixserve.store.manifest import Lineage
from helixserve.training.checkpoint import read_meta
from helixserve.worker.local import LocalWorker
from helixserve.worker.progress import Checkpoints
from helixserve.workspace import runs
from helixserve.workspace.models import RunStatus
from helixserve.workspace.space import Workspace
from tests.support.worker_runs import (
    add_dataset,
    epochs,
    get,
    log_lines,
    open_space,
    queue,
    wait_until,
    worker_env,
)

SMALL_CNN = {"filters": 8, "kernel": 7, "hidden": 8}


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'workspace.db'}"


@pytest.fixture
def space(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    opened = open_space(tmp_path, database)
    add_dataset(opened)
    yield opened
    opened.db.close()


def start_worker(tmp_path: Path, database: str, name: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "helixserve", "worker", "--once", "--name", name]
    return subprocess.Popen(
        [*command, "--poll", "0.2"],
        env=worker_env(tmp_path, database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_worker_killed_mid_run_is_swept_and_its_run_resumes_from_the_checkpoint(
    tmp_path: Path, database: str, space: Workspace
) -> None:
    planned = 30
    run_id = queue(space, params={**SMALL_CNN, "epochs": planned, "patience": planned})
    worker = start_worker(tmp_path, database, "doomed")
    try:
        assert wait_until(lambda: len(epochs(space, run_id)) >= 3, 180, every=0.02)
    finally:
        worker.kill()  # SIGKILL: no clean-up runs
        worker.wait()
    killed = time.monotonic()
    assert get(space, run_id).status is RunStatus.RUNNING

    def swept() -> bool:
        with space.db.session() as session:
            return run_id in runs.sweep(session, stale_after_s=3.0)

    assert wait_until(swept, 30, every=0.5)
    assert time.monotonic() - killed < 30
    interrupted = get(space, run_id)
    assert (interrupted.status, interrupted.error) == (RunStatus.INTERRUPTED, runs.SWEPT)
    saved = tmp_path / "saved.npz"
    assert Checkpoints(space.blobs.location, run_id).download(saved)
    epoch = int(read_meta(saved)["epoch"])
    assert 2 <= epoch < planned

    with space.db.session() as session:
        runs.resume(session, run_id)
    assert LocalWorker(space, "rescuer", poll_s=0.1).run(once=True) == {"finished": 1}
    run = get(space, run_id)
    assert run.worker == "rescuer" and run.bundle is not None
    assert epochs(space, run_id) == list(range(1, planned + 1))
    lines = log_lines(space, run_id)
    resumed = lines.index(f"training on cpu; resuming from the checkpoint of epoch {epoch}")
    assert lines[resumed + 1].startswith(f"epoch {epoch + 1}/{planned}: ")  # not from epoch 1
    lineage = space.runs.manifest(run.bundle).lineage
    assert lineage == Lineage(how="resume", details={"resumed_from_epoch": epoch})


def test_two_workers_on_one_queue_never_train_the_same_run(
    tmp_path: Path, database: str, space: Workspace
) -> None:
    queued = [queue(space, params={**SMALL_CNN, "epochs": 2}) for _ in range(2)]
    workers = [start_worker(tmp_path, database, name) for name in ("w-a", "w-b")]
    for process in workers:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err.decode()
        assert b": 1 finished" in err
    trained = [get(space, run_id) for run_id in queued]
    assert [run.status for run in trained] == [RunStatus.FINISHED, RunStatus.FINISHED]
    assert sorted(run.worker or "" for run in trained) == ["w-a", "w-b"]
    for run in trained:
        claims = [line for line in log_lines(space, run.id) if line.startswith("claimed by")]
        assert claims == [f"claimed by worker {run.worker}"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_starts_a_worker_that_trains_and_ends_with_the_server(
    tmp_path: Path, database: str, space: Workspace
) -> None:
    run_id = queue(space, params={**SMALL_CNN, "epochs": 2})
    env = {**worker_env(tmp_path, database), "HELIXSERVE_WORKER": "true"}
    command = ["serve", "--port", str(free_port()), "--grpc-port", "0"]
    server = subprocess.Popen(
        [sys.executable, "-m", "helixserve", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: get(space, run_id).status is RunStatus.FINISHED, 240, 0.2)
        pid = int((get(space, run_id).worker or "").rsplit(":", 1)[1])
        assert pid != server.pid and alive(pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    assert wait_until(lambda: not alive(pid), 20)


def test_serve_starts_no_worker_when_told_or_without_the_train_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve_cli.start_worker(Settings(worker=False)) is None
    found = importlib.util.find_spec

    def no_torch(name: str, *args: object) -> object:
        return None if name == "torch" else found(name)

    monkeypatch.setattr(importlib.util, "find_spec", no_torch)
    assert serve_cli.start_worker(Settings(worker=True)) is None
    assert capsys.readouterr().err == serve_cli.NO_WORKER + "\n"
