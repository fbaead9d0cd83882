"""Benchmark: many browsers watching one run's live curve (server CPU and event latency).

Run with ``make bench`` (or ``python -m benchmarks.bench_watchers``; ``--out FILE`` also appends
the output to FILE). Each measurement:

1. A workspace in a temporary folder on a SQLite file: project ``lab``, dataset ``dna`` (200
   generated rows, :func:`tests.support.worker_runs.dna_csv`), experiment ``e1`` and one queued run.
2. ``helixserve serve`` in its own process (its own session) on that workspace with
   ``HELIXSERVE_WORKER=false`` and free loopback ports; every other setting is the default a user
   gets from the README: ``workers`` ``auto`` (one process per usable CPU), access log on, the
   pretrained models served.
3. ``--watchers`` (default 100) clients, one ``text/event-stream`` connection each
   (``GET /api/v1/projects/lab/runs/<id>/events``, httpx's async client in this process), stand
   in for browsers: the stream is what a run page's ``EventSource`` reads (it is stage (a) of
   :mod:`benchmarks.bench_live`, which measures one real Chromium, parse and redraw included).
   The server's CPU is measured over ``--idle`` seconds before any client connects, then, once
   every stream sent the queued run's first ``status``, over ``--idle`` seconds with nothing
   happening (the cost of watching alone).
4. A writer process (``--write``, the same database calls as the worker: heartbeat, epoch row,
   log line) claims the run and writes ``--epochs`` epochs, each after a pause drawn uniformly
   from 0.5-1.5 x ``--interval`` seconds (seeded; real epochs are not periodic, and a fixed
   period would lock onto the stream's poll), each row's ``at`` = the moment it is written, then
   finishes the run. Server CPU is measured from
   the writer's start to the last stream's end. Every client must get every epoch and the final
   ``finished`` status, and its stream must end there (else it is counted as cut).
5. Server CPU = the CPU seconds (user + system, ``/proc/<pid>/stat``) of every process of the
   server's session (the uvicorn supervisor and its workers) per second of wall time (1.0 = one
   core busy). Latency = the client's clock when the event's last line arrived - the epoch row's
   ``at`` (one machine, one clock): median, p90 and max over every (client, epoch) that arrived.
   ``cut``: streams that ended before the ``finished`` status; ``missing``: epochs that never
   reached a client (all clients together); when either is not 0, the distinct warning, error
   and exception lines of the server's log are printed.

``--before REF`` also measures the code of a git commit (its ``src`` extracted with
``git archive`` into a temporary folder, put first on the server's ``PYTHONPATH``): the two are
measured interleaved, ``--rounds`` times each (the order swapped every round), and the medians
printed, so a change to the live stream is measured before and after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.worker_runs import add_dataset, dna_csv, open_space, queue, worker_env

from benchmarks.bench_live import quantile
from benchmarks.bench_serving import ROOT, free_port, start, stop, wait_http
from benchmarks.goals import record
from helixserve.workspace import runs

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
WRITER = "bench-writer"


@dataclass
class Figures:
    """One measurement of one code version."""

    code: str
    processes: int = 0
    base_cpu: float = 0.0  # server CPU seconds per wall second, no client connected
    idle_cpu: float = 0.0  # server CPU seconds per wall second, watchers connected, no events
    live_cpu: float = 0.0  # the same while epochs are written and sent
    latency_ms: list[float] = field(default_factory=list)
    load: float = 0.0
    cut: int = 0  # streams that ended before the run's "finished" status
    missing: int = 0  # epochs that never reached a client (all clients together)
    errors: list[str] = field(default_factory=list)


@dataclass
class Watcher:
    """What one client saw: epoch -> arrival (s since the epoch), the last status, the end."""

    arrived: dict[int, tuple[float, float]] = field(default_factory=dict)
    status: str = ""
    ended: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)


# --- the server and its CPU ---------------------------------------------------------------------


def session_stats(session_id: int) -> dict[int, list[str]]:
    """``/proc/<pid>/stat`` of each live process of session ``session_id``, from field 3 on
    (the state) as a list: index ``n`` is field ``n + 3``."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session_id:  # field 6: the session id
            found[int(entry.name)] = fields
    return found


