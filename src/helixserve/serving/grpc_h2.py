"""A small HTTP/2 server for unary gRPC calls, running on the server process's event loop.

Contract:
- :class:`H2Server` listens on ``host:port`` (``SO_REUSEPORT``, so every worker process of
  ``helixserve serve`` listens on the same port) for HTTP/2 over cleartext with prior knowledge
  (what gRPC clients speak without TLS) and answers each stream as one unary gRPC call:
  ``POST /<service>/<method>``, ``content-type: application/grpc[+proto]``, one
  length-prefixed message. It calls ``handler(method, metadata, message)``, where ``method`` is
  the path, ``metadata`` the request's headers (pseudo-headers too; names lower case, values
  text) and ``message`` the message bytes; the handler returns a
  :class:`~helixserve.serving.grpc_wire.Answer`. Everything
  happens on the event loop: no thread takes part in a call.
- What a client gets: ``:status 200`` and ``content-type: application/grpc``, the answer's
  message, then trailers ``grpc-status`` / ``grpc-message`` (percent-encoded); an answer with
  no message goes as one trailers-only HEADERS frame. A request that is not gRPC gets HTTP 415
  (wrong content type) or 405 (not POST). A compressed message (``grpc-encoding`` gzip or
  deflate) is inflated, at most ``max_message`` bytes of it; another encoding gets
  UNIMPLEMENTED. Answers go uncompressed. A message larger than ``max_message`` gets
  RESOURCE_EXHAUSTED; a body that is not one length-prefixed message, or compressed data that
  does not inflate, gets INTERNAL.
- HTTP/2 as RFC 9113 asks of a server: SETTINGS (ours: at most ``max_streams`` concurrent
  streams, 1 MiB stream windows, a 16 MiB connection window) and their ACKs, PING ACKs, flow
  control both ways (receive windows are replenished as data arrives, the connection's only
  while its unfinished requests hold at most twice ``max_message``; answers wait for the
  client's windows and are cut to its largest frame size), RST_STREAM (the call's task is
  cancelled), CONTINUATION, padding, and GOAWAY. A frame that breaks the protocol or a header
  block that cannot be decoded (:mod:`helixserve.serving.h2_headers`) ends the connection with
  GOAWAY and the error code, then a half-close: input is drained (never a TCP reset that could
  destroy the GOAWAY) until the client closes, for at most ``LINGER`` seconds.
- :meth:`H2Server.stop` stops listening and sends GOAWAY on every connection: calls already
  received are answered (for up to ``grace`` seconds, then their connections close); streams
  opened after the GOAWAY are refused (``REFUSED_STREAM``: clients retry or see UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import cast

from helixserve.serving.grpc_wire import RESPONSE_HEADERS, Answer, inflate, trailers
from helixserve.serving.h2_headers import HeaderDecoder, HeaderError

log = logging.getLogger("helixserve.grpc")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
LINGER = 2.0  # seconds a connection that failed drains input before it closes
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0x0, 0x1, 0x3, 0x5
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x6, 0x7, 0x8, 0x9
MAX_FRAME = 16384  # the largest frame we accept (the protocol's default)
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 16 << 20
MAX_HEADER_BLOCK = 64 * 1024
MAX_WINDOW = (1 << 31) - 1
_HEAD = struct.Struct(">I")  # a frame header is 3 bytes length, type, flags, 4 bytes stream id


Handler = Callable[[str, dict[str, str], bytes], Awaitable[Answer]]


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return _HEAD.pack(len(payload))[1:] + bytes((kind, flags)) + _HEAD.pack(stream) + payload


class _Stream:
    __slots__ = ("body", "complete", "headers", "id", "size", "task", "unacked", "window")

    def __init__(self, stream_id: int, window: int) -> None:
        self.id = stream_id
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.unacked = 0  # data received and not yet given back in a WINDOW_UPDATE
        self.window = window  # what we may send on it
        self.complete = False  # the request has ended: later data is dropped
        self.task: asyncio.Task[None] | None = None


class H2Error(Exception):
    """A connection error: the connection ends with GOAWAY and ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise H2Error(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


class _Connection(asyncio.Protocol):
    """One client connection; see the module contract."""

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.preface = False
        self.decoder = HeaderDecoder()
        self.streams: dict[int, _Stream] = {}
        self.last_id = 0  # the highest stream the client opened
        self.window = 65535  # what we may send on the connection
        self.peer_window = 65535  # the client's initial stream window
        self.peer_frame = 16384  # the client's largest frame
        self.unacked = 0  # data received and not yet given back in a WINDOW_UPDATE
        self.buffered = 0  # bytes held in the bodies of requests not yet complete
        self.continued = 0  # the stream whose header block goes on in CONTINUATION frames
        self.fragment = bytearray()
        self.fragment_flags = 0
        self.pending: list[tuple[_Stream, memoryview, bytes]] = []  # answers waiting on windows
        self.going = False  # GOAWAY sent
        self.failed: asyncio.TimerHandle | None = None  # a connection error: input is dropped

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections.add(self)
        grow = _HEAD.pack(CONNECTION_WINDOW - 65535)
        self.transport.write(self.server.settings + frame(WINDOW_UPDATE, 0, 0, grow))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.pending.clear()
        self.transport = None
        if self.failed is not None:
            self.failed.cancel()

    def data_received(self, data: bytes) -> None:
        if self.failed is not None:
            return  # after a connection error's GOAWAY: drained until the client closes
        buffer = self.buffer
        buffer += data
        if not self.preface:
            if buffer[: len(PREFACE)] != PREFACE[: len(buffer)]:
                self._close()  # not HTTP/2 with prior knowledge
                return
            if len(buffer) < len(PREFACE):
                return
            del buffer[: len(PREFACE)]
            self.preface = True
        at, end = 0, len(buffer)
        try:
            while end - at >= 9 and self.transport and not self.transport.is_closing():
                length = int.from_bytes(buffer[at : at + 3], "big")
                if length > MAX_FRAME:
                    raise H2Error(FRAME_SIZE_ERROR, f"a {length}-byte frame")
                if end - at - 9 < length:
                    break
                kind, flags = buffer[at + 3], buffer[at + 4]
                stream = _HEAD.unpack_from(buffer, at + 5)[0] & 0x7FFFFFFF
                payload = bytes(buffer[at + 9 : at + 9 + length])
                at += 9 + length
                self._frame(kind, flags, stream, payload)
        except H2Error as err:
            self._fail(err)
            return
        del buffer[:at]

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self.continued and kind != CONTINUATION:
            raise H2Error(PROTOCOL_ERROR, "a header block was interrupted")
        if kind == HEADERS:
            self._headers(flags, sid, payload)
        elif kind == DATA:
            self._data(flags, sid, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif kind == PING:
            self._ping(flags, sid, payload)
        elif kind == SETTINGS:
            self._settings(flags, sid, payload)
        elif kind == RST_STREAM:
            self._reset(sid, payload)
        elif kind == CONTINUATION:
            self._continuation(flags, sid, payload)
        elif kind == PUSH_PROMISE:
            raise H2Error(PROTOCOL_ERROR, "a client may not push")
        elif kind == PRIORITY and len(payload) != 5:
            raise H2Error(FRAME_SIZE_ERROR, "bad PRIORITY")
        # PRIORITY, GOAWAY (the client closes when it is done) and unknown types: nothing to do

    def _ping(self, flags: int, sid: int, payload: bytes) -> None:
        if len(payload) != 8 or sid:
            raise H2Error(FRAME_SIZE_ERROR if sid == 0 else PROTOCOL_ERROR, "bad PING")
        if not flags & ACK:
            self._write(frame(PING, ACK, 0, payload))

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0 or sid % 2 == 0:
            raise H2Error(PROTOCOL_ERROR, f"HEADERS on stream {sid}")
        payload = _unpadded(flags, payload)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        if flags & END_HEADERS:
            self._header_block(flags, sid, payload)
        else:
            self.continued, self.fragment_flags = sid, flags
            self.fragment = bytearray(payload)

    def _continuation(self, flags: int, sid: int, payload: bytes) -> None:
        if not self.continued or sid != self.continued:
            raise H2Error(PROTOCOL_ERROR, "CONTINUATION without a header block")
        self.fragment += payload
        if len(self.fragment) > MAX_HEADER_BLOCK:
            raise H2Error(PROTOCOL_ERROR, "header block too large")
        if flags & END_HEADERS:
            self.continued = 0
            self._header_block(self.fragment_flags, sid, bytes(self.fragment))

    def _header_block(self, flags: int, sid: int, block: bytes) -> None:
        try:
            pairs = self.decoder.decode(block)
        except HeaderError as err:
            raise H2Error(COMPRESSION_ERROR, str(err)) from None
        stream = self.streams.get(sid)
        if stream is not None:  # trailers after the data: the request ends
            if not flags & END_STREAM or stream.complete:
                raise H2Error(PROTOCOL_ERROR, f"unexpected HEADERS on stream {sid}")
            self._end(stream)
            return
        if sid <= self.last_id:
            raise H2Error(STREAM_CLOSED, f"HEADERS on closed stream {sid}")
        self.last_id = sid
        if self.going or len(self.streams) >= self.server.max_streams:
            self._write(frame(RST_STREAM, 0, sid, _HEAD.pack(REFUSED_STREAM)))
            return
        stream = self.streams[sid] = _Stream(sid, self.peer_window)
        stream.headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in pairs}
        if flags & END_STREAM:
            self._end(stream)

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0 or sid > self.last_id:
            raise H2Error(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
        self.unacked += len(payload)
        stream = self.streams.get(sid)
        if stream is None or stream.complete:
            self._replenish()
            return  # a stream we refused, reset or answered: its data is dropped
        data = _unpadded(flags, payload)
        stream.size += len(data)
        if stream.size > self.server.max_message + 5:
            limit = self.server.max_message
            self._release(stream)
            self._respond(stream, Answer(8, f"the request is larger than {limit:,} bytes."))
            self._write(frame(RST_STREAM, 0, sid, _HEAD.pack(NO_ERROR)))
            return
        stream.body.append(data)
        self.buffered += len(data)
        self._replenish()
        if flags & END_STREAM:
            self._end(stream)
            return
        stream.unacked += len(payload)
        if stream.unacked >= STREAM_WINDOW // 2:
            self._write(frame(WINDOW_UPDATE, 0, sid, _HEAD.pack(stream.unacked)))
            stream.unacked = 0

    def _replenish(self) -> None:
        """Give the connection window back once half of it is used, unless the requests not
        yet complete hold over twice the largest message (then the client waits)."""
        if self.unacked >= CONNECTION_WINDOW // 2 and self.buffered <= 2 * self.server.max_message:
            self._write(frame(WINDOW_UPDATE, 0, 0, _HEAD.pack(self.unacked)))
            self.unacked = 0

    def _release(self, stream: _Stream) -> None:
        """Forget the body received so far (the request is handed on, refused or reset)."""
        self.buffered -= sum(map(len, stream.body))
        stream.body = []
        self._replenish()

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2Error(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = _HEAD.unpack(payload)[0] & 0x7FFFFFFF
        if sid == 0:
            if increment == 0 or self.window + increment > MAX_WINDOW:
                raise H2Error(FLOW_CONTROL_ERROR, "bad connection window update")
            self.window += increment
        elif (stream := self.streams.get(sid)) is not None:
            stream.window += increment
        if self.pending:
            self._flush()

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise H2Error(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            return
        if len(payload) % 6:
            raise H2Error(FRAME_SIZE_ERROR, "bad SETTINGS")
        for at in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, at)
            if key == 0x4:  # SETTINGS_INITIAL_WINDOW_SIZE
                if value > MAX_WINDOW:
                    raise H2Error(FLOW_CONTROL_ERROR, "initial window too large")
                for stream in self.streams.values():
                    stream.window += value - self.peer_window
                self.peer_window = value
            elif key == 0x5:  # SETTINGS_MAX_FRAME_SIZE
                if not 16384 <= value <= 16777215:
                    raise H2Error(PROTOCOL_ERROR, "bad max frame size")
                self.peer_frame = value
        self._write(frame(SETTINGS, ACK, 0))
        if self.pending:
            self._flush()

    def _reset(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2Error(FRAME_SIZE_ERROR, "bad RST_STREAM")
        if sid == 0 or sid > self.last_id:
            raise H2Error(PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
        stream = self.streams.pop(sid, None)
        if stream is not None:
            self._release(stream)
            if stream.task is not None:
                stream.task.cancel()
            self.pending = [p for p in self.pending if p[0] is not stream]
            self._closed_one()

    def _end(self, stream: _Stream) -> None:
        """The request is complete: check it is a gRPC call and start answering it."""
        stream.complete = True
        body = stream.body[0] if len(stream.body) == 1 else b"".join(stream.body)
        self._release(stream)
        headers = stream.headers
        if headers.get(":method") != "POST":
            self._http_error(stream, b"405")
            return
        if not headers.get("content-type", "").startswith("application/grpc"):
            self._http_error(stream, b"415")
            return
        if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
            self._respond(stream, Answer(13, "the request is not one length-prefixed message."))
            return
        message = body[5:]
        if body[0]:
            encoding = headers.get("grpc-encoding", "identity")
            inflated = inflate(message, encoding, self.server.max_message)
            if isinstance(inflated, Answer):
                self._respond(stream, inflated)
                return
            message = inflated
        call = self.server.handler(headers.get(":path", ""), headers, message)
        stream.task = asyncio.get_running_loop().create_task(self._answer(stream, call))

    async def _answer(self, stream: _Stream, call: Awaitable[Answer]) -> None:
        try:
            answer = await call
        except Exception:  # the handler answers its own errors; this is a bug
            log.exception("gRPC call on stream %d failed", stream.id)
            answer = Answer(13, "internal error; it has been logged.")
        self._respond(stream, answer)

    def _respond(self, stream: _Stream, answer: Answer) -> None:
        sid = stream.id
        if self.streams.get(sid) is not stream:
            return  # reset by the client, or the connection is gone
        stream.complete = True
        tail = frame(
            HEADERS, END_HEADERS | END_STREAM, sid, trailers(answer.status, answer.message[:4096])
        )
        if answer.payload is None:
            self._write(frame(HEADERS, END_HEADERS | END_STREAM, sid, RESPONSE_HEADERS + tail[9:]))
            self._finish(stream)
            return
        payload = answer.payload
        body = b"\x00" + len(payload).to_bytes(4, "big") + payload
        head = frame(HEADERS, END_HEADERS, sid, RESPONSE_HEADERS)
        size = len(body)
        if size <= self.window and size <= stream.window and size <= self.peer_frame:
            self.window -= size
            self._write(head + frame(DATA, 0, sid, body) + tail)
            self._finish(stream)
            return
        self._write(head)
        self.pending.append((stream, memoryview(body), tail))
        self._flush()

    def _flush(self) -> None:
        """Send what the client's windows allow of the answers waiting for them."""
        out, waiting, done = [], [], []
        for stream, left, tail in self.pending:
            rest = left
            while rest and self.window > 0 and stream.window > 0:
                n = min(len(rest), self.window, stream.window, self.peer_frame)
                out.append(frame(DATA, 0, stream.id, bytes(rest[:n])))
                rest = rest[n:]
                self.window -= n
                stream.window -= n
            if rest:
                waiting.append((stream, rest, tail))
            else:
                out.append(tail)
                done.append(stream)
        self.pending = waiting
        if out:
            self._write(b"".join(out))
        for stream in done:
            self._finish(stream)

    def _http_error(self, stream: _Stream, status: bytes) -> None:
        block = b"\x08" + bytes((len(status),)) + status  # :status, indexed name (static 8)
        self._write(frame(HEADERS, END_HEADERS | END_STREAM, stream.id, block))
        self._finish(stream)

    def _finish(self, stream: _Stream) -> None:
        if self.streams.pop(stream.id, None) is not None:
            self._closed_one()

    def _closed_one(self) -> None:
        if self.going and not self.streams:
            self._close()

    def goaway(self) -> None:
        """Take no new streams; close once the open ones are answered."""
        if not self.going:
            self.going = True
            self._write(frame(GOAWAY, 0, 0, _HEAD.pack(self.last_id) + _HEAD.pack(NO_ERROR)))
            self._closed_one()

    def _fail(self, err: H2Error) -> None:
        log.info("HTTP/2 connection error %d: %s", err.code, err)
        reason = str(err).encode()[:256]
        self._write(frame(GOAWAY, 0, 0, _HEAD.pack(self.last_id) + _HEAD.pack(err.code) + reason))
        transport = self.transport
        if transport is None or not transport.can_write_eof():
            self._close()
            return
        # A close with unread input would send a TCP reset, which can destroy the GOAWAY before
        # the client reads it: half-close, drop what still arrives, close after LINGER seconds.
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.pending.clear()
        transport.write_eof()
        self.failed = asyncio.get_running_loop().call_later(LINGER, self._close)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.failed is None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class H2Server:
    """The listening side; see the module contract. Same life cycle as ``grpc.aio.Server``:
    :meth:`start`, then :meth:`stop`."""

    def __init__(
        self, handler: Handler, host: str, port: int, max_message: int, max_streams: int = 1000
    ) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.max_message = max_message
        self.max_streams = max_streams
        self.connections: set[_Connection] = set()
        self.settings = frame(
            SETTINGS,
            0,
            0,
            struct.pack(">HIHIHI", 0x3, max_streams, 0x4, STREAM_WINDOW, 0x6, 16384),
        )
        self._listener: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, reuse_port=True, backlog=1024
        )

    async def stop(self, grace: float | None) -> None:
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections):
            connection.goaway()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (grace or 0)
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection._close()
