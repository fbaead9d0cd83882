"""Benchmark: the worker against ``helixserve train``, the live curve's server side, the tutorial.

Run with ``make bench`` (or ``python -m benchmarks.bench_worker``). Three figures:

(a) Throughput. One experiment, the Cuperus tutorial's (``--data``, default the real
    ``Native_UTRs.csv.gz`` of ../shared/data: sequence ``UTR``, target ``growth_rate``, subsets
    ``train`` = a seeded 80 % and ``val`` = the rest, the ``dna-regression`` recipe with the
    Cuperus block preset, ``--epochs`` epochs with early stopping off), trained ``--repeats``
    times each way, in ABBA order after a one-epoch warm-up run: through the worker
    (:class:`~helixserve.worker.local.LocalWorker`: claim, write the training file from the
    dataset version, train, an epoch row, log line and checkpoint upload per epoch, publish,
    finish) and through ``helixserve train``'s function
    (:func:`helixserve.training.cli_support.run`) on the same training file with the same
    :class:`~helixserve.training.train_options.TrainOptions`. A run's seconds per epoch are the
    median of its epochs 2..N (the first includes loading the data); end to end is the wall time
    of the whole run (the worker's includes writing its training file), and its CPU time (this
    process, all threads). Each figure is the best of the runs (work of others on a shared
    machine only adds time). Ratio = train's time / the worker's (the worker's share of
    ``helixserve train``'s throughput; goal >= 0.95).
(b) Epoch end -> row readable: while a worker trains a small run (2,000 generated 50-nt rows, a
    small CNN, 15 epochs), a thread with its own database connection reads the run's epochs every
    2 ms; latency = the wall time the row was first read - the epoch's end (``run_epochs.at``,
    which the worker sets to the moment the epoch ended). SQLite file, and PostgreSQL when
    Debian's server binaries are installed (a throw-away server, as the tests start).
(c) The tutorial through the worker: (a)'s worker runs' seconds per epoch, rows and test R².
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tests.support.postgres import binaries, postgres
from tests.support.worker_runs import dna_csv

from helixserve.settings import Settings
from helixserve.training.cli_support import run as train
from helixserve.worker.local import LocalWorker
from helixserve.worker.prepare import prepare
from helixserve.workspace import runs
from helixserve.workspace.checks import ExperimentRequest, check_experiment
from helixserve.workspace.datasets import add_subset, add_version, create_dataset
from helixserve.workspace.experiments import create_experiment
from helixserve.workspace.presets import presets
from helixserve.workspace.projects import create_project
from helixserve.workspace.space import Workspace

CUPERUS = (
    Path(__file__).resolve().parents[2] / "shared/data/cuperus2017_yeast_utr/Native_UTRs.csv.gz"
)


@dataclass
class Timing:
    """One training run: its per-epoch seconds (2..N), end-to-end wall and CPU seconds (this
    process, every thread: less sensitive than wall time to other work on the machine) and its
    test figure."""

    per_epoch: float
    total: float
    cpu: float
    figure: str = ""


def open_space(folder: Path, database_url: str) -> Workspace:
    settings = Settings(
        database_url=database_url,
        workspace_store=str(folder / "workspace"),
        store=str(folder / "store"),
        cache_dir=str(folder / "cache"),
        pretrained=False,
    )
    return Workspace.from_settings(settings).open()


def cuperus_experiment(space: Workspace, data: Path, epochs: int) -> str:
    """The tutorial's experiment on ``data``; its id."""
    params = {"epochs": epochs, "patience": epochs}
    with space.db.session() as session:
        create_project(session, "tutorial")
        create_dataset(session, "tutorial", "utrs")
        with data.open("rb") as stream:
            add_version(session, space, "tutorial", "utrs", stream, data.name)
        add_subset(
            session, "tutorial", "utrs", "train", {"kind": "fraction", "fraction": 0.8, "seed": 1}
        )
        add_subset(session, "tutorial", "utrs", "val", {"kind": "rest", "minus": ["train"]})
        request = ExperimentRequest(
            dataset="utrs",
            target="growth_rate",
            train_subset="train",
            val_subset="val",
            recipe="dna-regression",
            inputs={"sequence": "UTR"},
            params=params,
            blocks=[b.model_dump() for b in presets("dna-regression", params)],
        )
        spec = check_experiment(session, space, "tutorial", request)
        return create_experiment(session, "tutorial", "cuperus", spec).id


