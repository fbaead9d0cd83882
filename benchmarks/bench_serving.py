"""Benchmark: helixserve's HTTP and gRPC serving against a seed-style baseline and a null server.

Run with ``make bench-serving`` (or ``python -m benchmarks.bench_serving``). Load comes from C
load generators so the client's own CPU stays small: ``wrk`` (HTTP/1.1, a Lua script posts the
JSON body) and ``h2load`` (HTTP/2; it posts a framed gRPC ``ModelInfer`` message). Targets, each
on its own loopback port, measured interleaved per concurrency level so machine drift hits all
alike; single-sequence requests to the U1 model (``primer-binding`` from the zoo):

(a) helixserve domain API ``POST /api/v1/models/primer-binding/predict``, the server with the
    defaults a user gets from the README (processes and threads ``auto``, the access log on),
(b) helixserve OIP v2 REST ``POST /v2/models/primer-binding/infer`` (same server),
(c) helixserve OIP v2 gRPC ``ModelInfer`` (same server),
(d) a Flask app that validates, one-hot encodes and calls the same ONNX model once per request,
    under gunicorn with 2 sync workers (:mod:`benchmarks.baselines`),
(e) a null ASGI app on uvicorn with 2 workers answering a constant JSON (the ceiling),
(f) the domain API of (a) on a second helixserve server with ``HELIXSERVE_FAST_PATH=false``: the
    plain FastAPI route, beside the fast path generated from it (the reason the fast path exists),
(g) the domain API of (a) on a third server with the access log off (``HELIXSERVE_ACCESS_LOG``):
    what the access log costs.

Every helixserve run is checked: the items the server's metrics counted must equal the requests
the load generator saw succeed (a gRPC error would otherwise hide behind HTTP 200).

The heavy model is :mod:`benchmarks.bench_heavy` and :mod:`benchmarks.profile_heavy`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from benchmarks.goals import record
from helixserve.serving.grpc_server import MESSAGES
from helixserve.settings import usable_cpus
from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEQ = "CGACCGAACTCCACGTACGTACGTACGTACGTACGTACGTACGTACGTAC"
DOMAIN_BODY = json.dumps({"inputs": [SEQ]})
OIP_BODY = json.dumps(
    {"inputs": [{"name": "sequence", "shape": [1], "datatype": "BYTES", "data": [SEQ]}]}
)


@dataclass
class Result:
    target: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def helixserve(
    store: Path,
    port: int,
    grpc_port: int,
    log: Path,
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``helixserve serve`` with the defaults a user gets (processes and ONNX Runtime threads
    ``auto``, the access log on), but for ``extra`` settings; no background worker."""
    env = {"HELIXSERVE_CACHE_DIR": str(log.parent / "cache"), **(extra or {})}
    command = [str(BIN / "helixserve"), "serve", "--store", str(store), "--port", str(port)]
    command += ["--grpc-port", str(grpc_port), "--reload-interval", "0", "--no-worker"]
    process = start(command, env, log)
    wait_http(f"http://127.0.0.1:{port}/readyz", process)
    return process


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"unexpected latency {text!r} in the load generator's output")
    number, unit = match.groups()
    return float(number) * _UNITS[unit]


def run_wrk(
    target: str,
    url: str,
    body: str,
    concurrency: int,
    seconds: float,
    scratch: Path,
    headers: dict[str, str] | None = None,
) -> Result:
    script = scratch / "post.lua"
    more = "".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
    )
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{more}wrk.body = {json.dumps(body)}\n"
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{round(seconds)}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return Result(target, concurrency, rps, p50, p99, failed)


def grpc_body(sequences: list[str] | None = None) -> bytes:
    """A framed ``ModelInferRequest`` for ``primer-binding`` (raw contents, as tritonclient
    sends them) of ``sequences`` (default: one)."""
    items = sequences or [SEQ]
    request = MESSAGES["ModelInferRequest"](model_name="primer-binding")
    request.inputs.add(name="sequence", datatype="BYTES", shape=[len(items)])
    raw = b"".join(len(s).to_bytes(4, "little") + s.encode() for s in items)
    request.raw_input_contents.append(raw)
    payload = request.SerializeToString()
    data: bytes = b"\x00" + len(payload).to_bytes(4, "big") + payload
    return data


