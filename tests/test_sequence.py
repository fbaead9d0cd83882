"""DNA/RNA normalisation and validation: every rule and its exact message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from helixserve.errors import InvalidSequence
from helixserve.inputs.sequence import SequenceSchema, normalise, validate_sequence

PRIMER = SequenceSchema(length=50)  # the primer-binding model (U1): exactly 50 nt, ACGT
VALID_50 = "CCGAGGGCTATGGTTTGGAAGTTAGAACCCTGGGGCTTCTCGCGGACACC"


def error_of(
    raw: object, schema: SequenceSchema = PRIMER, field: str = "sequence"
) -> InvalidSequence:
    with pytest.raises(InvalidSequence) as info:
        validate_sequence(raw, schema, field=field)
    return info.value


# --- the three messages of the seed article's API -------------------------------------------------


def test_seed_empty_sequence() -> None:
    err = error_of("", field="dnasequence")
    assert str(err) == (
        "DNA sequence is empty: enter a sequence of exactly 50 nt using the letters A, C, G, T."
    )
    assert err.field == "dnasequence"
    assert err.position is None


def test_seed_53_nt_ending_in_fff_is_not_valid_dna() -> None:
    err = error_of(VALID_50 + "FFF", field="dnasequence")
    assert str(err) == (
        "DNA sequence is not valid DNA: position 51 is 'F' (2 more invalid characters after it). "
        "Only the letters A, C, G, T are allowed; remove it or correct the typo."
    )
    assert (err.field, err.position, err.character) == ("dnasequence", 51, "F")


def test_seed_51_nt_valid_sequence_has_wrong_length() -> None:
    err = error_of(VALID_50 + "A", field="dnasequence")
    assert str(err) == (
        "DNA sequence length is 51 nt, but this model needs exactly 50 nt; trim it to 50 nt."
    )


# --- normalisation --------------------------------------------------------------------------------


def test_valid_sequence_is_returned_unchanged() -> None:
    assert validate_sequence(VALID_50, PRIMER) == VALID_50


def test_whitespace_anywhere_is_removed_and_case_is_folded() -> None:
    pasted = "  " + VALID_50[:25].lower() + "\r\n" + VALID_50[25:40] + "\t" + VALID_50[40:] + "\n"
    assert validate_sequence(pasted, PRIMER) == VALID_50


def test_mixed_case_is_accepted() -> None:
    mixed = "".join(c.lower() if i % 2 else c for i, c in enumerate(VALID_50))
    assert validate_sequence(mixed, PRIMER) == VALID_50


def test_rna_u_becomes_t_by_default() -> None:
    rna = VALID_50.replace("T", "U").lower()
    assert validate_sequence(rna, PRIMER) == VALID_50


def test_rna_refused_when_conversion_is_off() -> None:
    schema = SequenceSchema(length=50, rna_to_dna=False)
    err = error_of(VALID_50.replace("T", "U"), schema)
    assert str(err) == (
        "DNA sequence is not valid DNA: position 9 is 'U', an RNA base (uracil), and this model "
        "does not convert U to T (10 more invalid characters after it). Only the letters "
        "A, C, G, T are allowed; replace U with T."
    )


def test_normalise() -> None:
    assert normalise(" acg u\nt ") == "ACGTT"
    assert normalise("acgu", rna_to_dna=False) == "ACGU"


# --- alphabet -------------------------------------------------------------------------------------


def test_iupac_code_named_with_its_meaning() -> None:
    err = error_of(VALID_50[:9] + "y" + VALID_50[10:])
    assert str(err) == (
        "DNA sequence is not valid DNA: position 10 is 'y', the IUPAC code for C or T. "
        "Only the letters A, C, G, T are allowed; replace it with a definite base."
    )
    assert (err.position, err.character) == (10, "y")


@pytest.mark.parametrize("code", list("RYSWKMBDHV"))
def test_every_iupac_code_other_than_n_is_refused_even_with_n_alphabet(code: str) -> None:
    schema = SequenceSchema(alphabet="ACGTN", length=50)
    err = error_of(code + VALID_50[1:], schema)
    assert "the IUPAC code for" in str(err)
    assert str(err).endswith(
        "Only the letters A, C, G, T, N are allowed; replace it with a definite base or N."
    )


def test_n_refused_by_acgt_model() -> None:
    err = error_of(VALID_50[:4] + "N" + VALID_50[5:])
    assert str(err) == (
        "DNA sequence is not valid DNA: position 5 is 'N', an unknown base, which this model does "
        "not accept. Only the letters A, C, G, T are allowed; replace it with a definite base."
    )


def test_n_accepted_by_acgtn_model() -> None:
    schema = SequenceSchema(alphabet="ACGTN", length=50)
    assert validate_sequence("n" + VALID_50[1:], schema) == "N" + VALID_50[1:]


def test_position_counts_nucleotides_not_whitespace() -> None:
    err = error_of("ACGT ACGT\nAC!T")
    assert err.position == 11
    assert err.character == "!"


@pytest.mark.parametrize(
    ("char", "shown"),
    [("\x00", "'\\x00' (U+0000)"), ("é", "'é' (U+00E9)"), ("\u200b", "'\\u200b' (U+200B)")],
)
def test_invisible_and_non_ascii_characters_are_shown_by_code_point(char: str, shown: str) -> None:
    err = error_of("ACGT" + char + "ACGT")
    assert f"position 5 is {shown}." in str(err)


def test_unicode_uppercase_expansion_does_not_shift_positions() -> None:
    # 'ß'.upper() is 'SS': the position must still point at the original character.
    err = error_of("ACßGT")
    assert (err.position, err.character) == (3, "ß")


def test_ten_million_nt_line_gets_a_short_message() -> None:
    long = "ACGT" * 2_500_000
    err = error_of(long)
    assert str(err) == (
        "DNA sequence length is 10,000,000 nt, but this model needs exactly 50 nt; "
        "trim it to 50 nt."
    )
    bad = error_of(long + "Z")
    assert bad.position == 10_000_001
    assert len(str(bad)) < 200


# --- length rules and types -----------------------------------------------------------------------


def test_min_and_max_length() -> None:
    schema = SequenceSchema(min_length=36, max_length=3552)
    assert str(error_of("ACGT" * 5, schema)) == (
        "DNA sequence length is 20 nt, but this model needs between 36 and 3,552 nt; extend it."
    )
    assert str(error_of("A" * 4000, schema)) == (
        "DNA sequence length is 4,000 nt, but this model needs between 36 and 3,552 nt; trim it."
    )
    assert validate_sequence("A" * 36, schema) == "A" * 36


def test_too_short_for_exact_length() -> None:
    assert str(error_of(VALID_50[:49])) == (
        "DNA sequence length is 49 nt, but this model needs exactly 50 nt; extend it to 50 nt."
    )


def test_any_length_schema_only_refuses_empty() -> None:
    schema = SequenceSchema()
    assert validate_sequence("a", schema) == "A"
    assert str(error_of("  \n ", schema)) == (
        "DNA sequence is empty: enter a sequence of any length using the letters A, C, G, T."
    )


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (None, "null"),
        (50, "a number"),
        (True, "a boolean"),
        (["ACGT"], "a list"),
        ({"s": "A"}, "an object"),
    ],
)
def test_non_string_input(value: object, described: str) -> None:
    assert str(error_of(value)) == (
        f"DNA sequence must be text (a string of letters A, C, G, T), got {described}."
    )


def test_schema_rejects_contradictory_length_rules() -> None:
    with pytest.raises(ValidationError, match="give either 'length'"):
        SequenceSchema(length=50, max_length=60)
    with pytest.raises(ValidationError, match="min_length 60 is larger than max_length 50"):
        SequenceSchema(min_length=60, max_length=50)
    with pytest.raises(ValidationError, match="token encoding needs 'pad_to'"):
        SequenceSchema(encoding="tokens")


def test_length_rule_words() -> None:
    assert SequenceSchema(min_length=5).length_rule() == "at least 5 nt"
    assert SequenceSchema(max_length=5000).length_rule() == "at most 5,000 nt"


@given(st.text(alphabet="ACGTacgtu \n\t", min_size=1, max_size=200))
def test_valid_letters_always_normalise(raw: str) -> None:
    schema = SequenceSchema()
    if raw.split():
        out = validate_sequence(raw, schema)
        assert set(out) <= set("ACGT")
        assert len(out) == len("".join(raw.split()))


@given(st.text(max_size=100))
def test_any_text_gives_a_sequence_or_a_typed_error(raw: str) -> None:
    try:
        out = validate_sequence(raw, SequenceSchema(alphabet="ACGTN"))
    except InvalidSequence as err:
        assert str(err).startswith("DNA sequence")
    else:
        assert set(out) <= set("ACGTN")


def test_no_break_space_is_whitespace_but_other_separators_are_reported() -> None:
    assert validate_sequence("ACGT\u00a0ACGT", SequenceSchema()) == "ACGTACGT"
    for char in ("\x1c", "\u3000", "\x85"):
        err = error_of("ACGT" + char + "ACGT", SequenceSchema())
        assert (err.position, err.character) == (5, char)
