"""Streaming readers for sequence files: FASTA, CSV/TSV and one-sequence-per-line text.

Contract:
- :func:`read_sequences` takes a path or a binary stream (optionally gzip-compressed, detected by
  content) and yields, lazily and in file order, one item per record: a :class:`Record` (index,
  line, id, raw sequence text, other fields) or a :class:`BadRecord` (the same location plus a
  located :class:`~helixserve.errors.InputError`). Memory is bounded by ``max_length`` (a longer
  record is reported and skipped without being held), never by the file: big files stream.
- A bad record never stops the others: undecodable bytes, NUL bytes, a FASTA header with no
  sequence, a CSV row with the wrong number of fields or an unclosed quote, an over-long record
  each give a ``BadRecord`` and reading goes on. A truncated gzip gives a final ``BadRecord`` for
  the record it cut, after every complete record before it.
- ``max_decompressed`` caps what a gzip file may inflate to: past it,
  :class:`~helixserve.errors.FileTooLarge` stops the whole file (a gzip bomb is refused, not
  read to the end). ``None`` (the default): no cap.
- Whole-file problems raise :class:`~helixserve.errors.InvalidFile`: an empty file (no bytes, or
  no record at all — only blank lines, comments or a header), a binary file, a named column that
  is not in the header, a FASTA file that does not start with a header, a text-mode stream.
- Formats: ``fasta`` (multi-line records, ``>id description`` headers, ``;`` comments and blank
  lines ignored), ``csv`` / ``tsv`` (header row; sequence column named or found among
  :data:`SEQUENCE_COLUMNS`, id column named or found among :data:`ID_COLUMNS`, case-insensitive;
  a one-column file whose first cell looks like a sequence is read as headerless), ``text`` (one
  sequence per non-blank line; ``#`` comments and a first line such as ``sequence`` are skipped).
  ``auto`` picks by content (a ``>`` means FASTA, a tab TSV, a comma CSV), then by extension.
  A CSV whose first line holds semicolons and no comma is read with ``;`` (a spreadsheet saved
  where the comma is the decimal mark): :func:`delimiter_for`.
- Records are *read*, not validated: :func:`validate_records` checks each against a model's
  :class:`SequenceSchema` and turns failures into located ``BadRecord`` items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from helixserve.errors import FileTooLarge, InputError, InvalidFile, InvalidSequence
from helixserve.inputs.parquet import is_parquet, parquet_table
from helixserve.inputs.records import BadRecord, Record, bad_record
from helixserve.inputs.sequence import (
    DEFAULT_MAX_SEQUENCE_LENGTH,
    SequenceSchema,
    validate_sequence,
)
from helixserve.inputs.table import ID_COLUMNS, ColumnSpec, TableRow, read_table
from helixserve.inputs.textio import (
    Line,
    Source,
    check_head,
    iter_lines,
    line_problem,
    opened,
    prefix_line,
    source_name,
)

Format = Literal["auto", "fasta", "csv", "tsv", "text"]
SEQUENCE_COLUMNS = ("sequence", "seq", "dnasequence", "dna_sequence", "dna", "rna", "utr")
FASTA_EXTENSIONS = (".fa", ".fasta", ".fna", ".ffn", ".fas")
_NUCLEOTIDES = frozenset("ACGTUNacgtun")
ReadItem = Record | BadRecord


def read_sequences(
    source: Source,
    *,
    format: Format = "auto",
    sequence_col: str | None = None,
    id_col: str | None = None,
    max_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    max_decompressed: int | None = None,
) -> Iterator[ReadItem]:
    """Stream the records of a sequence file; see the module contract."""
    with opened(source, max_decompressed) as stream:
        if is_parquet(stream):
            yield from _counted(
                map(_row_to_item, parquet_table(stream, sequence_columns(sequence_col, id_col)))
            )
            return
        head = check_head(stream)
        chosen = format if format != "auto" else detect_format(source_name(source), head)
        lines = iter_lines(stream, max_line=max_length + 1024)
        if chosen == "fasta":
            items = _read_fasta(lines, max_length)
        elif chosen == "text":
            items = _read_text(lines)
        else:
            items = _read_delimited(lines, delimiter_for(chosen, head), sequence_col, id_col)
        yield from _counted(items)


def _counted(items: Iterator[ReadItem]) -> Iterator[ReadItem]:
    count = 0
    for count, item in enumerate(items, start=1):  # noqa: B007 - count is used below
        yield item
    if count == 0:
        raise InvalidFile(
            "file has no records: it holds only blank lines, comments or a header. "
            "Add at least one sequence."
        )


def detect_format(name: str, head: bytes) -> Literal["fasta", "csv", "tsv", "text"]:
    """Pick a format from the first bytes (a ``>`` means FASTA), then from the extension."""
    first = next((ln for ln in head.splitlines() if ln.strip()), b"").lstrip(b"\xef\xbb\xbf")
    lower = name.lower().removesuffix(".gz")
    if first.startswith(b">") or lower.endswith(FASTA_EXTENSIONS):
        return "fasta"
    if lower.endswith((".tsv", ".tab")) or b"\t" in first:
        return "tsv"
    if lower.endswith(".csv") or b"," in first:
        return "csv"
    return "text"


def delimiter_for(chosen: str, head: bytes) -> str:
    """The field delimiter of a ``csv`` or ``tsv`` file: a tab for TSV; for CSV a semicolon when
    the first line holds semicolons and no comma, else a comma."""
    if chosen == "tsv":
        return "\t"
    first = next((ln for ln in head.splitlines() if ln.strip()), b"")
    return ";" if b";" in first and b"," not in first else ","


def _read_fasta(lines: Iterator[Line], max_length: int) -> Iterator[ReadItem]:
    pending: _PendingFasta | None = None
    index = 0
    for number, text in _guard(lines):
        if isinstance(text, InvalidFile):  # truncated: the record being read is incomplete
            where = (
                (pending.index, pending.line, pending.id) if pending else (index + 1, number, None)
            )
            yield bad_record(text, *where)
            return
        if isinstance(text, InputError):
            if pending is None:
                raise InvalidFile(f"line {number:,}: {text.problem}")
            pending.fail(number, text.problem)
        elif text.startswith(">"):
            if pending is not None:
                yield pending.finish()
            index += 1
            pending = _PendingFasta(index, number, text, max_length)
        elif not text.strip() or text.startswith(";"):
            continue
        elif pending is None:
            raise InvalidFile(
                "this line is not a FASTA header: a FASTA file starts with a line such as "
                f"'>seq1', got '{_printable(text[:30])}'. Add a '>name' line above each "
                "sequence, or upload the file as plain text (one sequence per line).",
                line=number,
            )
        else:
            pending.add(number, text)
    if pending is not None:
        yield pending.finish()


class _PendingFasta:
    """A FASTA record being assembled from its header line and sequence lines."""

    def __init__(self, index: int, line: int, header_line: str, max_length: int) -> None:
        self.index, self.line, self.max_length = index, line, max_length
        parts = header_line[1:].strip().split(maxsplit=1)
        self.problem = line_problem(header_line)
        self.id = parts[0] if parts and self.problem is None else None
        self.description = parts[1] if len(parts) > 1 else ""
        self.chunks: list[str] = []
        self.length = 0
        self.problem_line = line

    def fail(self, number: int, problem: str) -> None:
        if self.problem is None:
            self.problem, self.problem_line = problem, number
        self.chunks = []

    def add(self, number: int, text: str) -> None:
        if self.problem is not None:
            return
        problem = line_problem(text)
        chunk = text.strip()
        self.length += len(chunk)
        if problem is None and self.length > self.max_length:
            problem = (
                f"the sequence is longer than {self.max_length:,} nt, the limit; it was skipped. "
                "Split it, or raise HELIXSERVE_MAX_SEQUENCE_LENGTH."
            )
        if problem is not None:
            self.fail(number, problem)
        else:
            self.chunks.append(chunk)

    def finish(self) -> ReadItem:
        if self.problem is not None:
            error: InputError = InvalidSequence(
                prefix_line(self.problem, self.problem_line, self.line)
            )
        elif not self.chunks:
            error = InvalidSequence(
                "FASTA record has no sequence: its header is followed by another header or the "
                "end of the file. Add the sequence below the header, or delete the header."
            )
        else:
            fields = {"description": self.description} if self.description else {}
            return Record(self.index, self.line, self.id, "".join(self.chunks), fields)
        return bad_record(error, self.index, self.line, self.id)


def _read_text(lines: Iterator[Line]) -> Iterator[ReadItem]:
    index = 0
    seen_content = False
    for number, text in _guard(lines):
        if isinstance(text, InputError):
            yield bad_record(text, index + 1, number)
            if isinstance(text, InvalidFile):
                return
            index += 1
            continue
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        first, seen_content = not seen_content, True
        if first and stripped.lower() in SEQUENCE_COLUMNS:
            continue
        index += 1
        problem = line_problem(text)
        if problem is not None:
            yield bad_record(InvalidSequence(problem), index, number)
        else:
            yield Record(index, number, None, stripped)


def sequence_columns(
    sequence_col: str | None, id_col: str | None
) -> Callable[[list[str]], ColumnSpec]:
    """Pick the sequence and id columns from a header: the ones named, else known names."""

    def columns(header: list[str]) -> ColumnSpec:
        seq = _resolve(header, sequence_col, SEQUENCE_COLUMNS, "sequence", "--sequence-col")
        ident = _resolve(header, id_col, ID_COLUMNS, "id", "--id-col", required=id_col is not None)
        return ColumnSpec(sequence=seq, id=ident)

    return columns


def _read_delimited(
    lines: Iterator[Line], delimiter: str, sequence_col: str | None, id_col: str | None
) -> Iterator[ReadItem]:
    columns = sequence_columns(sequence_col, id_col)
    for row in read_table(lines, delimiter, columns, headerless_single_column=_looks_like_data):
        yield _row_to_item(row)


def _row_to_item(row: TableRow | BadRecord) -> ReadItem:
    if isinstance(row, BadRecord):
        return row
    spec = row.spec
    sequence = row.values[spec.sequence] if spec.sequence is not None else ""
    ident = row.values[spec.id] if spec.id is not None else None
    others = {k: v for k, v in row.values.items() if k not in (spec.sequence, spec.id)}
    return Record(row.index, row.line, ident or None, sequence, others)


def _resolve(
    header: list[str],
    wanted: str | None,
    known: tuple[str, ...],
    what: str,
    option: str,
    *,
    required: bool = True,
) -> str | None:
    """Find a column: the one named (case-insensitive), else the first known name, else fail."""
    lowered = {name.strip().lower(): name for name in header}
    if wanted is not None:
        if wanted.strip().lower() in lowered:
            return lowered[wanted.strip().lower()]
        raise InvalidFile(
            f"column '{wanted}' is not in the file; its header has: {', '.join(header)}. "
            f"Pass one of these as {option}."
        )
    for name in known:
        if name in lowered:
            return lowered[name]
    if not required:
        return None
    raise InvalidFile(
        f"no {what} column found: the header has {', '.join(header)[:300]}, and none is named "
        f"{' / '.join(known[:4])}. Name the column with {option}."
    )


def _looks_like_data(cell: str) -> bool:
    """A single header cell that is really a sequence (mostly nucleotide letters)."""
    stripped = cell.strip()
    if not stripped or stripped.lower() in SEQUENCE_COLUMNS:
        return False
    share = sum(c in _NUCLEOTIDES for c in stripped) / len(stripped)
    return share == 1.0 or (len(stripped) >= 8 and share >= 0.8)


def _printable(text: str) -> str:
    """``text`` safe to echo in a message: undecodable bytes shown as ``\\udcXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _guard(lines: Iterator[Line]) -> Iterator[Line]:
    """Pass lines through; hand a truncated-file error to the caller as a last item."""
    try:
        yield from lines
    except FileTooLarge:
        raise
    except InvalidFile as err:
        yield err.line or 0, err


def validate_records(items: Iterable[ReadItem], schema: SequenceSchema) -> Iterator[ReadItem]:
    """Validate each record's sequence; good ones come back normalised, bad ones as BadRecord."""
    for item in items:
        if isinstance(item, BadRecord):
            yield item
            continue
        try:
            sequence = validate_sequence(item.sequence, schema)
        except InvalidSequence as err:
            located = err.at(index=item.index, record_id=item.id, line=item.line or None)
            yield BadRecord(item.index, item.line, item.id, located)
        else:
            yield Record(item.index, item.line, item.id, sequence, item.fields)
