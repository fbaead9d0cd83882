"""HPACK (RFC 7541) for the gRPC server of :mod:`helixserve.serving.grpc_h2`: decoding the
header blocks clients send, and encoding the fields the server sends.

Contract:
- :class:`HeaderDecoder` holds one connection's dynamic table and turns each complete header
  block into ``(name, value)`` pairs of ``bytes``, in order. It takes every representation
  (indexed, literal with/without/never indexing, table size update) and Huffman-coded strings
  (decoded by the ``hpack`` package, whose static table it also uses). A malformed block — an
  index outside the tables, a string running past the block, an integer longer than 4 bytes of
  continuation, bad Huffman code, a table size above the one we advertised, or a header list
  above ``max_list_size`` bytes (names + values + 32 each, as RFC 7540 counts it) — raises
  :class:`HeaderError`; the connection must then end (its table is out of step).
- An all-indexed block leaves the table as it was, so its pairs are kept (a client sending the
  same call again sends the same few bytes) until the table next changes.
- :func:`literal` encodes one field as a literal without indexing, not Huffman-coded: the server
  never adds to the client's table, so what it sends needs no state.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

STATIC = HeaderTable.STATIC_TABLE
ENTRY_OVERHEAD = 32  # RFC 7541 4.1: an entry's size is its name + value + 32
Header = tuple[bytes, bytes]


class HeaderError(Exception):
    """A header block that cannot be decoded (a connection error: COMPRESSION_ERROR)."""


class HeaderDecoder:
    """One connection's HPACK decoder; see the module contract."""

    def __init__(self, table_size: int = 4096, max_list_size: int = 16384) -> None:
        self.limit = table_size  # what SETTINGS_HEADER_TABLE_SIZE allows the encoder
        self.max_size = table_size
        self.max_list_size = max_list_size
        self.size = 0
        self.dynamic: deque[Header] = deque()
        self._known: dict[bytes, list[Header]] = {}  # all-indexed blocks, while the table stands

    def decode(self, block: bytes) -> list[Header]:
        known = self._known.get(block)
        if known is not None:
            return known
        headers: list[Header] = []
        changed, i, end, listed = False, 0, len(block), 0
        while i < end:
            first = block[i]
            if first & 0x80:  # indexed field
                index, i = _integer(block, i, 7)
                header = self._entry(index)
            elif first & 0xE0 == 0x20:  # dynamic table size update
                size, i = _integer(block, i, 5)
                if size > self.limit:
                    raise HeaderError(f"table size update to {size} above {self.limit}")
                self.max_size, changed = size, True
                self._evict(0)
                continue
            else:
                indexing = bool(first & 0x40)
                index, i = _integer(block, i, 6 if indexing else 4)
                if index:
                    name = self._entry(index)[0]
                else:
                    name, i = _string(block, i)
                value, i = _string(block, i)
                header = (name, value)
                if indexing:
                    self._add(header)
                    changed = True
            listed += len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if listed > self.max_list_size:
                raise HeaderError(f"header list above {self.max_list_size} bytes")
            headers.append(header)
        if changed:
            self._known.clear()
        elif len(self._known) < 64:
            self._known[bytes(block)] = headers
        return headers

    def _entry(self, index: int) -> Header:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        position = index - len(STATIC) - 1
        if 0 <= position < len(self.dynamic):
            return self.dynamic[position]
        raise HeaderError(f"header index {index} is in neither table")

    def _add(self, header: Header) -> None:
        size = len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
        self._evict(size)
        if size <= self.max_size:  # an entry larger than the table empties it (RFC 7541 4.4)
            self.dynamic.appendleft(header)
            self.size += size

    def _evict(self, room: int) -> None:
        while self.dynamic and self.size + room > self.max_size:
            name, value = self.dynamic.pop()
            self.size -= len(name) + len(value) + ENTRY_OVERHEAD


def _integer(block: bytes, i: int, prefix: int) -> tuple[int, int]:
    """The prefix-coded integer at ``block[i]`` (RFC 7541 5.1) and the index after it."""
    mask = (1 << prefix) - 1
    value = block[i] & mask
    i += 1
    if value < mask:
        return value, i
    for shift in range(0, 28, 7):
        if i >= len(block):
            raise HeaderError("header block ends inside an integer")
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
    raise HeaderError("integer too long in a header block")


def _string(block: bytes, i: int) -> tuple[bytes, int]:
    """The string literal at ``block[i]`` (RFC 7541 5.2) and the index after it."""
    if i >= len(block):
        raise HeaderError("header block ends before a string")
    huffman = block[i] & 0x80
    length, i = _integer(block, i, 7)
    if i + length > len(block):
        raise HeaderError("string runs past the end of the header block")
    raw = bytes(block[i : i + length])
    if huffman:
        try:
            raw = decode_huffman(raw)
        except HPACKDecodingError as err:
            raise HeaderError(str(err)) from None
    return raw, i + length


def literal(name: bytes, value: bytes) -> bytes:
    """One field as a literal without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return b"\x00" + _length(len(name)) + name + _length(len(value)) + value


def _length(n: int) -> bytes:
    """A string length with the 7-bit prefix and the Huffman bit clear."""
    if n < 0x7F:
        return bytes((n,))
    out, n = bytearray((0x7F,)), n - 0x7F
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
