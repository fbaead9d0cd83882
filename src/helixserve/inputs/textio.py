"""Opening text files safely: gzip detection, binary detection, per-line decoding.

Contract:
- :func:`open_source` accepts a path (``str`` / ``Path``) or a binary file object and returns a
  buffered binary stream; gzip is recognised by its magic bytes (not the file name) and
  decompressed on the fly. Nothing is read beyond a small peek: files stream in constant memory.
- :func:`check_head` raises :class:`~helixserve.errors.InvalidFile` for an empty file (zero bytes
  or only whitespace) and for a binary file (a NUL byte, and at least 8 and over 1% control
  bytes, in the first 8 KiB), naming the offset and saying what is expected instead. A text file
  with a stray NUL is not binary: that line is reported by :func:`line_problem`.
- :func:`iter_lines` yields ``(line_number, text)`` with 1-based line numbers, line endings
  (``\\n``, ``\\r\\n``) removed and a UTF-8 byte-order mark dropped from line 1. Bytes that are not
  UTF-8 are kept as surrogate escapes so one bad line never stops the file; :func:`line_problem`
  finds them (and NUL characters) so the caller can report that line and go on.
- A truncated gzip stream raises :class:`~helixserve.errors.InvalidFile` saying after which line
  the data ended, once every complete line before it has been yielded.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from helixserve.errors import InvalidFile

Source = str | Path | IO[bytes]

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 8192
BUFFER_BYTES = 64 * 1024
_TEXT_CONTROL = frozenset(b"\t\n\r\f\v\x1b")
_UNDECODABLE = re.compile("[\udc80-\udcff\x00]")


def source_name(source: Source) -> str:
    """A file name for messages and format detection (``""`` for anonymous streams)."""
    if isinstance(source, str | Path):
        return str(source)
    name = getattr(source, "name", "")
    return name if isinstance(name, str) else ""


def open_source(source: Source) -> io.BufferedReader:
    """Open a path or wrap a binary stream; transparently decompress gzip."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise InvalidFile(f"file not found: {path}; check the path and try again.")
        raw: Any = path.open("rb")
    else:
        raw = source
    stream = io.BufferedReader(raw, buffer_size=BUFFER_BYTES)
    if stream.peek(2)[:2] == GZIP_MAGIC:
        gz: Any = gzip.GzipFile(fileobj=stream, mode="rb")
        return io.BufferedReader(gz, buffer_size=BUFFER_BYTES)
    return stream


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


def iter_lines(stream: io.BufferedReader) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)``; see the module contract for decoding and truncation."""
    number = 0
    try:
        for number, raw in enumerate(stream, start=1):
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
