"""Profile: where the CPU goes while the heavy model is served (what bounds ``bench_heavy``).

Run with ``python -m benchmarks.profile_heavy [--py-spy PATH]`` (part of ``make bench`` when
``py-spy`` is on the PATH; ``pip install py-spy``). One ``helixserve serve`` with the defaults (the
access log on, processes and ONNX Runtime threads ``auto``) on a store holding only the Cuperus
CNN of :mod:`benchmarks.bench_heavy`; ``wrk`` sends single-sequence predict requests at c=64.

While wrk runs, the benchmark reads the CPU time of every process of the server, of wrk and of
the whole machine (``/proc``), and ``py-spy record`` samples each server process (every thread
that is on a CPU) for ``--seconds``. The samples are sorted by the innermost frame they are in:
the model's ``InferenceSession.run`` first, then the request's steps (HTTP, JSON, validation and
encoding, batching, reply, access log, metrics). The model-only ceiling (``cpus`` processes with
one thread each, batches of 64) is measured after the server stops, so ``inference need`` =
served requests/s x the CPU seconds one sequence costs the model alone.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_heavy import MODEL, make_store, model_only, serve
from benchmarks.bench_serving import Result, run_wrk, stop
from benchmarks.bench_store_runtime import random_sequences
from benchmarks.goals import record
from helixserve.settings import usable_cpus

TICK = os.sysconf("SC_CLK_TCK")
# (category, substrings of a frame "function (file:line)"), checked from the innermost frame out.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("model: InferenceSession.run", ("onnxruntime_inference_collection",)),
    ("access log", ("access_log",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("JSON (orjson / json)", ("orjson", "json/decoder", "json/encoder", "json/__init__")),
    ("validation and encoding (helixserve.inputs)", ("helixserve/inputs",)),
    ("batching and reply (helixserve.runtime / serving)", ("helixserve/runtime",)),
    ("request handling (helixserve.serving)", ("helixserve/serving",)),
    ("HTTP (uvicorn, httptools, h11)", ("uvicorn", "httptools", "h11")),
    ("event loop (asyncio / uvloop)", ("asyncio", "uvloop")),
    ("threads (concurrent.futures, threading)", ("concurrent/futures", "threading.py")),
]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (those that are gone count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


def server_pids(leader: int) -> list[int]:
    """The server's processes: everything in the process group it leads."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == leader:
                    found.append(int(entry.name))
            except ProcessLookupError:
                continue
    return found


