"""Scoring big files on one machine: streaming, constant memory, resumable after a crash.

Contract:
- :func:`score` reads INPUT (FASTA / CSV / TSV / one-per-line text for DNA models, CSV / TSV for
  tabular models; gzip or not; a local path or ``s3://bucket/key``) in chunks of ``batch_size``
  records, so memory does not grow with the file; Parquet input too (by its magic bytes, read a
  row-group batch at a time). OUTPUT (CSV; TSV for ``.tsv``; JSON Lines for ``.jsonl``;
  gzip-compressed for ``.gz``; typed Parquet for ``.parquet``) gets one row per scored record, in
  input order: ``index`` (1-based
  record number), ``id``, then ``label``, ``probability`` and ``p_<label>`` per class, or
  ``value``, or for multilabel models ``labels`` (the labels at or above the threshold, joined
  by ``;``; a list of strings in Parquet) and ``p_<label>`` per label. Records that fail
  validation go to ERRORS (``index,id,line,field,position,message``) and never stop the run.
- Two threads: one reads, validates and encodes the next chunk while the other runs the model on
  the current one (ONNX Runtime releases the GIL), with ``threads`` ONNX Runtime threads.
- Resumable: each finished chunk is written to ``<OUTPUT>.parts/`` and then recorded in a
  journal (``journal.json``, replaced atomically). A run killed at any point leaves at most one
  unrecorded chunk; ``resume=True`` checks that the input, the model and the batch size are the
  same, skips the recorded records and goes on. The final files are joined from the parts and
  moved into place at the end, so a resumed run's output is byte for byte the output of an
  uninterrupted one.
- Every cell is written exactly as the model and the input give it (a label ``+`` stays ``+``),
  so the files round-trip. With ``spreadsheet_safe=True`` the CSV/TSV cells that a spreadsheet
  would run as a formula are neutralised (a leading ``'``, see
  :func:`~helixserve.inputs.table.csv_safe`); Parquet and JSON Lines are never changed. The
  committed chunks are always exact; the choice is made when the final files are assembled.
  A whole-file problem raises :class:`~helixserve.errors.InvalidFile`; a bad resume raises
  :class:`BatchError`.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from helixserve.batch.parquet_out import chunk_rows, write_jsonl, write_parquet
from helixserve.errors import HelixError
from helixserve.inputs.readers import read_sequences
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.table import csv_text
from helixserve.inputs.tabular import FeatureRow, TabularSchema, read_rows
from helixserve.runtime.predictor import (
    BatchPrediction,
    Predictor,
    Prepared,
    prediction_columns,
)
from helixserve.store.fs import S3Options, open_location
from helixserve.store.manifest import LABEL_SEPARATOR

JOURNAL_VERSION = 2  # 2: chunks hold exact cells (1: neutralised)
Progress = Callable[[int, int, int], None]  # (bytes read, records scored, records refused)


class BatchError(HelixError):
    """A batch run cannot start or resume as asked."""


@dataclass
class Summary:
    scored: int
    refused: int
    seconds: float
    output: str
    errors: str | None
    resumed_from: int = 0


@dataclass
class _Chunk:
    number: int
    records: list[Record | FeatureRow | BadRecord]
    prepared: Prepared


class _Source:
    """The input file as a binary stream, with the raw byte position for progress."""

    def __init__(self, uri: str, s3: S3Options | None) -> None:
        self.uri = uri
        if uri.startswith("s3://"):
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            location = open_location(f"s3://{bucket}", s3)
            self.raw: IO[bytes] = location.fs.open(f"{bucket}/{key}", "rb")
            self.size = int(location.fs.size(f"{bucket}/{key}"))
            self.stamp = f"{self.size}:{location.fs.info(f'{bucket}/{key}').get('ETag', '')}"
        else:
            path = Path(uri)
            if not path.is_file():
                raise BatchError(f"input file not found: {uri}; check the path.")
            self.raw = path.open("rb")
            stat = path.stat()
            self.size, self.stamp = stat.st_size, f"{stat.st_size}:{stat.st_mtime_ns}"

    def position(self) -> int:
        try:
            return int(self.raw.tell())
        except (OSError, ValueError):
            return 0


def _records(predictor: Predictor, stream: IO[bytes]) -> Iterator[Record | FeatureRow | BadRecord]:
    schema = predictor.manifest.input
    if isinstance(schema, TabularSchema):
        return read_rows(stream, schema)
    if schema.kind != "dna":
        raise BatchError(
            "`helixserve predict` scores sequence and table files; image models "
            "take one image per request (use the API or the web page)."
        )
    return read_sequences(stream)


def _item(record: Record | FeatureRow, predictor: Predictor) -> object:
    if isinstance(record, FeatureRow):
        schema = predictor.manifest.input
        assert isinstance(schema, TabularSchema)
        return dict(zip(schema.names(), record.values, strict=True))
    return record.sequence


def _prepare(predictor: Predictor, number: int, records: list[Any]) -> _Chunk:
    good = [r for r in records if not isinstance(r, BadRecord)]
    return _Chunk(number, records, predictor.prepare([_item(r, predictor) for r in good]))


def record_chunks(
    predictor: Predictor, stream: IO[bytes], batch_size: int, skip: int, first_chunk: int
) -> Iterator[tuple[int, list[Any]]]:
    """``(chunk number, records)`` in file order, after skipping ``skip`` records (resume)."""
    records: list[Any] = []
    number = first_chunk
    for seen, record in enumerate(_records(predictor, stream), start=1):
        if seen <= skip:
            continue
        records.append(record)
        if len(records) == batch_size:
            yield number, records
            records, number = [], number + 1
    if records:
        yield number, records


def score_chunk(
    predictor: Predictor, number: int, records: list[Any], delimiter: str
) -> tuple[bytes, bytes, tuple[int, int]]:
    """A chunk's output and errors CSV bytes and its (scored, refused) counts (any engine)."""
    chunk = _prepare(predictor, number, records)
    scored, refused = _rows(chunk, predictor.finish(chunk.prepared))
    counts = (len(scored), len(refused))
    return _csv_bytes(scored, delimiter), _csv_bytes(refused, delimiter), counts


