"""The processes of one ``serve``: a reload in one reloads the others
(:mod:`helixserve.serving.reload_signal`), and they end when their supervisor is killed.

Before it, ``serve --workers 2`` answered a third of the requests after a deploy or ``POST
/api/v1/admin/reload`` from the process that had not re-read the store (an unknown model, or the
old versions) until its next poll, 30 s later.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from helixserve.serving.reload_signal import ReloadSignal
from tests.support.serve_process import serve_processes
from tests.support.server import publish_gc


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
    with serve_processes(tmp_path) as served:
        url, store = served.url, served.store
        time.sleep(1)  # both processes up
        publish_gc(store, "gc2")
        assert httpx.post(url + "/api/v1/admin/reload", timeout=30).status_code == 200
        time.sleep(1.5)  # the other process looks every 0.25 s
        answers = [
            httpx.get(url + "/api/v1/models/gc2", timeout=10).status_code
            for _ in range(40)  # a new connection each: the kernel spreads them over the workers
        ]
        assert answers == [200] * 40


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_server_processes_end_with_a_killed_supervisor(tmp_path: Path) -> None:
    """SIGKILL to ``serve`` (no chance to stop its workers): they drain and end by themselves,
    instead of holding the port with a store nobody reloads."""
    with serve_processes(tmp_path) as served:
        workers = [
            pid
            for pid in _children(served.process.pid)
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(workers) == 2
        served.process.kill()
        served.process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert [pid for pid in workers if _alive(pid)] == []
        with pytest.raises(httpx.TransportError):
            httpx.get(served.url + "/healthz", timeout=2)
