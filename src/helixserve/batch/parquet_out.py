"""Parquet output for batch runs: the committed CSV chunks rewritten as one typed Parquet file.

Contract: :func:`write_parquet` reads the chunk files (CSV/TSV rows without a header, as
:mod:`helixserve.batch.predict` commits them) in order and writes one row group per chunk, so
memory holds one chunk at a time. Column types come from the column names: ``index``, ``line``
and ``position`` are int64, ``id``, ``label``, ``field`` and ``message`` strings, ``labels`` (a
multilabel model's labels, joined by ``;`` in the chunk) a list of strings (an empty cell: no
label, ``[]``), every other column (``value``, ``probability``, ``p_<label>``) float64; any other
empty cell is null. Formula
neutralisation (a leading ``'``) belongs to CSV and is undone. The file is the same byte for
byte for the same chunks (no time stamps), which keeps ``--resume`` output identical.
Needs pyarrow (``helixserve[parquet]``); without it raises
:class:`~helixserve.errors.InvalidFile` with the install command.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from helixserve.errors import InvalidFile
from helixserve.inputs.parquet import NEEDS_PYARROW
from helixserve.inputs.table import FORMULA_PREFIXES
from helixserve.store.manifest import LABEL_SEPARATOR

INTEGER_COLUMNS = frozenset({"index", "line", "position"})
TEXT_COLUMNS = frozenset({"id", "label", "field", "message"})
LIST_COLUMNS = frozenset({"labels"})


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional dependency
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise InvalidFile(NEEDS_PYARROW) from None
    return pa, pq


def _schema(pa: Any, header: list[str]) -> Any:
    def kind(name: str) -> Any:
        if name in INTEGER_COLUMNS:
            return pa.int64()
        if name in LIST_COLUMNS:
            return pa.list_(pa.string())
        return pa.string() if name in TEXT_COLUMNS else pa.float64()

    return pa.schema([(name, kind(name)) for name in header])


def _value(cell: str, name: str) -> int | float | str | list[str] | None:
    if name in LIST_COLUMNS:  # the cell read as a label is (formula guard undone), then split
        text = _value(cell, "label")
        return [] if text is None else str(text).split(LABEL_SEPARATOR)
    if cell == "":
        return None
    if name in INTEGER_COLUMNS:
        return int(cell)
    if name in TEXT_COLUMNS:
        return cell[1:] if cell.startswith("'") and cell[1:2] in FORMULA_PREFIXES else cell
    return float(cell)


def write_parquet(target: Path, header: list[str], delimiter: str, chunks: Iterable[Path]) -> None:
    """Write the chunks' rows to ``target`` as Parquet; see the module contract."""
    pa, pq = _pyarrow()
    schema = _schema(pa, header)
    with pq.ParquetWriter(str(target), schema, compression="zstd") as writer:
        for chunk in chunks:
            text = chunk.read_text(encoding="utf-8")
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
            columns = [[_value(row[k], name) for row in rows] for k, name in enumerate(header)]
            writer.write_table(pa.table(columns, schema=schema))
