"""Benchmark: in-silico mutagenesis (ISM) of one 50-nt sequence over the API, fp32 against int8.

Run with ``python -m benchmarks.bench_explain`` (part of ``make bench``). It starts
``helixserve serve`` as a new user would (a fresh HOME, no ``HELIXSERVE_*`` setting: the zoo's
models, the default workers and ONNX Runtime threads for this machine's CPUs, access log on),
only the ports chosen, and posts ``POST /api/v1/models/{name}/explain`` with one 50-nt sequence:
the server scores it and its 150 single-base substitutions in one batch and answers the 50 x 4
effect matrix. Variants, interleaved round by round (the order flips every round) so that the
machine's noise falls on all of them alike:

- ``yeast-utr fp32``: ``"precision": "fp32"``, the Cuperus CNN as trained (yeast-utr@1);
- ``yeast-utr int8``: the default (``auto``), which explains with the zoo's int8 sibling
  yeast-utr@2 (every answer's ``computed_by`` is checked);
- ``primer-binding``: the small primer CNN (no int8 sibling: fp32), for scale.

Measured with httpx (keep-alive): sequential requests after a warm-up, then 4 concurrent clients
(one thread and one connection each); min/p50/p90/p99 of each, and for the sequential requests the
CPU time the server's processes spent per request (from /proc: it depends far less on what else
the machine runs than wall time does). Also: ``ism()`` in-process on the
same ONNX models (one thread; no HTTP), the floor; ONNX Runtime's profile of one ISM batch on
each yeast-utr model (time per operator type); and — with the Cuperus data in ../shared/data —
the rank agreement of int8 against fp32 ISM effects over the zoo's yeast-utr test UTRs
(mean and lowest per-UTR Spearman; the bar for explaining with int8 is 0.99). The load
generator is Python and shares the CPUs with the server. Issue #19's goal: p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from benchmarks.goals import record
from helixserve.explain.ism import dna_schema, ism
from helixserve.explain.precision import ISM_SPEARMAN, ism_agreement
from helixserve.runtime import Predictor
from helixserve.settings import Settings, usable_cpus
from helixserve.store import ModelStore
from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuperus2017_yeast_utr"
# a native yeast 5' UTR (Cuperus et al. 2017, YAL002W:125:75); a primer holding the motif
UTR = "AAAAAAGGGAACCTCTGGTTACGATGATATACCTGCGTGAAAAAGGACAG"
PRIMER = "ACGTACCGACCGAACTCCTTGACGTAGCATGCATCGATCGGATCCATGCA"


@dataclass(frozen=True)
class Variant:
    label: str
    model: str
    sequence: str
    precision: str
    computed_by: int  # the version whose effects the answer must carry

    def body(self) -> bytes:
        return json.dumps({"sequence": self.sequence, "precision": self.precision}).encode()


VARIANTS = (
    Variant("yeast-utr fp32", "yeast-utr", UTR, "fp32", 1),
    Variant("yeast-utr int8", "yeast-utr", UTR, "auto", 2),
    Variant("primer-binding", "primer-binding", PRIMER, "auto", 1),
)


@dataclass
class Latency:
    requests: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    per_s: float


def summarise(durations: list[float], wall: float) -> Latency:
    ms = np.array(durations) * 1000
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return Latency(len(ms), float(ms.min()), p50, p90, p99, float(ms.mean()), len(ms) / wall)


def _explain(client: httpx.Client, base: str, variant: Variant) -> float:
    url = f"{base}/api/v1/models/{variant.model}/explain"
    started = time.perf_counter()
    reply = client.post(url, content=variant.body(), headers={"content-type": "application/json"})
    took = time.perf_counter() - started
    body = reply.json() if reply.status_code == 200 else {}
    if len(body.get("effects", ())) != 50 or body["computed_by"]["version"] != variant.computed_by:
        raise RuntimeError(f"{url} answered {reply.status_code}: {reply.text[:300]}")
    return took


def _order(round_no: int) -> tuple[Variant, ...]:
    return VARIANTS if round_no % 2 == 0 else VARIANTS[::-1]


def server_cpu_s(group: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime are fields 14 and 15 of the file
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def sequential(
    base: str, group: int, rounds: int, each: int, warmup: int
) -> tuple[dict[str, Latency], dict[str, float]]:
    """One client; every round runs ``each`` requests of every variant, in flipping order. Also
    the server's CPU milliseconds per request of each variant (all its processes)."""
    durations: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
    walls, cpu = dict.fromkeys(durations, 0.0), dict.fromkeys(durations, 0.0)
    with httpx.Client(timeout=60) as client:
        for variant in VARIANTS:
            for _ in range(warmup):
                _explain(client, base, variant)
        for round_no in range(rounds):
            for variant in _order(round_no):
                started, used = time.perf_counter(), server_cpu_s(group)
                durations[variant.label] += [_explain(client, base, variant) for _ in range(each)]
                walls[variant.label] += time.perf_counter() - started
                cpu[variant.label] += server_cpu_s(group) - used
    per_request = {k: 1000 * v / len(durations[k]) for k, v in cpu.items()}
    return {k: summarise(v, walls[k]) for k, v in durations.items()}, per_request


