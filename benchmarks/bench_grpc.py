"""Benchmark: OIP v2 gRPC ``ModelInfer`` against OIP v2 REST on one ``helixserve serve``.

Run with ``python -m benchmarks.bench_grpc`` (part of ``make bench``; needs ``wrk`` and
``h2load``). It starts ``helixserve serve`` over the zoo with the defaults a user gets (server
processes and ONNX Runtime threads sized from the CPUs, access log on, gRPC engine ``h2``) and,
beside it, the alternatives it is compared with:

- ``rest``: ``POST /v2/models/primer-binding/infer``, JSON (``wrk -t1``);
- ``grpc``: ``ModelInfer`` on the same server (``h2load -t1 -m1``; the message carries the
  sequences as ``raw_input_contents``, as ``tritonclient`` sends them);
- ``grpcio``: ``ModelInfer`` on a second server, identical but ``HELIXSERVE_GRPC_ENGINE=grpcio``
  (``grpc.aio``);
- ``aio-null``: ``grpc.aio`` servers (one process per CPU, ``SO_REUSEPORT``) whose handler
  answers an empty message at once: what ``grpc.aio`` costs with no work at all.

Single-sequence requests at concurrency 1, 8 and 32, then requests of 1,000 sequences at
concurrency 1; every point is measured ``--rounds`` times (the 1,000-sequence pair
``--big-pairs`` times per round), the targets interleaved within each round so the machine's
drift hits all alike. Reported: medians over the runs, the server's CPU time per request (all
its processes, from /proc: the figure least moved by other jobs on a shared machine), and the
ratios to REST as medians of the ratios within each round. Each helixserve point is checked: the
items the server's metrics counted must match the requests the load generator saw (gRPC errors
travel in trailers, behind HTTP 200). The load average is printed before each round. Last, the
protocol work of a 1,000-sequence request both ways, in-process (the model's work is the same).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import uvloop

from benchmarks.bench_serving import (
    BIN,
    SEQ,
    Result,
    free_port,
    grpc_body,
    items_counted,
    run_h2load,
    run_wrk,
    start,
    stop,
    wait_http,
)
from benchmarks.bench_store_runtime import random_sequences
from benchmarks.goals import record
from helixserve.serving.grpc_server import MESSAGES, _inputs, _raw
from helixserve.serving.oip import Tensor
from helixserve.serving.oip_rest import parse_infer_request, render_infer_response
from helixserve.settings import usable_cpus
from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE

MODEL = "primer-binding"
BIG = 1000


def oip_json(sequences: list[str]) -> str:
    tensor = {"name": "sequence", "shape": [len(sequences)], "datatype": "BYTES"}
    return json.dumps({"inputs": [{**tensor, "data": sequences}]})


def serve(
    scratch: Path, name: str, env: dict[str, str]
) -> tuple[str, str, subprocess.Popen[bytes]]:
    """``helixserve serve`` with its defaults (but ports and scratch folders): URL, gRPC address."""
    port, grpc_port = free_port(), free_port()
    command = [str(BIN / "helixserve"), "serve", "--store", str(ZOO_STORE), "--port", str(port)]
    command += ["--grpc-port", str(grpc_port), "--reload-interval", "0"]
    full = {
        "HELIXSERVE_CACHE_DIR": str(scratch / f"cache-{name}"),
        "HELIXSERVE_DATABASE_URL": f"sqlite:///{scratch / f'{name}.db'}",
        "HELIXSERVE_WORKSPACE_STORE": str(scratch / f"workspace-{name}"),
        **env,
    }
    process = start(command, full, scratch / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", process)
    return url, f"127.0.0.1:{grpc_port}", process


def null_servers(port: int, scratch: Path) -> list[subprocess.Popen[bytes]]:
    """One ``grpc.aio`` process per usable CPU on ``port``, answering every call at once."""
    command = [sys.executable, "-m", "benchmarks.bench_grpc", "--null-aio", str(port)]
    return [start(command, {}, scratch / f"null-{i}.log") for i in range(usable_cpus())]


def null_aio(port: int) -> None:
    """The body of one ``aio-null`` process (see the module docstring)."""

    async def answer(request: bytes, context: object) -> bytes:
        return b""

    async def main() -> None:
        handlers = {"ModelInfer": grpc.unary_unary_rpc_method_handler(answer)}
        server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers),)
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class Point:
    """One measured point: the run, the server whose metrics must count it (URL; ``None``:
    not helixserve), items per request, and the processes whose CPU time it costs."""

    run: Callable[[], Result]
    url: str | None
    items: int
    processes: list[int]


@dataclass
class Measured:
    result: Result
    cpu_us: float  # server CPU time per request (every process of the target's server)


def points(
    servers: dict[str, tuple[str, str, int]],
    null: tuple[str, list[int]],
    seconds: float,
    scratch: Path,
) -> dict[tuple[str, int], Point]:
    """Each point by (target, concurrency); c=0 stands for the 1,000-sequence request."""
    url, grpc, pid = servers["h2"]
    grpcio_url, grpcio, grpcio_pid = servers["grpcio"]
    infer = f"{url}/v2/models/{MODEL}/infer"
    one, big = oip_json([SEQ]), oip_json(random_sequences(BIG, 50, seed=3))
    big_grpc = grpc_body(random_sequences(BIG, 50, seed=3))
    found: dict[tuple[str, int], Point] = {}
    for c in (1, 8, 32):
        found["rest", c] = Point(
            partial(run_wrk, "rest", infer, one, c, seconds, scratch), url, 1, [pid]
        )
        found["grpc", c] = Point(
            partial(run_h2load, "grpc", grpc, c, seconds, scratch), url, 1, [pid]
        )
        found["grpcio", c] = Point(
            partial(run_h2load, "grpcio", grpcio, c, seconds, scratch),
            grpcio_url,
            1,
            [grpcio_pid],
        )
        found["aio-null", c] = Point(
            partial(run_h2load, "aio-null", null[0], c, seconds, scratch), None, 1, null[1]
        )
    found["rest", 0] = Point(
        partial(run_wrk, "rest", infer, big, 1, seconds, scratch), url, BIG, [pid]
    )
    found["grpc", 0] = Point(
        partial(run_h2load, "grpc", grpc, 1, seconds, scratch, big_grpc), url, BIG, [pid]
    )
    return found


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU time of ``roots`` and all their descendants (from /proc)."""
    pids, total = list(roots), 0
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
        pids += [int(c) for c in children]
    return total / os.sysconf("SC_CLK_TCK")


