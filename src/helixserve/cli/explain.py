"""``helixserve explain ism|occlusion|motifs`` and ``helixserve design``: explanations on the
command line.

Contract:
- ``explain ism MODEL SEQUENCE [--region START:END]`` prints the score, then one row per position
  (of the region only, for a long sequence): the base, its importance and the score change of
  each substitution (``--json``: the ISM result).
- ``explain occlusion MODEL SEQUENCE [--block NT]`` prints the score change when each block is
  replaced (:func:`~helixserve.explain.scan.occlusion`: N, or the complement for a model without
  N), one row per block; for sequences of any length.
- ``explain motifs MODEL INPUT`` reads a sequence file (any format ``predict`` takes; refused
  records are counted and skipped, the first ``--limit`` good ones used), extracts ISM motifs
  (:func:`~helixserve.explain.motifs.ism_motifs`), optionally the model's ``--filters N``
  strongest first-layer filters, and matches each against JASPAR unless ``--no-jaspar``.
- ``design MODEL --start SEQ --goal max|min|target=X --rounds N [--fixed 1,5-8] [--forbid ATG]
  [--gc LOW:HIGH]`` prints the trajectory: round, change, score, sequence.
- Out-of-range numbers (``--width 3``) are typer's usage errors (exit 2); bad sequences, goals,
  positions and files are :class:`~helixserve.errors.HelixError` s (``Error: ...``, exit 1).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from helixserve.cli.options import JsonOption, ModelArgument, StoreOption, examples
from helixserve.errors import HelixError
from helixserve.explain.design import design as run_design
from helixserve.explain.ism import dna_schema, ism
from helixserve.explain.motifs import (
    Motif,
    describe,
    filter_motifs,
    ism_motifs,
    jaspar_matches,
)
from helixserve.explain.scan import ism_region, occlusion
from helixserve.inputs.readers import read_sequences, validate_records
from helixserve.inputs.records import BadRecord
from helixserve.runtime.predictor import Predictor
from helixserve.settings import load_settings
from helixserve.store.configured import store_from_settings

explain_app = typer.Typer(
    help="Why a DNA model scored as it did: in-silico mutagenesis (ISM) and motifs.",
    no_args_is_help=True,
)
console = Console()
SequenceFile = Annotated[
    str,
    typer.Argument(
        metavar="INPUT", help="Sequences: FASTA, CSV, TSV or text (.gz is fine); a path or S3 key."
    ),
]
TargetOption = Annotated[
    str | None, typer.Option(metavar="CLASS", help="The class to explain (multiclass models).")
]
SEQ = "GATTACAGCTAGCTTAACGA"
ISM_EXAMPLES = examples(
    ("Effect of every single-base change of a 5' UTR", f"explain ism yeast-utr {SEQ}"),
    ("The same as JSON", f"explain ism yeast-utr {SEQ} --json"),
    ("Only positions 5 to 12", f"explain ism yeast-utr {SEQ} --region 5:12"),
)
OCCLUSION_EXAMPLES = examples(
    ("Which stretches of a gene matter", f"explain occlusion amr-resistance {SEQ}"),
    ("In blocks of 5 nt, as JSON", f"explain occlusion amr-resistance {SEQ} --block 5 --json"),
)
MOTIFS_EXAMPLES = examples(
    ("Motifs behind the scores of a file's sequences", "explain motifs primer-binding seqs.fa"),
    (
        "Also the three strongest first-layer filters",
        "explain motifs primer-binding seqs.fa --filters 3",
    ),
)
DESIGN_EXAMPLES = examples(
    (
        "Raise the expression of a 5' UTR in 20 rounds",
        f"design yeast-utr --start {SEQ} --rounds 20",
    ),
    (
        "Keep positions 1-5, add no ATG, stay within 30-60% GC",
        f"design yeast-utr --start {SEQ} --fixed 1-5 --forbid ATG --gc 0.3:0.6",
    ),
)


def _predictor(model: str, store: str | None) -> Predictor:
    return Predictor.from_store(store_from_settings(load_settings(), store), model)


@explain_app.command("ism", epilog=ISM_EXAMPLES)
def ism_command(
    model: ModelArgument,
    sequence: Annotated[
        str, typer.Argument(metavar="SEQUENCE", help="The DNA sequence to explain.")
    ],
    region: Annotated[
        str | None,
        typer.Option(
            metavar="START:END", help="Only these 1-based positions, e.g. 5:12 (at most 500 nt)."
        ),
    ] = None,
    store: StoreOption = None,
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score every single-base substitution of SEQUENCE (or of a region of it) in one batch."""
    predictor = _predictor(model, store)
    first = 1
    if region is None:
        result = ism(predictor, sequence, target)
    else:
        first, last = _region(region)
        result = ism_region(predictor, sequence, first, last, target)
    if as_json:
        typer.echo(json.dumps(asdict(result)))
        return
    table = Table(title=f"{model}: score {result.score:.4g}")
    for column in ("pos", "base", "importance", "->A", "->C", "->G", "->T"):
        table.add_column(column, justify="right")
    for i, (base, row) in enumerate(zip(result.sequence, result.effects, strict=True)):
        cells = [f"{result.importance[i]:.4f}", *[f"{v:+.4f}" for v in row]]
        table.add_row(str(i + first), base, *cells)
    console.print(table)


