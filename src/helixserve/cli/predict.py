"""``helixserve predict MODEL INPUT``: score a big file on this machine (see
:mod:`helixserve.batch.predict` for the contract).

A rich progress bar (bytes read, rows/s, ETA) on a terminal; plain log lines every 10 s when
stderr is not a terminal; a one-line summary at the end. Errors: ``Error: ...`` and exit 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

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

from helixserve.batch.predict import Summary, score
from helixserve.batch.ray_engine import score_ray
from helixserve.cli.options import ModelArgument, ResumeOption, StoreOption, ThreadsOption, examples
from helixserve.runtime.predictor import Predictor
from helixserve.settings import load_settings
from helixserve.store.configured import s3_options, store_from_settings

err_console = Console(stderr=True)


def _default_output(input_uri: str) -> str:
    name = input_uri.rstrip("/").split("/")[-1]
    for suffix in (".gz", ".csv", ".tsv", ".fasta", ".fa", ".fna", ".txt", ".parquet"):
        name = name.removesuffix(suffix)
    return str(Path.cwd() / f"{name or 'input'}.predictions.csv")


PREDICT_EXAMPLES = examples(
    (
        "Score a FASTA file; refused rows go to scores.errors.csv",
        "predict primer-binding seqs.fasta.gz -o scores.csv",
    ),
    (
        "Continue after an interruption",
        "predict primer-binding seqs.fasta.gz -o scores.csv --resume",
    ),
    ("Parquet in and out", "predict yeast-utr utrs.parquet -o scores.parquet"),
    ("Score on a Ray cluster", "predict primer-binding s3://lab/seqs.fasta.gz --engine ray"),
)


def predict(
    model: ModelArgument,
    input_file: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="File to score: CSV, TSV, FASTA, text (.gz is fine) or Parquet; path or S3 URI.",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="Output .csv/.tsv/.jsonl (.gz) or .parquet (default: INPUT.predictions.csv).",
        ),
    ] = None,
    errors: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="Where refused rows go (default: OUTPUT.errors.csv)."),
    ] = None,
    resume: ResumeOption = False,
    batch_size: Annotated[int, typer.Option(metavar="N", help="Records per model call.")] = 4096,
    workers: ThreadsOption = 1,
    store: StoreOption = None,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="Score in this process, or on a Ray cluster (extra 'ray')."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Ray cluster: auto or ray://HOST:PORT (default: a local Ray; engine ray).",
        ),
    ] = None,
    actors: Annotated[int, typer.Option(metavar="N", help="Ray actors (engine ray).")] = 2,
    spreadsheet_safe: Annotated[
        bool,
        typer.Option(
            "--spreadsheet-safe",
            help="Prefix ' to CSV/TSV cells a spreadsheet would run as formulas (=, +, -, @).",
        ),
    ] = False,
) -> None:
    """Score a big file, resumably, in constant memory; bad rows go to the errors file."""
    settings = load_settings()
    models = store_from_settings(settings, store)
    predictor = Predictor.from_store(models, model, intra_op_threads=workers)
    target = output or _default_output(input_file)
    options: dict[str, Any] = {
        "errors": errors,
        "batch_size": batch_size,
        "resume": resume,
        "s3": s3_options(settings),
        "spreadsheet_safe": spreadsheet_safe,
    }
    holder = models.origin(predictor.manifest.name, predictor.manifest.version)
    with ProgressReporter() as report:
        if engine == "ray":
            summary = score_ray(
                predictor,
                holder,
                predictor.label,
                input_file,
                target,
                address=address,
                actors=actors,
                threads=workers,
                progress=report,
                **options,
            )
        else:
            summary = score(predictor, input_file, target, progress=report, **options)
    _print_summary(summary)


def _print_summary(summary: Summary) -> None:
    rate = (summary.scored + summary.refused - summary.resumed_from) / max(summary.seconds, 1e-9)
    resumed = f" (resumed after record {summary.resumed_from:,})" if summary.resumed_from else ""
    err_console.print(
        f"scored {summary.scored:,} records, refused {summary.refused:,}{resumed} in "
        f"{summary.seconds:.1f} s ({rate:,.0f} records/s) -> {summary.output}; refused rows -> "
        f"{summary.errors}",
        highlight=False,
        soft_wrap=True,
    )


class ProgressReporter:
    """A reporter for :func:`score`: a rich bar on a terminal, log lines otherwise."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last = 0.0

    def __enter__(self) -> ProgressReporter:
        if sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("scoring"),
                BarColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[rows]}"),
                TimeRemainingColumn(),
                console=err_console,
            )
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