def through_worker(space: Workspace, experiment: str) -> Timing:
    with space.db.session() as session:
        run_id = runs.submit(session, experiment).id
    start, cpu = time.perf_counter(), time.process_time()
    ended = LocalWorker(space, "bench", poll_s=0.05).run(once=True)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    with space.db.session() as session:
        run = runs.get_run(session, run_id)
        rows = runs.epochs_since(session, run_id)
    if ended != {"finished": 1} or run.metrics is None:
        raise SystemExit(f"the worker run ended {dict(ended)}: {run.error}")
    seconds = [float(row.metrics["seconds"]) for row in rows[1:]]
    return Timing(
        statistics.median(seconds), total, cpu, f"r2 {run.metrics.get('r2', float('nan')):.3f}"
    )


def through_train(space: Workspace, experiment: str, folder: Path, number: int) -> Timing:
    """``helixserve train``'s function on the worker's training file and options."""
    with space.db.session() as session:
        run = runs.submit(session, experiment)
        options = prepare(session, space, run, folder / f"train-{number}").options
        runs.request_stop(session, run.id)  # the row only lent its options
    options.name, options.work_dir = f"bench-train-{number}", folder / f"train-{number}"
    ends: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    outcome = train(options, space.runs, on_epoch=lambda _: ends.append(time.perf_counter()))
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    steps = [b - a for a, b in itertools.pairwise(ends)]
    return Timing(
        statistics.median(steps), total, cpu, f"r2 {outcome.metrics.get('r2', float('nan')):.3f}"
    )


def throughput(folder: Path, data: Path, epochs: int, repeats: int) -> None:
    space = open_space(folder, f"sqlite:///{folder / 'a.db'}")
    experiment = cuperus_experiment(space, data, epochs)
    with space.db.session() as session:  # warm-up: one-time imports and caches, not measured
        runs.submit(session, experiment, epochs_planned=1)
    LocalWorker(space, "warm-up").run(once=True)
    worker: list[Timing] = []
    trained: list[Timing] = []
    for number in range(repeats):  # ABBA: neither way always goes first
        if number % 2 == 0:
            trained.append(through_train(space, experiment, folder, number))
        worker.append(through_worker(space, experiment))
        if number % 2 == 1:
            trained.append(through_train(space, experiment, folder, number))
    space.db.close()
    print(
        f"\n(a) throughput: {data.name}, dna-regression + Cuperus block preset, {epochs} epochs, "
        f"{repeats} runs each way (ABBA order, after a 1-epoch warm-up run), "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"{'':>22} {'s/epoch':>9} {'end to end s':>13} {'CPU s':>8}  each run: s/epoch, s, CPU s")
    for label, timings in (("helixserve train", trained), ("worker", worker)):
        shown = "; ".join(f"{t.per_epoch:.1f}, {t.total:.0f}, {t.cpu:.0f}" for t in timings)
        print(
            f"{label:>22} {best(timings, 'per_epoch'):>9.2f} {best(timings, 'total'):>13.1f} "
            f"{best(timings, 'cpu'):>8.1f}  {shown}"
        )
    ratios = [best(trained, f) / best(worker, f) for f in ("per_epoch", "total", "cpu")]
    print(
        f"{'ratio train/worker':>22} {ratios[0]:>9.3f} {ratios[1]:>13.3f} {ratios[2]:>8.3f}  "
        "(best of the runs; goal >= 0.95)"
    )
    print(
        f"\n(c) the tutorial through the worker: {best(worker, 'per_epoch'):.2f} s/epoch, "
        f"{best(worker, 'total'):.1f} s end to end for {epochs} epochs (best run); test "
        f"{', '.join(t.figure for t in worker)} on the held-out rows; helixserve train: "
        f"{', '.join(t.figure for t in trained)}"
    )