def measure(
    found: dict[tuple[str, int], Point], rounds: int, seconds: float, big_pairs: int
) -> dict[tuple[str, int], list[Measured]]:
    """Every point once per round (the 1,000-sequence pair ``big_pairs`` times), in order."""
    results: dict[tuple[str, int], list[Measured]] = {key: [] for key in found}
    single = [key for key in found if key[1]]
    big = [key for key in found if not key[1]] * big_pairs
    for round_no in range(rounds):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"round {round_no + 1}/{rounds}: load average {load}", flush=True)
        for key in single + big:
            point = found[key]
            before = items_counted(point.url, MODEL) if point.url else 0.0
            cpu_before = cpu_seconds(point.processes)
            result = point.run()
            cpu = cpu_seconds(point.processes) - cpu_before
            if point.url:
                counted = (items_counted(point.url, MODEL) - before) / point.items
                check(key, result, counted, seconds)
            if result.failed:
                raise RuntimeError(f"{key}: {result.failed} requests failed")
            results[key].append(Measured(result, cpu / (result.rps * seconds) * 1e6))
            where = f"c={key[1]}" if key[1] else "1,000 seq"
            print(
                f"  {key[0]:<9} {where:<9} {result.rps:9.0f} req/s  p50 {result.p50_ms:7.3f} ms"
                f"  p99 {result.p99_ms:7.2f} ms  server CPU {results[key][-1].cpu_us:6.0f} us/req",
                flush=True,
            )
    return results


def check(key: tuple[str, int], result: Result, counted: float, seconds: float) -> None:
    """The requests the server counted match what the load generator reports."""
    expected = result.rps * seconds
    if abs(counted - expected) > max(0.05 * expected, 20):
        raise RuntimeError(
            f"{key}: the server answered {counted:.0f} requests but the load "
            f"generator reports about {expected:.0f}"
        )


TARGETS = ("rest", "grpc", "grpcio", "aio-null")


