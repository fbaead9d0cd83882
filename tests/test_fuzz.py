"""Hypothesis fuzzing of every parser, encoder and the manifest reader.

Each target takes arbitrary bytes, text or arrays and must return a result or raise a typed
:class:`~helixserve.errors.HelixError` (the class named per target) — never any other exception.
Where a result comes back, its invariants are checked too (records in order, arrays of the
promised shape and range, round trips exact).

``HELIXSERVE_FUZZ_EXAMPLES`` sets the examples per target (default 200: the whole file runs in
well under a minute); ``python -m reliability.fuzz`` runs it with thousands.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import string
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from helixserve.errors import (
    HelixError,
    InputError,
    InvalidImage,
    InvalidName,
    InvalidSequence,
    InvalidTensor,
    ManifestError,
)
from helixserve.inputs import (
    BadRecord,
    Feature,
    ImageSchema,
    Record,
    SequenceSchema,
    TabularSchema,
    decode_image,
    encode_batch,
    one_hot_decode,
    one_hot_encode,
    read_rows,
    read_sequences,
    token_decode,
    token_encode,
    validate_records,
    validate_row,
    validate_sequence,
)
from helixserve.inputs.table import FORMULA_PREFIXES, csv_safe
from helixserve.inputs.tabular import FeatureRow
from helixserve.serving.oip_rest import parse_infer_request
from helixserve.store.manifest import Manifest, parse_manifest
from helixserve.store.names import parse_ref

EXAMPLES = int(os.environ.get("HELIXSERVE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T = TypeVar("T")

# --- strategies -----------------------------------------------------------------------------

# Pieces that real and hostile sequence/table files are made of: more bugs hide in these than in
# uniformly random bytes, which are almost always refused as binary on the first 8 KiB.
PIECES = [
    b">",
    b">seq1 desc",
    b"\n",
    b"\r\n",
    b"\r",
    b",",
    b"\t",
    b'"',
    b'""',
    b";",
    b"#",
    b" ",
    b"ACGT",
    b"acgu",
    b"N",
    b"X",
    b"ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTAC",
    b"sequence",
    b"id",
    b"seq,id",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xe9",
    b"\xc3\xa9",
    b"\xed\xa0\x80",
    b"=cmd|' /C calc'!A0",
    b"@SUM(1)",
    b"-1",
    b"+1",
    b"1e309",
    b"NaN",
    b"?",
    b"5",
    b"10",
    b"\x1f\x8b",
    b"GIF89a",
    b"PK\x03\x04",
]
file_bytes = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from(PIECES) | st.binary(max_size=8), max_size=120).map(b"".join),
)


def compressed(data: st.DataObject, raw: bytes) -> bytes:
    """``raw`` gzip-compressed, sometimes cut short (a truncated download)."""
    packed = gzip.compress(raw, mtime=0)
    if data.draw(st.booleans(), label="truncate"):
        packed = packed[: data.draw(st.integers(0, len(packed)), label="keep")]
    return packed


def drain(items: Iterable[T], expected: type[HelixError]) -> list[T] | HelixError:
    """Every item, or the typed error that stopped the iteration (anything else propagates)."""
    out: list[T] = []
    try:
        for item in items:
            out.append(item)
    except expected as err:
        assert str(err).encode("utf-8"), "a typed error carries a message that JSON can carry"
        return err
    return out


def check_records(items: list[Any]) -> None:
    """Records come once each, in file order, bad ones with a located message."""
    indexes = [item.index for item in items]
    assert indexes == sorted(set(indexes)), indexes
    for item in items:
        assert isinstance(item, Record | BadRecord | FeatureRow)
        assert item.line >= 1
        if isinstance(item, BadRecord):
            assert isinstance(item.error, InputError)
            assert str(item.error).startswith(f"record {item.index:,}")
            str(item.error).encode("utf-8")  # no lone surrogate: the message can go into JSON
        elif isinstance(item, Record):
            "".join([item.sequence, item.id or "", *item.fields.values()]).encode("utf-8")


# --- file readers ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("fmt", ["auto", "fasta", "csv", "tsv", "text"])
@FUZZ
@given(data=st.data(), raw=file_bytes)
def test_read_sequences_any_bytes(data: st.DataObject, raw: bytes, fmt: Any, gz: bool) -> None:
    payload = compressed(data, raw) if gz else raw
    limit = data.draw(st.none() | st.integers(1, 4096), label="max_decompressed")
    result = drain(
        read_sequences(io.BytesIO(payload), format=fmt, max_length=200, max_decompressed=limit),
        InputError,
    )
    if isinstance(result, list):
        check_records(result)
        schema = SequenceSchema(alphabet="ACGTN", min_length=1, max_length=200)
        validated = list(validate_records(result, schema))
        check_records(validated)
        for item in validated:
            if isinstance(item, Record):
                assert set(item.sequence) <= set("ACGTN")


TUMOUR = TabularSchema(
    features=[Feature(name="a", type="int", min=1, max=10), Feature(name="b", type="float")]
)
ROW_PIECES = [b"a,b\n", b"id,a,b\n", b"a\tb\n", b"A,B\r\n", b"1,2.5\n", b"?,\n", b"1e400,1\n"]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@FUZZ
@given(
    data=st.data(),
    raw=file_bytes | st.lists(st.sampled_from(ROW_PIECES + PIECES), max_size=60).map(b"".join),
)
def test_read_rows_any_bytes(data: st.DataObject, raw: bytes, gz: bool) -> None:
    payload = compressed(data, raw) if gz else raw
    result = drain(read_rows(io.BytesIO(payload), TUMOUR), InputError)
    if isinstance(result, list):
        check_records(result)
        for row in result:
            if isinstance(row, FeatureRow):
                assert row.values[0] is not None and 1 <= row.values[0] <= 10
                assert float(row.values[0]).is_integer()


# --- values: sequences, rows, encoders ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
sequence_schemas = st.one_of(
    st.builds(
        SequenceSchema,
        alphabet=st.sampled_from(["ACGT", "ACGTN"]),
        length=st.integers(1, 60),
        rna_to_dna=st.booleans(),
        flank_left=st.text("ACGTN", max_size=5),
        flank_right=st.text("ACGTN", max_size=5),
    ),
    st.builds(
        SequenceSchema,
        min_length=st.integers(1, 5),
        max_length=st.integers(5, 80),
        encoding=st.just("tokens"),
        pad_to=st.just(80),
        padding=st.sampled_from(["right", "left"]),
    ),
)
dna_text = st.text(alphabet="ACGTUNacgtunRYX \n\t\u00a0é\x00", max_size=90)


@FUZZ
@given(raw=json_values | dna_text | st.text(), schema=sequence_schemas)
def test_validate_and_encode_any_sequence(raw: object, schema: SequenceSchema) -> None:
    try:
        sequence = validate_sequence(raw, schema)
    except InvalidSequence as err:
        assert err.field == "sequence" and str(err)
        return
    assert set(sequence) <= set(schema.alphabet)
    encoded = encode_batch([sequence], schema)
    if schema.encoding == "tokens":
        assert encoded.shape == (1, schema.pad_to)
        assert token_decode(encoded.astype(np.int64)) == [sequence]
    else:
        flanks = len(schema.flank_left) + len(schema.flank_right)
        assert encoded.shape == (1, 4, flanks + len(sequence))
        decoded = one_hot_decode(
            encoded.astype(np.float32),
            flank_left=len(schema.flank_left),
            flank_right=len(schema.flank_right),
        )
        assert decoded == [sequence]


@FUZZ
@given(
    sequences=st.lists(dna_text | st.text(max_size=30), max_size=5),
    pad_to=st.none() | st.integers(1, 40),
    n_value=st.sampled_from([0.0, 0.25]),
    length=st.integers(1, 40),
)
def test_encoders_any_text(
    sequences: list[str], pad_to: int | None, n_value: float, length: int
) -> None:
    try:
        onehot = one_hot_encode(sequences, pad_to=pad_to, n_value=n_value)
    except (InvalidSequence, InvalidTensor):
        pass
    else:
        assert onehot.dtype == np.float32 and onehot.ndim == 3 and onehot.shape[1] == 4
        assert len(one_hot_decode(onehot)) == len(sequences)
    try:
        tokens = token_encode(sequences, length)
    except (InvalidSequence, InvalidTensor):
        return
    assert tokens.shape == (len(sequences), length) and tokens.dtype == np.int64
    assert token_decode(tokens) == [s.upper()[:length] for s in sequences]


any_arrays = hnp.arrays(
    dtype=hnp.scalar_dtypes() | hnp.byte_string_dtypes() | hnp.unicode_string_dtypes(),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
)


@FUZZ
@given(array=any_arrays, flank=st.integers(-2, 4))
def test_decoders_any_array(array: np.ndarray[Any, Any], flank: int) -> None:
    for decode in (lambda a: one_hot_decode(a, flank_left=flank), token_decode):
        try:
            decoded = decode(array)
        except InvalidTensor as err:
            assert str(err)
        else:
            assert len(decoded) == array.shape[0]
            assert all(set(s) <= set("ACGTN") for s in decoded)


@FUZZ
@given(
    row=json_values
    | st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        json_values | st.text(string.digits + ".-+eE ", max_size=8),
    )
)
def test_validate_row_any_object(row: object) -> None:
    schema = TUMOUR.model_copy(update={"allow_missing": True})
    for each in (TUMOUR, schema):
        try:
            values = validate_row(row, each)
        except InputError as err:
            assert str(err)
        else:
            assert len(values) == 2
            assert values[0] is None or 1 <= values[0] <= 10


# --- images ---------------------------------------------------------------------------------


def _image(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    out = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").convert(mode).save(out, format=fmt)
    return out.getvalue()


SEEDS = [
    _image("L", (7, 5), "PNG"),
    _image("RGBA", (6, 6), "PNG"),
    _image("P", (5, 4), "PNG"),
    _image("RGB", (8, 8), "JPEG"),
    _image("L", (4, 9), "TIFF"),
    _image("I;16", (5, 5), "PNG"),
    _image("CMYK", (4, 4), "TIFF"),
    _image("F", (3, 3), "TIFF"),
]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with some bytes changed, cut short or spliced."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data) + draw(st.binary(max_size=16))


@FUZZ
@given(
    data=st.binary(max_size=600) | mutated_images() | st.sampled_from(SEEDS),
    channels=st.sampled_from([1, 3]),
    resize=st.booleans(),
)
def test_decode_image_any_bytes(data: bytes, channels: Any, resize: bool) -> None:
    schema = ImageSchema(width=6, height=6, channels=channels, resize=resize)
    try:
        pixels = decode_image(data, schema, max_pixels=10_000)
    except InvalidImage as err:
        assert err.field == "image" and str(err)
        return
    assert pixels.dtype == np.float32 and pixels.shape == (channels, 6, 6)
    assert np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1


# --- the manifest reader and the API's own parsers ------------------------------------------

MANIFEST = {
    "name": "m",
    "version": 1,
    "task": "binary",
    "input": {"kind": "dna", "length": 50},
    "output": {"labels": ["0", "1"]},
    "files": {"model.onnx": "0" * 64, "card.md": "1" * 64},
}


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    """A valid manifest with keys dropped or replaced by arbitrary JSON values, as JSON."""
    doc: dict[str, Any] = orjson.loads(orjson.dumps(MANIFEST))
    for key in draw(
        st.lists(st.sampled_from([*MANIFEST, "format_version", "metrics", "extra"]), max_size=3)
    ):
        if draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = draw(json_values)
    return json.dumps(doc).encode()


hostile_json = st.sampled_from(
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b"9" * 5000,
        b'{"format_version": ' + b"9" * 5000 + b"}",
        b"\xff\xfe{\x00}\x00",
        b"name: m\nversion: 1\n",
        b"NaN",
        b'{"version": 1e999}',
    ]
)


@FUZZ
@given(
    data=st.binary(max_size=300)
    | mutated_manifests()
    | hostile_json
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_parse_manifest_any_bytes(data: bytes) -> None:
    try:
        manifest = parse_manifest(data)
    except (ManifestError, InvalidName) as err:
        assert str(err)
        return
    assert isinstance(manifest, Manifest)
    assert parse_manifest(manifest.to_json()) == manifest


@pytest.mark.parametrize("version", [2.0, "2", True, 1.0])
def test_manifest_format_version_is_a_plain_integer(version: object) -> None:
    """Found by the long run: 2.0 or "2" slipped past the 'newer format' check, so a manifest
    was accepted that its own output then refused."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(json.dumps({**MANIFEST, "format_version": version}).encode())
    assert str(info.value) == (
        "manifest.json is not a valid manifest: format_version: Input should be a valid integer "
        "(1 problem in all)."
    )


