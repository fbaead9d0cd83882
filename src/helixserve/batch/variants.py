"""Scoring a VCF file against a reference FASTA: streaming, constant memory, resumable.

Contract:
- :func:`score_vcf` reads the VCF (plain, gzip or bgzip; a local path or ``s3://bucket/key``) in
  chunks of ``batch_size`` records and scores every ALT allele of each with
  :class:`~helixserve.explain.vcf_effects.VcfScorer` against the reference (an indexed FASTA,
  :func:`~helixserve.inputs.reference.open_reference`). Memory is bounded by the chunk.
- OUTPUT by its name: ``.vcf`` / ``.vcf.gz`` (bgzip) gives the input back, every readable record
  line unchanged but for its INFO column, which gains the :data:`INFO_KEYS` (``HX_REF`` the REF
  window's score; per ALT, in ALT order, ``HX_ALT``, ``HX_EFFECT`` and ``HX_STATUS``: ``ok`` or
  the reason code, ``.`` for a value not scored; ``HX_TARGET`` for multiclass / multilabel
  models), the header their ``##INFO`` lines and a ``##helixserve_variants`` line naming the
  model, the reference and the options. Any other name is a table in the formats of
  ``helixserve predict`` (CSV, TSV, JSON Lines, ``.gz``, Parquet): one row per scored ALT allele
  (:func:`table_header`).
- ERRORS (default: OUTPUT with ``.errors.csv`` in place of its extensions) gets one row per
  allele that was not scored and per unreadable line, with the record's number, line, CHROM, POS,
  ID, REF, ALT, the reason code and the message (:func:`error_header`). A bad record never stops
  the run; an unreadable line is left out of a VCF output.
- Two threads, as ``helixserve predict``: one reads the next chunk and cuts, checks and encodes
  its windows while the model runs on the current one.
- Resumable as ``helixserve predict`` is (:mod:`helixserve.batch.predict`: chunks committed to
  ``OUTPUT.parts/`` with a journal, final files assembled at the end, byte for byte those of an
  uninterrupted run); a resume also checks that the reference and the options are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from helixserve.batch.predict import (
    Progress,
    Run,
    Summary,
    assemble,
    begin,
    default_errors,
    report,
)
from helixserve.explain.vcf_effects import Effect, PreparedChunk, VcfOptions, VcfScorer
from helixserve.inputs.records import BadRecord
from helixserve.inputs.reference import Reference, bgzip, open_reference
from helixserve.inputs.table import csv_text
from helixserve.inputs.vcf import VcfHeader, VcfReader, VcfRecord, read_vcf, with_info
from helixserve.runtime.predictor import Predictor
from helixserve.store.fs import S3Options, open_location

INFO_KEYS = ("HX_REF", "HX_ALT", "HX_EFFECT", "HX_STATUS", "HX_TARGET")
Chunk = list[VcfRecord | BadRecord]


def is_vcf_output(name: str) -> bool:
    return name.removesuffix(".gz").endswith(".vcf")


def table_header(predictor: Predictor, options: VcfOptions) -> list[str]:
    """The columns of a table output: the record, the allele, the window, the scores."""
    head = ["index", "line", "chrom", "pos", "id", "ref", "alt", "window_start", "window_end"]
    scores = ["ref_score", "alt_score", "effect"]
    both = ["effect_forward", "effect_reverse"] if options.strands == "both" else []
    target = ["target"] if has_target(predictor) else []
    return [*head, *scores, *both, *target]


def error_header() -> list[str]:
    return ["index", "line", "chrom", "pos", "id", "ref", "alt", "reason", "message"]


def has_target(predictor: Predictor) -> bool:
    return predictor.manifest.task in ("multiclass", "multilabel")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def table_rows(effects: list[Effect], options: VcfOptions, target: bool) -> list[list[str]]:
    """The table cells of the scored alleles (see :func:`table_header`)."""
    rows = []
    for e in effects:
        if e.error is not None or e.window is None:
            continue
        r = e.record
        cells = [str(r.index), str(r.line), r.chrom, str(r.pos), r.id, r.ref, e.alt]
        cells += [str(e.window[0] + 1), str(e.window[1])]
        cells += [_number(e.ref_score), _number(e.alt_score), _number(e.effect)]
        if options.strands == "both":
            forward, reverse = e.strand_effects or (None, None)
            cells += [_number(forward), _number(reverse)]
        if target:
            cells.append(e.target or "")
        rows.append(cells)
    return rows


def error_rows(effects: list[Effect], bad: list[BadRecord]) -> list[list[str]]:
    """The cells of the refused alleles and the unreadable lines, in file order."""
    rows: list[tuple[int, list[str]]] = []
    for e in effects:
        if e.error is not None:
            r = e.record
            cells = [str(r.index), str(r.line), r.chrom, str(r.pos), r.id, r.ref, e.alt]
            rows.append((r.index, [*cells, e.error.reason, str(e.error)]))
    for b in bad:
        chrom, _, pos = (b.id or "").partition(":")
        cells = [str(b.index), str(b.line), chrom, pos, "", "", ""]
        rows.append((b.index, [*cells, "unreadable", str(b.error)]))
    return [cells for _, cells in sorted(rows, key=lambda item: item[0])]


def info_fields(effects: list[Effect], target: bool) -> dict[str, str]:
    """The INFO entries of one record from its alleles' effects (see the module contract)."""
    scored = [e for e in effects if e.effect is not None]
    fields = {"HX_REF": _number(scored[0].ref_score) if scored else "."}
    fields["HX_ALT"] = ",".join(_number(e.alt_score) or "." for e in effects)
    fields["HX_EFFECT"] = ",".join(_number(e.effect) or "." for e in effects)
    fields["HX_STATUS"] = ",".join("ok" if e.error is None else e.error.reason for e in effects)
    if target:
        fields["HX_TARGET"] = (scored[0].target or ".") if scored else "."
    return fields