def _region(text: str) -> tuple[int, int]:
    low, dash, high = text.replace("-", ":").partition(":")
    if not (dash and low.strip().isdigit() and high.strip().isdigit()):
        raise HelixError(f"--region takes START:END, 1-based, such as 1200:1400; got {text!r}.")
    return int(low), int(high)


@explain_app.command("occlusion", epilog=OCCLUSION_EXAMPLES)
def occlusion_command(
    model: ModelArgument,
    sequence: Annotated[
        str, typer.Argument(metavar="SEQUENCE", help="The DNA sequence to explain, any length.")
    ],
    block: Annotated[
        int | None,
        typer.Option(metavar="NT", min=1, help="Block size (default: at most 200 blocks)."),
    ] = None,
    store: StoreOption = None,
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace each block of SEQUENCE in turn and score the change (long sequences)."""
    result = occlusion(_predictor(model, store), sequence, block, target)
    if as_json:
        typer.echo(json.dumps(asdict(result)))
        return
    title = (
        f"{model}: score {result.score:.4g}; {result.block}-nt blocks replaced by "
        f"{'N' if result.fill == 'N' else 'their complement'} ({result.sequences:,} scored)"
    )
    table = Table(title=title)
    for column in ("block", "positions", "change"):
        table.add_column(column, justify="right")
    length = len(result.sequence)
    for k, (start, change) in enumerate(zip(result.starts, result.effects, strict=True)):
        end = min(start + result.block, length)
        table.add_row(str(k + 1), f"{start + 1}-{end}", f"{change:+.4f}")
    console.print(table)


def _read_good(path: str, predictor: Predictor, limit: int) -> tuple[list[str], int]:
    good: list[str] = []
    refused = 0
    for item in validate_records(read_sequences(path), dna_schema(predictor)):
        if isinstance(item, BadRecord):
            refused += 1
        elif len(good) < limit:
            good.append(item.sequence)
    if not good:
        raise HelixError(f"{path} has no sequence this model takes ({refused:,} refused).")
    return good, refused


@explain_app.command("motifs", epilog=MOTIFS_EXAMPLES)
def motifs_command(
    model: ModelArgument,
    input_file: SequenceFile,
    width: Annotated[int, typer.Option(metavar="NT", min=4, help="Window width in nt.")] = 12,
    top: Annotated[int, typer.Option(metavar="N", min=1, help="ISM motifs to report.")] = 3,
    filters: Annotated[
        int, typer.Option(metavar="N", min=0, help="First-layer filters to report (0: none).")
    ] = 0,
    jaspar: Annotated[bool, typer.Option(help="Match each motif against JASPAR CORE.")] = True,
    limit: Annotated[
        int, typer.Option(metavar="N", min=1, help="Sequences to use at most.")
    ] = 2000,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Motifs the model learned: ISM windows over INPUT's sequences, and first-layer filters."""
    predictor = _predictor(model, store)
    sequences, refused = _read_good(input_file, predictor, limit)
    found = ism_motifs(predictor, sequences, width=width, top=top)
    if filters:
        found += filter_motifs(predictor.bundle_path / "model.onnx", top=filters)
    if jaspar:
        for motif in found:
            motif.matches = jaspar_matches(motif.frequencies, top=3)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "sequences": len(sequences),
                    "refused": refused,
                    "motifs": [describe(m) for m in found],
                }
            )
        )
        return
    _print_motifs(found, len(sequences), refused)