def session_cpu(session_id: int) -> tuple[float, int]:
    """CPU seconds (user + system) of the live processes of ``session_id``, and their count."""
    stats = session_stats(session_id)
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in stats.values())  # utime, stime
    return ticks / TICKS, len(stats)


def session_rss(session_id: int) -> dict[int, int]:
    """Resident memory in bytes of each live process of ``session_id`` (field 24: pages)."""
    return {pid: int(fields[21]) * PAGE for pid, fields in session_stats(session_id).items()}


@contextmanager
def serving(
    folder: Path, database_url: str, code: Path | None, extra: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``helixserve serve`` (README defaults but ``extra``, no worker) on the workspace; its URL
    and session id."""
    port, grpc_port = free_port(), free_port()
    env = {
        **worker_env(folder, database_url),
        "HELIXSERVE_WORKER": "false",
        "HELIXSERVE_PORT": str(port),
        "HELIXSERVE_GRPC_PORT": str(grpc_port),
        **(extra or {}),
    }
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), str(ROOT)])
    process = start([sys.executable, "-m", "helixserve", "serve"], env, folder / "server.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout=180)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process)


# --- the clients --------------------------------------------------------------------------------


def _arrived(seen: Watcher, kind: str, data: str) -> None:
    now = time.time()
    if kind == "epoch":
        point = json.loads(data)
        at = datetime.datetime.fromisoformat(point["at"]).timestamp()
        seen.arrived.setdefault(int(point["epoch"]), (at, now))
    elif kind == "status":
        seen.status = json.loads(data)["status"]
        seen.opened.set()


async def watch(client: httpx.AsyncClient, url: str, seen: Watcher) -> None:
    """Read one event stream to its end, noting each epoch's arrival."""
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as reply:
        if reply.status_code != 200:
            raise SystemExit(f"{url}: {reply.status_code} {(await reply.aread())[:300]!r}")
        kind, data = "", ""
        async for line in reply.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and kind:
                _arrived(seen, kind, data)
                kind = ""
    seen.ended = True


def write_epochs(folder: Path, database_url: str, epochs: int, interval: float) -> None:
    """The writer process: claim the queued run, write its epochs, finish it."""
    space = open_space(folder, database_url)
    try:
        claimed = runs.claim(space.db, WRITER)
        if claimed is None:
            raise SystemExit("no queued run to write")
        pauses = random.Random(0)
        for epoch in range(1, epochs + 1):
            time.sleep(interval * pauses.uniform(0.5, 1.5))
            loss = 1.0 / epoch
            with space.db.session() as session:
                runs.heartbeat(session, claimed.id, worker=WRITER)
                runs.record_epoch(session, claimed.id, epoch, train_loss=loss, val_loss=loss)
                runs.log(session, claimed.id, f"epoch {epoch}: train {loss:.4f}")
        with space.db.session() as session:
            runs.finish(session, claimed.id, "bench://none", {}, {}, best_epoch=epochs)
    finally:
        space.db.close()


def _writer(
    folder: Path, database_url: str, epochs: int, interval: float
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks.bench_watchers", "--write", str(folder)]
    command += [database_url, str(epochs), str(interval)]
    return start(command, {}, folder / "writer.log")


# --- one measurement ----------------------------------------------------------------------------


@dataclass
class Plan:
    watchers: int
    epochs: int
    interval: float
    idle_s: float


async def _cpu(session_id: int, seconds: float) -> float:
    """The server's CPU seconds per wall second over the next ``seconds``."""
    cpu0, wall0 = session_cpu(session_id)[0], time.monotonic()
    await asyncio.sleep(seconds)
    return (session_cpu(session_id)[0] - cpu0) / (time.monotonic() - wall0)


async def _measure_live(
    url: str, session_id: int, folder: Path, database_url: str, plan: Plan, out: Figures
) -> list[Watcher]:
    limits = httpx.Limits(max_connections=plan.watchers + 8, max_keepalive_connections=0)
    timeout = httpx.Timeout(60, read=None)
    seen = [Watcher() for _ in range(plan.watchers)]
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        out.base_cpu = await _cpu(session_id, plan.idle_s)
        tasks = [asyncio.create_task(watch(client, url, s)) for s in seen]
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in seen)), 120)
        cpu0, wall0 = session_cpu(session_id)[0], time.monotonic()
        await asyncio.sleep(plan.idle_s)
        cpu1, wall1 = session_cpu(session_id)[0], time.monotonic()
        out.idle_cpu = (cpu1 - cpu0) / (wall1 - wall0)
        writer = _writer(folder, database_url, plan.epochs, plan.interval)
        await asyncio.wait_for(asyncio.gather(*tasks), plan.epochs * plan.interval * 10 + 120)
        cpu2, wall2 = session_cpu(session_id)[0], time.monotonic()
        out.live_cpu = (cpu2 - cpu1) / (wall2 - wall1)
        await asyncio.to_thread(writer.wait, 60)
    if writer.returncode != 0:
        raise SystemExit(f"writer failed:\n{(folder / 'writer.log').read_text()[-2000:]}")
    return seen