def vcf_lines(effects: list[Effect], target: bool) -> list[str]:
    """Each readable record's line with its INFO entries, in file order."""
    lines: list[str] = []
    start = 0
    while start < len(effects):
        record = effects[start].record
        end = start + len(record.alts)
        lines.append(with_info(record.text, info_fields(effects[start:end], target)))
        start = end
    return lines


def info_definitions(predictor: Predictor, score: str, target: bool) -> list[str]:
    """The ``##INFO`` header lines of :data:`INFO_KEYS` for ``predictor``."""
    by = f"{score} by {predictor.label}"
    lines = [
        f'##INFO=<ID=HX_REF,Number=1,Type=Float,Description="{by} of the REF window">',
        f'##INFO=<ID=HX_ALT,Number=A,Type=Float,Description="{by} of each ALT window">',
        f'##INFO=<ID=HX_EFFECT,Number=A,Type=Float,Description="{by}: ALT minus REF">',
        '##INFO=<ID=HX_STATUS,Number=A,Type=String,Description="ok, or why the ALT was not '
        "scored (unknown_contig, off_contig, ref_mismatch, no_alt, symbolic, bad_allele, "
        'window, model)">',
    ]
    if target:
        lines.append(
            '##INFO=<ID=HX_TARGET,Number=1,Type=String,Description="the class or label scored">'
        )
    return lines


def vcf_header(header: VcfHeader, scorer: VcfScorer, reference_name: str) -> bytes:
    """The output VCF's header: the input's, the :data:`INFO_KEYS` definitions and a
    ``##helixserve_variants`` line naming the model, the reference and the options."""
    predictor = scorer.predictor
    about = (
        f"##helixserve_variants=<model={predictor.label},reference={reference_name},"
        f"window={scorer.need.words().replace(' ', '_')},strands={scorer.options.strands}>"
    )
    definitions = info_definitions(predictor, score_words(predictor), has_target(predictor))
    return header.with_info([*definitions, about]).encode("utf-8", "surrogateescape")


def score_words(predictor: Predictor) -> str:
    """What the score of a model is, for the VCF header (see the explain contract)."""
    manifest = predictor.manifest
    if manifest.task == "regression":
        return "predicted value" + (f" ({manifest.output.units})" if manifest.output.units else "")
    if manifest.task == "binary" and manifest.output.labels:
        return f"P({manifest.output.labels[-1]})"
    return "probability of HX_TARGET"


def chunks(reader: VcfReader, batch_size: int, skip: int) -> Iterator[Chunk]:
    """Records in chunks of ``batch_size``, after skipping ``skip`` (a resume)."""
    chunk: Chunk = []
    for seen, record in enumerate(reader, start=1):
        if seen <= skip:
            continue
        chunk.append(record)
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _formatted(
    scorer: VcfScorer, chunk: Chunk, effects: list[Effect], as_vcf: bool, run: Run
) -> tuple[bytes, bytes, tuple[int, int]]:
    """One chunk's output bytes (VCF lines or table rows), error rows and (scored, refused)."""
    bad = [r for r in chunk if isinstance(r, BadRecord)]
    target = has_target(scorer.predictor)
    refused = error_rows(effects, bad)
    if as_vcf:
        lines = vcf_lines(effects, target)
        out = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    else:
        out = csv_text(table_rows(effects, scorer.options, target), run.delimiter).encode()
    scored = sum(e.error is None for e in effects)
    return out, csv_text(refused, run.delimiter).encode(), (scored, len(refused))


