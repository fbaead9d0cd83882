"""Long fault runs for `make reliability`: kill -9 at random points of a 1M-row batch job, and a
really full disk (a small tmpfs) under the batch output.

Run with ``python -m reliability.faults [--rows N] [--kills K]``. Writes
``reliability/results/faults.json`` and exits 1 when a check fails:

1. kill -9: an uninterrupted ``helixserve predict`` of N generated 50-nt sequences (gzipped CSV,
   one in 997 invalid) with the ``primer-binding`` zoo model, then the same job killed with
   SIGKILL K times at random moments, each followed by ``--resume``; the final output and errors
   files must equal the uninterrupted ones byte for byte, and every input row must appear exactly
   once in one of them.
2. disk full: the output goes to a 2 MiB tmpfs (needs root and ``mount``; reported as not run
   otherwise); the run must fail with ``Error: could not write ...`` and no traceback, keep its
   journal, and finish with ``--resume`` once the output can go to a disk with space.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_batch import write_csv

from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent / "helixserve"


def write_input(path: Path, rows: int, seed: int = 0) -> None:
    """Generated 50-nt sequences, one in 997 invalid (the batch benchmark's generator)."""
    write_csv(path, rows, seed=seed, bad_every=997)


def predict(data: Path, output: Path, cache: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [
            str(BIN),
            "predict",
            "primer-binding",
            str(data),
            "-o",
            str(output),
            "--store",
            str(ZOO_STORE),
            "--batch-size",
            "4096",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = process.communicate(timeout=3600)
    return process.returncode, err.decode()


def kill_and_resume(scratch: Path, rows: int, kills: int, seed: int) -> dict[str, Any]:
    data, cache = scratch / "in.csv.gz", scratch / "cache"
    write_input(data, rows)
    started = time.perf_counter()
    code, err = finish(predict(data, scratch / "whole.csv", cache))
    if code != 0:
        raise RuntimeError(err)
    whole_s = time.perf_counter() - started
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0.1, 0.9) * whole_s / kills for _ in range(kills))
    journal = scratch / "cut.csv.parts" / "journal.json"
    committed = []
    for number, delay in enumerate(moments):
        run = predict(data, scratch / "cut.csv", cache, *(["--resume"] if number else []))
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        state = json.loads(journal.read_text()) if journal.exists() else {"records": 0}
        committed.append(int(state["records"]))
    code, err = finish(predict(data, scratch / "cut.csv", cache, "--resume"))
    out, errors = (scratch / "cut.csv").read_bytes(), (scratch / "cut.errors.csv").read_bytes()
    identical = (
        out == (scratch / "whole.csv").read_bytes()
        and errors == (scratch / "whole.errors.csv").read_bytes()
    )
    seen = [int(line.split(b",", 1)[0]) for line in out.splitlines()[1:]]
    seen += [int(line.split(b",", 1)[0]) for line in errors.splitlines()[1:]]
    return {
        "rows": rows,
        "kills": kills,
        "kill_after_s": [round(m, 2) for m in moments],
        "records_committed_at_each_kill": committed,
        "final_exit_code": code,
        "identical_to_uninterrupted": identical,
        "rows_seen": len(seen),
        "rows_lost": rows - len(set(seen)),
        "rows_duplicated": len(seen) - len(set(seen)),
        "uninterrupted_seconds": round(whole_s, 1),
    }


def disk_full(scratch: Path) -> dict[str, Any]:
    mount = scratch / "small"
    mount.mkdir()
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if tried.returncode != 0:
        return {"run": False, "why": f"cannot mount a tmpfs here: {tried.stderr.strip()[:200]}"}
    try:
        data, cache = scratch / "small-in.csv.gz", scratch / "cache"
        write_input(data, 100_000, seed=3)
        code, err = finish(predict(data, mount / "out.csv", cache))
        last = err.strip().splitlines()[-1] if err.strip() else ""
        journal = json.loads((mount / "out.csv.parts" / "journal.json").read_text())
        shutil.copytree(mount / "out.csv.parts", scratch / "out.csv.parts")
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    code2, err2 = finish(predict(data, scratch / "out.csv", cache, "--resume"))
    rows = len((scratch / "out.csv").read_text().splitlines()) - 1 if code2 == 0 else 0
    return {
        "run": True,
        "exit_code": code,
        "message": last,
        "traceback": "Traceback" in err,
        "journal_records": journal["records"],
        "resume_exit_code": code2,
        "rows_after_resume": rows,
        "resume_error": err2.strip()[-300:] if code2 else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="helixserve-faults-") as tmp:
        kill = kill_and_resume(Path(tmp), args.rows, args.kills, args.seed)
    with tempfile.TemporaryDirectory(prefix="helixserve-diskfull-") as tmp:
        full = disk_full(Path(tmp))
    ok = (
        kill["identical_to_uninterrupted"]
        and kill["rows_lost"] == 0
        and kill["rows_duplicated"] == 0
        and kill["final_exit_code"] == 0
    )
    if full["run"]:
        ok = (
            ok
            and full["exit_code"] == 1
            and not full["traceback"]
            and full["message"].startswith("Error: could not write")
            and full["resume_exit_code"] == 0
        )
    RESULTS.mkdir(exist_ok=True)
    report = {"kill_9": kill, "disk_full": full, "passed": ok}
    (RESULTS / "faults.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
