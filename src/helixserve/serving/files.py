"""``POST /api/v1/models/{name}/predict-file``: score an uploaded file, keeping the good rows.

Contract:
- DNA models read FASTA / CSV / TSV / one-per-line text, gzip or not (format by content, then by
  file name); tabular models read CSV/TSV with a header naming the features; image models take
  one image file. Reading runs in a worker thread, so a big file never blocks the server.
- Every record is either predicted or reported: bad records (unreadable, invalid) come back in
  ``errors`` with their 1-based record number (``index``), ``id``, ``line``, field, position and
  message; the good ones are predicted in chunks through the model's micro-batcher.
- JSON by default; with ``Accept: text/csv`` a CSV with one row per record in file order
  (``index,id,line,<prediction columns>,error``; the prediction columns of
  :func:`~helixserve.runtime.predictor.prediction_columns`, a multilabel model's labels joined
  by ``;``), cells that a spreadsheet would run as a formula neutralised. A whole-file problem
  (empty, binary, no records) raises :class:`~helixserve.errors.InvalidFile` (422).
- :class:`UploadLimits` bounds what one upload may cost once read: a gzip file that inflates past
  ``max_decompressed`` bytes (a gzip bomb), or a file of more than ``max_records`` records, raises
  :class:`~helixserve.errors.FileTooLarge` (413) as soon as the limit is passed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zlib
from dataclasses import dataclass
from typing import IO, Any

from helixserve.errors import FileTooLarge, InputError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.readers import detect_format, read_sequences
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.table import csv_safe
from helixserve.inputs.tabular import FeatureRow, TabularSchema, read_rows
from helixserve.inputs.textio import GZIP_MAGIC
from helixserve.runtime.predictor import ItemError, prediction_columns
from helixserve.serving.domain import prediction_list
from helixserve.serving.problems import Reply, json_reply
from helixserve.serving.registry import LoadedModel
from helixserve.store.manifest import LABEL_SEPARATOR

CHUNK = 512


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may hold once read (HELIXSERVE_MAX_DECOMPRESSED_BYTES / _RECORDS)."""

    max_decompressed: int
    max_records: int


@dataclass
class Row:
    index: int
    line: int
    id: str | None
    item: object = None
    prediction: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def _read(model: LoadedModel, stream: IO[bytes], filename: str, limits: UploadLimits) -> list[Row]:
    schema = model.manifest.input
    rows: list[Row] = []
    if isinstance(schema, ImageSchema):
        return [Row(1, 1, filename or None, stream.read())]
    inflate = limits.max_decompressed
    source: Any = (
        read_rows(stream, schema, max_decompressed=inflate)
        if isinstance(schema, TabularSchema)
        else read_sequences(
            stream,
            format=_sequence_format(stream, filename),  # type: ignore[arg-type]
            max_decompressed=inflate,
        )
    )
    for record in source:
        if len(rows) >= limits.max_records:
            raise FileTooLarge(
                f"the file has more than {limits.max_records:,} records, the limit for one "
                "upload (HELIXSERVE_MAX_UPLOAD_RECORDS); split it, or score it with "
                "`helixserve predict`."
            )
        if isinstance(record, BadRecord):
            row = Row(record.index, record.line, record.id)
            row.error = _error(record.error, record)
        elif isinstance(record, FeatureRow):
            assert isinstance(schema, TabularSchema)
            item = dict(zip(schema.names(), record.values, strict=True))
            row = Row(record.index, record.line, record.id, item)
        else:
            assert isinstance(record, Record)
            row = Row(record.index, record.line, record.id, record.sequence)
        rows.append(row)
    return rows


def _sequence_format(stream: IO[bytes], filename: str) -> str:
    """The file's format from its first bytes (decompressed when gzip) and its name."""
    head = stream.read(65536)
    stream.seek(0)
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 65536)
        except zlib.error:  # damaged: the reader says so, with the file's name for the format
            head = b""
    return detect_format(filename, head)


def _error(err: InputError, row: Row | BadRecord) -> dict[str, Any]:
    located = (
        err
        if err.index is not None
        else err.at(index=row.index, record_id=row.id, line=row.line or None)
    )
    return {
        "index": row.index,
        "id": row.id,
        "line": row.line or None,
        "field": err.field,
        "position": err.position,
        "message": str(located),
    }


async def score_file(
    model: LoadedModel, stream: IO[bytes], filename: str, limits: UploadLimits
) -> list[Row]:
    """Every record of the file, each with its prediction or its error, in file order."""
    rows = await asyncio.to_thread(_read, model, stream, filename, limits)
    todo = [r for r in rows if r.error is None]
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        result = await model.batcher.submit([r.item for r in chunk])
        for row, prediction in zip(chunk, prediction_list(result), strict=True):
            row.prediction = prediction
        for failed in result.errors:
            row = chunk[failed.index]
            row.error = _error(_item_error(failed), row)
    return rows


async def predict_file(
    model: LoadedModel, stream: IO[bytes], filename: str, as_csv: bool, limits: UploadLimits
) -> Reply:
    """Score an uploaded file; see the module contract."""
    rows = await score_file(model, stream, filename, limits)
    if as_csv:
        return Reply(200, results_csv(model, rows), b"text/csv; charset=utf-8")
    return _json_reply(model, rows, filename)


def _item_error(failed: ItemError) -> InputError:
    return failed.error


def _json_reply(model: LoadedModel, rows: list[Row], filename: str) -> Reply:
    predicted = [
        {"index": r.index, "id": r.id, "line": r.line, **r.prediction}
        for r in rows
        if r.prediction is not None
    ]
    errors = [r.error for r in rows if r.error is not None]
    return json_reply(
        {
            "model": model.name,
            "version": model.version,
            "file": filename,
            "records": len(rows),
            "predicted": len(predicted),
            "failed": len(errors),
            "predictions": predicted,
            "errors": errors,
        }
    )


def results_csv(model: LoadedModel, rows: list[Row]) -> bytes:
    """One CSV row per record, predictions and errors together (formula cells neutralised)."""
    labels = model.manifest.output.labels
    value_cols = prediction_columns(model.manifest)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "id", "line", *value_cols, "error"])
    for r in rows:
        cells = [str(r.index), r.id or "", str(r.line)]
        p = r.prediction
        if p is None:
            cells += [""] * len(value_cols)
        elif labels is None:
            cells.append(f"{p['value']:.6g}")
        else:
            chosen = p.get("labels")
            if chosen is None:
                cells += [p["label"], f"{p['probability']:.6f}"]
            else:
                cells.append(LABEL_SEPARATOR.join(chosen))
            cells += [f"{p['probabilities'][label]:.6f}" for label in labels]
        cells.append("" if r.error is None else r.error["message"])
        writer.writerow([csv_safe(c) for c in cells])
    return out.getvalue().encode()


def errors_csv(rows: list[Row]) -> bytes:
    """The bad records only: ``index,id,line,field,position,message``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "id", "line", "field", "position", "message"])
    for r in rows:
        if r.error is not None:
            e = r.error
            position = "" if e.get("position") is None else str(e["position"])
            cells = [
                str(r.index),
                r.id or "",
                str(r.line),
                e.get("field") or "",
                position,
                e["message"],
            ]
            writer.writerow([csv_safe(c) for c in cells])
    return out.getvalue().encode()