def _burst(base: str, variant: Variant, clients: int, each: int) -> tuple[list[float], float]:
    """``clients`` threads with a connection each, ``each`` requests apiece; their durations and
    the wall time."""
    durations: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []
    gate = threading.Barrier(clients + 1)

    def work(slot: int) -> None:
        with httpx.Client(timeout=60) as client:
            _explain(client, base, variant)  # open the connection before the clock starts
            gate.wait()
            try:
                durations[slot] = [_explain(client, base, variant) for _ in range(each)]
            except (RuntimeError, httpx.HTTPError) as err:
                failures.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[0]}")
    return [d for slot in durations for d in slot], time.perf_counter() - started


def concurrent(base: str, rounds: int, clients: int, each: int) -> dict[str, Latency]:
    durations: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
    walls = dict.fromkeys(durations, 0.0)
    for round_no in range(rounds):
        for variant in _order(round_no):
            found, wall = _burst(base, variant, clients, each)
            durations[variant.label] += found
            walls[variant.label] += wall
    return {k: summarise(v, walls[k]) for k, v in durations.items()}


def in_process(rounds: int, each: int, cache: Path) -> dict[str, Latency]:
    """``ism()`` on the zoo's models with one ONNX Runtime thread, interleaved as above."""
    store = ModelStore.open(str(ZOO_STORE), cache_dir=cache)
    predictors = {
        v.label: Predictor.from_store(store, f"{v.model}@{v.computed_by}") for v in VARIANTS
    }
    durations: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
    for variant in VARIANTS:
        for _ in range(10):
            ism(predictors[variant.label], variant.sequence)
    for round_no in range(rounds):
        for variant in _order(round_no):
            for _ in range(each):
                started = time.perf_counter()
                ism(predictors[variant.label], variant.sequence)
                durations[variant.label].append(time.perf_counter() - started)
    return {k: summarise(v, sum(v)) for k, v in durations.items()}


