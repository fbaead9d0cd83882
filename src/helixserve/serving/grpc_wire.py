"""gRPC over HTTP/2 for :mod:`helixserve.serving.grpc_h2`: a call's outcome and what it looks
like on the wire.

Contract:
- :class:`Answer` is what a call's handler returns: the gRPC status code (0 = OK), its message
  and the response message's bytes (``None`` for an error).
- :data:`RESPONSE_HEADERS` is the header block that opens every answer (``:status 200``,
  ``content-type: application/grpc``); :func:`trailers` the one that ends it (``grpc-status``,
  and ``grpc-message`` percent-encoded as gRPC asks).
- :func:`inflate` reads a compressed request message (``grpc-encoding`` gzip or deflate, as
  gRPC's core packs them), at most ``limit`` bytes of it; it returns the bytes, or the
  :class:`Answer` refusing the call: UNIMPLEMENTED for another encoding, RESOURCE_EXHAUSTED past
  the limit, INTERNAL for data that does not inflate.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from helixserve.serving.h2_headers import literal


@dataclass(frozen=True)
class Answer:
    """A call's outcome: gRPC status code (0 = OK), its message, and the response message."""

    status: int
    message: str = ""
    payload: bytes | None = None


# The response headers: ``:status 200`` (static index 8) and the content type.
RESPONSE_HEADERS = b"\x88" + literal(b"content-type", b"application/grpc")


def trailers(status: int, message: str) -> bytes:
    """The header block of ``grpc-status`` and ``grpc-message`` (percent-encoded)."""
    block = literal(b"grpc-status", str(status).encode())
    if message:
        block += literal(b"grpc-message", _percent(message))
    return block


def _percent(text: str) -> bytes:
    """gRPC's percent-encoding: bytes outside printable ASCII, and ``%``, as ``%XX``."""
    raw = text.encode("utf-8", "replace")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(data: bytes, encoding: str, limit: int) -> bytes | Answer:
    """A compressed message's bytes, or the answer refusing it; see the module contract."""
    wbits = WBITS.get(encoding)
    if wbits is None:
        return Answer(
            12,
            f"messages compressed with {encoding!r} are not supported; send them "
            "uncompressed, gzip or deflate.",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return Answer(13, f"the message is not valid {encoding} data.")
    if len(out) > limit:
        return Answer(8, f"the request is larger than {limit:,} bytes.")
    if not inflater.eof:
        return Answer(13, f"the message is not valid {encoding} data.")
    return out
