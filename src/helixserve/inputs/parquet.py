"""Parquet input: sequence records and feature rows streamed one row group batch at a time.

Contract:
- :func:`is_parquet` says whether a stream is Parquet, by its first bytes (``PAR1``).
- :func:`parquet_table` reads a seekable binary stream with pyarrow in batches of ``batch_rows``
  rows (memory is bounded by the batch, not the file) and yields
  :class:`~helixserve.inputs.table.TableRow` items whose values are text: strings as they are,
  numbers in their shortest round-trip form, null and NaN as ``""`` (missing). Columns are picked
  by the same ``columns`` callback the CSV reader uses, so sequence / id / feature columns are
  found the same way. Parquet has no lines: rows carry ``line = 0`` and their errors name the
  record only.
- :func:`~helixserve.inputs.readers.read_sequences` and
  :func:`~helixserve.inputs.tabular.read_rows` call it when a stream starts with ``PAR1``, so
  every reader of sequence and table files (batch, uploads, training) takes Parquet too.
- pyarrow is optional (``pip install 'helixserve[parquet]'``); without it, or for a file pyarrow
  cannot read, :class:`~helixserve.errors.InvalidFile` says what to do. A file with no rows is
  refused like an empty CSV.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from helixserve.errors import InvalidFile
from helixserve.inputs.table import ColumnSpec, TableRow

PARQUET_MAGIC = b"PAR1"
NEEDS_PYARROW = (
    "reading or writing Parquet needs pyarrow, which is not installed. Install it with "
    "pip install 'helixserve[parquet]', or convert the file to CSV."
)


def is_parquet(stream: io.BufferedReader) -> bool:
    """Whether a (buffered) stream starts with Parquet's magic bytes; reads nothing. A stream
    that cannot even be peeked at (a damaged gzip) is not Parquet: the text reader then says
    what is wrong with it."""
    try:
        return stream.peek(len(PARQUET_MAGIC))[: len(PARQUET_MAGIC)] == PARQUET_MAGIC
    except (OSError, EOFError, zlib.error):
        return False


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise InvalidFile(NEEDS_PYARROW) from None
    return pq


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def parquet_table(
    stream: IO[bytes], columns: Callable[[list[str]], ColumnSpec], batch_rows: int = 8192
) -> Iterator[TableRow]:
    """Stream the rows of a Parquet file as text cells; see the module contract."""
    pq = _pyarrow_parquet()
    try:
        parquet = pq.ParquetFile(stream)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise InvalidFile(
            f"not a readable Parquet file ({err}). Check that it is complete, or export it again."
        ) from None
    names = [str(n) for n in parquet.schema_arrow.names]
    spec = columns(names)
    index = 0
    for table in _batches(parquet, batch_rows, names):
        for row in zip(*(table[n] for n in names), strict=True):
            index += 1
            yield TableRow(index, 0, {n: _cell(v) for n, v in zip(names, row, strict=True)}, spec)
    if index == 0:
        raise InvalidFile(
            "file has no rows: the Parquet file holds a schema but no data. Add at least one row."
        )


def _batches(parquet: Any, batch_rows: int, names: list[str]) -> Iterator[dict[str, list[Any]]]:
    """Column dicts of at most ``batch_rows`` rows, one row group at a time (a batch never spans
    two groups, so a damaged group loses nothing before it); the damage is an InvalidFile."""
    done = 0
    for group in range(parquet.metadata.num_row_groups):
        batches = parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=names)
        while True:
            try:
                batch = next(batches, None)
            except Exception as err:  # pyarrow's errors for damaged pages are of several types
                raise InvalidFile(
                    f"the Parquet file is damaged after row {done:,} (row group {group + 1}: "
                    f"{str(err).strip()}); the rows before it were read. Export it again."
                ) from None
            if batch is None:
                break
            done += batch.num_rows
            yield batch.to_pydict()
