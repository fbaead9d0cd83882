"""Scored files of the web UI are shared by every server process (``helixserve serve`` starts one
per usable CPU): a file uploaded to one process opens, pages and downloads on another; nobody
else's result opens; only the newest 16 are kept; the files hold data, not pickles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from helixserve.serving import jobs
from helixserve.serving.files import Row
from helixserve.serving.jobs import JobStore
from helixserve.serving.ui import Job
from helixserve.store import ModelStore
from tests.support.server import Running, publish_gc, running

TOKEN = "t" * 32  # the CSRF double-submit value the tests' browser holds
GOOD, BAD = "ACGT" * 12 + "AC", "ACGTX"


def browser(server: Running) -> httpx.Client:
    return httpx.Client(base_url=server.url, cookies={"hs_csrf": TOKEN}, timeout=30)


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[list[Running]]:
    """Two apps on one store and one jobs folder, as two worker processes of one server."""
    publish_gc(ModelStore.open(str(tmp_path / "store")), "gc")
    stack = ExitStack()
    shared = {"jobs_dir": str(tmp_path / "jobs"), "pretrained": False}
    servers = [
        stack.enter_context(running(tmp_path / "store", tmp_path / name, **shared))
        for name in ("a", "b")
    ]
    yield servers
    stack.close()


def test_a_result_uploaded_to_one_process_opens_on_another(two_processes: list[Running]) -> None:
    first, second = two_processes
    files = {"file": ("seqs.txt", f"{GOOD}\n{BAD}\n".encode())}
    with browser(first) as a, browser(second) as b:
        done = a.post("/models/gc/upload", data={"csrf_token": TOKEN}, files=files)
        assert done.status_code == 303
        job = done.headers["location"]
        page = b.get(job)
        assert page.status_code == 200
        assert "seqs.txt" in page.text
        results, errors = b.get(job + "/results.csv"), b.get(job + "/errors.csv")
    assert results.status_code == 200
    assert results.text.splitlines() == [
        "index,id,line,label,probability,p_0,p_1,error",
        "1,,1,1,0.500000,0.500000,0.500000,",
        "2,,2,,,,,\"record 2, line 2: DNA sequence is not valid DNA: position 5 is 'X'. Only "
        'the letters A, C, G, T are allowed; remove it or correct the typo."',
    ]
    assert errors.status_code == 200 and "position 5 is 'X'" in errors.text


def test_unknown_foreign_and_odd_ids_are_not_found(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    assert store.of("../../etc/passwd", None, None) is None  # type: ignore[arg-type]
    assert store.of("nonexistent-id", None, None) is None  # type: ignore[arg-type]


def test_only_the_newest_are_kept_and_files_are_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "MAX_JOBS", 3)
    store = JobStore(str(tmp_path / "jobs"))

    class Model:  # what a job needs of a served model: its name and version
        name, version = "gc", 1

    for number in range(5):
        rows = [Row(0, 1, "r0", b"\x89PNG bytes", {"label": "1"}, None)]
        store.add(Job(f"job-{number:04d}", Model(), "f.txt", rows, "local"))  # type: ignore[arg-type]
    kept = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    assert kept == ["job-0002.json", "job-0003.json", "job-0004.json"]
    saved = orjson.loads((tmp_path / "jobs" / "job-0004.json").read_bytes())
    assert saved["rows"][0]["item"] == {"$bytes": "iVBORyBieXRlcw=="}
    assert saved["owner"] == "local" and saved["model"] == "gc"
