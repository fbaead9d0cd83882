"""Scored files of the web UI (``/models/{name}/upload`` -> ``/jobs/{id}``), kept in a folder that
every server process of one ``helixserve serve`` shares, so a result uploaded to one worker
process opens on any other.

Contract:
- :class:`JobStore` writes each :class:`~helixserve.serving.ui.Job` as one JSON file
  ``<id>.json`` (written to a temporary name, then renamed: a reader never sees half a file):
  the model's name and version, the file name, the uploader and every row (an image's bytes as
  base64). No pickle: the file is data only.
- :meth:`JobStore.of` reads a job back for ``who``: ``None`` when it is unknown, no longer kept,
  another person's (a result is its uploader's, not whoever has the URL), or its model version is
  no longer served. Ids are checked against :data:`JOB_ID` before they touch the file system.
- :meth:`JobStore.add_result` / :meth:`JobStore.result_of` keep and read other results the same
  way (``<id>.result.json``, JSON data only): a VCF's effects, with its downloads.
- The newest :data:`MAX_JOBS` are kept (jobs and results together); older files are deleted when
  one is added.
- The folder is ``HELIXSERVE_JOBS_DIR`` when set (``helixserve serve`` sets it to a fresh
  temporary folder for its processes and deletes it when it stops), else a temporary folder of
  this process, deleted at exit.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import orjson

from helixserve.errors import ModelNotFound
from helixserve.serving.files import Row
from helixserve.serving.registry import LoadedModel, Registry
from helixserve.serving.ui import Job, owner_of
from helixserve.workspace.members import Principal

MAX_JOBS = 16
JOB_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
BYTES = "$bytes"


class JobStore:
    """See the module contract."""

    def __init__(self, folder: str | None = None) -> None:
        if folder:
            self.folder = Path(folder)
            self.folder.mkdir(parents=True, exist_ok=True)
        else:
            self.folder = Path(tempfile.mkdtemp(prefix="helixserve-jobs-"))
            weakref.finalize(self, shutil.rmtree, self.folder, True)

    def add(self, job: Job) -> None:
        record = {
            "id": job.id,
            "model": job.model.name,
            "version": job.model.version,
            "filename": job.filename,
            "owner": job.owner,
            "rows": [_row_data(row) for row in job.rows],
        }
        partial = self.folder / f".{job.id}.{os.getpid()}.tmp"
        partial.write_bytes(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY))
        partial.replace(self.folder / f"{job.id}.json")
        self._prune()

    def of(self, job_id: str, who: Principal | None, registry: Registry) -> Job | None:
        """Job ``job_id`` if ``who`` uploaded it and its model is still served; else ``None``."""
        if not JOB_ID.fullmatch(job_id):
            return None
        try:
            record = orjson.loads((self.folder / f"{job_id}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if record["owner"] != owner_of(who):
            return None
        try:
            model = registry.resolve(record["model"], record["version"])
        except ModelNotFound:
            return None
        rows = [_row(data) for data in record["rows"]]
        return Job(record["id"], model, record["filename"], rows, record["owner"])

    def add_result(
        self, job_id: str, owner: str, model: LoadedModel, content: dict[str, Any]
    ) -> None:
        """Keep a result that is not a scored file (a VCF's effects: ``content`` is JSON data),
        as ``<id>.result.json``; read it back with :meth:`result_of`."""
        record = {
            "id": job_id,
            "model": model.name,
            "version": model.version,
            "owner": owner,
            "content": content,
        }
        partial = self.folder / f".{job_id}.{os.getpid()}.tmp"
        partial.write_bytes(orjson.dumps(record))
        partial.replace(self.folder / f"{job_id}.result.json")
        self._prune()

    def result_record(self, job_id: str, owner: str) -> dict[str, Any] | None:
        """The record of a result of :meth:`add_result` (``model``, ``version``, ``content``)
        for ``owner``; ``None`` when it is unknown, no longer kept or another's."""
        if not JOB_ID.fullmatch(job_id):
            return None
        try:
            record: dict[str, Any] = orjson.loads(
                (self.folder / f"{job_id}.result.json").read_bytes()
            )
        except (OSError, orjson.JSONDecodeError):
            return None
        return record if record["owner"] == owner else None

    def result_of(
        self, job_id: str, owner: str, registry: Registry
    ) -> tuple[LoadedModel, dict[str, Any]] | None:
        """A result of :meth:`add_result` for ``owner``, as :meth:`of` reads a job: ``None`` when
        it is unknown, no longer kept, another's, or its model is no longer served."""
        record = self.result_record(job_id, owner)
        if record is None:
            return None
        try:
            model = registry.resolve(record["model"], record["version"])
        except ModelNotFound:
            return None
        content: dict[str, Any] = record["content"]
        return model, content

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.json"), key=_mtime, reverse=True)
        for old in files[MAX_JOBS:]:
            old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # deleted meanwhile by another process
        return 0.0


def _row_data(row: Row) -> dict[str, Any]:
    item = row.item
    if isinstance(item, bytes | bytearray):
        item = {BYTES: base64.b64encode(bytes(item)).decode("ascii")}
    return {
        "index": row.index,
        "line": row.line,
        "id": row.id,
        "item": item,
        "prediction": row.prediction,
        "error": row.error,
    }


def _row(data: dict[str, Any]) -> Row:
    item = data["item"]
    if isinstance(item, dict) and set(item) == {BYTES}:
        item = base64.b64decode(item[BYTES])
    return Row(data["index"], data["line"], data["id"], item, data["prediction"], data["error"])