DEEP_BYTES = (
    b'{"inputs": [{"name": "sequence", "datatype": "BYTES", "shape": [1], "data": '
    + b"[" * 1000
    + b'"x"'
    + b"]" * 1000
    + b"}]}"
)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["sequence", "input", "image"]),
        "datatype": st.sampled_from(["BYTES", "FP32", "INT64", "INT8", "UINT8", "BOOL", "X"]),
        "shape": st.lists(st.integers(-1, 3) | st.sampled_from([2**32, 2**63, 2**64]), max_size=3),
        "data": json_values | st.lists(st.sampled_from([2**70, -(2**70), 1e300, -1, 300])),
    },
    optional={
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-1, 40)}) | json_values
    },
)
outputs = st.lists(
    st.fixed_dictionaries({"name": st.text(max_size=5)}, optional={"parameters": json_values})
    | json_values
)
infer_bodies = st.builds(
    lambda inputs, extra, tail: json.dumps({"inputs": inputs, **extra}).encode() + tail,
    st.lists(tensors, max_size=2) | json_values,
    st.fixed_dictionaries(
        {},
        optional={"outputs": outputs | json_values, "id": json_values, "parameters": json_values},
    ),
    st.binary(max_size=40),
)


@FUZZ
@given(
    body=st.binary(max_size=200) | infer_bodies | st.just(DEEP_BYTES),
    header=st.none() | st.text(string.digits + "-x", max_size=4),
)
def test_parse_infer_request_any_body(body: bytes, header: str | None) -> None:
    try:
        request = parse_infer_request(body, header)
    except HelixError as err:
        assert str(err)
        return
    for tensor in request.inputs:
        assert isinstance(tensor.data, np.ndarray)


@FUZZ
@given(ref=st.text(max_size=80))
def test_parse_ref_any_text(ref: str) -> None:
    try:
        parsed = parse_ref(ref)
    except InvalidName as err:
        assert "is not allowed" in str(err)
        return
    assert "/" not in parsed.name and ".." not in parsed.name


@FUZZ
@given(cell=st.text(max_size=30) | st.sampled_from(["-0.25", "+3", "1e-5", "=1+2", "-1+2"]))
def test_csv_safe_never_leaves_a_formula(cell: str) -> None:
    safe = csv_safe(cell)
    assert safe == cell or safe == "'" + cell
    if safe.startswith(FORMULA_PREFIXES):
        float(safe)  # only a plain number may keep its sign
