"""``helixserve predict MODEL INPUT``: score a big file on this machine (see
:mod:`helixserve.batch.predict` for the contract).

A rich progress bar (bytes read, rows/s, ETA) on a terminal; plain log lines every 10 s when
stderr is not a terminal; a one-line summary at the end. Errors: ``Error: ...`` and exit 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from helixserve.batch.predict import score
from helixserve.batch.ray_engine import score_ray
from helixserve.errors import HelixError
from helixserve.runtime.predictor import Predictor
from helixserve.settings import load_settings
from helixserve.store.configured import s3_options, store_from_settings

err_console = Console(stderr=True)


def _default_output(input_uri: str) -> str:
    name = input_uri.rstrip("/").split("/")[-1]
    for suffix in (".gz", ".csv", ".tsv", ".fasta", ".fa", ".fna", ".txt", ".parquet"):
        name = name.removesuffix(suffix)
    return str(Path.cwd() / f"{name or 'input'}.predictions.csv")


def predict(
    model: Annotated[str, typer.Argument(help="name, name@version or name@alias")],
    input_file: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="CSV/TSV/FASTA/text (.gz) or Parquet; a path or s3://bucket/key"
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output .csv/.tsv (.gz) or .parquet (default: INPUT.predictions.csv here).",
        ),
    ] = None,
    errors: Annotated[
        str | None, typer.Option(help="Refused rows (default: OUTPUT.errors.csv).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    batch_size: Annotated[int, typer.Option(help="Records per model call.")] = 4096,
    workers: Annotated[int, typer.Option(help="ONNX Runtime threads.")] = 1,
    store: Annotated[str | None, typer.Option(help="Store folder or URI.")] = None,
    engine: Annotated[str, typer.Option(help="local, or ray (extra 'ray').")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster: auto, ray://host:port (default: local Ray).")
    ] = None,
    actors: Annotated[int, typer.Option(help="Ray actors (engine ray).")] = 2,
) -> None:
    """Score a big file, resumably, in constant memory; bad rows go to the errors file."""
    if engine not in ("local", "ray"):
        raise HelixError(f"--engine must be local or ray, got {engine!r}.")
    settings = load_settings()
    models = store_from_settings(settings, store)
    predictor = Predictor.from_store(models, model, intra_op_threads=workers)
    target = output or _default_output(input_file)
    options: dict[str, Any] = {"errors": errors, "batch_size": batch_size, "resume": resume,
                               "s3": s3_options(settings)}  # fmt: skip
    holder = models.origin(predictor.manifest.name, predictor.manifest.version)
    with ProgressReporter() as report:
        if engine == "ray":
            summary = score_ray(
                predictor, holder, predictor.label, input_file, target, address=address,
                actors=actors,
                threads=workers, progress=report, **options,
            )  # fmt: skip
        else:
            summary = score(predictor, input_file, target, progress=report, **options)
    rate = (summary.scored + summary.refused - summary.resumed_from) / max(summary.seconds, 1e-9)
    resumed = f" (resumed after record {summary.resumed_from:,})" if summary.resumed_from else ""
    err_console.print(
        f"scored {summary.scored:,} records, refused {summary.refused:,}{resumed} in "
        f"{summary.seconds:.1f} s ({rate:,.0f} records/s) -> {summary.output}; refused rows -> "
        f"{summary.errors}", highlight=False, soft_wrap=True,
    )  # fmt: skip


class ProgressReporter:
    """A reporter for :func:`score`: a rich bar on a terminal, log lines otherwise."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last = 0.0

    def __enter__(self) -> ProgressReporter:
        if sys.stderr.isatty():
            self.bar = Progress(TextColumn("scoring"), BarColumn(), TransferSpeedColumn(),
                                TextColumn("{task.fields[rows]}"), TimeRemainingColumn(),
                                console=err_console)  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("scoring", total=None, rows="")
        return self

    def __call__(self, position: int, scored: int, refused: int) -> None:
        rows = f"{scored:,} scored, {refused:,} refused"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=position, rows=rows)
        elif time.monotonic() - self.last > 10:
            self.last = time.monotonic()
            err_console.print(f"progress: {rows}, {position:,} bytes read", highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
