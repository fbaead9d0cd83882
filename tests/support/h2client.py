"""A bare HTTP/2 client for tests of the gRPC server: it writes the frames a test chooses and
reads what comes back (HPACK by the ``hpack`` package, frames packed here, independently of
:mod:`helixserve.serving.grpc_h2`)."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0,
    1,
    3,
    4,
    6,
    7,
    8,
    9,
)
END_STREAM, END_HEADERS = 0x1, 0x4
SERVICE = "/inference.GRPCInferenceService/"
Frame = tuple[int, int, int, bytes]


def pack_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def grpc_message(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", int(compressed), len(message)) + message


@dataclass
class Reply:
    """What came back on one stream."""

    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)
    reset: int | None = None  # the RST_STREAM error code, if the stream was reset

    @property
    def status(self) -> str:
        return self.trailers.get("grpc-status", self.headers.get("grpc-status", ""))

    @property
    def message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    def payload(self) -> bytes:
        assert self.data[:1] == b"\x00"
        (size,) = struct.unpack(">I", self.data[1:5])
        assert len(self.data) == 5 + size
        return self.data[5:]


class H2Client:
    """One connection; see the module docstring."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.seen: list[Frame] = []  # every frame read, in order

    @classmethod
    async def connect(cls, address: str, settings: dict[int, int] | None = None) -> H2Client:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        client = cls(reader, writer)
        body = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        writer.write(PREFACE + pack_frame(SETTINGS, 0, 0, body))
        return client

    def send(self, kind: int, flags: int, stream: int, payload: bytes = b"") -> None:
        self.writer.write(pack_frame(kind, flags, stream, payload))

    def block(self, headers: list[tuple[str, str]], huffman: bool = True) -> bytes:
        return bytes(self.encoder.encode(headers, huffman=huffman))

    def request(
        self,
        stream: int,
        method: str,
        message: bytes,
        metadata: list[tuple[str, str]] | None = None,
        content_type: str = "application/grpc",
    ) -> None:
        """A unary call: HEADERS, then the framed message in one DATA frame ending the stream."""
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", SERVICE + method),
            (":authority", "test"),
            ("content-type", content_type),
            ("te", "trailers"),
            *(metadata or []),
        ]
        self.send(HEADERS, END_HEADERS, stream, self.block(headers))
        self.send(DATA, END_STREAM, stream, grpc_message(message))

    async def frame(self, timeout: float = 10) -> Frame:
        head = await asyncio.wait_for(self.reader.readexactly(9), timeout)
        length = int.from_bytes(head[:3], "big")
        kind, flags, stream = struct.unpack(">BBI", head[3:])
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        found = (kind, flags, stream & 0x7FFFFFFF, payload)
        self.seen.append(found)
        if kind == SETTINGS and not flags & 0x1:
            self.send(SETTINGS, 0x1, 0)
        return found

    async def reply(self, stream: int, timeout: float = 10) -> Reply:
        """Read frames until ``stream`` ends; headers, data and trailers of it."""
        reply = Reply()
        while True:
            kind, flags, sid, payload = await self.frame(timeout)
            if sid != stream:
                continue
            if kind == RST_STREAM:
                reply.reset = struct.unpack(">I", payload)[0]
                return reply
            if kind == HEADERS:
                decoded = {str(n): str(v) for n, v in self.decoder.decode(payload)}
                if reply.headers:
                    reply.trailers = decoded
                else:
                    reply.headers = decoded
            elif kind == DATA:
                reply.data += payload
            if flags & END_STREAM:
                return reply

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
