"""Benchmark: a run's epoch end -> its point in the browser (the run page's live curve).

Run with ``make bench`` (or ``python -m benchmarks.bench_live``; ``--out FILE`` also appends the
output to FILE). For each database (a SQLite file; PostgreSQL too when Debian's server binaries
are installed: a throw-away server, as the tests start, via :mod:`tests.support.postgres`):

1. A workspace in a temporary folder: project ``lab``, dataset ``dna`` (2,000 generated 50-nt
   rows, :func:`tests.support.worker_runs.dna_csv`), experiment ``e`` (``dna-binary``, a small
   CNN: ``filters`` 16, ``hidden`` 8; ``--epochs`` epochs, default 20, early stopping off) and
   one queued run, made with the workspace helpers of :mod:`tests.support.worker_runs`.
2. ``helixserve serve`` in its own process on that workspace, with ``HELIXSERVE_WORKER=false``
   and free loopback ports; every other setting is the default (one uvicorn process, access log
   on, the pretrained models served, the live stream's 0.25 s database poll).
3. Debian's headless Chromium (Playwright, launched as the tests launch it) opens the run page
   ``/projects/lab/runs/<id>``. A script added before the page's own (``INIT``) notes, with
   ``performance.timeOrigin + performance.now()`` (ms since the epoch, this machine's clock), the
   first time each epoch (a) arrives as an ``epoch`` event on the page's own ``EventSource``
   (a listener added in its constructor, so it runs just before the page's), (b) has its point
   in the chart (a ``circle[data-epoch]`` under ``#live-chart``; a ``MutationObserver``,
   which runs right after the page's handler redrew the chart) and (c) reaches the next
   animation frame after that (the frame that paints it). Each time goes to Python at once
   through an exposed function, so the page's reload when the run finishes loses nothing.
4. Once the page's stream is open, ``helixserve worker --once`` (the real worker, its own
   process) trains the run; it writes each epoch's row with ``run_epochs.at`` = the moment the
   epoch ended.
5. Latency of an epoch = browser time - ``run_epochs.at`` (both on this machine's clock);
   median, p90 and max over the epochs, for (a), (b) and (c). The page's two clocks
   (``Date.now()`` and ``timeOrigin + now()``) are compared at the end and the gap printed.

Without Chromium the benchmark says so and exits 0 (``make bench`` goes on).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
from tests.support.chromium import ARGS, CHROMIUM
from tests.support.postgres import binaries, postgres
from tests.support.worker_runs import add_dataset, dna_csv, open_space, queue, worker_env

from benchmarks.bench_serving import free_port, start, stop, wait_http
from helixserve.workspace import runs

STAGES = {
    "event": "epoch event on the page's EventSource",
    "drawn": "point in the chart's DOM",
    "frame": "next animation frame",
}
PARAMS = {"filters": 16, "hidden": 8}

# Runs in the page before its own scripts (Playwright's add_init_script).
INIT = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const report = (stage, epoch) => window.__liveArrived(stage, epoch, now());
  const drawn = new Set();
  window.__liveOpen = false;
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(url, init) {
      super(url, init);
      this.addEventListener("open", () => { window.__liveOpen = true; });
      this.addEventListener("epoch", (e) => report("event", JSON.parse(e.data).epoch));
    }
  };
  new MutationObserver(() => {
    const fresh = [];
    document.querySelectorAll("#live-chart circle[data-epoch]").forEach((c) => {
      const epoch = Number(c.dataset.epoch);
      if (!drawn.has(epoch)) { drawn.add(epoch); fresh.push(epoch); }
    });
    if (!fresh.length) return;
    fresh.forEach((epoch) => report("drawn", epoch));
    requestAnimationFrame(() => fresh.forEach((epoch) => report("frame", epoch)));
  }).observe(document, { childList: true, subtree: true });
})();
"""
CLOCKS = "() => Date.now() - (performance.timeOrigin + performance.now())"


@dataclass
class Measured:
    """One database's run: latency (ms) per stage, one value per epoch, and the page's clock
    gap (ms)."""

    database: str
    latency: dict[str, list[float]] = field(default_factory=dict)
    clock_gap_ms: float = 0.0
    seconds_per_epoch: float = 0.0


def quantile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile, linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    at = (len(ordered) - 1) * fraction
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