def profile(cache: Path, runs: int = 30) -> dict[str, dict[str, float]]:
    """ONNX Runtime's own profile of one ISM batch (151 UTRs) on each yeast-utr model, one
    thread: milliseconds per run by operator type (kernel time, summed over nodes)."""
    store = ModelStore.open(str(ZOO_STORE), cache_dir=cache)
    found: dict[str, dict[str, float]] = {}
    for version, name in ((1, "yeast-utr fp32"), (2, "yeast-utr int8")):
        predictor = Predictor.from_store(store, f"yeast-utr@{version}")
        batch = [UTR] + [
            UTR[:i] + b + UTR[i + 1 :] for i in range(50) for b in "ACGT" if b != UTR[i]
        ]
        tensor = predictor.prepare(batch).tensor
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.enable_profiling = 1, True
        options.profile_file_prefix = str(cache / f"profile-{version}")
        session = ort.InferenceSession(
            str(predictor.bundle_path / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        for _ in range(runs):
            session.run(None, {predictor.manifest.onnx_input: tensor})
        events = json.loads(Path(session.end_profiling()).read_text())
        times: dict[str, float] = {}
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                op = event["args"].get("op_name", "?")
                times[op] = times.get(op, 0.0) + event["dur"] / 1000 / runs
        found[name] = dict(sorted(times.items(), key=lambda kv: -kv[1]))
    return found


def _session(
    nodes: list[Any], inputs: list[Any], inits: list[Any], out: int
) -> ort.InferenceSession:
    from onnx import helper  # noqa: PLC0415 - the train extra

    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    output = helper.make_tensor_value_info(nodes[-1].output[0], out, None)
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, [output], inits), opset_imports=opsets
    )
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 1, 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def conv_kernels(rounds: int = 80) -> dict[str, float]:
    """Best-of-``rounds`` milliseconds, interleaved, of yeast-utr's largest int8 convolution
    (128 -> 128 channels x 13 over an ISM batch: 151 x 58 -> 151 x 46 positions, random weights)
    as ONNX Runtime runs it (``QLinearConv``), of the bare int8 GEMM of the same size, of building
    its im2col matrix, and of both together (``MatMulIntegerToFloat``): where the time goes."""
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415 - the train extra

    batch, channels, width, length = 151, 128, 13, 58
    rows, depth, rng = batch * (length - width + 1), channels * width, np.random.default_rng(0)

    def const(value: Any, name: str) -> Any:
        return numpy_helper.from_array(np.asarray(value), name)

    def tensor(name: str, kind: int, shape: list[int]) -> Any:
        return helper.make_tensor_value_info(name, kind, shape)

    weights = rng.integers(-127, 127, (channels, channels, width), dtype=np.int8)
    scales = [
        const(np.float32(0.02), "xs"),
        const(np.uint8(0), "xz"),
        const(np.float32(0.01), "ws"),
    ]
    scales += [const(np.int8(0), "wz"), const(np.float32(0.05), "ys"), const(np.uint8(0), "yz")]
    conv = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])
    ncl = tensor("x", TensorProto.UINT8, [batch, channels, length])
    nlc = tensor("x", TensorProto.UINT8, [batch, length, channels])
    unfold, inits = [], [const(np.array([1]), "axis"), const(np.array([rows, depth]), "shape")]
    for j in range(width):
        inits += [const(np.array([j]), f"s{j}"), const(np.array([j + length - width + 1]), f"e{j}")]
        unfold.append(helper.make_node("Slice", ["x", f"s{j}", f"e{j}", "axis"], [f"p{j}"]))
    unfold.append(helper.make_node("Concat", [f"p{j}" for j in range(width)], ["c"], axis=2))
    unfold.append(helper.make_node("Reshape", ["c", "shape"], ["a"]))
    matrix = const(rng.integers(-127, 127, (depth, channels), dtype=np.int8), "w")
    gemm = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
    to_float = helper.make_node(
        "MatMulIntegerToFloat", ["a", "w", "xs", "ws", "xz"], ["y"], domain="com.microsoft"
    )
    ncl_x = rng.integers(0, 255, (batch, channels, length), dtype=np.uint8)
    feeds = {  # label: (session, its input)
        "QLinearConv": (
            _session([conv], [ncl], [const(weights, "w"), *scales], TensorProto.UINT8),
            {"x": ncl_x},
        ),
        "MatMulInteger (GEMM only)": (
            _session(
                [gemm], [tensor("a", TensorProto.UINT8, [rows, depth])], [matrix], TensorProto.INT32
            ),
            {"a": rng.integers(0, 255, (rows, depth), dtype=np.uint8)},
        ),
        "im2col (Slice + Concat)": (
            _session(unfold, [nlc], inits, TensorProto.UINT8),
            {"x": np.ascontiguousarray(ncl_x.transpose(0, 2, 1))},
        ),
        "im2col + MatMulIntegerToFloat": (
            _session([*unfold, to_float], [nlc], [*inits, matrix, *scales], TensorProto.FLOAT),
            {"x": np.ascontiguousarray(ncl_x.transpose(0, 2, 1))},
        ),
    }
    best = dict.fromkeys(feeds, float("inf"))
    for _ in range(rounds):
        for label, (session, feed) in feeds.items():
            started = time.perf_counter()
            session.run(None, feed)
            best[label] = min(best[label], (time.perf_counter() - started) * 1000)
    return best


