"""Dataset files, content-addressed by sha256, in a local folder or an S3 bucket.

Layout under the store's root (the same on a disk and in a bucket)::

    datasets/sha256/<hex[:2]>/<hex>/<filename>   one immutable file per sha256
    datasets/tmp/<random>.part                    an upload in progress (never read)

Contract:
- :class:`DatasetBlobs` opens a root the way :class:`~helixserve.store.ModelStore` does (a folder
  path, ``file://`` or ``s3://bucket/prefix``, with the same :class:`~helixserve.store.S3Options`),
  through the same fsspec layer (:mod:`helixserve.store.fs`), so storage failures become
  :class:`~helixserve.errors.StoreUnavailable` / :class:`~helixserve.errors.StorePermissionError`.
- :meth:`DatasetBlobs.put` streams a binary stream into a temporary object in 1 MiB chunks while
  hashing it (memory does not grow with the file), then moves it to its sha256 address. Past
  ``limit_bytes`` it stops reading at once, removes the temporary object and raises
  :class:`~helixserve.errors.RequestTooLarge` (413). The same bytes give the same sha256 and are
  stored once: a second put of them (under any file name) keeps the first copy and its name.
- File names are checked before anything is written (:func:`check_filename`): 1-255 bytes, no
  space at either end, no ``/`` or ``\\``, no ``..``, no control characters; else
  :class:`~helixserve.errors.InvalidFilename` (400).
- :meth:`exists`, :meth:`blob`, :meth:`open` (a binary stream to read) and :meth:`local_copy` (a
  path on this machine: the file itself for a local store; for S3 a copy in ``cache_dir``,
  verified against its sha256 while it downloads, and again when it is reused) take a sha256 in
  lower-case hex; another string raises :class:`~helixserve.errors.InvalidName`, an unknown one
  :class:`~helixserve.errors.DatasetNotFound` (404). A copy that does not match its sha256 raises
  :class:`~helixserve.errors.IntegrityError`.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from helixserve.errors import (
    DatasetNotFound,
    IntegrityError,
    InvalidFilename,
    InvalidName,
    RequestTooLarge,
)
from helixserve.store.fs import Location, S3Options, open_location, translating

CHUNK = 1024 * 1024
PREFIX = "datasets"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILENAME_BYTES = 255


@dataclass(frozen=True, slots=True)
class Blob:
    """One stored dataset file: its sha256 (the id), size in bytes and file name."""

    sha256: str
    size: int
    filename: str


def check_filename(filename: str) -> str:
    """Return ``filename`` if it is a plain file name (see the module contract), else raise."""
    shown = repr(filename[:80] + ("..." if len(filename) > 80 else ""))
    problem = None
    if not filename or filename.strip() != filename:
        problem = "is empty or starts or ends with a space"
    elif len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        problem = f"is longer than {MAX_FILENAME_BYTES} bytes"
    elif "/" in filename or "\\" in filename:
        problem = "holds a path separator ('/' or '\\')"
    elif ".." in filename:
        problem = "holds '..'"
    elif _CONTROL.search(filename):
        problem = "holds control characters"
    if problem is not None:
        raise InvalidFilename(
            f"file name {shown} is not allowed: it {problem}. Upload the file under a plain "
            "name such as 'utrs.csv.gz' (letters, digits, '.', '_', '-')."
        )
    return filename


def check_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lower-case hex digits, else raise :class:`InvalidName`."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        shown = repr(str(sha256)[:80])
        raise InvalidName(
            f"dataset id {shown} is not a sha256: a dataset version is named by the 64 "
            "lower-case hex digits of its file's sha256."
        )
    return sha256


class DatasetBlobs:
    """Content-addressed dataset files in one location; see the module contract."""

    def __init__(self, root: str, s3: S3Options | None = None) -> None:
        self.location: Location = open_location(root, s3)

    @property
    def uri(self) -> str:
        """The store's location as a URI."""
        return self.location.uri

    def _folder(self, sha256: str) -> str:
        return self.location.path(PREFIX, "sha256", sha256[:2], sha256)

    # --- writing --------------------------------------------------------------------------------

    def put(self, stream: BinaryIO | IO[bytes], filename: str, limit_bytes: int) -> Blob:
        """Store the bytes of ``stream`` under their sha256; see the module contract."""
        check_filename(filename)
        loc = self.location
        temp = loc.path(PREFIX, "tmp", f"{uuid.uuid4().hex}.part")
        with translating(f"store dataset file {filename}", loc):
            try:
                sha256, size = self._write_temp(stream, temp, filename, limit_bytes)
                existing = self._find(sha256)
                if existing is not None:
                    return existing
                final = f"{self._folder(sha256)}/{filename}"
                self._move(temp, final)
            finally:
                _remove_quietly(loc, temp)
        return Blob(sha256, size, filename)

    def _write_temp(
        self, stream: BinaryIO | IO[bytes], temp: str, filename: str, limit: int
    ) -> tuple[str, int]:
        """Copy ``stream`` to ``temp`` while hashing; stop past ``limit`` bytes."""
        digest, size = hashlib.sha256(), 0
        if self.location.is_local:
            Path(temp).parent.mkdir(parents=True, exist_ok=True)
        out: Any
        with self.location.fs.open(temp, "wb", block_size=5 * CHUNK) as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise RequestTooLarge(
                        f"dataset file {filename} is over the limit of {limit:,} bytes; "
                        "upload a smaller file (compress it with gzip, or split it)."
                    )
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest(), size

    def _move(self, temp: str, final: str) -> None:
        if self.location.is_local:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, final)  # atomic: readers see the whole file or nothing
        else:
            self.location.fs.mv(temp, final)  # a server-side copy, then the temp is deleted

    # --- reading --------------------------------------------------------------------------------

    def _find(self, sha256: str) -> Blob | None:
        folder = self._folder(sha256)
        try:
            entries = self.location.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return None
        files = sorted(
            (e for e in entries if e.get("type") == "file"), key=lambda e: str(e["name"])
        )
        if not files:
            return None
        name = str(files[0]["name"]).rstrip("/").rsplit("/", 1)[-1]
        return Blob(sha256, int(files[0]["size"]), name)

    def blob(self, sha256: str) -> Blob:
        """The stored file of ``sha256``; :class:`DatasetNotFound` if there is none."""
        check_sha256(sha256)
        with translating(f"find dataset {sha256}", self.location):
            found = self._find(sha256)
        if found is None:
            raise DatasetNotFound(
                f"no dataset file with sha256 {sha256} in the store {self.uri}; upload the "
                "file again, or check the dataset version's id."
            )
        return found

    def exists(self, sha256: str) -> bool:
        """Whether a file with this sha256 is stored."""
        check_sha256(sha256)
        with translating(f"find dataset {sha256}", self.location):
            return self._find(sha256) is not None

    def open(self, sha256: str) -> BinaryIO:
        """A binary stream of the stored file (the caller closes it)."""
        found = self.blob(sha256)
        path = f"{self._folder(sha256)}/{found.filename}"
        with translating(f"read dataset {sha256}", self.location):
            handle: BinaryIO = self.location.fs.open(path, "rb", block_size=5 * CHUNK)
        return handle

    def local_copy(self, sha256: str, cache_dir: Path) -> Path:
        """A path to the file on this machine; see the module contract."""
        found = self.blob(sha256)
        if self.location.is_local:
            return Path(self._folder(sha256)) / found.filename
        target = cache_dir / sha256 / found.filename
        if target.is_file():
            if _sha256_file(target) == sha256:
                return target
            target.unlink()  # a damaged cached copy: fetch it again
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".{uuid.uuid4().hex}.part"
        try:
            with self.open(sha256) as source, partial.open("wb") as out:
                actual = _copy_hashing(source, out)
            if actual != sha256:
                raise IntegrityError(
                    f"dataset {found.filename} ({sha256}) arrived with sha256 {actual}: the "
                    "stored file was changed or truncated. Upload the dataset again."
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target


def _copy_hashing(source: IO[bytes], out: IO[bytes] | None) -> str:
    """Read ``source`` to its end in 1 MiB chunks, writing to ``out`` if given; the sha256."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return _copy_hashing(handle, None)


def _remove_quietly(location: Location, path: str) -> None:
    """Remove a temporary object if it is still there (never raises)."""
    try:
        if location.is_local:
            Path(path).unlink(missing_ok=True)
        elif location.fs.exists(path):
            location.fs.rm_file(path)
    except OSError:
        pass