def run_h2load(
    target: str,
    address: str,
    concurrency: int,
    seconds: float,
    scratch: Path,
    payload: bytes | None = None,
) -> Result:
    body, log = scratch / "grpc.bin", scratch / "h2load.log"
    body.write_bytes(payload or grpc_body())
    log.unlink(missing_ok=True)  # h2load leaves it alone when no stream starts
    out = subprocess.run(
        [
            "h2load",
            "-t1",
            f"-c{concurrency}",
            "-m1",
            f"-D{round(seconds)}",
            "--log-file",
            str(log),
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"http://{address}/inference.GRPCInferenceService/ModelInfer",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    durations = sorted(int(r[2]) / 1000 for r in rows if r[1] == "200")
    failed = sum(r[1] != "200" for r in rows)
    if not durations:
        raise RuntimeError(f"{target}: no request succeeded:\n{out}")
    found = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    if found is None:
        raise RuntimeError(f"h2load printed no request rate:\n{out}")
    rps = float(found.group(1))
    return Result(
        target,
        concurrency,
        rps,
        statistics.median(durations),
        durations[int(len(durations) * 0.99) - 1],
        failed,
    )


def items_counted(url: str, model: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    pattern = rf'^helixserve_items_total\{{model="{model}",version="\d+"\}} ([\d.e+]+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.MULTILINE))


def checked(result: Result, url: str, model: str, before: float, seconds: float) -> Result:
    counted = items_counted(url, model) - before
    expected = result.rps * seconds
    if abs(counted - expected) > max(0.05 * expected, 50):  # wrk rounds its window
        raise RuntimeError(
            f"{result.target}: the server predicted {counted:.0f} items but the "
            f"load generator reports about {expected:.0f} requests"
        )
    return result


def light(concurrencies: list[int], seconds: float, scratch: Path) -> list[Result]:
    """Targets (a)-(f), interleaved per concurrency level."""
    names = ("hs", "grpc", "flask", "null", "plain", "grpc2", "quiet", "grpc3")
    ports = {name: free_port() for name in names}
    model = ZOO_STORE / "primer-binding" / "versions" / "1" / "model.onnx"
    procs = [
        helixserve(ZOO_STORE, ports["hs"], ports["grpc"], scratch / "hs.log"),
        helixserve(
            ZOO_STORE,
            ports["plain"],
            ports["grpc2"],
            scratch / "plain.log",
            {"HELIXSERVE_FAST_PATH": "false"},
        ),
        helixserve(
            ZOO_STORE,
            ports["quiet"],
            ports["grpc3"],
            scratch / "quiet.log",
            {"HELIXSERVE_ACCESS_LOG": "false"},
        ),
        start(
            [
                str(BIN / "gunicorn"),
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{ports['flask']}",
                "--log-level",
                "warning",
                "benchmarks.baselines:flask_app",
            ],
            {"HELIX_BENCH_MODEL": str(model)},
            scratch / "flask.log",
        ),
        start(
            [
                str(BIN / "uvicorn"),
                "benchmarks.baselines:null_app",
                "--workers",
                "2",
                "--port",
                str(ports["null"]),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            {},
            scratch / "null.log",
        ),
    ]
    hs = f"http://127.0.0.1:{ports['hs']}"
    plain = f"http://127.0.0.1:{ports['plain']}"
    quiet = f"http://127.0.0.1:{ports['quiet']}"
    # where each target is counted
    served = {"(a)": hs, "(b)": hs, "(c)": hs, "(f)": plain, "(g)": quiet}
    flask = f"http://127.0.0.1:{ports['flask']}/api/v1/models/primer-binding/predict"
    try:
        wait_http(flask.replace("/predict", ""), procs[2])
        wait_http(f"http://127.0.0.1:{ports['null']}/", procs[3])
        results = []
        for c in concurrencies:
            for name, run in _light_targets(hs, plain, quiet, ports, flask, c, seconds, scratch):
                url = served.get(name[:3])
                before = items_counted(url, "primer-binding") if url else 0.0
                result = run()
                if url:
                    result = checked(result, url, "primer-binding", before, seconds)
                print(_line(result), flush=True)
                results.append(result)
        return results
    finally:
        for p in procs:
            stop(p)


def _light_targets(
    hs: str,
    plain: str,
    quiet: str,
    ports: dict[str, int],
    flask: str,
    c: int,
    seconds: float,
    scratch: Path,
) -> list[tuple[str, Callable[[], Result]]]:
    grpc = f"127.0.0.1:{ports['grpc']}"
    null = f"http://127.0.0.1:{ports['null']}/"
    return [
        (
            "(e) null ASGI",
            lambda: run_wrk(
                "(e) null ASGI (uvicorn, 2 workers)", null, DOMAIN_BODY, c, seconds, scratch
            ),
        ),
        (
            "(d) flask",
            lambda: run_wrk(
                "(d) Flask + gunicorn, 2 sync workers", flask, DOMAIN_BODY, c, seconds, scratch
            ),
        ),
        (
            "(a) domain",
            lambda: run_wrk(
                "(a) helixserve domain API",
                hs + "/api/v1/models/primer-binding/predict",
                DOMAIN_BODY,
                c,
                seconds,
                scratch,
            ),
        ),
        (
            "(b) oip rest",
            lambda: run_wrk(
                "(b) helixserve OIP v2 REST",
                hs + "/v2/models/primer-binding/infer",
                OIP_BODY,
                c,
                seconds,
                scratch,
            ),
        ),
        ("(c) grpc", lambda: run_h2load("(c) helixserve OIP v2 gRPC", grpc, c, seconds, scratch)),
        (
            "(f) domain, FastAPI route",
            lambda: run_wrk(
                "(f) domain API, FastAPI route only",
                plain + "/api/v1/models/primer-binding/predict",
                DOMAIN_BODY,
                c,
                seconds,
                scratch,
            ),
        ),
        (
            "(g) domain, access log off",
            lambda: run_wrk(
                "(g) domain API, access log off",
                quiet + "/api/v1/models/primer-binding/predict",
                DOMAIN_BODY,
                c,
                seconds,
                scratch,
            ),
        ),
    ]


def _line(r: Result) -> str:
    return (
        f"{r.target:<40} c={r.concurrency:<3} {r.rps:>9.0f} req/s  p50 {r.p50_ms:7.2f} ms  "
        f"p99 {r.p99_ms:7.2f} ms  failed {r.failed}"
    )


def table(results: list[Result]) -> str:
    ceiling = {r.concurrency: r.rps for r in results if r.target.startswith("(e)")}
    flask = {r.concurrency: r.rps for r in results if r.target.startswith("(d)")}
    lines = [
        "| target | conc. | req/s | p50 ms | p99 ms | failed | x (d) | of (e) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.target} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.failed} | {r.rps / flask[r.concurrency]:.2f} | "
            f"{r.rps / ceiling[r.concurrency]:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="helixserve-bench-") as tmp:
        scratch = Path(tmp)
        print(f"machine: {os.cpu_count()} CPUs; {os.uname().sysname} {os.uname().release}")
        print(f"usable CPUs {usable_cpus()}; load {os.getloadavg()[0]:.1f}")
        results = light([int(c) for c in args.concurrency.split(",")], args.seconds, scratch)
    print("\n" + table(results) + "\n")
    print(goal_lines(results))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    record_goals(results, args.seconds)
    if args.json:
        args.json.write_text(json.dumps({"light": [asdict(r) for r in results]}, indent=2))


def goal_lines(results: list[Result]) -> str:
    """Issue 19's goal for the defaults: (a) >= 4x (d) at p99 <= 10 ms; and the access log's
    cost: (a) (on, the default) against (g) (off), per concurrency."""
    by = {(r.target[:3], r.concurrency): r for r in results}
    lines = []
    for c in sorted({r.concurrency for r in results}):
        a, d, g = by[("(a)", c)], by[("(d)", c)], by[("(g)", c)]
        met = a.rps >= 4 * d.rps and a.p99_ms <= 10
        lines.append(
            f"c={c}: defaults {a.rps / d.rps:.2f}x Flask, p99 {a.p99_ms:.2f} ms "
            f"(goal >= 4x at p99 <= 10 ms: {'met' if met else 'not met'}); "
            f"access log on / off {a.rps / g.rps:.2f} of the requests/s"
        )
    return "\n".join(lines)


def record_goals(results: list[Result], seconds: float) -> None:
    """Issue 19's serving and access-log rows (:mod:`benchmarks.goals`); the goal is judged at
    c=32, the concurrency it was set at."""
    by = {(r.target[:3], r.concurrency): r for r in results}
    levels = sorted({r.concurrency for r in results})
    config = (
        f"`helixserve serve` defaults (usable CPUs {usable_cpus()}), primer-binding, wrk "
        f"{seconds:g} s per point, interleaved with the others"
    )
    shown = [c for c in levels if c >= 8]
    serving = "; ".join(
        f"c={c}: {by['(a)', c].rps / by['(d)', c].rps:.2f}x ({by['(a)', c].rps:,.0f} vs "
        f"{by['(d)', c].rps:,.0f} req/s), p99 {by['(a)', c].p99_ms:.2f} ms"
        for c in shown
    )
    judged = by.get(("(a)", 32)), by.get(("(d)", 32))
    met = None
    if judged[0] is not None and judged[1] is not None:
        met = judged[0].rps >= 4 * judged[1].rps and judged[0].p99_ms <= 10
    record("serving", serving, met, config)
    logged = "; ".join(
        f"c={c}: on {by['(a)', c].rps:,.0f}, off {by['(g)', c].rps:,.0f} req/s "
        f"({by['(a)', c].rps / by['(g)', c].rps:.2f})"
        for c in levels
    )
    record("access-log", logged, None, config + "; (g) = the same with the access log off")


if __name__ == "__main__":
    main()