def _reader(
    predictor: Predictor,
    stream: IO[bytes],
    batch_size: int,
    skip: int,
    first_chunk: int,
    out: queue.Queue[_Chunk | BaseException | None],
) -> None:
    """Thread body: chunks of records, validated and encoded, onto ``out`` (``None`` = end)."""
    try:
        for number, records in record_chunks(predictor, stream, batch_size, skip, first_chunk):
            out.put(_prepare(predictor, number, records))
        out.put(None)
    except BaseException as err:  # handed to the main thread, which raises it
        out.put(err)


def _header(predictor: Predictor) -> list[str]:
    return ["index", "id", *prediction_columns(predictor.manifest)]


ERROR_HEADER = ["index", "id", "line", "field", "position", "message"]


def _rows(chunk: _Chunk, result: BatchPrediction) -> tuple[list[list[str]], list[list[str]]]:
    """CSV cells of the scored records and of the refused ones, in input order."""
    good = [r for r in chunk.records if not isinstance(r, BadRecord)]
    failed: dict[int, Any] = {e.index: e.error for e in result.errors}
    scored: list[list[str]] = []
    d = result.decoded
    values = d.values.tolist() if d.values is not None else None
    probabilities = d.probabilities.tolist() if d.probabilities is not None else []
    chosen = d.label_index.tolist() if d.label_index is not None else []
    sets, multilabel = result.label_sets(), d.positive is not None
    names = result.label_names or []
    for k, position in enumerate(result.positions.tolist()):
        record = good[position]
        head = [str(record.index), record.id or ""]
        if values is not None:
            scored.append([*head, f"{values[k]:.6g}"])
            continue
        row = probabilities[k]
        answer = (
            [LABEL_SEPARATOR.join(sets[k])]
            if multilabel
            else [names[chosen[k]], f"{row[chosen[k]]:.6f}"]
        )
        scored.append([*head, *answer, *[f"{p:.6f}" for p in row]])
    refused = []
    good_index = {id(r): i for i, r in enumerate(good)}
    for record in chunk.records:
        if isinstance(record, BadRecord):
            refused.append(_error_cells(record.index, record.id, record.line, record.error))
        elif good_index[id(record)] in failed:
            err = failed[good_index[id(record)]]
            located = err.at(index=record.index, record_id=record.id, line=record.line or None)
            refused.append(_error_cells(record.index, record.id, record.line, located))
    return scored, refused


