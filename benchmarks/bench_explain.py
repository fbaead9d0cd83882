"""Benchmark: in-silico mutagenesis (ISM) of one 50-nt sequence, end to end over the API.

Run with ``python -m benchmarks.bench_explain``. It starts the real server (``helixserve serve``
on the zoo store, a separate process) once per server configuration (workers x ONNX Runtime
threads) and, for ``yeast-utr`` and ``primer-binding``, posts
``POST /api/v1/models/{name}/explain`` with one 50-nt sequence: the server scores the sequence and
its 150 single-base substitutions in one batch and answers the 50 x 4 effect matrix. Measured with
httpx (keep-alive): sequential requests after a warm-up, then 4 concurrent clients (one thread and
one connection each); p50/p90/p99 latency of each. Every answer is checked (status 200, 50 rows).
Also measured: ``ism()`` in-process on the same ONNX model and thread count (no HTTP), the floor.

Issue #8's goal: p50 <= 20 ms on 2 cores. The load generator is Python and shares the 2 cores
with the server, so concurrent figures include its cost.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from benchmarks.bench_serving import free_port, helixserve, stop
from helixserve.explain.ism import ism
from helixserve.runtime import Predictor
from helixserve.store import ModelStore
from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE

MODELS = ("yeast-utr", "primer-binding")
# a native yeast 5' UTR (Cuperus et al. 2017, YAL002W:125:75); a primer holding the motif
SEQUENCES = {
    "yeast-utr": "AAAAAAGGGAACCTCTGGTTACGATGATATACCTGCGTGAAAAAGGACAG",
    "primer-binding": "ACGTACCGACCGAACTCCTTGACGTAGCATGCATCGATCGGATCCATGCA",
}


@dataclass
class Latency:
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    per_s: float


@dataclass
class Served:
    model: str
    workers: int
    onnx_threads: int
    sequential: Latency
    concurrent: Latency


def summarise(durations: list[float], wall: float) -> Latency:
    ms = np.array(durations) * 1000
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return Latency(len(ms), p50, p90, p99, float(ms.mean()), len(ms) / wall)


def _explain(client: httpx.Client, url: str, body: bytes) -> float:
    started = time.perf_counter()
    reply = client.post(url, content=body, headers={"content-type": "application/json"})
    took = time.perf_counter() - started
    if reply.status_code != 200 or len(reply.json()["effects"]) != 50:
        raise RuntimeError(f"{url} answered {reply.status_code}: {reply.text[:300]}")
    return took


def sequential(url: str, body: bytes, warmup: int, count: int) -> Latency:
    with httpx.Client(timeout=30) as client:
        for _ in range(warmup):
            _explain(client, url, body)
        started = time.perf_counter()
        durations = [_explain(client, url, body) for _ in range(count)]
        return summarise(durations, time.perf_counter() - started)


def concurrent(url: str, body: bytes, clients: int, each: int) -> Latency:
    durations: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []
    gate = threading.Barrier(clients + 1)

    def work(slot: int) -> None:
        with httpx.Client(timeout=30) as client:
            _explain(client, url, body)  # open the connection before the clock starts
            gate.wait()
            try:
                durations[slot] = [_explain(client, url, body) for _ in range(each)]
            except (RuntimeError, httpx.HTTPError) as err:
                failures.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[0]}")
    return summarise([d for slot in durations for d in slot], wall)


def in_process(name: str, threads: int, repeat: int, cache: Path) -> Latency:
    store = ModelStore.open(str(ZOO_STORE), cache_dir=cache)
    predictor = Predictor.from_store(store, name, intra_op_threads=threads)
    sequence = SEQUENCES[name]
    for _ in range(10):
        ism(predictor, sequence)
    durations = []
    started = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        ism(predictor, sequence)
        durations.append(time.perf_counter() - t0)
    return summarise(durations, time.perf_counter() - started)


def one_config(workers: int, threads: int, args: argparse.Namespace, scratch: Path) -> list[Served]:
    port, grpc_port = free_port(), free_port()
    log = scratch / f"server-{workers}x{threads}.log"
    process = helixserve(ZOO_STORE, port, grpc_port, workers, threads, log)
    rows: list[Served] = []
    try:
        for name in MODELS:
            url = f"http://127.0.0.1:{port}/api/v1/models/{name}/explain"
            body = json.dumps({"sequence": SEQUENCES[name]}).encode()
            seq = sequential(url, body, args.warmup, args.requests)
            conc = concurrent(url, body, args.clients, args.requests // args.clients)
            rows.append(Served(name, workers, threads, seq, conc))
            print(
                f"{name:<15} {workers}x{threads}  sequential p50 {seq.p50_ms:6.2f} p90 "
                f"{seq.p90_ms:6.2f} p99 {seq.p99_ms:6.2f} ms | {args.clients} clients p50 "
                f"{conc.p50_ms:6.2f} p90 {conc.p90_ms:6.2f} p99 {conc.p99_ms:6.2f} ms, "
                f"{conc.per_s:5.0f} req/s",
                flush=True,
            )
    finally:
        stop(process)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per model and mode")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--configs", default="1x1,1x2,2x1", help="workers x ONNX threads")
    parser.add_argument("--json", type=Path, help="append this run to the JSON file")
    args = parser.parse_args()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    run: dict[str, object] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "sequence_nt": 50,
        "variants_per_request": 150,
        "requests": args.requests,
        "clients": args.clients,
    }
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="helixserve-bench-explain-") as tmp:
        scratch = Path(tmp)
        floor = {}
        for name in MODELS:
            for threads in sorted({t for _, t in configs}):
                result = in_process(name, threads, args.requests, scratch / "cache")
                floor[f"{name} {threads} thread(s)"] = asdict(result)
                print(
                    f"{name:<15} in-process ism(), {threads} ONNX thread(s): p50 "
                    f"{result.p50_ms:6.2f} p90 {result.p90_ms:6.2f} ms",
                    flush=True,
                )
        served = [row for w, t in configs for row in one_config(w, t, args, scratch)]
    run.update(in_process=floor, served=[asdict(s) for s in served])
    run["load_average_after"] = os.getloadavg()
    if args.json:
        old = json.loads(args.json.read_text()) if args.json.is_file() else {"runs": []}
        old["runs"].append(run)
        args.json.write_text(json.dumps(old, indent=2) + "\n")
    for name in MODELS:
        best = min((r for r in served if r.model == name), key=lambda r: r.sequential.p50_ms)
        print(
            f"{name}: best sequential p50 {best.sequential.p50_ms:.2f} ms with "
            f"{best.workers}x{best.onnx_threads} (goal <= 20 ms)"
        )


if __name__ == "__main__":
    main()