def server_errors(log: Path) -> list[str]:
    """The distinct warning, error and exception lines of the server's log (or its last line
    when there is none, so a cut stream always leaves a trace in the output)."""
    lines = log.read_text(errors="replace").splitlines()
    found: dict[str, None] = {}
    for line in lines:
        if re.search(r" (WARNING|ERROR|CRITICAL) ", line) or re.match(
            r"^[\w.]+(Error|Exception)\b.*:", line
        ):
            found.setdefault(line[:200])
    return list(found) or [
        f"(no warning or error; last line) {lines[-1][:200]}" if lines else "(empty)"
    ]


def measure(folder: Path, code: tuple[str, Path | None], plan: Plan) -> Figures:
    folder.mkdir(parents=True)
    database_url = f"sqlite:///{folder / 'live.db'}"
    space = open_space(folder, database_url)
    try:
        add_dataset(space, data=dna_csv(200))
        run_id = queue(space, params={"epochs": plan.epochs})
    finally:
        space.db.close()
    out = Figures(code[0], load=os.getloadavg()[0])
    with serving(folder, database_url, code[1]) as (base, session_id):
        out.processes = session_cpu(session_id)[1]
        url = f"{base}/api/v1/projects/lab/runs/{run_id}/events"
        seen = asyncio.run(_measure_live(url, session_id, folder, database_url, plan, out))
    for watcher in seen:
        out.missing += plan.epochs - len(watcher.arrived)
        out.cut += watcher.status != "finished" or not watcher.ended
        out.latency_ms += [(now - at) * 1000 for at, now in watcher.arrived.values()]
    if out.cut or out.missing:
        out.errors = server_errors(folder / "server.log")
    return out


# --- the report ---------------------------------------------------------------------------------


def extract(ref: str, into: Path) -> Path:
    """The ``src`` folder of git commit ``ref``, extracted under ``into``."""
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def row(result: Figures) -> str:
    lat = result.latency_ms
    return (
        f"{result.code:>8} {result.processes:>5} {result.load:>6.2f} {result.base_cpu:>9.3f} "
        f"{result.idle_cpu:>9.3f} "
        f"{result.live_cpu:>9.3f} {statistics.median(lat):>8.1f} {quantile(lat, 0.9):>7.1f} "
        f"{max(lat):>8.1f} {result.cut:>4} {result.missing:>7}"
    )


HEADER = (
    f"{'code':>8} {'procs':>5} {'load':>6} {'no client':>9} {'idle CPU':>9} {'live CPU':>9} "
    f"{'p50 ms':>8} "
    f"{'p90 ms':>7} {'max ms':>8} {'cut':>4} {'missing':>7}"
)


