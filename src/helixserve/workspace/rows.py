"""A dataset file as rows of named text cells, whatever its format, read through helixserve.inputs.

Contract:
- :func:`open_rows` opens a dataset file (a path on this machine; ``filename`` is the name it was
  uploaded under, used to recognise the format) and yields a :class:`DatasetRows`: its
  :data:`TableFormat`, its column names (``header``, complete once the first row has been read)
  and ``items``, a lazy iterator of :class:`~helixserve.inputs.table.TableRow` (every column's
  cell as text) or located :class:`~helixserve.inputs.records.BadRecord`, in file order.
- Formats, by content first: a zip (``images``: image files plus a labels table,
  :mod:`helixserve.inputs.imagezip`), Parquet (``parquet``), else by
  :func:`~helixserve.inputs.readers.detect_format`: FASTA (columns ``id``, ``sequence``,
  ``description``), one sequence per line (``text``: column ``sequence``), CSV or TSV (the
  header's columns). gzip is recognised by content everywhere. Nothing is parsed here: each
  format is read by its reader in :mod:`helixserve.inputs`, which states its own contract.
- Limits (:class:`ProfileLimits`): more than ``max_rows`` rows raises
  :class:`~helixserve.errors.FileTooLarge` (as does inflating past ``max_decompressed``); a
  sequence longer than ``max_sequence_length`` or an image over the image limits is a refused row.
  Whole-file errors (:class:`~helixserve.errors.InvalidFile` and subclasses) are raised with the
  file name in front of their message.
- :class:`RowChecker` is the one definition of a *good row* beyond what the reader refuses: every
  ``sequence`` column holds a valid DNA/RNA sequence
  (:func:`~helixserve.inputs.sequence.validate_sequence`: the letters ACGTN and the IUPAC
  ambiguity codes, U read as T — whether a model takes the codes is its recipe's rule) and every
  ``number`` column a number or a missing value
  (:func:`~helixserve.inputs.tabular.parse_value`). Profiles and subset tables both use it, so
  row numbers agree between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from helixserve.errors import FileTooLarge, InputError, InvalidFile, InvalidSequence
from helixserve.inputs.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from helixserve.inputs.imagezip import ImageZip, is_zip, open_image_zip
from helixserve.inputs.parquet import is_parquet, parquet_table
from helixserve.inputs.readers import delimiter_for, detect_format, read_sequences
from helixserve.inputs.records import BadRecord, Record, bad_record
from helixserve.inputs.sequence import (
    DEFAULT_MAX_SEQUENCE_LENGTH,
    SequenceSchema,
    validate_sequence,
)
from helixserve.inputs.table import ID_COLUMNS, ColumnSpec, TableRow, read_table
from helixserve.inputs.tabular import Feature, TabularSchema, parse_value
from helixserve.inputs.textio import check_head, iter_lines, opened
from helixserve.settings import Settings

TableFormat = Literal["csv", "tsv", "fasta", "text", "parquet", "images"]
Role = Literal["sequence", "number", "category", "split", "id", "image", "text"]
Item = TableRow | BadRecord
FASTA_COLUMNS = ["id", "sequence", "description"]
MISSING = TabularSchema(features=[Feature(name="value")], allow_missing=True)
"""The tokens that mean *missing* (``?``, empty, ``NA``, ``NaN``, ``nan``): the inputs layer's."""


@dataclass(frozen=True, slots=True)
class ProfileLimits:
    """What one dataset file may hold once read (see the module contract)."""

    max_rows: int = 10_000_000
    max_decompressed: int | None = None
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    @classmethod
    def from_settings(cls, settings: Settings) -> ProfileLimits:
        """The limits of uploads (``HELIXSERVE_MAX_UPLOAD_RECORDS`` and the others)."""
        return cls(
            max_rows=settings.max_upload_records,
            max_decompressed=settings.max_decompressed_bytes,
            max_sequence_length=settings.max_sequence_length,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
        )


@dataclass
class DatasetRows:
    """An opened dataset file; see the module contract."""

    format: TableFormat
    header: list[str] = field(default_factory=list)
    image_column: str | None = None
    sequence_column: str | None = None
    items: Iterator[Item] = field(default_factory=lambda: iter(()))


@contextmanager
def open_rows(path: Path, filename: str, limits: ProfileLimits) -> Iterator[DatasetRows]:
    """Open a dataset file as rows; see the module contract."""
    with ExitStack() as stack:
        try:
            rows = stack.enter_context(_open(path, filename, limits))
        except InvalidFile as err:
            raise _named(err, filename) from None
        rows.items = _capped(_named_errors(rows.items, filename), limits.max_rows, filename)
        yield rows


def _named(err: InvalidFile, filename: str) -> InvalidFile:
    return type(err)(f"dataset file {filename}: {err.problem}", line=err.line)


