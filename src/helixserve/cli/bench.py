"""``helixserve bench MODEL``: how fast a model predicts on this machine, without HTTP.

Contract: loads ``MODEL`` (``name``, ``name@3``, ``name@alias``) from the store with
``--threads`` ONNX Runtime threads, makes valid random inputs from its input schema (DNA of an
allowed length, tabular rows in range, PNG images of the right size), and for each batch size
runs :meth:`~helixserve.runtime.predictor.Predictor.predict_batch` repeatedly for ``--seconds``:
items per second and the p50 / p99 time of one call. These are the compute limits the server's
micro-batcher works against (see ``make bench-serving`` for HTTP and gRPC figures).
"""

from __future__ import annotations

import statistics
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from helixserve.cli.options import ModelArgument, StoreOption, ThreadsOption, examples
from helixserve.errors import HelixError
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.samples import sample_inputs
from helixserve.settings import load_settings
from helixserve.store.configured import store_from_settings

console = Console()


def measure(predictor: Predictor, batch: int, seconds: float) -> dict[str, float]:
    """Items/s and per-call p50 / p99 (ms) of ``predict_batch`` at one batch size."""
    items = sample_inputs(predictor, batch)
    predictor.predict_batch(items)  # warm-up
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        result = predictor.predict_batch(items)
        times.append(time.perf_counter() - started)
        if result.errors:
            raise HelixError(f"benchmark input was refused: {result.errors[0].error}")
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return {
        "items_per_s": batch * len(times) / sum(times),
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": p99 * 1e3,
    }


BENCH_EXAMPLES = examples(
    ("Throughput and latency at the default batch sizes", "bench primer-binding"),
    ("Compare an int8 version with its original", "bench yeast-utr@2 --batch 64 --threads 4"),
)


def bench(
    model: ModelArgument,
    store: StoreOption = None,
    batch: Annotated[
        str, typer.Option(metavar="SIZES", help="Batch sizes to measure, comma-separated.")
    ] = "1,8,64,256",
    seconds: Annotated[
        float, typer.Option(metavar="SECONDS", help="Seconds per batch size.")
    ] = 2.0,
    threads: ThreadsOption = 1,
) -> None:
    """Measure a model's prediction throughput and latency on this machine (no HTTP)."""
    try:
        sizes = [int(b) for b in batch.split(",")]
    except ValueError:
        raise HelixError(f"--batch must be comma-separated whole numbers, got {batch!r}.") from None
    if not sizes or min(sizes) < 1:
        raise HelixError(f"--batch sizes must be 1 or more, got {batch!r}.")
    predictor = Predictor.from_store(
        store_from_settings(load_settings(), store), model, intra_op_threads=threads
    )
    table = Table(title=f"{predictor.label}, {threads} ONNX Runtime thread(s), {seconds:g} s each")
    for column in ("batch", "items/s", "p50 ms / call", "p99 ms / call"):
        table.add_column(column, justify="right")
    for size in sizes:
        r = measure(predictor, size, seconds)
        table.add_row(
            str(size), f"{r['items_per_s']:,.0f}", f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}"
        )
    console.print(table)