def category(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, marks in CATEGORIES:
            if any(mark in frame for mark in marks):
                return name
    return "other Python / native"


def profile(pyspy: str, pids: list[int], seconds: float, scratch: Path) -> collections.Counter[str]:
    """Samples per category over ``pids`` (py-spy, raw format, on-CPU threads only)."""
    outs = [scratch / f"spy-{pid}.txt" for pid in pids]
    options = ["--duration", str(round(seconds)), "--rate", "250", "--format", "raw"]
    spies = [
        subprocess.Popen(
            [pyspy, "record", "--pid", str(pid), *options, "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(pids, outs, strict=True)
    ]
    for spy in spies:
        spy.wait()
    counts: collections.Counter[str] = collections.Counter()
    for out in outs:
        for line in out.read_text().splitlines() if out.exists() else []:
            stack, _, number = line.rpartition(" ")
            if number.isdigit():
                counts[category(stack)] += int(number)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, from the dev extra
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or (beside.is_file() and beside))
    args = parser.parse_args()
    if not args.py_spy:
        raise SystemExit("Error: py-spy not found: pip install py-spy, or give --py-spy PATH")
    cpus = usable_cpus()
    print(f"machine: {os.cpu_count()} CPUs ({cpus} usable); load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="helixserve-profile-") as tmp:
        scratch = Path(tmp)
        store_dir = str(scratch / "store")
        make_store(Path(store_dir))
        url, process = serve(store_dir, scratch, "auto", access_log=True)
        try:
            measured = measure(args, url, process.pid, scratch)  # type: ignore[attr-defined]
        finally:
            stop(process)  # type: ignore[arg-type]
        ceiling = max(model_only(store_dir, cpus, 4.0).values())
    report(measured, ceiling, cpus)


def measure(args: argparse.Namespace, url: str, leader: int, scratch: Path) -> dict[str, object]:
    body = '{"inputs": ["' + random_sequences(1, 50, seed=1)[0] + '"]}'
    path = f"{url}/api/v1/models/{MODEL}/predict"
    run_wrk("warm-up", path, body, 64, 2, scratch)
    pids = server_pids(leader)
    workers = [pid for pid in pids if pid != leader]
    found: dict[str, object] = {}
    wrk_seconds = args.seconds + 2

    def load() -> None:
        found["wrk"] = run_wrk("served", path, body, 64, wrk_seconds, scratch)

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(1.0)
    pgrep = ["pgrep", "-x", "wrk"]
    listed = subprocess.run(pgrep, check=False, capture_output=True, text=True).stdout
    wrk_pids = [int(pid) for pid in listed.split()]
    before = (cpu_seconds(pids), cpu_seconds(wrk_pids), machine_busy(), time.perf_counter())
    found["samples"] = profile(args.py_spy, workers or [leader], args.seconds, scratch)
    after = (cpu_seconds(pids), cpu_seconds(wrk_pids), machine_busy(), time.perf_counter())
    loader.join()
    wall = after[3] - before[3]
    found["server_cores"] = (after[0] - before[0]) / wall
    found["wrk_cores"] = (after[1] - before[1]) / wall
    found["busy_cores"] = (after[2][0] - before[2][0]) / wall
    found["processes"] = len(pids)
    return found


def report(found: dict[str, object], ceiling: float, cpus: int) -> None:
    result: Result = found["wrk"]  # type: ignore[assignment]
    rps = result.rps
    need = rps * cpus / ceiling
    print(f"served: {rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms (c=64, defaults)")
    print(f"model-only ceiling: {ceiling:,.0f} seq/s ({cpus} processes x 1 thread, batch 64)")
    print(f"served / model-only: {rps / ceiling:.2f}")
    print(
        f"CPU (cores of {cpus}): server {found['server_cores']:.2f} "
        f"({found['processes']} processes), wrk {found['wrk_cores']:.2f}, "
        f"whole machine busy {found['busy_cores']:.2f}"
    )
    print(f"inference need at that rate (model-only cost per sequence): {need:.2f} cores")
    samples: collections.Counter[str] = found["samples"]  # type: ignore[assignment]
    total = sum(samples.values())
    if not total:
        raise SystemExit(
            "Error: py-spy recorded nothing: it needs ptrace (root, or yama ptrace_scope 0)"
        )
    print("server samples by innermost frame (py-spy, on-CPU threads):")
    for name, count in samples.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    model = samples[CATEGORIES[0][0]] / total
    server = float(found["server_cores"])  # type: ignore[arg-type]
    other_us = (1 - model) * server / rps * 1e6
    record(
        "heavy-profile",
        f"server {server:.2f} cores + wrk {found['wrk_cores']:.2f} of {cpus}; "
        f"{100 * model:.0f}% of the server's CPU in InferenceSession.run, the rest "
        f"(HTTP, event loop, JSON, batching, reply) {other_us:.0f} µs of CPU per request; "
        f"85% of model-only would leave {per_request_budget(ceiling, cpus, found):.0f} µs",
        None,
        f"{rps:,.0f} req/s at c=64, served / model-only {rps / ceiling:.2f}; py-spy 250 Hz",
    )


def per_request_budget(ceiling: float, cpus: int, found: dict[str, object]) -> float:
    """CPU µs per request left for everything but the model at 85% of model-only, with wrk's
    share of the machine as measured."""
    rate = 0.85 * ceiling
    spare = cpus - float(found["wrk_cores"]) - rate * cpus / ceiling  # type: ignore[arg-type]
    return max(spare, 0.0) / rate * 1e6


if __name__ == "__main__":
    main()
