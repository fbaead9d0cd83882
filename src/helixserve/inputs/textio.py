"""Opening text files safely: gzip detection, binary detection, bounded per-line decoding.

Contract:
- :func:`opened` is a context manager over a path (``str`` / ``Path``) or a *binary* file object;
  it yields a buffered binary stream, decompressing gzip (recognised by its magic bytes, not the
  file name) on the fly. Nothing is read beyond a small peek: files stream in constant memory.
  With ``max_decompressed``, a gzip file that inflates to more bytes than that raises
  :class:`~helixserve.errors.FileTooLarge` as soon as it passes the limit (a gzip bomb costs at
  most that much reading, never memory); by default there is no limit (trusted local files).
  A file helixserve opened is closed afterwards; a stream the caller passed in is left open.
  A text-mode stream raises :class:`~helixserve.errors.InvalidFile` (open it with ``"rb"``).
- :func:`check_head` raises :class:`~helixserve.errors.InvalidFile` for an empty file (zero bytes
  or only whitespace) and for a binary file (a NUL byte, and at least 8 and over 1% control
  bytes, in the first 8 KiB), naming the offset and saying what is expected instead. A text file
  with a stray NUL is not binary: that line is reported by :func:`line_problem`.
- :func:`iter_lines` yields ``(line_number, text)`` with 1-based line numbers. Lines end at
  ``\\n``, ``\\r\\n`` or — in a file whose first 8 KiB hold ``\\r`` but no ``\\n`` (old Mac /
  Excel "CSV (Macintosh)") — ``\\r``. A UTF-8 byte-order mark is dropped from line 1. Bytes that
  are not UTF-8 are kept as surrogate escapes so one bad line never stops the file;
  :func:`line_problem` finds them (and NUL characters). A line longer than ``max_line`` bytes is
  skipped without being held in memory and yielded as an :class:`~helixserve.errors.InputError`
  in place of its text.
- A truncated gzip stream raises :class:`~helixserve.errors.InvalidFile` saying after which line
  the data ended, once every complete line before it has been yielded.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from helixserve.errors import FileTooLarge, InputError, InvalidFile

Source = str | Path | IO[bytes]
Line = tuple[int, str | InputError]

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 8192
BUFFER_BYTES = 64 * 1024
DEFAULT_MAX_LINE = 16 * 1024 * 1024
_TEXT_CONTROL = frozenset(b"\t\n\r\f\v\x1b")
_UNDECODABLE = re.compile("[\udc80-\udcff\x00]")


def source_name(source: Source) -> str:
    """A file name for messages and format detection (``""`` for anonymous streams)."""
    if isinstance(source, str | Path):
        return str(source)
    name = getattr(source, "name", "")
    return name if isinstance(name, str) else ""


@contextmanager
def opened(source: Source, max_decompressed: int | None = None) -> Iterator[io.BufferedReader]:
    """Open a path or wrap a binary stream; transparently decompress gzip (see contract)."""
    owned = isinstance(source, str | Path)
    raw: Any = _open_path(Path(source)) if owned else source  # type: ignore[arg-type]
    if isinstance(raw, io.TextIOBase):
        raise InvalidFile("expected a binary file object, got a text stream; open it with 'rb'.")
    stream = io.BufferedReader(raw, buffer_size=BUFFER_BYTES)
    try:
        if stream.peek(2)[:2] == GZIP_MAGIC:
            gz: Any = _Inflated(gzip.GzipFile(fileobj=stream, mode="rb"), max_decompressed)
            with io.BufferedReader(gz, buffer_size=BUFFER_BYTES) as unzipped:
                yield unzipped
        else:
            yield stream
    finally:
        if owned:
            stream.close()
        else:
            stream.detach()  # leave the caller's stream open


class _Inflated(io.RawIOBase):
    """The decompressed bytes of a gzip stream, refusing to inflate more than ``limit``.

    Each read decompresses one piece (``read1``), so every byte before a truncation point is
    delivered before the error: a buffered ``read`` would drop the last partial buffer."""

    def __init__(self, gz: gzip.GzipFile, limit: int | None) -> None:
        super().__init__()
        self._gz, self._limit, self._total = gz, limit, 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._gz.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        piece = self._gz.read1(len(buffer))
        count = len(piece)
        buffer[:count] = piece
        self._total += count
        if self._limit is not None and self._total > self._limit:
            raise FileTooLarge(
                f"file decompresses to more than {self._limit:,} bytes, the limit for a "
                "compressed file (HELIXSERVE_MAX_DECOMPRESSED_BYTES); it may be a gzip bomb. "
                "Split it into smaller files, or score it with `helixserve predict`."
            )
        return count


def _open_path(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise InvalidFile(f"file not found: {path}; check the path and try again.")
    return path.open("rb")


def check_head(stream: io.BufferedReader) -> bytes:
    """Return the first bytes of the (decompressed) stream; refuse empty and binary files."""
    try:
        head = stream.peek(HEAD_BYTES)[:HEAD_BYTES]
    except (OSError, EOFError, zlib.error) as err:
        raise InvalidFile(
            f"file cannot be decompressed: it starts like gzip but is damaged ({err}). "
            "Compress it again, or upload it uncompressed."
        ) from None
    if not head.strip():
        raise InvalidFile(
            "file is empty: it has no records. Upload a FASTA, CSV/TSV or "
            "one-sequence-per-line text file (optionally gzip-compressed)."
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        control = sum(1 for b in head if b < 32 and b not in _TEXT_CONTROL)
        if control >= 8 and control * 100 > len(head):
            raise InvalidFile(
                f"file looks binary, not text (byte 0x00 at offset {nul:,}, and "
                f"{control:,} of the first {len(head):,} bytes are control bytes). "
                "Expected FASTA, CSV/TSV or plain text, optionally gzip-compressed."
            )
    return head


def iter_lines(stream: io.BufferedReader, max_line: int = DEFAULT_MAX_LINE) -> Iterator[Line]:
    """Yield ``(line_number, text or InputError)``; see the module contract."""
    head = stream.peek(HEAD_BYTES)[:HEAD_BYTES]
    separator = b"\r" if b"\r" in head and b"\n" not in head else b"\n"
    number = 0
    try:
        for number, raw in enumerate(_raw_lines(stream, separator, max_line), start=1):
            if raw is None:
                yield number, _overlong(number, max_line)
                continue
            text = raw.decode("utf-8", errors="surrogateescape").rstrip("\n").rstrip("\r")
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield number, text
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InvalidFile(
            f"file is truncated or damaged: the compressed data ends after line {number:,} "
            f"({err}). Records read before that point are kept; upload the complete file "
            "to score the rest.",
            line=number + 1,
        ) from None


def _overlong(number: int, max_line: int) -> InputError:
    return InputError(
        f"line {number:,} is longer than {max_line:,} bytes, the limit for one line; it was "
        "skipped. Split the record, or raise HELIXSERVE_MAX_SEQUENCE_LENGTH."
    )


def _raw_lines(
    stream: io.BufferedReader, separator: bytes, max_line: int
) -> Iterator[bytes | None]:
    """Physical lines as bytes, or ``None`` for a line over ``max_line`` (read and dropped)."""
    if separator == b"\n":
        while line := stream.readline(max_line + 1):
            if len(line) > max_line and not line.endswith(b"\n"):
                while (rest := stream.readline(BUFFER_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield None
            else:
                yield line
        return
    yield from _cr_lines(stream, max_line)


def _cr_lines(stream: io.BufferedReader, max_line: int) -> Iterator[bytes | None]:
    pending, dropping = b"", False
    while chunk := stream.read(BUFFER_BYTES):
        pieces = (pending + chunk).split(b"\r")
        pending = pieces.pop()
        for piece in pieces:
            yield None if dropping or len(piece) > max_line else piece
            dropping = False
        if len(pending) > max_line:
            pending, dropping = b"", True
    if pending or dropping:
        yield None if dropping else pending


def prefix_line(problem: str, problem_line: int, record_line: int) -> str:
    """Name the physical line of a problem when it is not the record's first line."""
    return problem if problem_line == record_line else f"line {problem_line:,}: {problem}"


def line_problem(text: str) -> str | None:
    """Describe the first undecodable byte or NUL in a decoded line, or ``None`` if clean."""
    match = _UNDECODABLE.search(text)
    if match is None:
        return None
    column = match.start() + 1
    char = match.group()
    if char == "\x00":
        return (
            f"column {column:,} holds a NUL byte (0x00), which does not belong in a text file; "
            "the file may be corrupted or not text."
        )
    byte = ord(char) - 0xDC00
    return (
        f"column {column:,} holds byte 0x{byte:02X}, which is not valid UTF-8; "
        "save the file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
    )
