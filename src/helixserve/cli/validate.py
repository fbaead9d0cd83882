"""``helixserve validate``: check a sequence file against a DNA schema and report every bad record.

Contract: reads FASTA / CSV / TSV / text (optionally gzip) through :mod:`helixserve.inputs`,
streaming; prints a summary and a table of the first ``--show`` bad records (record, id, line,
message); writes *all* bad records to ``--errors`` as CSV (cells that a spreadsheet would run as a
formula are prefixed with ``'``). Exit status 0, or 1 with ``--strict`` when a record is invalid;
a file that cannot be read at all is ``Error: ...`` and exit 1.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from helixserve.cli.options import examples
from helixserve.errors import HelixError
from helixserve.inputs.readers import read_sequences, validate_records
from helixserve.inputs.records import BadRecord
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.table import csv_safe
from helixserve.settings import load_settings

VALIDATE_EXAMPLES = examples(
    (
        "Check that every record is exactly 50 nt of A, C, G, T",
        "validate src/helixserve/examples/primers.fasta --length 50",
    ),
    (
        "Write every bad record to a CSV; exit 1 if there is one",
        "validate seqs.fasta.gz --errors bad.csv --strict",
    ),
)


def validate(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="FASTA, CSV, TSV or text file; .gz is fine.")
    ],
    length: Annotated[int | None, typer.Option(metavar="NT", help="Exact length.", min=1)] = None,
    min_length: Annotated[
        int | None, typer.Option(metavar="NT", help="Shortest allowed length.", min=1)
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(metavar="NT", help="Longest allowed length.", min=1)
    ] = None,
    alphabet: Annotated[
        Literal["ACGT", "ACGTN"], typer.Option(help="Accepted letters (N: unknown base).")
    ] = "ACGT",
    rna: Annotated[bool, typer.Option(help="Read U as T (RNA input).")] = True,
    format: Annotated[
        Literal["auto", "fasta", "csv", "tsv", "text"], typer.Option(help="File format.")
    ] = "auto",
    sequence_col: Annotated[
        str | None, typer.Option(metavar="COLUMN", help="Sequence column (CSV/TSV).")
    ] = None,
    id_col: Annotated[
        str | None, typer.Option(metavar="COLUMN", help="Id column (CSV/TSV).")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write every bad record to this CSV.")
    ] = None,
    show: Annotated[int, typer.Option(metavar="N", help="Bad records to print.", min=0)] = 20,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if any record is invalid.")
    ] = False,
) -> None:
    """Check each record of a sequence file against a DNA rule; list the bad ones and why."""
    schema = _schema(alphabet, length, min_length, max_length, rna)
    limit = load_settings().max_sequence_length
    records = read_sequences(
        file, format=format, sequence_col=sequence_col, id_col=id_col, max_length=limit
    )
    items = validate_records(records, schema)
    good, bad = 0, 0
    shown: list[BadRecord] = []
    with _ErrorWriter(errors) as writer:
        for item in items:
            if isinstance(item, BadRecord):
                bad += 1
                writer.write(item)
                if len(shown) < show:
                    shown.append(item)
            else:
                good += 1
    _report(file, schema, good, bad, shown, errors)
    if strict and bad:
        raise typer.Exit(code=1)


def _schema(
    alphabet: str, length: int | None, min_length: int | None, max_length: int | None, rna: bool
) -> SequenceSchema:
    try:
        return SequenceSchema(
            alphabet=alphabet,  # type: ignore[arg-type]
            length=length,
            min_length=min_length,
            max_length=max_length,
            rna_to_dna=rna,
        )
    except ValidationError as err:
        reason = err.errors()[0]["msg"].removeprefix("Value error, ")
        raise HelixError(f"the length options do not fit together: {reason}.") from None


class _ErrorWriter:
    """Writes bad records to a CSV file (or nowhere)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        try:
            self._file = None if path is None else path.open("w", newline="", encoding="utf-8")
        except OSError as err:
            raise HelixError(
                f"cannot write the errors file {path}: {err.strerror}; choose a file in a "
                "folder you can write to."
            ) from None
        self._csv = None if self._file is None else csv.writer(self._file)
        if self._csv is not None:
            self._csv.writerow(["record", "id", "line", "message"])

    def __enter__(self) -> _ErrorWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def write(self, item: BadRecord) -> None:
        if self._csv is not None:
            cells = [str(item.index), item.id or "", str(item.line), item.error.problem]
            self._csv.writerow([csv_safe(c) for c in cells])


def _report(
    file: Path,
    schema: SequenceSchema,
    good: int,
    bad: int,
    shown: list[BadRecord],
    errors: Path | None,
) -> None:
    console = Console()
    rule = f"{schema.length_rule()}, letters {schema.letters()}"
    total = good + bad
    noun = "record" if total == 1 else "records"
    console.print(
        f"[bold]{escape(str(file))}[/]: {total:,} {noun} checked against {rule}", highlight=False
    )
    console.print(f"  [green]{good:,} valid[/], [red]{bad:,} invalid[/]", highlight=False)
    if shown:
        table = Table("record", "id", "line", "problem", show_lines=False)
        for item in shown:
            table.add_row(
                f"{item.index:,}", Text(item.id or ""), f"{item.line:,}", Text(item.error.problem)
            )
        console.print(table)
        if bad > len(shown):
            console.print(f"  ... and {bad - len(shown):,} more", highlight=False)
    if errors is not None:
        console.print(f"  every invalid record written to {escape(str(errors))}", highlight=False)