def _error_cells(index: int, record_id: str | None, line: int, err: Any) -> list[str]:
    position = "" if err.position is None else str(err.position)
    where = str(line) if line else ""  # 0: the input has no lines (Parquet)
    return [str(index), record_id or "", where, err.field or "", position, str(err)]


def _csv_bytes(rows: list[list[str]], delimiter: str, spreadsheet_safe: bool = False) -> bytes:
    return csv_text(rows, delimiter, spreadsheet_safe).encode("utf-8")


class _Parts:
    """The committed chunks of one run and their journal (see the module contract)."""

    def __init__(self, folder: Path, identity: dict[str, Any]) -> None:
        self.folder = folder
        self.identity = identity
        self.state = {"chunks": 0, "records": 0, "scored": 0, "refused": 0}

    @property
    def journal(self) -> Path:
        return self.folder / "journal.json"

    def start(self, resume: bool) -> None:
        if self.journal.exists() and not resume:
            raise BatchError(
                f"an unfinished run of this output is in {self.folder}: add --resume "
                "to continue it, or delete that folder to start again."
            )
        if resume and self.journal.exists():
            saved = json.loads(self.journal.read_text(encoding="utf-8"))
            if saved.get("version") != JOURNAL_VERSION:
                raise BatchError(
                    f"cannot resume: the journal {self.journal} was written by another "
                    f"helixserve version (journal format {saved.get('version')}, this one "
                    f"writes {JOURNAL_VERSION}). Delete {self.folder} to start again."
                )
            different = [k for k, v in self.identity.items() if saved.get(k) != v]
            if different:
                raise BatchError(
                    f"cannot resume: the {', '.join(different)} changed since the "
                    f"interrupted run (journal {self.journal}). Delete "
                    f"{self.folder} to start again."
                )
            self.state = {k: int(saved[k]) for k in self.state}
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self._save()

    def commit(
        self, number: int, scored: bytes, refused: bytes, records: int, counts: tuple[int, int]
    ) -> None:
        with self.writing(self.folder):
            for suffix, data in ((".out", scored), (".err", refused)):
                _atomic_write(self.folder / f"chunk-{number:08d}{suffix}", data)
        self.state["chunks"] = number + 1
        self.state["records"] += records
        self.state["scored"] += counts[0]
        self.state["refused"] += counts[1]
        self._save()

    def _save(self) -> None:
        data = {"version": JOURNAL_VERSION, **self.identity, **self.state}
        with self.writing(self.journal):
            _atomic_write(self.journal, json.dumps(data, indent=1).encode())

    @contextmanager
    def writing(self, target: Path) -> Iterator[None]:
        """Turn a failed write (disk full, file too large, permissions) into a BatchError;
        the journal still names every committed chunk, so ``--resume`` goes on from there."""
        try:
            yield
        except OSError as err:
            where = err.filename or target
            raise BatchError(
                f"could not write {where}: {err.strerror or err}. {self.state['records']:,} "
                f"records are committed in {self.folder}; free some space (or fix the "
                "permissions) and run the same command again with --resume."
            ) from None

    def join(self, suffix: str, header: list[str], run: Run, target: Path) -> None:
        """Write the chunks' rows under ``header`` to ``target`` (CSV/TSV, JSON Lines, ``.gz``,
        Parquet)."""
        partial = target.with_name(target.name + ".partial")
        chunks = (self.folder / f"chunk-{n:08d}{suffix}" for n in range(self.state["chunks"]))
        with self.writing(partial):
            self._write(partial, header, run, chunks)
            os.replace(partial, target)

    def _write(self, partial: Path, header: list[str], run: Run, chunks: Iterator[Path]) -> None:
        name = partial.name.removesuffix(".partial")
        if name.endswith(".parquet"):
            write_parquet(partial, header, run.delimiter, chunks)
            return
        with partial.open("wb") as raw, _maybe_gzip(raw, name) as out:
            if name.removesuffix(".gz").endswith(".jsonl"):
                write_jsonl(out, header, run.delimiter, chunks)
                return
            out.write(_csv_bytes([header], run.delimiter, run.spreadsheet_safe))
            for chunk in chunks:
                if run.spreadsheet_safe:
                    rows = chunk_rows(chunk, run.delimiter)
                    out.write(_csv_bytes(rows, run.delimiter, spreadsheet_safe=True))
                    continue
                with chunk.open("rb") as part:
                    shutil.copyfileobj(part, out)


