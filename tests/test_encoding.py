"""One-hot and token encoders: shapes, dtypes, flanks, N, inverses and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixserve.errors import InvalidSequence, InvalidTensor
from helixserve.inputs.encoding import (
    encode_batch,
    fast_encode,
    one_hot_decode,
    one_hot_encode,
    token_decode,
    token_encode,
)
from helixserve.inputs.sequence import SequenceSchema, validate_sequence

dna = st.text(alphabet="ACGTN", min_size=1, max_size=120)


def test_one_hot_layout_is_n_4_l_float32_in_acgt_order() -> None:
    x = one_hot_encode(["ACGTN"])
    assert x.shape == (1, 4, 5)
    assert x.dtype == np.float32
    assert x.flags["C_CONTIGUOUS"]
    expected = np.array(
        [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=np.float32
    )
    np.testing.assert_array_equal(x[0], expected)


def test_n_is_all_zero_by_default_and_uniform_on_request() -> None:
    assert one_hot_encode(["N"])[0, :, 0].tolist() == [0, 0, 0, 0]
    assert one_hot_encode(["N"], n_value=0.25)[0, :, 0].tolist() == [0.25] * 4


def test_yeast_flanks_pad_50_to_70() -> None:
    left, right = "GGGACATCGT", "ATGTCTAAAG"  # 10 positions each side, as the Cuperus model
    x = one_hot_encode(["A" * 50, "C" * 50], flank_left=left, flank_right=right)
    assert x.shape == (2, 4, 70)
    decoded = one_hot_decode(x)
    assert decoded[0] == left + "A" * 50 + right
    assert one_hot_decode(x, flank_left=10, flank_right=10) == ["A" * 50, "C" * 50]


def test_lower_case_is_encoded_like_upper_case() -> None:
    np.testing.assert_array_equal(one_hot_encode(["acgt"]), one_hot_encode(["ACGT"]))


def test_empty_batch_has_the_flank_width() -> None:
    assert one_hot_encode([], flank_left="AC").shape == (0, 4, 2)


def test_unequal_lengths_are_refused_with_the_offender() -> None:
    with pytest.raises(InvalidSequence) as info:
        one_hot_encode(["ACGT", "ACGT", "ACG"])
    assert str(info.value) == (
        "record 3: one-hot encoding needs sequences of equal length: this one has 3 nt but the "
        "first has 4 nt. Pad or trim them to one length, or use a model with variable-length "
        "(token) input."
    )


@pytest.mark.parametrize(
    ("bad", "shown"), [("ACRT", "'R'"), ("ACéT", "'é' (U+00E9)"), ("AC-T", "'-'")]
)
def test_unencodable_character(bad: str, shown: str) -> None:
    with pytest.raises(InvalidSequence) as info:
        one_hot_encode(["ACGT", bad])
    assert str(info.value) == (
        f"record 2: cannot encode: position 3 is {shown}; only A, C, G, T, N can be "
        "encoded. Validate sequences with validate_sequence() first."
    )


def test_bad_flank() -> None:
    with pytest.raises(
        InvalidSequence, match="flank_left must contain only A, C, G, T, N, got 'ACX'"
    ):
        one_hot_encode(["ACGT"], flank_left="ACX")
    zero_flanks = one_hot_encode(["ACGT"], flank_left="NN", flank_right="N", n_value=0.25)
    assert zero_flanks[0, :, [0, 1, 6]].sum() == 0.0


def test_decode_refuses_wrong_shape_and_non_one_hot() -> None:
    with pytest.raises(InvalidTensor) as info:
        one_hot_decode(np.zeros((2, 5, 3), dtype=np.float32))
    assert str(info.value) == (
        "one-hot array must have shape (N, 4, L), got (2, 5, 3); the channel axis (A, C, G, T) "
        "is axis 1."
    )
    x = one_hot_encode(["ACGT"])
    x[0, :, 2] = [0.5, 0.5, 0, 0]
    assert one_hot_decode(x) == ["ACMT"]  # A or C: the IUPAC code M's frequencies
    x[0, :, 2] = [0.5, 0.25, 0, 0]
    with pytest.raises(InvalidTensor) as info:
        one_hot_decode(x)
    assert str(info.value) == (
        "record 1: one-hot array is not one-hot at position 3: values "
        "[0.5, 0.25, 0.0, 0.0]; each position needs one 1 and three 0s "
        "(or four 0s or four 0.25s for N, or an IUPAC code's base frequencies)."
    )


def test_tokens_pad_and_truncate() -> None:
    x = token_encode(["ACGTN", "AC", "ACGTACGT"], 5)
    assert x.dtype == np.int64
    assert x.tolist() == [[1, 2, 3, 4, 5], [1, 2, 0, 0, 0], [1, 2, 3, 4, 1]]
    left = token_encode(["AC", "ACGTACGT"], 5, truncate="left", padding="left")
    assert left.tolist() == [[0, 0, 0, 1, 2], [4, 1, 2, 3, 4]]
    assert token_decode(x) == ["ACGTN", "AC", "ACGTA"]
    assert token_decode(left) == ["AC", "TACGT"]


def test_token_errors() -> None:
    with pytest.raises(InvalidTensor, match="max_length must be at least 1, got 0"):
        token_encode(["A"], 0)
    with pytest.raises(InvalidTensor) as info:
        token_decode(np.array([[1, 2, 9]]))
    assert str(info.value) == (
        "record 1: token 9 at position 3 is not a nucleotide token; tokens are "
        "0 (padding), A=1, C=2, G=3, T=4, N=5."
    )
    with pytest.raises(InvalidTensor, match=r"token array must have shape \(N, L\), got \(3,\)"):
        token_decode(np.array([1, 2, 3]))


def test_encode_batch_follows_the_schema() -> None:
    onehot = SequenceSchema(length=4, flank_left="GG", flank_right="T")
    assert encode_batch(["ACGT"], onehot).shape == (1, 4, 7)
    tokens = SequenceSchema(max_length=10, encoding="tokens", pad_to=6)
    assert encode_batch(["ACGT"], tokens).tolist() == [[1, 2, 3, 4, 0, 0]]


equal_length_batches = st.integers(min_value=1, max_value=60).flatmap(
    lambda n: st.lists(st.text(alphabet="ACGTN", min_size=n, max_size=n), min_size=1, max_size=8)
)


@given(equal_length_batches)
def test_one_hot_round_trip(seqs: list[str]) -> None:
    for n_value in (0.0, 0.25):
        assert one_hot_decode(one_hot_encode(seqs, n_value=n_value)) == seqs


@given(st.lists(dna, min_size=1, max_size=10), st.integers(min_value=1, max_value=150))
def test_token_round_trip(seqs: list[str], max_length: int) -> None:
    decoded = token_decode(token_encode(seqs, max_length))
    assert decoded == [s[:max_length] for s in seqs]


def test_encoders_refuse_a_bare_string() -> None:
    for call in (lambda: one_hot_encode("ACGT"), lambda: token_encode("ACGT", 3)):
        with pytest.raises(InvalidTensor) as info:
            call()
        assert str(info.value) == (
            "pass a list of sequences, not a single string: ['ACGT'], not 'ACGT'."
        )


def test_decoders_refuse_floats_ones_and_bad_flanks() -> None:
    with pytest.raises(InvalidTensor, match=r"^token array must hold integers, got float64\.$"):
        token_decode(np.array([[1.7, 2.2]]))
    with pytest.raises(InvalidTensor, match=r"not one-hot at position 1: values \[1\.0, 1\.0"):
        one_hot_decode(np.ones((1, 4, 2), dtype=np.float32))
    with pytest.raises(InvalidTensor) as info:
        one_hot_decode(one_hot_encode(["ACGT"]), flank_left=3, flank_right=2)
    assert str(info.value) == "flanks of 3 and 2 positions do not fit sequences of 4 positions."


def test_one_hot_padding_left_keeps_the_3_prime_end_aligned() -> None:
    x = one_hot_encode(["ACG", "T"], pad_to=4, padding="left", flank_left="G", n_value=0.25)
    assert x.shape == (2, 4, 5)
    assert one_hot_decode(x[:, :, 1:]) == ["NACG", "NNNT"]  # padding decodes as N (all-zero)
    assert x[1, :, 1:4].sum() == 0.0  # padding is all-zero even with n_value=0.25
    right = one_hot_encode(["ACG"], pad_to=4)
    assert one_hot_decode(right) == ["ACGN"]
    with pytest.raises(InvalidSequence, match=r"longer than the padded length 4"):
        one_hot_encode(["ACGTA"], pad_to=4)


def test_yeast_style_schema_pads_on_the_5_prime_side() -> None:
    schema = SequenceSchema(
        min_length=2,
        max_length=50,
        pad_to=50,
        padding="left",
        flank_left="A" * 10,
        flank_right="C" * 10,
    )
    x = np.asarray(encode_batch(["GG", "T" * 50], schema), dtype=np.float32)
    assert x.shape == (2, 4, 70)
    assert one_hot_decode(x)[0] == "A" * 10 + "N" * 48 + "GG" + "C" * 10


def test_ambiguity_codes_encode_as_base_frequencies() -> None:
    x = one_hot_encode(["NRBa"], ambiguity="frequencies")
    third = float(np.float32(1 / 3))
    assert x[0].T.tolist() == [
        [0.25, 0.25, 0.25, 0.25],
        [0.5, 0.0, 0.5, 0.0],
        [0.0, third, third, third],
        [1.0, 0.0, 0.0, 0.0],
    ]
    assert one_hot_decode(x) == ["NRBA"]
    padded = one_hot_encode(["NY"], pad_to=3, ambiguity="frequencies")
    assert padded[0, :, 2].tolist() == [0.0] * 4  # padding stays all-zero: never an N
    with pytest.raises(InvalidSequence) as info:
        one_hot_encode(["ACRT"])  # the "zeros" rule (bundles made before it) knows only N
    assert str(info.value) == (
        "record 1: cannot encode: position 3 is 'R'; only A, C, G, T, N can be encoded. "
        "Validate sequences with validate_sequence() first."
    )
    with pytest.raises(InvalidSequence, match=r"only A, C, G, T, N and the IUPAC codes can be"):
        one_hot_encode(["ACXT"], ambiguity="frequencies")


def test_the_iupac_alphabet_needs_frequencies() -> None:
    with pytest.raises(ValueError, match="the IUPAC alphabet needs one-hot encoding with"):
        SequenceSchema(alphabet="IUPAC", length=4)
    schema = SequenceSchema(alphabet="IUPAC", length=4, ambiguity="frequencies")
    assert schema.letters() == "A, C, G, T, N, R, Y, S, W, K, M, B, D, H, V"


@given(st.lists(st.text(alphabet="ACGTNRYSWKMBDHV", min_size=1, max_size=40), min_size=1))
def test_frequency_round_trip(seqs: list[str]) -> None:
    x = one_hot_encode(seqs, pad_to=40, ambiguity="frequencies")
    assert [s.rstrip("N") for s in one_hot_decode(x)] == [s.rstrip("N") for s in seqs]


FAST_SCHEMAS = [
    SequenceSchema(length=6),
    SequenceSchema(alphabet="ACGTN", length=6, flank_left="GA", flank_right="NT"),
    SequenceSchema(alphabet="ACGTN", length=6, ambiguity="frequencies"),
    SequenceSchema(alphabet="IUPAC", length=6, ambiguity="frequencies"),
    SequenceSchema(alphabet="IUPAC", min_length=1, max_length=8, pad_to=8, ambiguity="frequencies"),
    SequenceSchema(min_length=2, max_length=6, pad_to=9, padding="left", flank_right="C"),
]


@pytest.mark.parametrize("schema", FAST_SCHEMAS, ids=range(len(FAST_SCHEMAS)))
@given(st.lists(st.text(alphabet="ACGTNRYacgtnryU", min_size=1, max_size=9), min_size=1))
def test_fast_path_equals_validate_then_encode(schema: SequenceSchema, seqs: list[str]) -> None:
    """The vectorised path gives what item-by-item validation and encoding give, or steps aside
    (``None``) when any item needs a message."""
    fast = fast_encode(seqs, schema)
    try:
        slow = encode_batch([validate_sequence(s, schema) for s in seqs], schema)
    except InvalidSequence:
        assert fast is None
        return
    if fast is not None:
        np.testing.assert_array_equal(fast, slow)
    else:  # only when the batch holds whitespace or other things to clean first: never here
        pytest.fail(f"the fast path stepped aside for clean items {seqs!r}")