def _print_motifs(found: list[Motif], used: int, refused: int) -> None:
    table = Table(title=f"motifs from {used:,} sequences ({refused:,} refused)")
    for column in ("source", "consensus", "support", "bits", "best JASPAR matches"):
        table.add_column(column)
    for motif in found:
        best = ", ".join(
            f"{m.matrix_id} {m.name} ({m.score:.2f}, {m.strand})" for m in motif.matches
        )
        support = str(motif.support) if motif.support else "-"
        table.add_row(motif.source, motif.consensus, support, f"{motif.information:.1f}", best)
    console.print(table)


def _positions(text: str) -> list[int]:
    found: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, dash, high = part.partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())):
            raise HelixError(
                f"--fixed takes 1-based positions and ranges such as 1,5-8; got {part!r}."
            )
        found += list(range(int(low), int(high or low) + 1))
    return found


def _gc_range(text: str) -> tuple[float, float]:
    low, colon, high = text.partition(":")
    try:
        return (float(low), float(high)) if colon else (0.0, 1.0)
    except ValueError:
        raise HelixError(f"--gc takes LOW:HIGH fractions such as 0.3:0.6; got {text!r}.") from None


def design(
    model: ModelArgument,
    start: Annotated[str, typer.Option(metavar="SEQUENCE", help="The DNA sequence to start from.")],
    goal: Annotated[
        str,
        typer.Option(
            metavar="GOAL",
            help="Maximise (max), minimise (min) or approach a score (target=SCORE).",
        ),
    ] = "max",
    rounds: Annotated[int, typer.Option(metavar="N", help="Rounds of one base change each.")] = 10,
    fixed: Annotated[
        str, typer.Option(metavar="POSITIONS", help="1-based positions never changed, e.g. 1-5,12.")
    ] = "",
    forbid: Annotated[
        list[str] | None, typer.Option(metavar="MOTIF", help="A motif never to add (repeatable).")
    ] = None,
    gc: Annotated[
        str, typer.Option(metavar="LOW:HIGH", help="Allowed GC fraction, e.g. 0.3:0.6.")
    ] = "0:1",
    target: Annotated[
        str | None, typer.Option(metavar="CLASS", help="The class to optimise (multiclass models).")
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Design a sequence: greedy rounds of the best allowed single-base change."""
    steps = run_design(
        _predictor(model, store),
        start,
        goal=goal,
        rounds=rounds,
        fixed=_positions(fixed),
        forbid=[m.upper() for m in forbid or []],
        gc=_gc_range(gc),
        target=target,
    )
    if as_json:
        typer.echo(json.dumps([asdict(s) for s in steps]))
        return
    table = Table(title=f"{model}: goal {goal}, {len(steps) - 1} rounds")
    for column in ("round", "change", "score", "sequence"):
        table.add_column(column)
    for step in steps:
        table.add_row(str(step.round), step.change or "start", f"{step.score:.4g}", step.sequence)
    console.print(table)