@contextmanager
def _maybe_gzip(raw: IO[bytes], name: str) -> Iterator[IO[bytes]]:
    """``raw`` itself, or a gzip stream into it for a ``.gz`` name (no time stamp: reproducible)."""
    if not name.endswith(".gz"):
        yield raw
        return
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        yield out  # type: ignore[misc]


def _atomic_write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".tmp")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _parts_folder(output: str) -> Path:
    if output.startswith("s3://"):
        import hashlib  # noqa: PLC0415 - only for S3 outputs

        digest = hashlib.sha256(output.encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "helixserve" / "batch" / f"{digest}.parts"
    return Path(output + ".parts")


def _identity(predictor: Predictor, source: _Source, batch_size: int) -> dict[str, Any]:
    return {
        "input": source.uri,
        "input_stamp": source.stamp,
        "model": predictor.label,
        "model_sha256": predictor.manifest.files.get("model.onnx", ""),
        "batch_size": batch_size,
    }


@dataclass
class Run:
    """One run's input, committed parts and targets (shared by the local and the Ray engine)."""

    source: _Source
    parts: _Parts
    output: str
    errors: str
    delimiter: str
    s3: S3Options | None
    started: float
    resumed_from: int
    spreadsheet_safe: bool = False

    def summary(self) -> Summary:
        """What the run did, from its committed parts' counts."""
        state = self.parts.state
        seconds = time.perf_counter() - self.started
        return Summary(
            state["scored"], state["refused"], seconds, self.output, self.errors, self.resumed_from
        )


def begin(
    predictor: Predictor,
    input_uri: str,
    output: str,
    *,
    errors: str | None,
    batch_size: int,
    resume: bool,
    s3: S3Options | None,
    spreadsheet_safe: bool = False,
    identity: dict[str, Any] | None = None,
) -> Run:
    """Open the input and the parts folder (checking a resume); see the module contract.
    ``identity`` adds what else a resumed run must share (e.g. a reference file's stamp)."""
    if batch_size < 1:
        raise BatchError(f"the batch size must be 1 or more, got {batch_size}.")
    started = time.perf_counter()
    source = _Source(input_uri, s3)
    same = {**_identity(predictor, source, batch_size), **(identity or {})}
    parts = _Parts(_parts_folder(output), same)
    parts.start(resume)
    delimiter = "\t" if output.removesuffix(".gz").endswith(".tsv") else ","
    return Run(
        source,
        parts,
        output,
        errors or default_errors(output),
        delimiter,
        s3,
        started,
        parts.state["records"],
        spreadsheet_safe,
    )


def end(predictor: Predictor, run: Run) -> Summary:
    """Assemble the final files from the parts and summarise."""
    run.source.raw.close()
    _finish(predictor, run)
    return run.summary()


def score(
    predictor: Predictor,
    input_uri: str,
    output: str,
    *,
    errors: str | None = None,
    batch_size: int = 4096,
    resume: bool = False,
    s3: S3Options | None = None,
    progress: Progress | None = None,
    spreadsheet_safe: bool = False,
) -> Summary:
    """Score a whole file on this machine; see the module contract."""
    run = begin(
        predictor,
        input_uri,
        output,
        errors=errors,
        batch_size=batch_size,
        resume=resume,
        s3=s3,
        spreadsheet_safe=spreadsheet_safe,
    )
    parts = run.parts
    chunks: queue.Queue[_Chunk | BaseException | None] = queue.Queue(maxsize=2)
    reader = threading.Thread(
        target=_reader,
        name="helixserve-reader",
        daemon=True,
        args=(
            predictor,
            run.source.raw,
            batch_size,
            run.resumed_from,
            parts.state["chunks"],
            chunks,
        ),
    )
    reader.start()
    try:
        _consume(
            predictor, chunks, parts, run.delimiter, lambda: report(progress, run.source, parts)
        )
    except BaseException:
        run.source.raw.close()
        raise
    return end(predictor, run)


def default_errors(output: str) -> str:
    """``out.csv`` -> ``out.errors.csv`` (``.tsv``, ``.jsonl``, ``.gz`` kept; Parquet output: CSV
    errors)."""
    base, gz = (output[:-3], ".gz") if output.endswith(".gz") else (output, "")
    stem, dot, suffix = base.rpartition(".")
    if not dot or "/" in suffix:
        return output + ".errors.csv"
    if suffix == "parquet":
        return f"{stem}.errors.csv"
    return f"{stem}.errors.{suffix}{gz}"


def _consume(
    predictor: Predictor,
    chunks: queue.Queue[_Chunk | BaseException | None],
    parts: _Parts,
    delimiter: str,
    report: Callable[[], None],
) -> None:
    while (item := chunks.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        scored, refused = _rows(item, predictor.finish(item.prepared))
        parts.commit(
            item.number,
            _csv_bytes(scored, delimiter),
            _csv_bytes(refused, delimiter),
            len(item.records),
            (len(scored), len(refused)),
        )
        report()


def report(progress: Progress | None, source: _Source, parts: _Parts) -> None:
    if progress is not None:
        progress(source.position(), parts.state["scored"], parts.state["refused"])


def _finish(predictor: Predictor, run: Run) -> None:
    targets = {".out": (run.output, _header(predictor)), ".err": (run.errors, ERROR_HEADER)}
    assemble(run, targets)


def assemble(run: Run, targets: dict[str, tuple[str, list[str]]]) -> None:
    """Join each suffix's committed chunks under its header into its target (local or S3: CSV,
    TSV, JSON Lines, ``.gz``, Parquet), then remove the parts folder."""
    parts = run.parts
    for suffix, (target, header) in targets.items():
        if target.startswith("s3://"):
            local = parts.folder / f"final{suffix}{_extension(target)}"
            parts.join(suffix, header, run, local)
            bucket, _, key = target.removeprefix("s3://").partition("/")
            open_location(f"s3://{bucket}", run.s3).fs.put_file(str(local), f"{bucket}/{key}")
        else:
            parts.join(suffix, header, run, Path(target))
    shutil.rmtree(parts.folder, ignore_errors=True)


def _extension(target: str) -> str:
    """The suffixes of ``target`` that decide the format (``.parquet``, ``.jsonl``, ``.gz``)."""
    name = target.rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        return ".parquet"
    jsonl = ".jsonl" if name.removesuffix(".gz").endswith(".jsonl") else ""
    return jsonl + (".gz" if name.endswith(".gz") else "")
