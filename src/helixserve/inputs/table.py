"""Streaming CSV/TSV parsing shared by sequence files and tabular feature files.

Contract:
- :func:`read_table` takes lines from :func:`helixserve.inputs.textio.iter_lines`, a delimiter,
  and a ``columns`` callback that receives the header and returns the columns the caller needs
  (raising :class:`~helixserve.errors.InvalidFile` when one is missing). It yields one
  :class:`TableRow` (``values`` maps every header name to its cell text) or one
  :class:`~helixserve.inputs.records.BadRecord` per data row, lazily, in file order.
- Quoted fields follow RFC 4180 (delimiters, doubled quotes, and newlines inside quotes); a row's
  ``line`` is the physical line where it starts. A quote that no line within
  :data:`MAX_QUOTED_LINES` closes makes its row a ``BadRecord``, and reading goes on from the
  next line — a stray quote never swallows the rest of a file.
- Row-level problems become ``BadRecord`` and reading goes on: a wrong number of fields,
  undecodable bytes or NUL, an over-long line, a stray carriage return. Blank rows are skipped.
  A truncated gzip ends the stream with a final ``BadRecord``.
- ``header=None`` reads the header from the first row; pass a list of names for files without
  one. ``headerless_single_column`` (a predicate on the single header cell) lets a one-column file
  whose first cell is data be read as headerless, with the column named ``sequence``.
- :func:`csv_safe` prefixes ``'`` to a cell a spreadsheet would run as a formula (one starting
  with ``= + - @``, a tab or a carriage return), except a plain number such as ``-0.25``.
- :func:`csv_text` writes rows as CSV/TSV text (``\n`` line ends) that an RFC 4180 reader gives
  back cell for cell, carriage returns included; ``spreadsheet_safe=True`` passes every cell
  through :func:`csv_safe` first.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from helixserve.errors import FileTooLarge, InputError, InvalidFile, InvalidSequence
from helixserve.inputs.records import BadRecord, bad_record
from helixserve.inputs.textio import Line, line_problem

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
MAX_QUOTED_LINES = 100


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """The columns a caller picked from the header (``None``: not present / not needed)."""

    sequence: str | None = None
    id: str | None = None
    rename: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class TableRow:
    """One data row: 1-based ``index`` among data rows, 1-based starting ``line``."""

    index: int
    line: int
    values: dict[str, str]
    spec: ColumnSpec


def logical_lines(lines: Iterator[Line]) -> Iterator[Line]:
    """Join physical lines inside quotes; see the module contract for unclosed quotes."""
    pushed: deque[tuple[int, str | InputError]] = deque()

    def pull() -> Line | None:
        return pushed.popleft() if pushed else next(lines, None)

    while (item := pull()) is not None:
        number, text = item
        if isinstance(text, InputError) or text.count('"') % 2 == 0:
            yield number, text
            continue
        parts: list[str] = [text]
        taken: list[Line] = []
        while len(taken) < MAX_QUOTED_LINES and (nxt := pull()) is not None:
            taken.append(nxt)
            if isinstance(nxt[1], InputError):
                break
            parts.append(nxt[1])
            if sum(p.count('"') for p in parts) % 2 == 0:
                break
        if sum(p.count('"') for p in parts) % 2 == 0 and len(parts) == len(taken) + 1:
            yield number, "\n".join(parts)
        else:
            yield (
                number,
                InputError(
                    f'line {number:,} opens a quote (") that no line within {MAX_QUOTED_LINES} '
                    "closes; close the quote or remove it. The lines after it were read as rows."
                ),
            )
            pushed.extendleft(reversed(taken))


def parse_row(text: str, delimiter: str) -> list[str]:
    """Split one logical line into cells; raise :class:`InputError` on what csv cannot read."""
    if "\r" in text:
        raise InputError(
            "the row holds a carriage return (\\r) inside a field; save the file with standard "
            "line endings (Windows or Unix) and upload it again."
        )
    try:
        return next(csv.reader([text], delimiter=delimiter, strict=False), [])
    except csv.Error as err:
        raise InputError(f"row cannot be parsed as CSV ({err}); check its quotes.") from None


def read_table(
    lines: Iterator[Line],
    delimiter: str,
    columns: Callable[[list[str]], ColumnSpec],
    *,
    header: list[str] | None = None,
    headerless_single_column: Callable[[str], bool] | None = None,
) -> Iterator[TableRow | BadRecord]:
    """Yield the data rows of a delimited file; see the module contract."""
    rows = _Rows(logical_lines(lines), delimiter)
    pending: list[tuple[int, list[str] | InputError]] = []
    if header is None:
        header = _read_header(rows)
        if len(header) == 1 and headerless_single_column and headerless_single_column(header[0]):
            pending, header = [(rows.header_line, [header[0]])], ["sequence"]
    spec = columns(header)
    index = 0
    for number, row in _chain(pending, rows):
        if isinstance(row, list) and not any(cell.strip() for cell in row):
            continue
        index += 1
        yield _make_row(row, header, spec, index, number)


class _Rows(Iterator[tuple[int, list[str] | InputError]]):
    """Parsed rows with their first line number; remembers where the header was."""

    def __init__(self, lines: Iterator[Line], delimiter: str) -> None:
        self._lines, self._delimiter = lines, delimiter
        self.header_line = 1

    def __next__(self) -> tuple[int, list[str] | InputError]:
        number, text = next(self._lines)
        if isinstance(text, InputError):
            return number, text
        problem = line_problem(text)
        if problem is not None:
            return number, InvalidSequence(problem)
        try:
            return number, parse_row(text, self._delimiter)
        except InputError as err:
            return number, err


def _chain(
    pending: list[tuple[int, list[str] | InputError]], rows: _Rows
) -> Iterator[tuple[int, list[str] | InputError]]:
    yield from pending
    try:
        yield from rows
    except FileTooLarge:
        raise
    except InvalidFile as err:  # truncated gzip: report it as the last row
        yield err.line or 0, err


def _make_row(
    row: list[str] | InputError, header: list[str], spec: ColumnSpec, index: int, line: int
) -> TableRow | BadRecord:
    if isinstance(row, InputError):
        return bad_record(row, index, line)
    if len(row) != len(header):
        return bad_record(
            InputError(
                f"row has {len(row):,} fields but the header has {len(header):,} "
                f"({_preview(header)}); check for a missing or extra delimiter or an "
                "unclosed quote."
            ),
            index,
            line,
        )
    return TableRow(index, line, dict(zip(header, row, strict=True)), spec)


def _read_header(rows: _Rows) -> list[str]:
    for number, row in rows:
        if isinstance(row, InputError):
            raise InvalidFile(f"the header row, line {number:,}: {row.problem}")
        if any(cell.strip() for cell in row):
            rows.header_line = number
            return _check_header([cell.strip() for cell in row])
    raise InvalidFile("file has no header row and no data: it holds only blank lines.")


def _check_header(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise InvalidFile(
                f"column '{name}' appears twice in the header; give every column its own name."
            )
        seen.add(name)
    return names


def _preview(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names):,} columns)" if len(names) > limit else "")


ID_COLUMNS = ("id", "name", "seq_id", "sequence_id", "record_id", "identifier", "header")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_safe(cell: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula by prefixing ``'``.

    A plain number (``-0.25``, ``+3``, ``1e-5``) is left as it is: it cannot be a formula, and
    a quote would turn a negative prediction into text."""
    if not cell.startswith(FORMULA_PREFIXES) or _PLAIN_NUMBER.fullmatch(cell):
        return cell
    return "'" + cell


def csv_text(
    rows: Iterable[Sequence[str]], delimiter: str = ",", spreadsheet_safe: bool = False
) -> str:
    """Rows as CSV text; see the module contract.

    Python's writer quotes a cell only for the line terminator's characters, so with ``\n``
    line ends a cell holding ``\r`` would come back cut: such a row is written fully quoted."""
    out = io.StringIO()
    plain = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    quoted = csv.writer(out, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [csv_safe(c) for c in row] if spreadsheet_safe else row
        (quoted if any("\r" in c for c in cells) else plain).writerow(cells)
    return out.getvalue()
