"""An uploaded file read as it arrives: the request body as a blocking stream for a worker thread.

Contract:
- :func:`open_upload` looks at a request's body: ``multipart/form-data`` is parsed as it arrives
  (python-multipart's streaming parser, no temporary file): the first part named ``file`` is the
  upload, its ``filename`` the file's name (other parts are skipped). Any other content type is
  the file itself, named by the route's ``?filename=``. It returns an :class:`Upload` once the
  name is known, before the file's bytes are read. A multipart body without a ``file`` part, a
  ``file`` part without a file name, a body that is not valid multipart, a raw body without
  ``?filename=``, or a multipart body that ends inside the file raise
  :class:`~helixserve.errors.RequestError` (400) saying how to send the file.
- :func:`blocking_file` is a read-only binary file (a :class:`BlockingStream`, buffered) over the
  upload's chunks for code running in a worker thread started with
  :func:`anyio.to_thread.run_sync`. The event loop gathers the body in blocks of about
  :data:`BUFFER` bytes, one block ahead of the thread: while the thread hashes and writes one
  block, the loop receives the next (memory holds about three blocks whatever the file's
  size). A client that goes away mid-body raises starlette's ``ClientDisconnect`` from the read
  (the app's size limit cuts a body off the same way, and then answers 413 itself).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from helixserve.errors import RequestError

BUFFER = 1024 * 1024
HOW = (
    "send the file as multipart/form-data with a part named 'file' (curl -F file=@utrs.csv.gz), "
    "or as the raw body with ?filename=utrs.csv.gz"
)


@dataclass
class Upload:
    """The uploaded file's name and its bytes, chunk by chunk, as they arrive."""

    filename: str
    chunks: AsyncIterator[bytes]


@dataclass
class _FilePart:
    """python-multipart callbacks that keep the ``file`` part's name and data."""

    header_field: bytes = b""
    header_value: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    inside: bool = False  # in the file part's data
    filename: str | None = None
    ended: bool = False
    pieces: list[bytes] = field(default_factory=list)

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.headers.clear,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"file" and self.filename is None:
            name = options.get(b"filename")
            if not name:
                raise RequestError(f"the 'file' part has no file name; {HOW}.")
            self.filename = name.decode("utf-8", errors="replace")
            self.inside = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.inside:
            self.pieces.append(bytes(data[start:end]))

    def on_part_end(self) -> None:
        if self.inside:
            self.inside, self.ended = False, True

    def take(self) -> bytes:
        data = b"".join(self.pieces)
        self.pieces.clear()
        return data


class _Multipart:
    """Feeds a multipart body to the parser, chunk by chunk, yielding the file part's bytes."""

    def __init__(self, boundary: bytes, body: AsyncIterator[bytes]) -> None:
        self.part = _FilePart()
        self.parser = MultipartParser(boundary, self.part.callbacks())
        self.body = body

    async def _feed(self) -> bool:
        """Parse the next chunk of the body; ``False`` at its end."""
        try:
            chunk = await anext(self.body)
        except StopAsyncIteration:
            return False
        try:
            self.parser.write(chunk)
        except MultipartParseError as err:
            raise RequestError(
                f"the body is not valid multipart/form-data ({err}); {HOW}."
            ) from None
        return True

    async def filename(self) -> str:
        """Read until the ``file`` part's headers are parsed; its file name."""
        while self.part.filename is None:
            if not await self._feed():
                raise RequestError(f"the multipart body has no part named 'file'; {HOW}.")
        return self.part.filename

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes (the rest of the body after it is not read)."""
        while True:
            data = self.part.take()
            if data:
                yield data
            if self.part.ended:
                return
            if not await self._feed():
                raise RequestError(f"the body ended inside the file; {HOW}.")


async def open_upload(request: Request, filename: str | None) -> Upload:
    """The upload of ``request``; see the module contract."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    body = request.stream().__aiter__()
    if kind == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise RequestError(f"the multipart/form-data body has no boundary; {HOW}.")
        multipart = _Multipart(boundary, body)
        return Upload(await multipart.filename(), multipart.chunks())
    if not filename:
        raise RequestError(f"the file has no name; {HOW}.")
    return Upload(filename, body)


class BlockingStream(io.RawIOBase):
    """A read-only binary file over async chunks, for a worker thread (see the module)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._left = memoryview(b"")
        self._ended = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ahead: Future[bytes] | None = None

    def readable(self) -> bool:
        return True

    async def _gather(self) -> bytes:
        """On the event loop: the next :data:`BUFFER` bytes or more (less only at the end)."""
        parts: list[bytes] = []
        size = 0
        while size < BUFFER:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def _next_block(self) -> bytes:
        """The block read ahead (waiting for it), and the next one asked for at once, so the
        event loop receives while this thread works on the block."""
        if self._loop is None:
            self._loop = anyio.from_thread.run_sync(asyncio.get_running_loop)
        ahead = self._ahead or asyncio.run_coroutine_threadsafe(self._gather(), self._loop)
        block = ahead.result()  # raises what the body raised (a client gone, a bad multipart)
        self._ahead = None
        if block:
            self._ahead = asyncio.run_coroutine_threadsafe(self._gather(), self._loop)
        else:
            self._ended = True
        return block

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._left and not self._ended:
            self._left = memoryview(self._next_block())
        size = min(len(view), len(self._left))
        view[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


def blocking_file(chunks: AsyncIterator[bytes]) -> io.BufferedReader:
    """A buffered :class:`BlockingStream` over ``chunks`` (for a worker thread)."""
    return io.BufferedReader(BlockingStream(chunks), BUFFER)