def report(results: dict[tuple[str, int], list[Measured]]) -> str:
    """Medians over the runs; the ratios are medians of the ratios within each round (a target
    against the REST run just before it), so drift between rounds cancels out."""

    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    lines = [
        "| requests | conc. | target | req/s | p50 ms | p99 ms | server CPU µs/req "
        "| p50 / REST | req/s / REST |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in (1, 8, 32, 0):
        rest = results["rest", c]
        for target in (t for t in TARGETS if (t, c) in results):
            runs = results[target, c]
            p50 = med([m.result.p50_ms / r.result.p50_ms for m, r in zip(runs, rest, strict=True)])
            rps = med([m.result.rps / r.result.rps for m, r in zip(runs, rest, strict=True)])
            lines.append(
                f"| {'1 sequence' if c else '1,000 sequences'} | {c or 1} | {target} | "
                f"{med([m.result.rps for m in runs]):,.0f} | "
                f"{med([m.result.p50_ms for m in runs]):.3f} | "
                f"{med([m.result.p99_ms for m in runs]):.2f} | "
                f"{med([m.cpu_us for m in runs]):,.0f} | {p50:.2f} | {rps:.2f} |"
            )
    return "\n".join(lines)


def protocol_costs(repeat: int = 7, number: int = 50) -> dict[str, float]:
    """In-process µs (best of ``repeat`` x ``number``) of the protocol work on a 1,000-sequence
    request, both ways: reading the request into tensors, the items handed to the batcher, and
    writing the answer (1,000 probability pairs and labels). The model's work is the same."""
    sequences = random_sequences(BIG, 50, seed=3)
    body = oip_json(sequences).encode()
    message = grpc_body(sequences)[5:]
    parse = MESSAGES["ModelInferRequest"].FromString
    outputs = [
        Tensor("probabilities", "FP32", [BIG, 2], np.full((BIG, 2), 0.5, dtype=np.float32)),
        Tensor("label", "BYTES", [BIG], np.array([b"1", b"0"] * (BIG // 2), dtype=object)),
    ]
    request = parse_infer_request(body, None)
    steps: dict[str, list[Callable[[], object]]] = {
        "rest": [
            partial(parse_infer_request, body, None),
            partial(_items, request.inputs[0].data),
            partial(render_infer_response, MODEL, 1, request, outputs),
        ],
        "grpc": [
            lambda: _inputs(parse(message)),
            partial(_items, _inputs(parse(message))[0].data),
            partial(_grpc_answer, outputs),
        ],
    }
    return {
        name: sum(min(timeit.repeat(step, number=number, repeat=repeat)) for step in found)
        / number
        * 1e6
        for name, found in steps.items()
    }


def _items(data: Any) -> list[str]:
    """What :func:`helixserve.serving.oip.infer` hands the batcher for a sequence tensor."""
    return [v if type(v) is str else v.decode() for v in data.reshape(-1).tolist()]


def _grpc_answer(outputs: list[Tensor]) -> bytes:
    response = MESSAGES["ModelInferResponse"](model_name=MODEL, model_version="1")
    for tensor in outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        response.raw_output_contents.append(_raw(tensor))
    data: bytes = response.SerializeToString()
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-pairs", type=int, default=3)
    parser.add_argument("--null-aio", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both servers")
    args = parser.parse_args()
    if args.null_aio:
        null_aio(args.null_aio)
        return
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="helixserve-bench-grpc-") as tmp:
        scratch = Path(tmp)
        print(
            f"machine: {os.cpu_count()} CPUs ({usable_cpus()} usable); "
            f"{os.uname().sysname} {os.uname().release}; settings {env or 'defaults'}"
        )
        processes, servers = [], {}
        try:
            for engine in ("h2", "grpcio"):
                chosen = {**env, "HELIXSERVE_GRPC_ENGINE": engine}
                url, address, process = serve(scratch, engine, chosen)
                processes.append(process)
                servers[engine] = (url, address, process.pid)
            null_port = free_port()
            nulls = null_servers(null_port, scratch)
            processes += nulls
            wait_port(null_port)
            time.sleep(1)  # the other null processes
            null = (f"127.0.0.1:{null_port}", [p.pid for p in nulls])
            found = points(servers, null, args.seconds, scratch)
            results = measure(found, args.rounds, args.seconds, args.big_pairs)
        finally:
            for process in processes:
                stop(process)
    print(
        f"\nmedians of {args.rounds} rounds of {args.seconds:g} s per point (the 1,000-sequence "
        f"pair {args.big_pairs} times per round):\n"
    )
    print(report(results))
    record_goals(results, args.rounds, args.seconds)
    costs = protocol_costs()
    print(
        "\nprotocol work per 1,000-sequence request, in-process: "
        + ", ".join(f"{name} {us:,.0f} µs" for name, us in costs.items())
    )


def record_goals(
    results: dict[tuple[str, int], list[Measured]], rounds: int, seconds: float
) -> None:
    """Issue 19's gRPC rows (:mod:`benchmarks.goals`): the per-round ratios' medians of the
    default gRPC server (``grpc``) against REST."""

    def pair(c: int) -> tuple[list[Measured], list[Measured]]:
        return results["grpc", c], results["rest", c]

    def ratio(c: int, of: Callable[[Result], float]) -> float:
        pairs = zip(*pair(c), strict=True)
        return float(statistics.median(of(g.result) / of(r.result) for g, r in pairs))

    config = (
        f"`helixserve serve` defaults (HTTP/2 gRPC server), tritonclient-shaped requests from "
        f"h2load / wrk, medians of {rounds} interleaved rounds of {seconds:g} s"
    )
    p50s = {c: ratio(c, lambda r: r.p50_ms) for c in (1, 8, 32)}
    above = {
        c: sum(g.result.p50_ms > r.result.p50_ms for g, r in zip(*pair(c), strict=True))
        for c in p50s
    }
    record(
        "grpc-p50",
        ", ".join(
            f"c={c}: gRPC p50 {v:.2f} of REST's ({above[c]} of {rounds} rounds above)"
            for c, v in p50s.items()
        ),
        all(v <= 1 for v in p50s.values()),
        config,
    )
    rps = ratio(32, lambda r: r.rps)
    record("grpc-rps", f"c=32: gRPC {rps:.2f}x REST's requests/s", rps >= 1, config)
    big = ratio(0, lambda r: r.p50_ms)
    record("grpc-big", f"gRPC p50 {big:.2f} of REST JSON's (1,000 sequences)", big < 1, config)


if __name__ == "__main__":
    main()