def best(timings: list[Timing], field: str) -> float:
    """The fastest run's figure: other work on a shared machine only ever adds time."""
    return min(float(getattr(t, field)) for t in timings)


def watch(space: Workspace, run_id: str, done: threading.Event, seen: dict[int, float]) -> None:
    """Read the run's epochs every 2 ms; note when each was first seen (wall clock)."""
    while not done.is_set():
        with space.db.session() as session:
            for row in runs.epochs_since(session, run_id, max(seen, default=0)):
                seen.setdefault(row.epoch, time.time() - row.at.timestamp())
        time.sleep(0.002)


def latency(folder: Path, database_url: str, epochs: int) -> list[float]:
    space = open_space(folder, database_url)
    reader = open_space(folder, database_url)  # its own engine and connections
    with space.db.session() as session:
        create_project(session, "lab")
        create_dataset(session, "lab", "dna")
        add_version(session, space, "lab", "dna", io.BytesIO(dna_csv(2000)), "dna.csv")
        for part in ("T", "V", "test"):
            add_subset(
                session,
                "lab",
                "dna",
                part.lower(),
                {"kind": "where", "column": "split", "op": "==", "value": part},
            )
        request = ExperimentRequest(
            dataset="dna",
            target="label",
            train_subset="t",
            val_subset="v",
            test_subset="test",
            recipe="dna-binary",
            params={"epochs": epochs, "patience": epochs, "filters": 16, "hidden": 8},
        )
        experiment = create_experiment(
            session, "lab", "e", check_experiment(session, space, "lab", request)
        )
        run_id = runs.submit(session, experiment.id).id
    seen: dict[int, float] = {}
    done = threading.Event()
    thread = threading.Thread(target=watch, args=(reader, run_id, done, seen))
    thread.start()
    LocalWorker(space, "bench").run(once=True)
    time.sleep(0.1)
    done.set()
    thread.join()
    space.db.close()
    reader.db.close()
    return [seen[epoch] * 1000 for epoch in sorted(seen)]


@contextmanager
def databases(folder: Path) -> Iterator[list[tuple[str, str]]]:
    found = [("SQLite file", f"sqlite:///{folder / 'b.db'}")]
    bin_dir = binaries()
    if bin_dir is None:
        yield found
        return
    with postgres(bin_dir) as server:
        yield [*found, (f"PostgreSQL {bin_dir.parent.name}", server.new_database())]


def live_curve(folder: Path, epochs: int) -> None:
    print(f"\n(b) epoch end -> row readable from the database, {epochs} epochs, read every 2 ms")
    print(f"{'database':>22} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    with databases(folder) as chosen:
        for number, (label, url) in enumerate(chosen):
            shown = latency(folder / f"b{number}", url, epochs)
            p95 = statistics.quantiles(shown, n=20, method="inclusive")[-1]
            print(f"{label:>22} {statistics.median(shown):>10.1f} {p95:>8.1f} {max(shown):>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CUPERUS, help="the tutorial's CSV")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each tutorial run")
    parser.add_argument("--repeats", type=int, default=2, help="tutorial runs each way")
    parser.add_argument("--live-epochs", type=int, default=15, help="epochs of the (b) runs")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", torch {torch.__version__}, {platform.platform()}; local folder stores"
    )
    with tempfile.TemporaryDirectory() as folder:
        throughput(Path(folder) / "a", args.data, args.epochs, args.repeats)
        live_curve(Path(folder) / "b", args.live_epochs)


if __name__ == "__main__":
    main()
