"""The access log: one JSON line per request on standard output, written in batches.

Contract:
- :meth:`AccessLog.write` adds one request's line (JSON, ``\\n``-terminated) to a buffer in
  memory; nothing is formatted beyond ``orjson`` and no lock or system call happens per request.
  The buffer goes to standard output when it holds :data:`BUFFER_BYTES`, when :meth:`flush` is
  called (the server does so every :data:`FLUSH_S` seconds and when it stops), so a line appears
  at most about :data:`FLUSH_S` after its request ended — as nginx's ``access_log ... buffer=
  flush=`` does.
- Each system call writes whole lines and at most :data:`PIPE_BUF` bytes, so the lines of several
  server processes sharing one pipe (``docker logs``, systemd) never interleave mid-line.
- A standard output that cannot be written (closed, a full disk) drops the lines; serving goes on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson

BUFFER_BYTES = 64 * 1024
FLUSH_S = 0.5
PIPE_BUF = 4096  # POSIX: writes up to this size to a pipe are atomic


class AccessLog:
    """See the module contract."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self._lines.append(line)
        self._size += len(line)
        if self._size >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        lines, self._lines, self._size = self._lines, [], 0
        try:
            for chunk in _chunks(lines):
                _write_all(chunk)
        except (OSError, ValueError):  # stdout closed or full: the lines are dropped
            pass


def _chunks(lines: list[bytes]) -> list[bytes]:
    """Whole lines grouped into pieces of at most PIPE_BUF bytes (a longer line alone)."""
    chunks: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for line in lines:
        if group and size + len(line) > PIPE_BUF:
            chunks.append(b"".join(group))
            group, size = [], 0
        group.append(line)
        size += len(line)
    if group:
        chunks.append(b"".join(group))
    return chunks


def _write_all(data: bytes) -> None:
    """``data`` to standard output's file descriptor (or its text stream where it has none,
    e.g. under a test's capture)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        sys.stdout.write(data.decode())
        sys.stdout.flush()
        return
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