def medians(results: list[Figures], code: str) -> str:
    mine = [r for r in results if r.code == code]
    base = statistics.median(r.base_cpu for r in mine)
    idle = statistics.median(r.idle_cpu for r in mine)
    live = statistics.median(r.live_cpu for r in mine)
    p50 = statistics.median(statistics.median(r.latency_ms) for r in mine)
    p90 = statistics.median(quantile(r.latency_ms, 0.9) for r in mine)
    top = statistics.median(max(r.latency_ms) for r in mine)
    return (
        f"{code:>8} median of {len(mine)}: CPU no client {base:.3f}, idle watchers {idle:.3f}, "
        f"live {live:.3f} cores; "
        f"latency p50 {p50:.1f} / p90 {p90:.1f} / max {top:.1f} ms"
    )


def record_goal(mine: list[Figures], plan: Plan) -> None:
    """Issue 19's watchers row (:mod:`benchmarks.goals`): this code's medians."""
    idle = statistics.median(r.idle_cpu for r in mine)
    live = statistics.median(r.live_cpu for r in mine)
    p50 = statistics.median(statistics.median(r.latency_ms) for r in mine)
    top = statistics.median(max(r.latency_ms) for r in mine)
    cut = sum(r.cut for r in mine)
    record(
        "watchers",
        f"server CPU {idle:.3f} cores idle, {live:.3f} live; epoch to client p50 {p50:.0f} ms, "
        f"max {top:.0f} ms; streams cut {cut}",
        None,
        f"`helixserve serve` defaults, {plan.watchers} event streams on one run, {plan.epochs} "
        f"epochs ~{plan.interval:g} s apart, SQLite; {len(mine)} measurement(s)",
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=100, help="event-stream clients")
    parser.add_argument("--epochs", type=int, default=30, help="epochs the writer writes")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between epochs")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle window")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each code")
    parser.add_argument("--before", metavar="REF", help="also measure this git commit's code")
    parser.add_argument("--out", type=Path, help="also append the output to this file")
    parser.add_argument("--write", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.write:
        folder, url, epochs, interval = args.write
        write_epochs(Path(folder), url, int(epochs), float(interval))
        return
    shown: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        shown.append(line)

    started = datetime.datetime.now(datetime.UTC)
    say(
        f"# python -m benchmarks.bench_watchers {' '.join(sys.argv[1:])} "
        f"({started:%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f})"
    )
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (usable "
        f"{len(os.sched_getaffinity(0))}), Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    say(
        "server: helixserve serve, HELIXSERVE_WORKER=false, other settings default (workers auto,"
        " access log on, pretrained models); SQLite workspace; CPU in cores (CPU s / wall s)"
    )
    plan = Plan(args.watchers, args.epochs, args.interval, args.idle)
    say(
        f"{plan.watchers} event-stream clients (httpx, one process) on one run; {plan.epochs} "
        f"epochs, {plan.interval} s apart on average (uniform 0.5-1.5x); idle windows "
        f"{plan.idle_s} s; latency = arrival - at"
    )
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as scratch:
        codes: list[tuple[str, Path | None]] = [("this", None)]
        if args.before:
            codes.insert(0, ("before", extract(args.before, Path(scratch))))
        say(HEADER)
        for number in range(args.rounds):
            order = codes if number % 2 == 0 else codes[::-1]
            for code in order:
                folder = Path(scratch) / f"r{number}-{code[0]}"
                results.append(measure(folder, code, plan))
                say(row(results[-1]))
                for error in results[-1].errors:
                    say(f"         server log: {error}")
    for label, _ in codes:
        say(medians(results, label))
    record_goal([r for r in results if r.code == "this"], plan)
    say(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.out is not None:
        with args.out.open("a") as out:
            out.write("\n".join(shown) + "\n\n")


if __name__ == "__main__":
    main()
