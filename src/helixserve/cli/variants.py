"""``helixserve variants MODEL VCF --reference FASTA``: variant effects for a VCF file (see
:mod:`helixserve.batch.variants` for the contract).

A progress bar on a terminal (plain log lines otherwise, as ``predict``), then a one-line summary:
alleles scored and refused, the rate, where the output and the refused alleles went. Errors:
``Error: ...`` and exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from helixserve.batch.predict import Summary
from helixserve.batch.variants import score_vcf
from helixserve.cli.options import ModelArgument, ResumeOption, StoreOption, ThreadsOption, examples
from helixserve.cli.predict import ProgressReporter
from helixserve.explain.vcf_effects import VcfOptions
from helixserve.runtime.predictor import Predictor
from helixserve.settings import load_settings
from helixserve.store.configured import s3_options, store_from_settings

err_console = Console(stderr=True)
VARIANTS_EXAMPLES = examples(
    (
        "Effects of a VCF's variants, written back as INFO fields",
        "variants primer-binding calls.vcf.gz --reference genome.fa.gz -o scored.vcf.gz",
    ),
    (
        "The same as a table, both strands",
        "variants yeast-utr calls.vcf --reference utrs.fa -o effects.tsv --strands both",
    ),
    (
        "Continue after an interruption",
        "variants amr-resistance calls.vcf --reference genes.fa -o out.vcf --resume",
    ),
)


def _default_output(vcf: str) -> str:
    name = vcf.rstrip("/").split("/")[-1]
    gz = name.endswith(".gz")
    stem = name.removesuffix(".gz").removesuffix(".vcf")
    return str(Path.cwd() / f"{stem or 'variants'}.effects.vcf{'.gz' if gz else ''}")


def variants(
    model: ModelArgument,
    vcf: Annotated[
        str,
        typer.Argument(metavar="VCF", help="The variants: a VCF (.gz is fine); path or S3 URI."),
    ],
    reference: Annotated[
        str,
        typer.Option(
            metavar="FASTA",
            help="The reference the VCF was called against: FASTA, plain, gzip or bgzip.",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="Output .vcf/.vcf.gz (effects as INFO fields) or a .csv/.tsv/.jsonl table "
            "(default: VCF.effects.vcf).",
        ),
    ] = None,
    errors: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="Where refused alleles go (default: OUTPUT.errors.csv)."),
    ] = None,
    strands: Annotated[
        Literal["forward", "both"],
        typer.Option(help="Score the forward strand, or both (mean of the two)."),
    ] = "forward",
    window: Annotated[
        int | None,
        typer.Option(metavar="NT", help="Window size in nt (default: what the model takes)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(metavar="CLASS", help="The class or label to score (multiclass models)."),
    ] = None,
    resume: ResumeOption = False,
    batch_size: Annotated[int, typer.Option(metavar="N", help="VCF records per chunk.")] = 512,
    workers: ThreadsOption = 1,
    store: StoreOption = None,
) -> None:
    """Score every ALT allele of a VCF against its reference; refused alleles are listed."""
    settings = load_settings()
    predictor = Predictor.from_store(
        store_from_settings(settings, store), model, intra_op_threads=workers
    )
    with ProgressReporter() as report:
        summary = score_vcf(
            predictor,
            vcf,
            reference,
            output or _default_output(vcf),
            options=VcfOptions(strands, window, target),
            errors=errors,
            batch_size=batch_size,
            resume=resume,
            s3=s3_options(settings),
            progress=report,
        )
    _print_summary(summary)


def _print_summary(summary: Summary) -> None:
    rate = summary.scored / max(summary.seconds, 1e-9)
    resumed = f" (resumed after record {summary.resumed_from:,})" if summary.resumed_from else ""
    err_console.print(
        f"scored {summary.scored:,} alleles, refused {summary.refused:,}{resumed} in "
        f"{summary.seconds:.1f} s ({rate:,.0f} alleles/s) -> {summary.output}; refused -> "
        f"{summary.errors}",
        highlight=False,
        soft_wrap=True,
    )
