"""Typed batch outputs: the committed CSV chunks rewritten as one Parquet or JSON Lines file.

Contract: :func:`write_parquet` and :func:`write_jsonl` read the chunk files (CSV/TSV rows without
a header, as :mod:`helixserve.batch.predict` commits them, every cell exact) in order, so memory
holds one chunk at a time. Column types come from the column names: ``index``, ``line`` and
``position`` (and a VCF table's ``pos``, ``window_start``, ``window_end``) are integers (Parquet
int64), ``id``, ``label``, ``field`` and ``message`` (and ``chrom``, ``ref``, ``alt``, ``reason``,
``target``) strings, ``labels`` (a multilabel model's labels, joined by ``;`` in the chunk) a list
of strings (an empty cell: no label, ``[]``), every other column (``value``, ``probability``,
``p_<label>``) floats (float64); any other empty cell is null. Parquet gets one row group per
chunk; JSON Lines one object per row, keys in the header's order, in ASCII (other characters as
``\\u`` escapes, so no reader that splits at Unicode line separators cuts a row), a non-finite
float as null.
Either file is the same byte for byte for the same chunks (no time stamps), which keeps
``--resume`` output identical. Parquet needs pyarrow (``helixserve[parquet]``); without it
raises :class:`~helixserve.errors.InvalidFile` with the install command.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from helixserve.errors import InvalidFile
from helixserve.inputs.parquet import NEEDS_PYARROW
from helixserve.store.manifest import LABEL_SEPARATOR

INTEGER_COLUMNS = frozenset({"index", "line", "position", "pos", "window_start", "window_end"})
TEXT_COLUMNS = frozenset(
    {"id", "label", "field", "message", "chrom", "ref", "alt", "reason", "target"}
)
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
    if name in LIST_COLUMNS:  # a multilabel model's labels, joined in the chunk
        return [] if cell == "" else cell.split(LABEL_SEPARATOR)
    if cell == "":
        return None
    if name in INTEGER_COLUMNS:
        return int(cell)
    if name in TEXT_COLUMNS:
        return cell
    return float(cell)


def chunk_rows(chunk: Path, delimiter: str) -> list[list[str]]:
    text = chunk.read_bytes().decode("utf-8")  # not read_text: a "\r" in a cell stays
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def write_parquet(target: Path, header: list[str], delimiter: str, chunks: Iterable[Path]) -> None:
    """Write the chunks' rows to ``target`` as Parquet; see the module contract."""
    pa, pq = _pyarrow()
    schema = _schema(pa, header)
    with pq.ParquetWriter(str(target), schema, compression="zstd") as writer:
        for chunk in chunks:
            rows = chunk_rows(chunk, delimiter)
            columns = [[_value(row[k], name) for row in rows] for k, name in enumerate(header)]
            writer.write_table(pa.table(columns, schema=schema))


def _json_value(cell: str, name: str) -> int | float | str | list[str] | None:
    value = _value(cell, name)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_jsonl(out: IO[bytes], header: list[str], delimiter: str, chunks: Iterable[Path]) -> None:
    """Write the chunks' rows to ``out`` as JSON Lines; see the module contract."""
    for chunk in chunks:
        lines = [
            json.dumps(
                {name: _json_value(row[k], name) for k, name in enumerate(header)},
                allow_nan=False,
            )
            for row in chunk_rows(chunk, delimiter)
        ]
        out.write("".join(line + "\n" for line in lines).encode("utf-8"))
