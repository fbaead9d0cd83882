"""Variant effects of an uploaded VCF against an uploaded reference FASTA (API and web page).

Contract:
- :func:`score_upload` saves the reference (plain, gzip or bgzip FASTA) to a private temporary
  folder, indexes it (:func:`~helixserve.inputs.reference.open_reference`), reads the VCF (plain,
  gzip or bgzip) and scores every ALT allele of each record with
  :class:`~helixserve.explain.vcf_effects.VcfScorer`, in chunks of :data:`CHUNK` records run in
  the model's batch thread (other requests get their turn between chunks). The folder is removed
  afterwards, whatever happens. Reading and indexing run in a worker thread, off the event loop.
- Limits (:class:`~helixserve.serving.files.UploadLimits`): a VCF of more than ``max_records``
  records, or a gzip file (VCF or reference) that inflates past ``max_decompressed`` bytes, raises
  :class:`~helixserve.errors.FileTooLarge` (413); bigger files go through ``helixserve
  variants``. A file that is not a VCF, or a reference that is not FASTA, raises
  :class:`~helixserve.errors.InvalidFile` (422); a bad option (window, target) its
  :class:`~helixserve.errors.InputError` (422).
- :class:`VcfResult` gives the answer in every form, each built by the same code as ``helixserve
  variants`` (:mod:`helixserve.batch.variants`): :meth:`~VcfResult.as_json` (counts, one object
  per scored allele, one per refused allele or unreadable line, numbers as numbers), the table
  (:meth:`~VcfResult.table`: CSV or TSV), the refused alleles (:meth:`~VcfResult.errors`) and
  the VCF with its INFO fields (:meth:`~VcfResult.vcf`). A bad record never fails the others.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from helixserve.batch.variants import (
    error_header,
    error_rows,
    has_target,
    table_header,
    table_rows,
    vcf_header,
    vcf_lines,
)
from helixserve.errors import FileTooLarge, InputError
from helixserve.explain.vcf_effects import Effect, VcfOptions, VcfScorer
from helixserve.inputs.records import BadRecord
from helixserve.inputs.reference import Reference, open_reference
from helixserve.inputs.table import csv_text
from helixserve.inputs.vcf import VcfHeader, VcfRecord, read_vcf
from helixserve.serving.files import UploadLimits
from helixserve.serving.registry import LoadedModel

CHUNK = 256


@dataclass
class VcfResult:
    """Every allele of an uploaded VCF, scored or refused (see the module contract)."""

    scorer: VcfScorer
    reference_name: str
    header: VcfHeader
    records: int
    effects: list[Effect]
    bad: list[BadRecord]

    @property
    def scored(self) -> list[Effect]:
        return [e for e in self.effects if e.error is None]

    def table(self, delimiter: str = ",") -> bytes:
        options, target = self.scorer.options, has_target(self.scorer.predictor)
        head = table_header(self.scorer.predictor, options)
        return csv_text([head, *table_rows(self.effects, options, target)], delimiter).encode()

    def errors(self, delimiter: str = ",") -> bytes:
        rows = [error_header(), *error_rows(self.effects, self.bad)]
        return csv_text(rows, delimiter).encode()

    def vcf(self) -> bytes:
        lines = vcf_lines(self.effects, has_target(self.scorer.predictor))
        body = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
        return vcf_header(self.header, self.scorer, self.reference_name) + body

    def as_json(self, model: LoadedModel) -> dict[str, Any]:
        options, target = self.scorer.options, has_target(self.scorer.predictor)
        head = table_header(self.scorer.predictor, options)
        numbers = {"index", "line", "pos", "window_start", "window_end"}
        rows = [
            {k: _cell(k, v, numbers) for k, v in zip(head, row, strict=True)}
            for row in table_rows(self.effects, options, target)
        ]
        names = error_header()
        refused = [
            {k: _cell(k, v, {"index", "line", "pos"}) for k, v in zip(names, row, strict=True)}
            for row in error_rows(self.effects, self.bad)
        ]
        return {
            "model": model.name,
            "version": model.version,
            "records": self.records,
            "scored": len(rows),
            "refused": len(refused),
            "window": self.scorer.need.words(),
            "strands": options.strands,
            "effects": rows,
            "errors": refused,
        }


def _cell(key: str, value: str, integers: set[str]) -> Any:
    if value == "":
        return None
    if key in integers:  # an unreadable line's POS may be anything: null then
        return int(value) if value.isascii() and value.isdigit() else None
    if key in ("ref_score", "alt_score", "effect", "effect_forward", "effect_reverse"):
        return float(value)
    return value


def _save(stream: IO[bytes], folder: Path, name: str) -> Path:
    path = folder / name
    with path.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return path


def _read(
    vcf: IO[bytes], reference: IO[bytes], folder: Path, limits: UploadLimits
) -> tuple[Reference, VcfHeader, list[VcfRecord | BadRecord]]:
    """Index the reference and read the VCF (in a worker thread); an error names its upload
    in ``field`` (``reference`` or ``vcf``)."""
    try:
        fasta = open_reference(_save(reference, folder, "reference.fa"), limits.max_decompressed)
    except InputError as err:
        err.field = "reference"
        raise
    try:
        with read_vcf(vcf, limits.max_decompressed) as reader:
            records: list[VcfRecord | BadRecord] = []
            for record in reader:
                if len(records) >= limits.max_records:
                    raise FileTooLarge(
                        f"the VCF has more than {limits.max_records:,} records, the limit for one "
                        "upload (HELIXSERVE_MAX_UPLOAD_RECORDS); split it, or score it with "
                        "`helixserve variants`."
                    )
                records.append(record)
            return fasta, reader.header, records
    except InputError as err:
        fasta.close()
        err.field = "vcf"
        raise
    except BaseException:
        fasta.close()
        raise


async def score_upload(
    model: LoadedModel,
    vcf: IO[bytes],
    reference: IO[bytes],
    reference_name: str,
    options: VcfOptions,
    limits: UploadLimits,
) -> VcfResult:
    """Score an uploaded VCF against an uploaded reference; see the module contract."""
    folder = Path(tempfile.mkdtemp(prefix="helixserve-vcf-"))
    try:
        fasta, header, records = await asyncio.to_thread(_read, vcf, reference, folder, limits)
        try:
            scorer = VcfScorer(model.predictor, fasta, options)
            good = [r for r in records if isinstance(r, VcfRecord)]
            effects: list[Effect] = []
            loop = asyncio.get_running_loop()
            for start in range(0, len(good), CHUNK):
                chunk = good[start : start + CHUNK]
                effects += await loop.run_in_executor(model.batcher.executor, scorer.score, chunk)
        finally:
            fasta.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    bad = [r for r in records if isinstance(r, BadRecord)]
    return VcfResult(scorer, reference_name, header, len(records), effects, bad)
