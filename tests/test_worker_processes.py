"""The worker as processes (issue 16, crash safety): a ``helixserve worker`` killed with SIGKILL
mid-run is swept ``interrupted`` within 30 s and a new worker finishes the run from its last
checkpoint; two workers on one queue never train the same run; ``helixserve serve`` starts a
worker that trains queued runs and ends with the server (or none, when told or without the
train extra); a server restart loses no queued, running or finished run."""

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

import httpx
import pytest

from helixserve.cli import serve as serve_cli
from helixserve.settings import Settings
from helixserve.store.manifest import Lineage
from helixserve.training.checkpoint import read_meta
from helixserve.worker.local import LocalWorker
from helixserve.worker.progress import Checkpoints
from helixserve.workspace import runs
from helixserve.workspace.models import RunStatus
from helixserve.workspace.space import Workspace, run_model_name
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


def start_serving(tmp_path: Path, database: str, port: int) -> subprocess.Popen[bytes]:
    """``helixserve serve`` with its worker on the test's workspace; ready to answer."""
    env = {**worker_env(tmp_path, database), "HELIXSERVE_WORKER": "true"}
    command = ["serve", "--port", str(port), "--grpc-port", "0"]
    server = subprocess.Popen(
        [sys.executable, "-m", "helixserve", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    if not wait_until(ready, 60, 0.1):
        server.kill()  # never leave a server (and its worker) behind a failed test
        server.wait()
        raise AssertionError("helixserve serve did not answer /healthz within 60 s")
    return server


def test_a_server_restart_loses_no_run(tmp_path: Path, database: str, space: Workspace) -> None:
    """SIGTERM while its worker trains: the run stops at an epoch's end with its checkpoint, the
    queued run stays queued, the finished run and its bundle stay; after the restart the new
    worker trains the queued run and, resumed through the API, the stopped one from its
    checkpoint."""
    done = queue(space, "done", params={**SMALL_CNN, "epochs": 2})
    assert LocalWorker(space, "before", poll_s=0.1).run(once=True) == {"finished": 1}
    planned = 200
    long = queue(space, "long", params={**SMALL_CNN, "epochs": planned, "patience": planned})
    waiting = queue(space, "waiting", params={**SMALL_CNN, "epochs": 2})
    port = free_port()
    server = start_serving(tmp_path, database, port)
    try:
        assert wait_until(lambda: len(epochs(space, long)) >= 2, 180, every=0.02)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    stopped, trained = get(space, long), len(epochs(space, long))
    assert stopped.status is RunStatus.STOPPED and 2 <= trained < planned
    assert get(space, waiting).status is RunStatus.QUEUED
    assert get(space, done).status is RunStatus.FINISHED
    server = start_serving(tmp_path, database, port)
    api = f"http://127.0.0.1:{port}/api/v1/projects/lab/runs"
    try:
        assert wait_until(lambda: get(space, waiting).status is RunStatus.FINISHED, 180, 0.2)
        assert httpx.post(f"{api}/{long}/resume").json()["status"] == "queued"
        assert wait_until(lambda: get(space, long).status is RunStatus.FINISHED, 300, 0.2)
        listed = httpx.get(api).json()["runs"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    assert {r["id"]: r["status"] for r in listed} == dict.fromkeys(
        [done, long, waiting], "finished"
    )
    assert epochs(space, long) == list(range(1, planned + 1))
    assert f"training on cpu; resuming from the checkpoint of epoch {trained}" in log_lines(
        space, long
    )
    for run_id in (done, long, waiting):
        bundle = get(space, run_id).bundle
        assert bundle is not None and space.runs.manifest(bundle).name == run_model_name(run_id)