def agreement(cache: Path) -> dict[str, float] | None:
    """int8 vs fp32 ISM rank agreement over the zoo's yeast-utr test UTRs (needs the data and
    the train extra for the zoo's split), next to the figure stored in yeast-utr@2."""
    if not (DATA / "Native_UTRs.csv.gz").is_file():
        return None
    from helixserve.training.cli_support import parse_filter  # noqa: PLC0415 - train extra
    from helixserve.training.data import load_sequences, split  # noqa: PLC0415

    store = ModelStore.open(str(ZOO_STORE), cache_dir=cache)
    fp32, int8 = (Predictor.from_store(store, f"yeast-utr@{v}") for v in (1, 2))
    data = load_sequences(
        DATA / "Native_UTRs.csv.gz",
        dna_schema(fp32),
        target_col="growth_rate",
        sequence_col="UTR",
        id_col="UTR_name",
        where=parse_filter("t0>100"),
    )
    test = [str(data.inputs[i]) for i in split(data, task="regression", seed=0).test]
    found = ism_agreement(fp32, int8, test, limit=len(test))
    if found is None:
        return None
    stored = int8.manifest.metrics[ISM_SPEARMAN]
    return {"utrs": found.sequences, "mean": found.mean, "lowest": found.lowest, "stored": stored}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``helixserve serve`` with a new user's defaults (only the ports set), until ready."""
    home = scratch / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIXSERVE_")}
    env |= {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    port = free_port()
    command = [sys.executable, "-m", "helixserve", "serve", "--port", str(port)]
    command += ["--grpc-port", str(free_port())]
    with (scratch / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=scratch, stdout=log, stderr=log, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(process)
    raise RuntimeError(f"the server did not become ready; see {scratch / 'server.log'}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _print(kind: str, found: dict[str, Latency]) -> None:
    for label, lat in found.items():
        print(
            f"{kind:<22} {label:<15} min {lat.min_ms:6.2f} p50 {lat.p50_ms:7.2f} p90 "
            f"{lat.p90_ms:7.2f} p99 "
            f"{lat.p99_ms:7.2f} ms, {lat.per_s:6.1f} req/s ({lat.requests} requests)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    parser.add_argument("--each", type=int, default=50, help="requests per variant and round")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--no-agreement", action="store_true", help="skip the test-UTR check")
    parser.add_argument("--json", type=Path, help="append this run to the JSON file")
    args = parser.parse_args()
    defaults = Settings.model_construct()  # what serve does with no setting (no env read)
    run: dict[str, object] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "usable_cpus": usable_cpus(),
        "server": f"{defaults.server_workers()} workers x {defaults.onnx_threads()} ONNX threads",
        "load_average_before": os.getloadavg(),
        "variants_per_request": 150,
    }
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"machine: {usable_cpus()} usable CPUs, load {load}; serve: {run['server']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="helixserve-bench-explain-") as tmp:
        scratch = Path(tmp)
        floor = in_process(args.rounds, args.each, scratch / "cache")
        _print("in-process ism()", floor)
        process, base = serve(scratch)
        try:
            seq, cpu = sequential(base, process.pid, args.rounds, args.each, args.warmup)
            _print("API, sequential", seq)
            for label, ms in cpu.items():
                print(f"server CPU per request  {label:<15} {ms:7.2f} ms", flush=True)
            each = max(1, args.each // args.clients)
            conc = concurrent(base, args.rounds, args.clients, each)
            _print(f"API, {args.clients} clients", conc)
        finally:
            stop(process)
        run["load_average_after_timing"] = os.getloadavg()
        run["profile_ms_per_run"] = profiled = profile(scratch / "cache")
        for name, times in profiled.items():
            total = sum(times.values())
            top = ", ".join(
                f"{op} {ms:.1f} ({ms / total:.0%})" for op, ms in list(times.items())[:3]
            )
            print(f"ORT profile, {name}: {total:.1f} ms per ISM batch; {top}", flush=True)
        run["conv_kernels_best_ms"] = kernels = conv_kernels()
        print(
            "largest int8 conv layer, best of 80: "
            + ", ".join(f"{label} {ms:.2f} ms" for label, ms in kernels.items()),
            flush=True,
        )
        found = None if args.no_agreement else agreement(scratch / "cache")
    run |= {
        "in_process": {k: asdict(v) for k, v in floor.items()},
        "sequential": {k: asdict(v) for k, v in seq.items()},
        "server_cpu_ms_per_request": cpu,
        "concurrent": {k: asdict(v) for k, v in conc.items()},
        "agreement": found,
    }
    if found is not None:
        print(
            f"int8 vs fp32 ISM effects over {found['utrs']:,.0f} yeast-utr test UTRs: Spearman "
            f"mean {found['mean']:.4f}, lowest {found['lowest']:.4f} (stored in yeast-utr@2: "
            f"{found['stored']:.4f}; bar 0.99)"
        )
    fp32, int8 = seq["yeast-utr fp32"], seq["yeast-utr int8"]
    print(
        f"yeast-utr ISM over the API, sequential p50: int8 {int8.p50_ms:.2f} ms, fp32 "
        f"{fp32.p50_ms:.2f} ms ({fp32.p50_ms / int8.p50_ms:.1f}x; goal <= 20 ms)"
    )
    config = f"`helixserve serve` defaults ({run['server']}), sequential requests, 150 variants"
    record(
        "ism",
        f"int8 (served by default) p50 {int8.p50_ms:.1f} ms; fp32 {fp32.p50_ms:.1f} ms "
        f"({fp32.p50_ms / int8.p50_ms:.1f}x)",
        int8.p50_ms <= 20,
        config,
    )
    if found is not None:
        record(
            "ism-rank",
            f"Spearman mean {found['mean']:.4f}, lowest {found['lowest']:.4f} over "
            f"{found['utrs']:,.0f} UTRs",
            found["mean"] >= 0.99,
            "yeast-utr@2 test UTRs, in-process, int8 sibling vs fp32",
        )
    if args.json:
        old = json.loads(args.json.read_text()) if args.json.is_file() else {"runs": []}
        old["runs"].append(run)
        args.json.write_text(json.dumps(old, indent=2) + "\n")


if __name__ == "__main__":
    main()
