"""HPACK decoding (serving/h2_headers.py) against the ``hpack`` package's encoder, and the BYTES
tensor packing the gRPC and REST binary paths share (serving/oip.py)."""

from __future__ import annotations

import hpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixserve.serving.h2_headers import HeaderDecoder, HeaderError
from helixserve.serving.oip import FIXED_FROM, pack_bytes, unpack_bytes

# --- HPACK -------------------------------------------------------------------------------------

NAMES = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
BLOCKS = st.lists(st.lists(st.tuples(NAMES, VALUES), max_size=8), min_size=1, max_size=6)


@given(blocks=BLOCKS, huffman=st.booleans(), table=st.sampled_from([4096, 256, 0]))
def test_hpack_decoding_matches_the_reference_encoder(
    blocks: list[list[tuple[str, str]]], huffman: bool, table: int
) -> None:
    """Blocks encoded one after another by the ``hpack`` package (dynamic table, Huffman or
    not, a table size update first) decode to what was encoded, in order."""
    encoder, decoder = hpack.Encoder(), HeaderDecoder()
    encoder.header_table_size = table
    for headers in blocks:
        block = encoder.encode(headers, huffman=huffman)
        expected = [(n.encode(), v.encode()) for n, v in headers]
        assert decoder.decode(block) == expected
        assert decoder.decode(encoder.encode(headers, huffman=huffman)) == expected


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\xff\x00", "header index 127 is in neither table"),
        (b"\x00\x05ab", "string runs past the end of the header block"),
        (b"\xff\xff\xff\xff\xff\xff", "integer too long in a header block"),
        (b"\x3f\xe1\x1f", "table size update to 4096 above 1000"),
        (b"\x00\x01a\x78" + b"v" * 120, "header list above 100 bytes"),
    ],
)
def test_malformed_header_blocks_are_refused(block: bytes, message: str) -> None:
    with pytest.raises(HeaderError) as caught:
        HeaderDecoder(table_size=1000, max_list_size=100).decode(block)
    assert str(caught.value) == message


# --- BYTES tensors -------------------------------------------------------------------------------

ELEMENTS = st.lists(st.binary(max_size=12), max_size=20)


@given(values=ELEMENTS)
def test_bytes_packing_round_trips(values: list[bytes]) -> None:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    assert unpack_bytes(pack_bytes(array), "x").tolist() == values


@given(size=st.integers(1, 8), count=st.integers(1, 40), data=st.data())
def test_bytes_of_one_length_round_trip_as_a_fixed_width_array(
    size: int, count: int, data: st.DataObject
) -> None:
    values = data.draw(
        st.lists(st.binary(min_size=size, max_size=size), min_size=count, max_size=count)
    )
    array = np.empty(count, dtype=object)
    array[:] = values
    unpacked = unpack_bytes(pack_bytes(array), "x")
    assert unpacked.tolist() == values
    fixed = count >= FIXED_FROM and not any(v.endswith(b"\x00") for v in values)
    assert unpacked.dtype.kind == ("S" if fixed else "O")
