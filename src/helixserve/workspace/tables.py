"""Dataset profiles: what a dataset file holds, read once through helixserve.inputs.

Contract:
- :func:`profile` reads a dataset file (any format of :mod:`helixserve.workspace.rows`: CSV/TSV,
  FASTA, one sequence per line, Parquet, each optionally gzip-compressed, or a zip of images with
  a labels table) and returns a :class:`Profile`: the format, the number of rows, of good rows
  and of refused rows (exact), the first :data:`MAX_REFUSED` refused rows (row number, id, line
  and the inputs layer's message), one :class:`ColumnProfile` per column and the first
  :data:`PREVIEW_ROWS` rows (cells cut at :data:`MAX_CELL` characters).
- Memory does not grow with the file: rows stream; each column keeps counters, at most
  :data:`DISTINCT_CAP` distinct-value hashes (the count is exact below the cap, ``distinct_capped``
  says when it is reached), five examples and min/max. Statistics cover every row the reader
  read (rows refused only for a bad cell included).
- Detected roles (:data:`~helixserve.workspace.rows.Role`), first match wins: ``image`` (the image
  column of a zip); ``sequence`` (the sequence of a FASTA or one-per-line file); ``text`` (no
  value at all); ``split`` (every value one of :data:`SPLIT_VALUES`, any case: ``T``, ``V``,
  ``train``, ``val``, ``test``...); ``number`` (at least :data:`ROLE_SHARE` of the values are
  numbers by the inputs layer's rule); ``sequence`` (valid DNA/RNA by
  :func:`~helixserve.inputs.sequence.validate_sequence`: half of the values of a column named
  like one (:data:`~helixserve.inputs.readers.SEQUENCE_COLUMNS`), else :data:`ROLE_SHARE` of
  them with some value at least 8 nt long); ``category`` (at most :data:`CATEGORY_MAX` distinct
  values, some repeated); ``id`` (no repeated value seen, no spaces); else ``text``. The person
  can correct roles; the caller stores its choice.
- A row is refused when the reader refuses it (wrong field count, bad bytes, bad image...) or when
  a cell of a ``sequence`` or ``number`` column is not valid
  (:class:`~helixserve.workspace.rows.RowChecker`); a refused row never loses the others. When a
  role column holds bad cells the file is read a second time to refuse exactly those rows.
- Errors: whole-file problems raise :class:`~helixserve.errors.InvalidFile` (or
  :class:`~helixserve.errors.FileTooLarge` past a limit) naming the file; a file whose every row
  is refused raises :class:`~helixserve.errors.EmptyDataset` naming the file and the first
  refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from helixserve.errors import EmptyDataset, InputError, InvalidFile, InvalidSequence
from helixserve.inputs.readers import SEQUENCE_COLUMNS
from helixserve.inputs.records import BadRecord
from helixserve.inputs.sequence import SequenceSchema, validate_sequence
from helixserve.inputs.table import TableRow
from helixserve.inputs.tabular import Feature, parse_value
from helixserve.workspace.rows import (
    MISSING,
    DatasetRows,
    ProfileLimits,
    Role,
    RowChecker,
    TableFormat,
    display_name,
    open_rows,
)

MAX_REFUSED = 1000
PREVIEW_ROWS = 20
MAX_CELL = 200
DISTINCT_CAP = 5000
CATEGORY_MAX = 50
UNNAMED = (
    "The column with no name (the file's header leaves its name empty; pandas writes row numbers "
    "there) cannot be used: name it in the file's header and upload the file again to use it."
)
ROLE_SHARE = 0.95
EXAMPLES = 5
SPLIT_VALUES = frozenset(
    {"t", "v", "train", "training", "val", "valid", "validation", "test", "testing", "dev"}
)
MEMO_CAP = 256  # cell texts whose check results a column remembers (categories, splits)
_GIVE_UP_AFTER = 100  # values seen before a column that fails most checks stops being checked


class RefusedRow(BaseModel):
    """One refused row: 1-based row number among data rows, its id and line when known."""

    model_config = ConfigDict(frozen=True)

    row: int
    id: str | None
    line: int | None
    message: str


class ColumnProfile(BaseModel):
    """One column: its detected role and what its values look like."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    values: int
    missing: int
    distinct: int
    distinct_capped: bool
    examples: list[str]
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None