@contextmanager
def serving(folder: Path, database_url: str) -> Iterator[str]:
    """``helixserve serve`` (no worker) on the workspace in ``folder``; its base URL."""
    port, grpc_port = free_port(), free_port()
    env = {
        **worker_env(folder, database_url),
        "HELIXSERVE_WORKER": "false",
        "HELIXSERVE_PORT": str(port),
        "HELIXSERVE_GRPC_PORT": str(grpc_port),
    }
    command = [sys.executable, "-m", "helixserve", "serve"]
    process = start(command, env, folder / "server.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def watch(page: Page, url: str, folder: Path, database_url: str, run_id: str) -> None:
    """Open the run page, wait for its stream, then train the run with the real worker while
    the page reports arrivals."""
    page.goto(f"{url}/projects/lab/runs/{run_id}")
    page.wait_for_function("() => window.__liveOpen", timeout=30_000)
    command = [sys.executable, "-m", "helixserve", "worker", "--once", "--poll", "0.2"]
    with (folder / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            command, env=worker_env(folder, database_url), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        while worker.poll() is None:
            page.wait_for_timeout(100)  # lets Playwright deliver the page's reports
        page.wait_for_timeout(1_000)  # the last epoch's frame
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    if worker.returncode != 0:
        tail = (folder / "worker.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"the worker failed ({worker.returncode}):\n{tail}")


def measure(browser: Browser, folder: Path, label: str, database_url: str, epochs: int) -> Measured:
    folder.mkdir(parents=True)
    space = open_space(folder, database_url)  # migrates the database before the server starts
    try:
        add_dataset(space, data=dna_csv(2000))
        run_id = queue(space, params={"epochs": epochs, "patience": epochs, **PARAMS})
    finally:
        space.db.close()
    arrived: dict[str, dict[int, float]] = {stage: {} for stage in STAGES}

    def note(stage: str, epoch: int, at_ms: float) -> None:
        arrived[stage].setdefault(int(epoch), float(at_ms))

    with serving(folder, database_url) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            context.expose_function("__liveArrived", note)
            context.add_init_script(INIT)
            page = context.new_page()
            watch(page, url, folder, database_url, run_id)
            gap = float(page.evaluate(CLOCKS))
        finally:
            context.close()
    space = open_space(folder, database_url)
    try:
        with space.db.session() as session:
            rows = runs.epochs_since(session, run_id)
            status = runs.get_run(session, run_id).status.value
    finally:
        space.db.close()
    ended = {row.epoch: row.at.timestamp() * 1000 for row in rows}
    if status != "finished" or sorted(ended) != list(range(1, epochs + 1)):
        raise SystemExit(f"{label}: the run ended {status} with epochs {sorted(ended)}")
    measured = Measured(label, clock_gap_ms=gap)
    for stage, seen in arrived.items():
        missing = sorted(set(ended) - set(seen))
        if missing:
            raise SystemExit(f"{label}: epochs {missing} never reached the page ({stage})")
        measured.latency[stage] = [seen[epoch] - ended[epoch] for epoch in sorted(ended)]
    steps = [b - a for a, b in itertools.pairwise(sorted(ended.values()))]
    measured.seconds_per_epoch = statistics.median(steps) / 1000
    return measured


@contextmanager
def databases(folder: Path, sqlite_only: bool) -> Iterator[list[tuple[str, str]]]:
    found = [("SQLite file", f"sqlite:///{folder / 'live.db'}")]
    bin_dir = None if sqlite_only else binaries()
    if bin_dir is None:
        yield found
        return
    with postgres(bin_dir) as server:
        yield [*found, (f"PostgreSQL {bin_dir.parent.name}", server.new_database())]


def table(results: list[Measured]) -> list[str]:
    lines = [
        f"{'database':>14} {'stage':>6} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} "
        f"{'min ms':>7}  epochs"
    ]
    for result in results:
        for stage, values in result.latency.items():
            lines.append(
                f"{result.database:>14} {stage:>6} {statistics.median(values):>10.1f} "
                f"{quantile(values, 0.9):>8.1f} {max(values):>8.1f} {min(values):>7.1f}  "
                f"{len(values)}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each run (>= 15)")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--out", type=Path, help="also append the output to this file")
    args = parser.parse_args()
    shown: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        shown.append(line)

    if CHROMIUM is None:
        print("bench_live: skipped, Chromium is not installed (apt-get install chromium)")
        return
    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    say(
        f"# python -m benchmarks.bench_live {' '.join(sys.argv[1:])} "
        f"({started:%Y-%m-%d %H:%M} UTC, load average {load[0]:.2f})"
    )
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.platform()}; Chromium {CHROMIUM} (headless)"
    )
    say(
        "server: helixserve serve, HELIXSERVE_WORKER=false, other settings default (1 uvicorn "
        "process, live stream polls the database every 0.25 s); worker: helixserve worker --once"
    )
    if not args.sqlite_only and binaries() is not None:
        say(
            "PostgreSQL: a throw-away local server as the tests start it (tests/support/"
            "postgres.py: fsync, synchronous_commit and full_page_writes off)"
        )
    say(
        f"run: dna-binary on 2,000 generated 50-nt rows, {PARAMS}, {args.epochs} epochs; "
        "latency = browser time - run_epochs.at"
    )
    results: list[Measured] = []
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            with databases(Path(scratch), args.sqlite_only) as chosen:
                for number, (label, url) in enumerate(chosen):
                    folder = Path(scratch) / f"db{number}"
                    results.append(measure(browser, folder, label, url, args.epochs))
            version = browser.version
        finally:
            browser.close()
    stages = "; ".join(f"{name} = {what}" for name, what in STAGES.items())
    say(f"Chromium {version}; stages: {stages}")
    for line in table(results):
        say(line)
    for result in results:
        say(
            f"{result.database}: {result.seconds_per_epoch:.2f} s per epoch (median); page clock "
            f"gap Date.now() - (timeOrigin + now()) = {result.clock_gap_ms:.1f} ms; drawn, each "
            f"epoch: {', '.join(f'{v:.0f}' for v in result.latency['drawn'])}"
        )
    say(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.out is not None:
        with args.out.open("a") as out:
            out.write("\n".join(shown) + "\n\n")


if __name__ == "__main__":
    main()
