"""Faults: kill -9 at several points of one batch job, a full disk while writing the output, and
a corrupted bundle published behind the alias a server is using."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from helixserve.store import ModelStore
from tests.support.server import publish_gc, running
from tests.test_batch import random_fasta

GC = "GC" * 25
ROWS, BATCH = 60_000, 2000


def _predict(
    store: ModelStore,
    *args: str,
    limit_bytes: int | None = None,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(store.cache_dir)}

    def limited() -> None:  # in the child: files may not grow past the limit (EFBIG)
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helixserve",
            "predict",
            "gc",
            *args,
            "--store",
            store.uri,
            "--batch-size",
            str(BATCH),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limited,  # noqa: PLW1509 - no threads run here yet
    )


def _finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, err.decode()


def _chunks(journal: Path) -> int:
    try:
        return int(json.loads(journal.read_text())["chunks"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_three_kill_9s_then_resume_give_identical_output(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    data = tmp_path / "in.fa.gz"
    random_fasta(data, ROWS, seed=11, bad_every=997)
    assert _finish(_predict(store, str(data), "-o", str(tmp_path / "whole.csv")))[0] == 0
    journal = tmp_path / "cut.csv.parts" / "journal.json"
    points = sorted(random.Random(7).sample(range(2, ROWS // BATCH - 2), 3))
    for number, point in enumerate(points):
        extra = ["--resume"] if number else []
        run = _predict(store, str(data), "-o", str(tmp_path / "cut.csv"), *extra)
        deadline = time.monotonic() + 120
        while _chunks(journal) < point and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.005)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        assert point <= _chunks(journal) < ROWS // BATCH, (point, _chunks(journal))
    code, err = _finish(_predict(store, str(data), "-o", str(tmp_path / "cut.csv"), "--resume"))
    assert code == 0, err
    for name in ("cut.csv", "cut.errors.csv"):
        whole = (tmp_path / name.replace("cut", "whole")).read_bytes()
        assert (tmp_path / name).read_bytes() == whole
    indices = [
        int(line.split(",")[0]) for line in (tmp_path / "cut.csv").read_text().splitlines()[1:]
    ]
    refused = (tmp_path / "cut.errors.csv").read_text().splitlines()[1:]
    assert len(indices) == len(set(indices)) and len(indices) + len(refused) == ROWS


def test_full_disk_keeps_the_journal_and_resume_finishes(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    data = tmp_path / "in.fa"
    random_fasta(data, ROWS, seed=5)
    assert _finish(_predict(store, str(data), "-o", str(tmp_path / "whole.csv")))[0] == 0
    code, err = _finish(
        _predict(store, str(data), "-o", str(tmp_path / "out.csv"), limit_bytes=1_000_000)
    )
    parts = tmp_path / "out.csv.parts"
    assert code == 1
    assert err.splitlines()[-1] == (
        f"Error: could not write {tmp_path / 'out.csv.partial'}: File too large. 60,000 records "
        f"are committed in {parts}; free some space (or fix the permissions) and run the same "
        "command again with --resume."
    )
    assert "Traceback" not in err
    assert _chunks(parts / "journal.json") == ROWS // BATCH
    code, err = _finish(_predict(store, str(data), "-o", str(tmp_path / "out.csv"), "--resume"))
    assert code == 0, err
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert not parts.exists()


def test_corrupted_bundle_behind_the_alias_is_refused_and_the_old_one_serves(
    tmp_path: Path,
) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)  # v1: G+C-rich sequences score "1"
    store.set_alias("gc", "production", 1)
    with running(store.uri, tmp_path) as server:
        url = server.url + "/api/v1/models/gc/predict"
        assert httpx.post(url, json={"inputs": [GC]}).json()["predictions"][0]["label"] == "1"
        publish_gc(store, bias=100.0)  # v2 would answer "0" for everything
        onnx = tmp_path / "store" / "gc" / "versions" / "2" / "model.onnx"
        onnx.write_bytes(onnx.read_bytes()[:-64] + b"\0" * 64)  # damaged after publishing
        store.set_alias("gc", "production", 2)
        reload = httpx.post(server.url + "/api/v1/admin/reload").json()
        assert reload["models"] == {"gc": [1]}
        assert reload["load_errors"]["gc@2"].startswith("model.onnx of gc@2 is corrupted: its ")
        reply = httpx.post(url, json={"inputs": [GC]}).json()
        assert (reply["version"], reply["predictions"][0]["label"]) == (1, "1")
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["load_errors"]["gc@2"].startswith("model.onnx of gc@2 is corrupted")
