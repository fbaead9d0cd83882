"""Streaming CSV/TSV parsing shared by sequence files and tabular feature files.

Contract:
- :func:`read_table` takes decoded lines from :func:`helixserve.inputs.textio.iter_lines`, a
  delimiter, and a ``columns`` callback that receives the header and returns the columns the
  caller needs (raising :class:`~helixserve.errors.InvalidFile` when one is missing). It yields one
  :class:`TableRow` (``values`` maps every header name to its cell text) or one
  :class:`~helixserve.inputs.records.BadRecord` per data row, lazily, in file order.
- Quoted fields (including embedded delimiters and newlines) follow RFC 4180 via :mod:`csv`;
  a row's ``line`` is the physical line where it starts. Blank rows are skipped.
- Row-level problems become ``BadRecord`` and reading goes on: a wrong number of fields,
  undecodable bytes or NUL in any of the row's lines, a malformed quote. A truncated gzip ends
  the stream with a final ``BadRecord``.
- ``header=None`` reads the header from the first row; pass a list of names for files without
  one. ``headerless_single_column`` (a predicate on the single header cell) lets a one-column file
  whose first cell is data be read as headerless, with the column named ``sequence``.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from helixserve.errors import InputError, InvalidFile, InvalidSequence
from helixserve.inputs.records import BadRecord, bad_record
from helixserve.inputs.textio import line_problem, prefix_line

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """The columns a caller picked from the header (``None``: not present / not needed)."""

    sequence: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class TableRow:
    """One data row: 1-based ``index`` among data rows, 1-based starting ``line``."""

    index: int
    line: int
    values: dict[str, str]
    spec: ColumnSpec


class _Lines:
    """Feeds csv.reader one physical line at a time and remembers per-line problems."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self._lines = lines
        self.problems: dict[int, str] = {}
        self.last = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        number, text = next(self._lines)
        self.last = number
        problem = line_problem(text)
        if problem is not None:
            self.problems[number] = problem
        return text + "\n"

    def take_problem(self, first: int, last: int) -> tuple[int, str] | None:
        found = None
        for number in range(first, last + 1):
            problem = self.problems.pop(number, None)
            if problem is not None and found is None:
                found = (number, problem)
        return found


def read_table(
    lines: Iterator[tuple[int, str]],
    delimiter: str,
    columns: Callable[[list[str]], ColumnSpec],
    *,
    header: list[str] | None = None,
    headerless_single_column: Callable[[str], bool] | None = None,
) -> Iterator[TableRow | BadRecord]:
    """Yield the data rows of a delimited file; see the module contract."""
    feed = _Lines(lines)
    reader = csv.reader(feed, delimiter=delimiter)
    pending: list[str] | None = None
    if header is None:
        header = _read_header(reader, feed)
        if len(header) == 1 and headerless_single_column and headerless_single_column(header[0]):
            header, pending = ["sequence"], header
    spec = columns(header)
    index, start = 0, feed.last if pending is None else feed.last - 1
    while True:
        try:
            row = pending if pending is not None else next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            index += 1
            yield bad_record(_csv_problem(err), index, start + 1)
            start = feed.last
            continue
        except InvalidFile as err:
            yield bad_record(err, index + 1, err.line or feed.last + 1)
            return
        pending = None
        first, start = start + 1, feed.last
        if not any(cell.strip() for cell in row):
            continue
        index += 1
        yield _make_row(row, header, spec, index, first, feed)


def _make_row(
    row: list[str], header: list[str], spec: ColumnSpec, index: int, first: int, feed: _Lines
) -> TableRow | BadRecord:
    problem = feed.take_problem(first, feed.last)
    if problem is not None:
        number, text = problem
        return bad_record(InvalidSequence(prefix_line(text, number, first)), index, first)
    if len(row) != len(header):
        return bad_record(
            InputError(
                f"row has {len(row):,} fields but the header has {len(header):,} "
                f"({_preview(header)}); check for a missing or extra delimiter or an "
                "unclosed quote."
            ),
            index,
            first,
        )
    return TableRow(index, first, dict(zip(header, row, strict=True)), spec)


def _read_header(reader: Iterator[list[str]], feed: _Lines) -> list[str]:
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                problem = feed.take_problem(1, feed.last)
                if problem is not None:
                    raise InvalidFile(f"the header row, line {problem[0]:,}: {problem[1]}")
                return _check_header([cell.strip() for cell in row])
    except csv.Error as err:
        raise InvalidFile(f"the header row cannot be parsed: {err}.") from None
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


def _csv_problem(err: csv.Error) -> InputError:
    return InputError(f"row cannot be parsed as CSV ({err}); check its quotes and delimiters.")


def _preview(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names):,} columns)" if len(names) > limit else "")
