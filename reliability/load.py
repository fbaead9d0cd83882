"""Load, overload, soak and graceful shutdown of a real ``helixserve serve`` process (loopback).

Run the long versions with ``python -m reliability.load [--soak-minutes 10]
[--overload-seconds 60]``; they write ``reliability/results/load.json``. ``tests/test_load.py``
runs short versions of the same scenarios.

Contract:
- Load is ``POST /api/v1/models/yeast-utr/predict`` with :data:`ITEMS` random 50-nt UTRs per
  request: the U2 CNN is heavy enough that the model, not the HTTP layer or the load client, is
  the bottleneck (the client runs on the same 2 cores as the server; its figures include that).
- The server runs with :data:`SETTINGS` (the defaults): a queue of ``BATCH_MAX_QUEUE`` items per
  model that may hold at most half a ``REQUEST_TIMEOUT_S`` of work, so an admitted request waits
  at most about the smaller of ``queue items / capacity items per s`` and half the timeout.
- :func:`measure_capacity`: closed loop (enough concurrency to keep the model busy), 200s/s.
- :func:`overload`: open loop at ``factor`` x capacity. Held when every answer is 200 or 503 with
  ``Retry-After`` (no other status, no dropped connection, no timeout), some were shed, the
  admitted requests' p99 stays under :func:`latency_bound`, they come to at least 40 % of the
  capacity (no collapse; ideally 100 %), RSS grows < 25 %, and the server still answers
  afterwards.
- :func:`soak`: open loop at ``fraction`` x capacity, measured again just before (neighbours on a
  shared machine move it). Held when every answer is 200 and RSS grows
  < 10 % from the end of the warm-up to the end.
- :func:`shutdown_under_load`: SIGTERM to a server under closed-loop load. Held when the
  requests that were in flight finish with 200 (or, if the server had not read them yet, 503 with
  Retry-After), later ones get 503 + Retry-After or a refused/closed connection (never a broken
  answer or another status), ``/readyz`` answers 503 while draining, gRPC calls in flight end
  OK and later ones UNAVAILABLE (nothing else), and the process exits with code 0 within
  ``bound_s``.
- Each scenario returns a JSON-able dict with its figures and ``problems`` (empty when held).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from reliability import loadgen
from reliability.loadgen import ANSWERED, BROKEN, TIMEOUT, LoadResult, Target
from reliability.server import ServerProcess, serve

MODEL = "yeast-utr"
ITEMS = 8
QUEUE_ITEMS, TIMEOUT_S = 4096, 30.0
# the defaults of helixserve.settings.Settings, stated so that the report shows them
SETTINGS = {
    "BATCH_MAX_QUEUE": str(QUEUE_ITEMS),
    "REQUEST_TIMEOUT_S": f"{TIMEOUT_S:g}",
    "SHUTDOWN_DRAIN_S": "1",
}
RESULTS = Path(__file__).resolve().parent / "results" / "load.json"


def bodies(items: int = ITEMS, count: int = 64, seed: int = 1) -> list[bytes]:
    """``count`` request bodies of ``items`` random 50-nt sequences each."""
    rng = random.Random(seed)
    return [
        json.dumps({"inputs": ["".join(rng.choices("ACGT", k=50)) for _ in range(items)]}).encode()
        for _ in range(count)
    ]


def predict_target(server: ServerProcess) -> Target:
    return Target.post(f"{server.url}/api/v1/models/{MODEL}/predict", bodies())


# --- capacity, overload, soak --------------------------------------------------------------------


def measure_capacity(
    server: ServerProcess, seconds: float = 8.0, concurrency: int = 32, warmup: float = 2.0
) -> dict[str, Any]:
    """Requests/s the server answers with 200 under a closed loop (after a warm-up)."""
    target = predict_target(server)
    loadgen.run(loadgen.closed_loop(target, concurrency=concurrency, seconds=warmup))
    result = loadgen.run(
        loadgen.closed_loop(target, concurrency=concurrency, seconds=seconds, pid=server.pid)
    )
    summary = result.summary()
    problems = _not_ok(result)
    return {
        "rps": summary["ok_rps"],
        "items_per_s": summary["ok_rps"] * ITEMS,
        "items_per_request": ITEMS,
        "load": summary,
        "problems": problems,
    }


def latency_bound(capacity_rps: float, timeout_s: float = TIMEOUT_S) -> float:
    """Seconds an admitted request may take under overload. The batcher admits a request only
    while the items ahead of it need at most ``min(queue items / capacity items per s, timeout /
    2)`` seconds; the bound is 3x that (capacity is noisy on a shared machine) plus 0.5 s for the
    batch in progress and the HTTP round trip."""
    policy = min(QUEUE_ITEMS / (capacity_rps * ITEMS), timeout_s / 2)
    return 3 * policy + 0.5


def overload(
    server: ServerProcess,
    capacity_rps: float,
    seconds: float,
    factor: float = 2.0,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """Open loop at ``factor`` x capacity (``timeout_s``: the server's request timeout); see the
    module contract."""
    result = loadgen.run(
        loadgen.open_loop(
            predict_target(server),
            rate=factor * capacity_rps,
            seconds=seconds,
            concurrency=4096,
            timeout=60,
            pid=server.pid,
        )
    )
    s = result.summary()
    bound = latency_bound(capacity_rps, timeout_s)
    problems = _foreign(result, allowed={200, 503})
    shed = s["statuses"].get("503", 0)
    admitted = s["statuses"].get("200", 0)
    if not shed or not admitted:
        problems.append(
            f"expected both admitted (200) and shed (503) requests, got {s['statuses']}"
        )
    if shed != s["503_with_retry_after"]:
        problems.append(f"{shed - s['503_with_retry_after']} 503 answers had no Retry-After")
    if s["p99_ms"] is not None and s["p99_ms"] > bound * 1000:
        problems.append(f"admitted p99 {s['p99_ms']} ms is over the bound {bound * 1000:.0f} ms")
    if result.skipped > 0.01 * (len(result.records) + result.skipped):
        problems.append(f"the client skipped {result.skipped} requests (it was the limit)")
    growth = _growth(result.rss_kib[0][1], max(k for _, k in result.rss_kib))
    if growth >= 25:
        problems.append(f"RSS grew {growth:.1f} % under overload")
    goodput = s["ok_rps"] / capacity_rps
    if goodput < 0.4:
        problems.append(f"the admitted requests came to {goodput:.0%} of capacity (collapse)")
    problems += _still_serving(server)
    share = round(shed / max(1, len(result.records)), 3)
    return {
        "offered_rps": round(factor * capacity_rps, 1),
        "seconds": seconds,
        "admitted": admitted,
        "shed": shed,
        "shed_share": share,
        "admitted_rps": s["ok_rps"],
        "goodput_of_capacity": round(goodput, 2),
        "p50_admitted_ms": s["p50_ms"],
        "p99_admitted_ms": s["p99_ms"],
        "p99_bound_ms": round(bound * 1000),
        "rss_growth_pct": round(growth, 1),
        "load": s,
        "problems": problems,
    }


def soak(
    server: ServerProcess, seconds: float, warmup: float, fraction: float = 0.8
) -> dict[str, Any]:
    """Open loop at ``fraction`` x capacity for ``seconds``; see the module contract."""
    capacity_rps = measure_capacity(server, seconds=5, warmup=1)["rps"]
    result = loadgen.run(
        loadgen.open_loop(
            predict_target(server),
            rate=fraction * capacity_rps,
            seconds=seconds,
            concurrency=1024,
            timeout=60,
            pid=server.pid,
        )
    )
    s = result.summary()
    problems = _foreign(result, allowed={200})
    warm = _rss_at(result.rss_kib, warmup)
    end = statistics.median(k for _, k in result.rss_kib[-5:])
    growth = _growth(warm, end)
    if growth >= 10:
        problems.append(f"RSS grew {growth:.1f} % after the warm-up ({warm} -> {end} KiB)")
    errors = len(result.records) - s["statuses"].get("200", 0)
    return {
        "capacity_rps": capacity_rps,
        "rate_rps": round(fraction * capacity_rps, 1),
        "seconds": seconds,
        "warmup_s": warmup,
        "requests": len(result.records),
        "errors": errors,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "rss_mib_start": round(result.rss_kib[0][1] / 1024, 1),
        "rss_mib_after_warmup": round(warm / 1024, 1),
        "rss_mib_end": round(end / 1024, 1),
        "rss_growth_pct": round(growth, 1),
        "load": s,
        "problems": problems,
    }


def _rss_at(samples: list[tuple[float, int]], t: float) -> float:
    """Median RSS of the five samples starting at ``t`` seconds."""
    later = [k for at, k in samples if at >= t][:5] or [samples[-1][1]]
    return statistics.median(later)


def _growth(before: float, after: float) -> float:
    return 100 * (after - before) / before


def _not_ok(result: LoadResult) -> list[str]:
    return _foreign(result, allowed={200})


def _foreign(result: LoadResult, allowed: set[int]) -> list[str]:
    """Problems: answers with a status outside ``allowed``, requests without an answer."""
    s = result.summary()
    problems = [
        f"{n} answers with status {code}"
        for code, n in s["statuses"].items()
        if int(code) not in allowed
    ]
    problems += [
        f"{n} requests {outcome}" for outcome, n in s["outcomes"].items() if outcome != ANSWERED
    ]
    return problems


def _still_serving(server: ServerProcess) -> list[str]:
    if server.process.poll() is not None:
        return [f"the server exited with {server.process.returncode}"]
    target = predict_target(server)
    after = loadgen.run(loadgen.closed_loop(target, concurrency=1, seconds=5, max_requests=3))
    return [f"after the overload: {p}" for p in _not_ok(after)]


# --- graceful shutdown ---------------------------------------------------------------------------


def shutdown_under_load(
    scratch: Path,
    *,
    before_s: float = 3.0,
    concurrency: int = 32,
    bound_s: float = 20.0,
    workers: int = 1,
) -> dict[str, Any]:
    """SIGTERM to a fresh server (``workers`` processes) under load; see the module contract."""
    with serve(scratch, SETTINGS, workers=workers) as server:
        report = loadgen.run(_shutdown(server, before_s, concurrency, bound_s))
    return {"workers": workers, **report}


async def _shutdown(
    server: ServerProcess, before_s: float, concurrency: int, bound_s: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grpc_calls: list[tuple[float, float, str]] = []
    grpc_stop = threading.Event()
    grpc_threads = [
        threading.Thread(target=_grpc_worker, args=(server, grpc_calls, grpc_stop))
        for _ in range(GRPC_WORKERS)
    ]
    for thread in grpc_threads:
        thread.start()
    load = loop.create_task(
        loadgen.closed_loop(
            predict_target(server),
            concurrency=concurrency,
            seconds=before_s + bound_s + 5,
            timeout=bound_s + 5,
            stop=stop,
        )
    )
    ready: list[tuple[float, int | str]] = []
    poller = loop.create_task(_poll_ready(server, ready, stop))
    await asyncio.sleep(before_s)
    sigterm, sigterm_mono = loop.time(), time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    while server.process.poll() is None and loop.time() - sigterm < bound_s:
        await asyncio.sleep(0.02)
    exit_code = server.process.poll()
    drain_s = loop.time() - sigterm
    stop.set()
    grpc_stop.set()
    result = await load
    await poller
    for thread in grpc_threads:
        await asyncio.to_thread(thread.join)
    report = _judge_shutdown(result, sigterm, ready, exit_code, drain_s, bound_s)
    grpc = _judge_grpc(grpc_calls, sigterm_mono)
    report["problems"] += grpc.pop("problems")
    return {**report, "grpc": grpc}


GRPC_WORKERS = 4


def _grpc_worker(
    server: ServerProcess, into: list[tuple[float, float, str]], stop: threading.Event
) -> None:
    """ModelInfer calls one after another: (start, end, status code name) per call."""
    client = tgrpc.InferenceServerClient(server.grpc)
    tensor = tgrpc.InferInput("sequence", [ITEMS], "BYTES")
    sequences = json.loads(bodies(count=1)[0])["inputs"]
    tensor.set_data_from_numpy(np.array([s.encode() for s in sequences], dtype=object))
    while not stop.is_set():
        started = time.monotonic()
        try:
            client.infer(MODEL, [tensor], client_timeout=30)
            code = "OK"
        except InferenceServerException as err:
            code = str(err.status()).removeprefix("StatusCode.")
            time.sleep(0.02)  # the server is going: do not spin
        into.append((started, time.monotonic(), code))
    client.close()


def _judge_grpc(calls: list[tuple[float, float, str]], sigterm: float) -> dict[str, Any]:
    """In-flight gRPC calls end OK (or UNAVAILABLE if not yet started); later ones UNAVAILABLE."""
    in_flight = [code for start, end, code in calls if start < sigterm <= end]
    after = [code for start, _, code in calls if start >= sigterm]
    before = [code for _, end, code in calls if end < sigterm]
    problems = [
        f"gRPC {when}: {code}"
        for when, codes, allowed in (
            ("before SIGTERM", before, {"OK"}),
            ("in flight", in_flight, {"OK", "UNAVAILABLE"}),
            ("after SIGTERM", after, {"OK", "UNAVAILABLE"}),
        )
        for code in sorted(set(codes) - allowed)
    ]
    if not before:
        problems.append("no gRPC call finished before SIGTERM")
    return {
        "calls_before": len(before),
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_ok": in_flight.count("OK"),
        "after_sigterm": dict(Counter(after)),
        "problems": problems,
    }


async def _poll_ready(
    server: ServerProcess, into: list[tuple[float, int | str]], stop: asyncio.Event
) -> None:
    """GET /readyz on a new connection every 20 ms: (loop time, status or outcome)."""
    loop = asyncio.get_running_loop()
    target = Target.get(server.url + "/readyz")
    while not stop.is_set():
        once = await loadgen.closed_loop(target, concurrency=1, seconds=5, max_requests=1)
        record = once.records[0]
        into.append((once.t0 + record.start, record.status or record.outcome))
        await asyncio.sleep(0.02)
    del loop


def _judge_shutdown(
    result: LoadResult,
    sigterm: float,
    ready: list[tuple[float, int | str]],
    exit_code: int | None,
    drain_s: float,
    bound_s: float,
) -> dict[str, Any]:
    at = sigterm - result.t0
    in_flight = [r for r in result.records if r.start < at <= r.start + r.latency]
    before = [r for r in result.records if r.start + r.latency < at]
    after = [r for r in result.records if r.start >= at]
    problems = [f"before SIGTERM: {p}" for p in _judge(before, {200}, refused_ok=False)]
    problems += [f"in flight: {p}" for p in _judge(in_flight, {200, 503}, refused_ok=False)]
    problems += [f"after SIGTERM: {p}" for p in _judge(after, {200, 503}, refused_ok=True)]
    finished = sum(1 for r in in_flight if r.status == 200)
    if not finished:
        problems.append(f"none of the {len(in_flight)} requests in flight at SIGTERM got 200")
    if exit_code != 0:
        problems.append(f"exit code {exit_code} (wanted 0 within {bound_s:g} s)")
    statuses = [status for t, status in ready if t > sigterm]
    first_503 = statuses.index(503) if 503 in statuses else None
    if first_503 is None:
        problems.append(f"/readyz never answered 503 while draining: {statuses[:20]}")
    elif 200 in statuses[first_503:]:
        problems.append("/readyz answered 200 again after 503 while draining")
    return {
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_finished_200": finished,
        "in_flight_503": sum(1 for r in in_flight if r.status == 503),
        "after_sigterm": _tally(after),
        "exit_code": exit_code,
        "drain_s": round(drain_s, 2),
        "bound_s": bound_s,
        "readyz_after_sigterm": _runs(statuses),
        "problems": problems,
    }


def _judge(records: list[loadgen.Record], allowed: set[int], *, refused_ok: bool) -> list[str]:
    problems: list[str] = []
    for r in records:
        if r.outcome == ANSWERED and r.status not in allowed:
            problems.append(f"status {r.status} at {r.start:.3f} s")
        elif r.outcome == ANSWERED and r.status == 503 and not r.retry_after:
            problems.append(f"503 without Retry-After at {r.start:.3f} s")
        elif r.outcome in (BROKEN, TIMEOUT) or (r.outcome != ANSWERED and not refused_ok):
            problems.append(f"{r.outcome} at {r.start:.3f} s")
    return problems[:10]


def _tally(records: list[loadgen.Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        key = str(r.status) if r.outcome == ANSWERED else r.outcome
        counts[key] = counts.get(key, 0) + 1
    return counts


def _runs(values: list[int | str]) -> list[str]:
    """``[200, 200, 503, 503]`` -> ``["200 x2", "503 x2"]``."""
    out: list[str] = []
    for value in values:
        if out and out[-1].split(" x")[0] == str(value):
            label, n = out[-1].split(" x")
            out[-1] = f"{label} x{int(n) + 1}"
        else:
            out.append(f"{value} x1")
    return out


# --- the long run --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.load", description=__doc__)
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()
    report: dict[str, Any] = {
        "model": MODEL,
        "items_per_request": ITEMS,
        "server": SETTINGS,
        "cpus": os.cpu_count(),
        "started": _stamp(started),
    }
    with tempfile.TemporaryDirectory(prefix="helixserve-load-") as tmp:
        _long_run(Path(tmp), report, args.overload_seconds, args.soak_minutes)
    report["seconds"] = round(time.time() - started)
    report["held"] = all(
        not part["problems"]
        for part in report.values()
        if isinstance(part, dict) and "problems" in part
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _say(f"wrote {args.out}; {'all held' if report['held'] else 'PROBLEMS'}")
    return 0 if report["held"] else 1


def _long_run(tmp: Path, report: dict[str, Any], overload_s: float, soak_min: float) -> None:
    def note(name: str, part: dict[str, Any]) -> None:
        report[name] = part
        _say(f"{name}: {part['problems'] or 'held'}")

    with serve(tmp / "a", SETTINGS) as server:
        note("capacity", measure_capacity(server, seconds=10))
        note("overload", overload(server, report["capacity"]["rps"], overload_s))
        note("soak", soak(server, soak_min * 60, warmup=min(60.0, soak_min * 6)))
    with serve(tmp / "b", {**SETTINGS, "REQUEST_TIMEOUT_S": "1"}) as server:
        rps = measure_capacity(server, seconds=5)["rps"]  # more queued work than 1 s allows
        note("overload_1s_timeout", overload(server, rps, 30, timeout_s=1.0))
    note("shutdown", shutdown_under_load(tmp / "c"))
    note("shutdown_2_workers", shutdown_under_load(tmp / "d", workers=2))


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