class Profile(BaseModel):
    """What a dataset file holds; see the module contract."""

    model_config = ConfigDict(frozen=True)

    filename: str
    format: TableFormat
    rows: int
    good_rows: int
    refused_rows: int
    refused: list[RefusedRow]
    columns: list[ColumnProfile]
    preview: list[dict[str, str]]

    def roles(self) -> dict[str, Role]:
        """Column name -> detected role."""
        return {c.name: c.role for c in self.columns}


class _Cell(NamedTuple):
    """What the checks found in one cell text (remembered for repeated texts)."""

    missing: bool
    number: float | None
    sequence: bool
    split: bool


class _Column:
    """Counters for one column (constant memory)."""

    def __init__(self, name: str, schema: SequenceSchema) -> None:
        self.name, self.schema = name, schema
        self.feature = Feature(name=display_name(name))
        self.values = self.missing = 0
        self.hashes: set[int] = set()
        self.memo: dict[str, _Cell] = {}
        self.capped = self.repeated = self.spaces = False
        self.examples: list[str] = []
        self.numbers = self.sequences = 0
        self.check_numbers = self.check_sequences = self.split = True
        self.low, self.high = float("inf"), float("-inf")
        self.short = self.long = -1

    def add(self, text: str) -> None:
        cell = self.memo.get(text) or self._classify(text)
        if cell.missing:
            self.missing += 1
            return
        self.values += 1
        self._distinct(text)
        self.split = self.split and cell.split
        if self.check_numbers:
            if cell.number is None:
                self.check_numbers = _worth_checking(self.numbers, self.values)
            else:
                self.numbers += 1
                self.low, self.high = min(self.low, cell.number), max(self.high, cell.number)
        if self.check_sequences:
            if cell.sequence:
                self.sequences += 1
            else:
                self.check_sequences = _worth_checking(self.sequences, self.values)
        if self.short < 0 or len(text) < self.short:
            self.short = len(text)
        self.long = max(self.long, len(text))

    def _classify(self, text: str) -> _Cell:
        stripped = text.strip()
        if stripped in MISSING.missing_tokens:
            return _Cell(True, None, False, False)
        cell = _Cell(
            False,
            self._number(text) if self.check_numbers else None,
            self.check_sequences and self._sequence(text),
            stripped.lower() in SPLIT_VALUES,
        )
        if len(self.memo) < MEMO_CAP:
            self.memo[text] = cell
        return cell

    def _distinct(self, text: str) -> None:
        key = hash(text)
        if key in self.hashes:
            self.repeated = True
        elif len(self.hashes) < DISTINCT_CAP:
            self.hashes.add(key)
            if len(self.examples) < EXAMPLES:
                self.examples.append(_cut(text, 80))
            self.spaces = self.spaces or any(c.isspace() for c in text)
        else:
            self.capped = True

    def _number(self, text: str) -> float | None:
        try:
            return parse_value(text, self.feature, MISSING)
        except InputError:
            return None

    def _sequence(self, text: str) -> bool:
        try:
            validate_sequence(text, self.schema, field=self.name)
        except InvalidSequence:
            return False
        return True


def _worth_checking(passed: int, seen: int) -> bool:
    """Keep checking a column unless most of its values have failed already."""
    return seen < _GIVE_UP_AFTER or passed * 2 >= seen


def _cut(text: str, limit: int = MAX_CELL) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def detect_role(column: _Column, rows: DatasetRows) -> Role:
    """The role of a column from its counters; see the module contract."""
    named = column.name.strip().lower() in SEQUENCE_COLUMNS
    share = ROLE_SHARE * column.values
    sequences = column.sequences >= (0.5 if named else ROLE_SHARE) * column.values
    few = not column.capped and len(column.hashes) <= CATEGORY_MAX
    rules: list[tuple[bool, Role]] = [
        (column.name == rows.image_column, "image"),
        (column.name == rows.sequence_column, "sequence"),
        (column.values == 0, "text"),
        (column.split, "split"),
        (column.numbers >= share, "number"),
        (sequences and (named or column.long >= 8), "sequence"),
        (few and column.repeated, "category"),
        (not column.repeated and not column.spaces, "id"),
    ]
    return next((role for matched, role in rules if matched), "text")


