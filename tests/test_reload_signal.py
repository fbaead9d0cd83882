"""A reload in one server process reloads the others (:mod:`helixserve.serving.reload_signal`).

Before it, ``serve --workers 2`` answered a third of the requests after a deploy or ``POST
/api/v1/admin/reload`` from the process that had not re-read the store (an unknown model, or the
old versions) until its next poll, 30 s later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helixserve.serving.reload_signal import ReloadSignal
from helixserve.store.store import ModelStore
from tests.support.server import free_port, publish_gc


def test_a_bump_is_seen_by_the_others_once_and_not_by_itself(tmp_path: Path) -> None:
    path = str(tmp_path / "reload")
    one, two, three = ReloadSignal(path), ReloadSignal(path), ReloadSignal(path)
    assert not (one.changed() or two.changed() or three.changed())  # no file yet: nothing
    one.bump()
    assert (one.changed(), two.changed(), three.changed()) == (False, True, True)
    assert not (two.changed() or three.changed())  # seen once
    two.bump()
    two.bump()  # the same content again: still a new file
    assert (one.changed(), two.changed(), three.changed()) == (True, False, True)


def test_one_process_has_no_signal(tmp_path: Path) -> None:
    alone = ReloadSignal(None)
    alone.bump()
    assert alone.path is None and not alone.changed()
    assert list(tmp_path.iterdir()) == []


def test_a_signal_that_cannot_be_written_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = ReloadSignal(str(tmp_path / "missing-folder" / "reload"))
    blocked.bump()
    assert not blocked.changed()
    assert "could not tell the other server processes to reload: " in caplog.text


def test_a_reload_through_one_process_reaches_every_process(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HELIXSERVE_")},
        "HOME": str(tmp_path),
        "HELIXSERVE_PRETRAINED": "false",
        "HELIXSERVE_WORKER": "false",
    }
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    command = [sys.executable, "-m", "helixserve", "serve", "--store", store.uri]
    command += ["--port", str(port), "--grpc-port", "0", "--workers", "2"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        time.sleep(1)  # both processes up
        publish_gc(store, "gc2")
        assert httpx.post(url + "/api/v1/admin/reload", timeout=30).status_code == 200
        time.sleep(1.5)  # the other process looks every 0.25 s
        answers = [
            httpx.get(url + "/api/v1/models/gc2", timeout=10).status_code
            for _ in range(40)  # a new connection each: the kernel spreads them over the workers
        ]
        assert answers == [200] * 40
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