@contextmanager
def _open(path: Path, filename: str, limits: ProfileLimits) -> Iterator[DatasetRows]:
    if path.is_file() and is_zip(path):
        with open_image_zip(
            path,
            max_image_bytes=limits.max_image_bytes,
            max_image_pixels=limits.max_image_pixels,
            max_decompressed=limits.max_decompressed,
        ) as archive:
            rows = DatasetRows("images")
            rows.items = _follow(archive, rows)
            yield rows
        return
    with opened(path, limits.max_decompressed) as stream:
        if is_parquet(stream):
            rows = DatasetRows("parquet")
            rows.items = parquet_table(stream, _any_columns(rows))
            yield rows
            return
        head = check_head(stream)
        chosen = detect_format(filename, head)
        if chosen in ("fasta", "text"):
            header = FASTA_COLUMNS if chosen == "fasta" else ["sequence"]
            rows = DatasetRows(chosen, header=header, sequence_column="sequence")
            rows.items = _sequence_rows(path, chosen, limits)
        else:
            rows = DatasetRows(chosen)
            delimiter = delimiter_for(chosen, head)
            rows.items = read_table(iter_lines(stream), delimiter, _any_columns(rows))
        yield rows


def _follow(archive: ImageZip, rows: DatasetRows) -> Iterator[Item]:
    """The zip's rows, keeping ``rows``' header and image column up to date."""
    for item in archive.rows:
        rows.header, rows.image_column = archive.header, archive.image_column or None
        yield item


def _any_columns(rows: DatasetRows) -> Callable[[list[str]], ColumnSpec]:
    """Keep every column; note the header and an id column (:data:`ID_COLUMNS`) if any."""

    def columns(header: list[str]) -> ColumnSpec:
        rows.header = header
        lowered = {name.strip().lower(): name for name in header}
        return ColumnSpec(id=next((lowered[c] for c in ID_COLUMNS if c in lowered), None))

    return columns


def _sequence_rows(
    path: Path, chosen: Literal["fasta", "text"], limits: ProfileLimits
) -> Iterator[Item]:
    spec = ColumnSpec(sequence="sequence", id="id" if chosen == "fasta" else None)
    for item in read_sequences(
        path,
        format=chosen,
        max_length=limits.max_sequence_length,
        max_decompressed=limits.max_decompressed,
    ):
        if isinstance(item, BadRecord):
            yield item
        elif chosen == "fasta":
            yield TableRow(item.index, item.line, _fasta_values(item), spec)
        else:
            yield TableRow(item.index, item.line, {"sequence": item.sequence}, spec)


def _fasta_values(record: Record) -> dict[str, str]:
    return {
        "id": record.id or "",
        "sequence": record.sequence,
        "description": record.fields.get("description", ""),
    }


def _named_errors(items: Iterator[Item], filename: str) -> Iterator[Item]:
    """Pass items through; put the file name in front of a whole-file error's message."""
    try:
        yield from items
    except InvalidFile as err:
        raise _named(err, filename) from None


def _capped(items: Iterator[Item], max_rows: int, filename: str) -> Iterator[Item]:
    for count, item in enumerate(items, start=1):
        if count > max_rows:
            raise FileTooLarge(
                f"dataset file {filename}: it holds more than {max_rows:,} rows, the limit for "
                "one dataset (HELIXSERVE_MAX_UPLOAD_RECORDS); split it into smaller files."
            )
        yield item


def display_name(name: str) -> str:
    """A column's name for messages: ``(unnamed)`` for a blank header cell."""
    return name if name.strip() else "(unnamed)"


class RowChecker:
    """Checks a row's ``sequence`` and ``number`` cells; see the module contract."""

    def __init__(self, roles: Mapping[str, Role], limits: ProfileLimits) -> None:
        self.sequences = [name for name, role in roles.items() if role == "sequence"]
        self.numbers = [name for name, role in roles.items() if role == "number"]
        self.schema = SequenceSchema(
            alphabet="IUPAC", ambiguity="frequencies", max_length=limits.max_sequence_length
        )
        self.features = {name: Feature(name=display_name(name)) for name in self.numbers}

    @property
    def active(self) -> bool:
        """Whether any column is checked."""
        return bool(self.sequences or self.numbers)

    def check(self, row: TableRow, id_column: str | None) -> Item:
        """``row`` itself, or a located :class:`BadRecord` naming the column and the problem."""
        problem = self.problem(row.values)
        if problem is None:
            return row
        ident = row.values.get(id_column) if id_column else None
        return bad_record(problem, row.index, row.line, ident or None)

    def problem(self, values: Mapping[str, str]) -> InputError | None:
        """The first bad cell of a row as an :class:`InputError`, or ``None``."""
        for name in self.sequences:
            try:
                validate_sequence(values.get(name, ""), self.schema, field=name)
            except InvalidSequence as err:
                return InvalidSequence(f"column {display_name(name)}: {err.problem}", field=name)
        for name in self.numbers:
            try:
                parse_value(values.get(name, ""), self.features[name], MISSING)
            except InputError as err:
                return InputError(f"column {display_name(name)}: {err.problem}", field=name)
        return None