def _identity(reference: Reference, options: VcfOptions, output: str) -> dict[str, Any]:
    return {
        "reference": str(reference.path),
        "reference_stamp": reference.stamp,
        "options": json.dumps(asdict(options), sort_keys=True),
        "output_kind": "vcf" if is_vcf_output(output) else "table",
    }


def errors_path(output: str) -> str:
    """``out.vcf.gz`` -> ``out.errors.csv``; a table output's own rule otherwise."""
    if is_vcf_output(output):
        return output.removesuffix(".gz").removesuffix(".vcf") + ".errors.csv"
    return default_errors(output)


def score_vcf(
    predictor: Predictor,
    vcf_uri: str,
    reference_path: str,
    output: str,
    *,
    options: VcfOptions | None = None,
    errors: str | None = None,
    batch_size: int = 512,
    resume: bool = False,
    s3: S3Options | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Score every ALT of a VCF against a reference; see the module contract."""
    options = options or VcfOptions()
    with open_reference(reference_path) as reference:
        scorer = VcfScorer(predictor, reference, options)
        run = begin(
            predictor,
            vcf_uri,
            output,
            errors=errors or errors_path(output),
            batch_size=batch_size,
            resume=resume,
            s3=s3,
            identity=_identity(reference, options, output),
        )
        try:
            with read_vcf(run.source.raw) as reader:
                _score_all(scorer, reader, run, batch_size, progress)
                header = reader.header
        finally:
            run.source.raw.close()
        _finish(scorer, run, header, options)
    return run.summary()


Ready = tuple[Chunk, PreparedChunk]


def _prepare_all(
    scorer: VcfScorer,
    reader: VcfReader,
    batch_size: int,
    skip: int,
    out: queue.Queue[Ready | BaseException | None],
    stop: threading.Event,
) -> None:
    """Reader thread: chunks read, windows cut and encoded, onto ``out`` (``None``: the end);
    it stops at the next chunk once ``stop`` is set."""
    try:
        for chunk in chunks(reader, batch_size, skip):
            if stop.is_set():
                break
            records = [r for r in chunk if isinstance(r, VcfRecord)]
            out.put((chunk, scorer.prepare(records)))
        out.put(None)
    except BaseException as err:  # handed to the main thread, which raises it
        out.put(err)


def _score_all(
    scorer: VcfScorer, reader: VcfReader, run: Run, batch_size: int, progress: Progress | None
) -> None:
    """Commit every chunk: one thread reads and prepares the next while the model runs. On any
    error the reader thread is stopped and waited for before the files it reads are closed."""
    parts, as_vcf = run.parts, is_vcf_output(run.output)
    number = parts.state["chunks"]
    ready: queue.Queue[Ready | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    args = (scorer, reader, batch_size, run.resumed_from, ready, stop)
    thread = threading.Thread(target=_prepare_all, args=args, name="helixserve-vcf", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            chunk, prepared = item
            effects = scorer.finish(prepared)
            out, refused, counts = _formatted(scorer, chunk, effects, as_vcf, run)
            parts.commit(number, out, refused, len(chunk), counts)
            number += 1
            report(progress, run.source, parts)
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)


def _finish(scorer: VcfScorer, run: Run, header: VcfHeader, options: VcfOptions) -> None:
    """The final files: the VCF (header + chunks, bgzip for ``.gz``) or the table, and errors."""
    if is_vcf_output(run.output):
        _join_vcf(run, vcf_header(header, scorer, Path(scorer.reference.path).name))
        assemble(run, {".err": (run.errors, error_header())})
        return
    head = table_header(scorer.predictor, options)
    assemble(run, {".out": (run.output, head), ".err": (run.errors, error_header())})


def _join_vcf(run: Run, header: bytes) -> None:
    """Write the header and the committed VCF lines to OUTPUT (bgzip for ``.gz``; S3 too)."""
    parts = run.parts
    local = parts.folder / ("final.vcf" + (".gz" if run.output.endswith(".gz") else ""))
    plain = parts.folder / "final-plain.vcf"
    with parts.writing(plain), plain.open("wb") as out:
        out.write(header)
        for n in range(parts.state["chunks"]):
            with (parts.folder / f"chunk-{n:08d}.out").open("rb") as chunk:
                shutil.copyfileobj(chunk, out)
    if run.output.endswith(".gz"):
        with parts.writing(local):
            bgzip(plain, local)
    else:
        plain.replace(local)
    if run.output.startswith("s3://"):
        bucket, _, key = run.output.removeprefix("s3://").partition("/")
        open_location(f"s3://{bucket}", run.s3).fs.put_file(str(local), f"{bucket}/{key}")
        return
    with parts.writing(Path(run.output)):
        shutil.move(str(local), run.output)
