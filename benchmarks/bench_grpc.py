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

Single-sequence requests at concurrency 1, 8 and 32, then one request of 1,000 sequences at
concurrency 1; every point is measured ``--rounds`` times, the targets interleaved within each
round so the machine's drift hits all alike, and the medians over rounds are reported with the
ratios gRPC/REST. Each helixserve point is checked: the items the server's metrics counted must
match the requests the load generator saw (gRPC errors travel in trailers, behind HTTP 200).
The load average is printed before each round: the machine is shared.
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
from collections.abc import Callable
from pathlib import Path

import grpc
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


Point = Callable[[], Result]


def points(
    servers: dict[str, tuple[str, str]], null: str, seconds: float, scratch: Path
) -> dict[tuple[str, int], tuple[Point, str | None, int]]:
    """Each measured point: (target, concurrency; c=0 stands for the 1,000-sequence request)
    -> (the run, the server URL whose metrics must count it, items per request)."""
    url, grpc = servers["h2"]
    grpcio = servers["grpcio"][1]
    infer = f"{url}/v2/models/{MODEL}/infer"
    one, big = oip_json([SEQ]), oip_json(random_sequences(BIG, 50, seed=3))
    big_grpc = grpc_body(random_sequences(BIG, 50, seed=3))
    found: dict[tuple[str, int], tuple[Point, str | None, int]] = {}
    for c in (1, 8, 32):
        found["rest", c] = (lambda c=c: run_wrk("rest", infer, one, c, seconds, scratch), url, 1)
        found["grpc", c] = (lambda c=c: run_h2load("grpc", grpc, c, seconds, scratch), url, 1)
        found["grpcio", c] = (
            lambda c=c: run_h2load("grpcio", grpcio, c, seconds, scratch),
            servers["grpcio"][0],
            1,
        )
        found["aio-null", c] = (
            lambda c=c: run_h2load("aio-null", null, c, seconds, scratch),
            None,
            1,
        )
    found["rest", 0] = (lambda: run_wrk("rest", infer, big, 1, seconds, scratch), url, BIG)
    found["grpc", 0] = (
        lambda: run_h2load("grpc", grpc, 1, seconds, scratch, big_grpc),
        url,
        BIG,
    )
    return found


def measure(
    found: dict[tuple[str, int], tuple[Point, str | None, int]], rounds: int, seconds: float
) -> dict[tuple[str, int], list[Result]]:
    results: dict[tuple[str, int], list[Result]] = {key: [] for key in found}
    for round_no in range(rounds):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"round {round_no + 1}/{rounds}: load average {load}", flush=True)
        for key, (run, url, items) in found.items():
            before = items_counted(url, MODEL) if url else 0.0
            result = run()
            if url:
                counted = (items_counted(url, MODEL) - before) / items
                expected = result.rps * seconds
                if abs(counted - expected) > max(0.05 * expected, 20):
                    raise RuntimeError(
                        f"{key}: the server answered {counted:.0f} requests but the load "
                        f"generator reports about {expected:.0f}"
                    )
            if result.failed:
                raise RuntimeError(f"{key}: {result.failed} requests failed")
            results[key].append(result)
            where = f"c={key[1]}" if key[1] else "1,000 seq"
            print(
                f"  {key[0]:<9} {where:<9} {result.rps:9.0f} req/s  p50 {result.p50_ms:7.3f} ms"
                f"  p99 {result.p99_ms:7.2f} ms",
                flush=True,
            )
    return results


def report(results: dict[tuple[str, int], list[Result]]) -> str:
    def med(key: tuple[str, int], field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[key])

    lines = [
        "| requests | conc. | target | req/s | p50 ms | p99 ms | p50 / REST | req/s / REST |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in (1, 8, 32, 0):
        rest_p50, rest_rps = med(("rest", c), "p50_ms"), med(("rest", c), "rps")
        for target in ("rest", "grpc", "grpcio", "aio-null"):
            if (target, c) not in results:
                continue
            p50, rps = med((target, c), "p50_ms"), med((target, c), "rps")
            lines.append(
                f"| {'1 sequence' if c else '1,000 sequences'} | {c or 1} | {target} | "
                f"{rps:,.0f} | {p50:.3f} | {med((target, c), 'p99_ms'):.2f} | "
                f"{p50 / rest_p50:.2f} | {rps / rest_rps:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
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
                servers[engine] = (url, address)
            null_port = free_port()
            processes += null_servers(null_port, scratch)
            wait_port(null_port)
            time.sleep(1)  # the other null processes
            found = points(servers, f"127.0.0.1:{null_port}", args.seconds, scratch)
            results = measure(found, args.rounds, args.seconds)
        finally:
            for process in processes:
                stop(process)
    print(f"\nmedians of {args.rounds} rounds of {args.seconds:g} s per point:\n")
    print(report(results))


if __name__ == "__main__":
    main()
