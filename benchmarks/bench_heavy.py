"""Benchmark: a heavy model served over HTTP against what the model alone does on this machine.

Run with ``python -m benchmarks.bench_heavy`` (part of ``make bench``). The model is the Cuperus
et al. CNN (random weights, 17.7 M multiply-adds per sequence; 50-nt UTRs with 10-nt flanks).

- **Model only**: ONNX Runtime on batches of 64 encoded sequences, no HTTP, no validation, in the
  two ways this machine's CPUs can be used: one session with ``cpus`` intra-op threads, and
  ``cpus`` processes with one thread each, running at the same time. The better of the two is the
  ceiling (sequences per second).
- **Served**: ``helixserve serve`` on a store holding only that model, single-sequence
  ``POST /api/v1/models/cuperus/predict`` requests from ``wrk`` at concurrency 64, in each
  configuration of ``--configs`` (``auto`` is what a user gets: no setting; ``WxT`` sets
  ``HELIXSERVE_WORKERS=W`` and ``HELIXSERVE_INTRA_OP_THREADS=T``). The access log is at its
  default (on) unless ``--no-access-log``. Every served run is checked: the items the server's
  metrics counted equal the requests wrk saw succeed.

Each configuration is measured ``--rounds`` times, interleaved with the model-only runs. The
ceiling is the best model-only round (a model-only round that something else on the machine
slowed would otherwise flatter the ratio), the served figure the median of the rounds: the ratio
is that median over that ceiling.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_serving import (
    BIN,
    free_port,
    items_counted,
    run_wrk,
    start,
    stop,
    wait_http,
)
from benchmarks.bench_store_runtime import CuperusCNN, export, publish, random_sequences
from benchmarks.goals import record
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import Predictor
from helixserve.settings import usable_cpus
from helixserve.store import ModelStore, OutputSchema

BATCH = 64
MODEL = "cuperus"


def make_store(folder: Path) -> ModelStore:
    store = ModelStore.open(str(folder), cache_dir=folder.parent / "heavy-cache")
    schema = SequenceSchema(length=50, flank_left="ACGTACGTAC", flank_right="GTACGTACGT")
    onnx = export(CuperusCNN(), 70, "value")
    publish(store, MODEL, onnx, schema, "regression", OutputSchema())
    return store


def _session_rate(store_dir: str, threads: int, seconds: float) -> float:
    """Sequences/s of one session with ``threads`` threads on batches of 64, for ``seconds``."""
    store = ModelStore.open(store_dir, cache_dir=Path(store_dir).parent / "heavy-cache")
    predictor = Predictor(store.pull(MODEL), intra_op_threads=threads)
    batch = predictor.encode(random_sequences(BATCH, 50))
    predictor.run(batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.run(batch)
        done += BATCH
    return done / (time.perf_counter() - started)


def model_only(store_dir: str, cpus: int, seconds: float) -> dict[str, float]:
    threads = _session_rate(store_dir, cpus, seconds)
    with multiprocessing.get_context("spawn").Pool(cpus) as pool:
        rates = pool.starmap(_session_rate, [(store_dir, 1, seconds)] * cpus)
    return {f"1 session x {cpus} threads": threads, f"{cpus} processes x 1 thread": sum(rates)}


def serve(store_dir: str, scratch: Path, config: str, access_log: bool) -> tuple[str, object]:
    port = free_port()
    env = {"HELIXSERVE_CACHE_DIR": str(scratch / "serve-cache"), "HELIXSERVE_PRETRAINED": "false"}
    if config != "auto":
        workers, threads = config.split("x")
        env |= {"HELIXSERVE_WORKERS": workers, "HELIXSERVE_INTRA_OP_THREADS": threads}
    if not access_log:
        env["HELIXSERVE_ACCESS_LOG"] = "false"
    command = [str(BIN / "helixserve"), "serve", "--store", store_dir, "--port", str(port)]
    command += ["--grpc-port", "0", "--reload-interval", "0", "--no-worker"]
    process = start(command, env, scratch / f"serve-{config}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", process)
    return url, process


def served(url: str, seconds: float, scratch: Path) -> tuple[float, float]:
    """Requests/s and p99 ms at c=64 (after a 2 s warm-up), checked against the metrics."""
    body = '{"inputs": ["' + random_sequences(1, 50, seed=1)[0] + '"]}'
    path = f"{url}/api/v1/models/{MODEL}/predict"
    run_wrk("warm-up", path, body, 64, 2, scratch)
    before = items_counted(url, MODEL)
    result = run_wrk("served", path, body, 64, seconds, scratch)
    counted = items_counted(url, MODEL) - before
    if result.failed or abs(counted - result.rps * seconds) > 0.05 * counted + 64:
        raise RuntimeError(f"{url}: wrk saw {result.rps * seconds:.0f} ok, metrics {counted:.0f}")
    return result.rps, result.p99_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="auto,1x2")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    cpus = usable_cpus()
    print(f"machine: {os.cpu_count()} CPUs ({cpus} usable); load {os.getloadavg()[0]:.1f}")
    configs = args.configs.split(",")
    with tempfile.TemporaryDirectory(prefix="helixserve-heavy-") as tmp:
        scratch = Path(tmp)
        store_dir = str(scratch / "store")
        make_store(Path(store_dir))
        servers = {c: serve(store_dir, scratch, c, not args.no_access_log) for c in configs}
        ceilings: list[float] = []
        found: dict[str, list[tuple[float, float, float]]] = {c: [] for c in configs}
        try:
            for _ in range(args.rounds):
                alone = model_only(store_dir, cpus, args.seconds / 2)
                ceiling = max(alone.values())
                ceilings.append(ceiling)
                print("model only: " + ", ".join(f"{k} {v:,.0f} seq/s" for k, v in alone.items()))
                for config, (url, _) in servers.items():
                    rps, p99 = served(url, args.seconds, scratch)
                    found[config].append((rps, p99, rps / ceiling))
                    share = rps / ceiling
                    print(f"  served {config}: {rps:,.0f} req/s, p99 {p99:.1f} ms, {share:.2f}")
        finally:
            for _, process in servers.values():
                stop(process)  # type: ignore[arg-type]
    ceiling = max(ceilings)
    print(f"\nmodel-only ceiling: best of {len(ceilings)} rounds {ceiling:,.0f} seq/s")
    for config, runs in found.items():
        rps = statistics.median(r for r, _, _ in runs)
        ratio = rps / ceiling
        p99 = statistics.median(p for _, p, _ in runs)
        print(
            f"served {config:>5}: {rps:8,.0f} req/s  p99 {p99:6.1f} ms  {ratio:.2f} of model-only"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if "auto" in found:
        runs = found["auto"]
        rps = statistics.median(r for r, _, _ in runs)
        record(
            "heavy",
            f"{rps / ceiling:.2f} of model-only ({rps:,.0f} req/s vs {ceiling:,.0f} seq/s), p99 "
            f"{statistics.median(p for _, p, _ in runs):.1f} ms",
            rps / ceiling >= 0.85,
            f"`helixserve serve` defaults, c=64 single-sequence requests (wrk), model-only = "
            f"best of {cpus} processes x 1 thread / 1 x {cpus} threads, batches of 64; "
            f"{args.rounds} rounds (served: median; model-only: best)",
        )


if __name__ == "__main__":
    main()
