"""A reference genome (or any set of reference sequences) as an indexed FASTA file.

Contract:
- :func:`open_reference` opens a FASTA file (plain, bgzip, or plain gzip) for random access with
  pysam's ``FastaFile`` (htslib's faidx): reading a window costs the window, never the genome, so
  memory stays flat whatever the reference's size. An existing ``.fai`` (and ``.gzi``) beside the
  file is used; otherwise the index is built into a private temporary folder (the reference's own
  folder may be read-only) that :meth:`Reference.close` removes. A plain-gzip file (faidx needs
  bgzip) is first decompressed into that folder.
- :meth:`Reference.length` is a contig's length (``None`` for a name the file does not hold);
  :meth:`Reference.fetch` gives the upper-case bases of ``[start, end)`` (0-based), which must lie
  inside the contig. ``names`` lists the contigs in file order; ``stamp`` (size and modification
  time) identifies the file for resumed runs.
- A missing file, a file faidx cannot index (lines of unequal length inside a record, a repeated
  name, not FASTA) or a missing pysam (``pip install 'helixserve[explain]'``) raises
  :class:`~helixserve.errors.InvalidFile` saying so and how to fix it.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

from helixserve.errors import FileTooLarge, InvalidFile

_BGZF_EXTRA = b"BC"


def _pysam() -> Any:
    try:
        import pysam  # noqa: PLC0415 - the explain extra
    except ImportError:
        raise InvalidFile(
            "reading a reference FASTA needs pysam: pip install 'helixserve[explain]'."
        ) from None
    pysam.set_verbosity(0)  # htslib's own stderr lines: the errors below say it in words
    return pysam


def compression(path: Path) -> str:
    """``"bgzip"``, ``"gzip"`` or ``"none"`` from the file's first bytes."""
    with path.open("rb") as raw:
        head = raw.read(18)
    if head[:2] != b"\x1f\x8b":
        return "none"
    has_extra = len(head) > 3 and head[3] & 4
    return "bgzip" if has_extra and head[12:14] == _BGZF_EXTRA else "gzip"


class Reference:
    """An indexed FASTA opened for reading (see the module contract)."""

    def __init__(self, path: Path, max_decompressed: int | None = None) -> None:
        if not path.is_file():
            raise InvalidFile(f"reference file not found: {path}; check the path.")
        self.path = path
        stat = path.stat()
        self.stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        self._folder = Path(tempfile.mkdtemp(prefix="helixserve-ref-"))
        self._limit = max_decompressed
        try:
            self._fasta = self._open(_pysam())
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self.names: list[str] = list(self._fasta.references)
        if not self.names:
            self.close()
            raise InvalidFile(
                f"the reference {path.name} holds no sequence; give a FASTA file "
                "('>name' lines, each followed by its bases)."
            )
        self._lengths = dict(zip(self.names, self._fasta.lengths, strict=True))

    def _open(self, pysam: Any) -> Any:
        path, kind = self.path, compression(self.path)
        if kind == "gzip":
            path = self._folder / "reference.fa"
            self._gunzip(path)
        fai, gzi = Path(f"{path}.fai"), Path(f"{path}.gzi")
        fresh = fai.is_file() and fai.stat().st_mtime_ns >= path.stat().st_mtime_ns
        if not fresh or (kind == "bgzip" and not gzi.is_file()):
            fai, gzi = self._folder / "index.fai", self._folder / "index.gzi"
            extra = ["--gzi-idx", str(gzi)] if kind == "bgzip" else []
            try:
                pysam.faidx(str(path), "--fai-idx", str(fai), *extra)
            except pysam.SamtoolsError:
                raise InvalidFile(
                    f"the reference {self.path.name} cannot be indexed as FASTA: every record "
                    "needs a '>name' line, names must be unique, and inside a record every "
                    "line but the last must have the same length. Fix the file (e.g. `seqkit "
                    "seq -w 60`), or compress it with bgzip instead of gzip."
                ) from None
        compressed = {"filepath_index_compressed": str(gzi)} if kind == "bgzip" else {}
        return pysam.FastaFile(str(path), filepath_index=str(fai), **compressed)

    def _gunzip(self, target: Path) -> None:
        """Decompress a plain-gzip reference (faidx needs bgzip), within ``max_decompressed``."""
        total = 0
        with gzip.open(self.path, "rb") as packed, target.open("wb") as out:
            while block := self._block(packed):
                total += len(block)
                if self._limit is not None and total > self._limit:
                    raise FileTooLarge(
                        f"the reference {self.path.name} decompresses to more than "
                        f"{self._limit:,} bytes, the limit for a compressed file "
                        "(HELIXSERVE_MAX_DECOMPRESSED_BYTES); compress it with bgzip instead "
                        "(read a window at a time), or score it with `helixserve variants`."
                    )
                out.write(block)

    def _block(self, packed: gzip.GzipFile) -> bytes:
        try:
            return packed.read(1 << 20)
        except (OSError, EOFError, zlib.error) as err:
            raise InvalidFile(
                f"the reference {self.path.name} starts like gzip but is damaged ({err}); "
                "compress it again (with bgzip), or give it uncompressed."
            ) from None

    def length(self, contig: str) -> int | None:
        return self._lengths.get(contig)

    def fetch(self, contig: str, start: int, end: int) -> str:
        """The upper-case bases of ``contig[start:end]`` (0-based, inside the contig)."""
        return str(self._fasta.fetch(contig, start, end)).upper()

    def close(self) -> None:
        self._fasta.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Reference:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def bgzip(source: Path, target: Path) -> None:
    """Compress ``source`` into ``target`` with bgzip (BGZF blocks: gzip that tabix and faidx
    can index)."""
    _pysam().tabix_compress(str(source), str(target), force=True)


def open_reference(path: str | Path, max_decompressed: int | None = None) -> Reference:
    """Open a FASTA for random access (see the module contract)."""
    return Reference(Path(path), max_decompressed)