def _column_profile(column: _Column, role: Role) -> ColumnProfile:
    numeric = role == "number" and column.numbers > 0
    lengths = role in ("sequence", "text", "id") and column.long >= 0
    return ColumnProfile(
        name=column.name,
        role=role,
        values=column.values,
        missing=column.missing,
        distinct=len(column.hashes),
        distinct_capped=column.capped,
        examples=column.examples,
        min=column.low if numeric else None,
        max=column.high if numeric else None,
        min_length=column.short if lengths else None,
        max_length=column.long if lengths else None,
    )


class _Tally:
    """Rows read and refused, the first refusals and the preview."""

    def __init__(self) -> None:
        self.rows = self.refused_rows = 0
        self.refused: list[RefusedRow] = []
        self.first_error: str | None = None
        self.preview: list[dict[str, str]] = []

    def refuse(self, bad: BadRecord) -> None:
        self.rows += 1
        self.refused_rows += 1
        if self.first_error is None:
            self.first_error = str(bad.error)
        if len(self.refused) < MAX_REFUSED:
            message = bad.error.problem
            self.refused.append(
                RefusedRow(row=bad.index, id=bad.id, line=bad.line or None, message=message)
            )

    def keep(self, row: TableRow) -> None:
        self.rows += 1
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append({k: _cut(v) for k, v in row.values.items()})


def profile(path: Path, filename: str, limits: ProfileLimits | None = None) -> Profile:
    """Profile a dataset file; see the module contract."""
    limits = limits or ProfileLimits()
    schema = SequenceSchema(alphabet="ACGTN", max_length=limits.max_sequence_length)
    columns: dict[str, _Column] = {}
    tally = _Tally()
    with open_rows(path, filename, limits) as rows:
        for item in rows.items:
            if isinstance(item, BadRecord):
                tally.refuse(item)
                continue
            tally.keep(item)
            for name, text in item.values.items():
                column = columns.get(name) or columns.setdefault(name, _Column(name, schema))
                column.add(text)
    ordered = [columns.get(name) or _Column(name, schema) for name in rows.header]
    roles = {c.name: detect_role(c, rows) for c in ordered}
    if _needs_second_pass(ordered, roles):
        tally = _second_pass(path, filename, limits, RowChecker(roles, limits), roles)
    if tally.rows == 0:
        raise InvalidFile(
            f"dataset file {filename}: the file has a header but no data rows; add at least "
            "one row."
        )
    if tally.rows == tally.refused_rows:
        raise EmptyDataset(
            f"dataset file {filename}: no row is valid, all {tally.rows:,} were refused. The "
            f"first: {tally.first_error} Fix the file and upload it again."
        )
    return Profile(
        filename=filename,
        format=rows.format,
        rows=tally.rows,
        good_rows=tally.rows - tally.refused_rows,
        refused_rows=tally.refused_rows,
        refused=tally.refused,
        columns=[_column_profile(c, roles[c.name]) for c in ordered],
        preview=tally.preview,
    )


def _needs_second_pass(columns: list[_Column], roles: dict[str, Role]) -> bool:
    """Whether a sequence or number column holds cells that refuse their row."""
    for column in columns:
        role = roles[column.name]
        if role == "sequence" and (column.sequences < column.values or column.missing):
            return True
        if role == "number" and column.numbers < column.values:
            return True
    return False


def _second_pass(
    path: Path, filename: str, limits: ProfileLimits, checker: RowChecker, roles: dict[str, Role]
) -> _Tally:
    tally = _Tally()
    id_column = next((name for name, role in roles.items() if role == "id"), None)
    with open_rows(path, filename, limits) as rows:
        for item in checked_rows(rows, checker, id_column):
            if isinstance(item, BadRecord):
                tally.refuse(item)
            else:
                tally.keep(item)
    return tally


def checked_rows(
    rows: DatasetRows, checker: RowChecker, id_column: str | None
) -> Iterator[TableRow | BadRecord]:
    """The rows of an opened file, with rows whose role cells are bad turned into BadRecords."""
    for item in rows.items:
        if isinstance(item, BadRecord) or not checker.active:
            yield item
        else:
            yield checker.check(item, id_column or item.spec.id)
