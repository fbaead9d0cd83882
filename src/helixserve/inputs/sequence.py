"""DNA/RNA sequences: normalisation and validation against a model's input schema.

Contract:
- :func:`normalise` removes whitespace anywhere — space, tab, CR, LF, form feed, vertical tab and
  no-break space (U+00A0, common in text copied from web pages) — so pasted text wrapped over
  several lines is one sequence; upper-cases; and turns ``U`` into ``T`` when asked. Other
  invisible characters (e.g. U+001C, U+3000) are not whitespace here: they are reported.
- :func:`validate_sequence` takes anything a client sent, checks it in a fixed order — is it a
  string, is it empty, is every character in the alphabet, is the length allowed — and returns the
  normalised sequence (an upper-case ``str`` over ``schema.alphabet``), or raises
  :class:`~helixserve.errors.InvalidSequence` naming the field, the 1-based position of the first
  bad character *in the sequence with whitespace removed*, the character itself and how to fix it.
- Lower-case and mixed-case letters are accepted (upper-cased). The schema's ``alphabet`` says
  which letters a model takes: ``ACGT``; ``ACGTN``; or ``IUPAC``, which adds the ambiguity codes
  R, Y, S, W, K, M, B, D, H, V (:data:`IUPAC_AMBIGUITY`). A code outside the alphabet is refused
  with a message naming what the code stands for.
- Messages never echo a whole sequence: a 10-million-nt input gets a one-line message.
- :class:`SequenceSchema` is the DNA part of a model bundle's input schema (DESIGN.md): alphabet,
  length rule (exact, or min/max), U->T conversion, and the encoding details (one-hot with fixed
  flanks, or integer tokens padded to ``pad_to``) that :mod:`helixserve.inputs.encoding` applies.
  ``ambiguity`` says how one-hot encodes ``N`` and the other ambiguity codes: ``zeros`` (an
  all-zero position; only ``N`` can be encoded so, the rule of every bundle made before the field
  existed, which therefore keeps it) or ``frequencies`` (the probabilities of the bases the code
  stands for: ``N`` = 0.25 each, ``R`` = 0.5 A + 0.5 G, ``B`` = 1/3 each of C, G, T). The
  ``IUPAC`` alphabet needs ``frequencies`` and the one-hot encoding.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from helixserve.errors import InvalidSequence

DEFAULT_MAX_SEQUENCE_LENGTH = 10_000_000
_WHITESPACE = str.maketrans("", "", " \t\r\n\f\v\u00a0")

IUPAC_AMBIGUITY: dict[str, str] = {
    "R": "A or G",
    "Y": "C or T",
    "S": "G or C",
    "W": "A or T",
    "K": "G or T",
    "M": "A or C",
    "B": "C, G or T",
    "D": "A, G or T",
    "H": "A, C or T",
    "V": "A, C or G",
}


IUPAC_BASES: dict[str, str] = {
    "R": "AG",
    "Y": "CT",
    "S": "CG",
    "W": "AT",
    "K": "GT",
    "M": "AC",
    "B": "CGT",
    "D": "AGT",
    "H": "ACT",
    "V": "ACG",
    "N": "ACGT",
}
ALPHABET_LETTERS: dict[str, str] = {
    "ACGT": "ACGT",
    "ACGTN": "ACGTN",
    "IUPAC": "ACGTN" + "".join(IUPAC_AMBIGUITY),
}


class SequenceSchema(BaseModel):
    """What a model accepts as a DNA sequence, and how it is encoded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["dna"] = "dna"
    alphabet: Literal["ACGT", "ACGTN", "IUPAC"] = "ACGT"
    length: int | None = Field(default=None, ge=1, description="exact length in nt")
    min_length: int | None = Field(default=None, ge=1)
    max_length: int | None = Field(default=None, ge=1)
    rna_to_dna: bool = Field(default=True, description="accept RNA: U is read as T")
    encoding: Literal["onehot", "tokens"] = "onehot"
    flank_left: str = Field(
        default="", pattern="^[ACGTN]*$", description="fixed 5' flank; N = all-zero position"
    )
    flank_right: str = Field(
        default="", pattern="^[ACGTN]*$", description="fixed 3' flank; N = all-zero position"
    )
    pad_to: int | None = Field(
        default=None, ge=1, description="pad to this length (tokens: also truncate longer ones)"
    )
    padding: Literal["right", "left"] = Field(
        default="right", description="where padding goes: right (3' end) or left (5' end)"
    )
    ambiguity: Literal["zeros", "frequencies"] = Field(
        default="zeros",
        description="one-hot of N and IUPAC codes: all-zero (N only), or the base probabilities",
    )

    @model_validator(mode="after")
    def _check_length_rule(self) -> Self:
        if self.length is not None and (self.min_length or self.max_length):
            raise ValueError("give either 'length' (exact) or 'min_length'/'max_length', not both")
        if self.min_length and self.max_length and self.min_length > self.max_length:
            raise ValueError(
                f"min_length {self.min_length} is larger than max_length {self.max_length}"
            )
        if self.alphabet == "IUPAC" and (
            self.ambiguity != "frequencies" or self.encoding != "onehot"
        ):
            raise ValueError(
                "the IUPAC alphabet needs one-hot encoding with ambiguity 'frequencies'"
            )
        if self.encoding == "tokens" and self.pad_to is None:
            raise ValueError("token encoding needs 'pad_to' (the padded length)")
        if self.encoding == "onehot" and self.pad_to is not None:
            longest = self.length or self.max_length
            if longest is None or longest > self.pad_to:
                raise ValueError(
                    "one-hot padding needs 'length' or 'max_length' no larger than 'pad_to', "
                    "so every accepted sequence fits"
                )
        return self

    def length_rule(self) -> str:
        """The length rule in words, e.g. ``exactly 50 nt`` or ``between 36 and 3,552 nt``."""
        if self.length is not None:
            return f"exactly {self.length:,} nt"
        if self.min_length and self.max_length:
            return f"between {self.min_length:,} and {self.max_length:,} nt"
        if self.min_length:
            return f"at least {self.min_length:,} nt"
        if self.max_length:
            return f"at most {self.max_length:,} nt"
        return "any length"

    def letters(self) -> str:
        """The accepted letters in words, e.g. ``A, C, G, T``."""
        return ", ".join(ALPHABET_LETTERS[self.alphabet])


def normalise(raw: str, *, rna_to_dna: bool = True) -> str:
    """Remove all whitespace, upper-case, and (by default) turn U into T.

    Validation happens in :func:`validate_sequence`; this only cleans.
    """
    cleaned = raw.translate(_WHITESPACE).upper()
    return cleaned.replace("U", "T") if rna_to_dna else cleaned


def show_char(ch: str) -> str:
    """A character as a message shows it: ``'F'``, ``'é' (U+00E9)``, ``'\\x00' (U+0000)``."""
    if ch.isascii() and ch.isprintable():
        return f"'{ch}'"
    if ch.isprintable():
        return f"'{ch}' (U+{ord(ch):04X})"
    return f"{ch!r} (U+{ord(ch):04X})"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def validate_sequence(raw: object, schema: SequenceSchema, *, field: str = "sequence") -> str:
    """Return the normalised sequence, or raise :class:`InvalidSequence` saying what and where."""
    if not isinstance(raw, str):
        raise InvalidSequence(
            f"DNA sequence must be text (a string of letters {schema.letters()}), "
            f"got {_type_name(raw)}.",
            field=field,
        )
    stripped = raw.translate(_WHITESPACE)
    if not stripped:
        raise InvalidSequence(
            f"DNA sequence is empty: enter a sequence of {schema.length_rule()} "
            f"using the letters {schema.letters()}.",
            field=field,
        )
    _check_alphabet(stripped, schema, field)
    sequence = stripped.upper()
    if schema.rna_to_dna:
        sequence = sequence.replace("U", "T")
    _check_length(len(sequence), schema, field)
    return sequence


def _allowed_chars(schema: SequenceSchema) -> str:
    letters = ALPHABET_LETTERS[schema.alphabet] + ("U" if schema.rna_to_dna else "")
    return letters + letters.lower()


def _check_alphabet(stripped: str, schema: SequenceSchema, field: str) -> None:
    allowed = _allowed_chars(schema)
    invalid = stripped.translate(str.maketrans("", "", allowed))
    if not invalid:
        return
    bad = invalid[0]
    position = stripped.index(bad) + 1
    others = len(invalid) - 1
    also = (
        f" ({others:,} more invalid character{'s' if others != 1 else ''} after it)"
        if others
        else ""
    )
    raise InvalidSequence(
        f"DNA sequence is not valid DNA: position {position:,} is {show_char(bad)}"
        f"{_what_it_is(bad.upper(), schema)}{also}. "
        f"Only the letters {schema.letters()} are allowed; {_how_to_fix(bad.upper(), schema)}",
        field=field,
        position=position,
        character=bad,
    )


def _what_it_is(upper: str, schema: SequenceSchema) -> str:
    if upper in IUPAC_AMBIGUITY:
        return f", the IUPAC code for {IUPAC_AMBIGUITY[upper]}"
    if upper == "N":
        return ", an unknown base, which this model does not accept"
    if upper == "U":
        return ", an RNA base (uracil), and this model does not convert U to T"
    return ""


def _how_to_fix(upper: str, schema: SequenceSchema) -> str:
    if upper in IUPAC_AMBIGUITY or upper == "N":
        replacement = "a definite base or N" if "N" in schema.alphabet else "a definite base"
        return f"replace it with {replacement}."
    if upper == "U":
        return "replace U with T."
    return "remove it or correct the typo."


def _check_length(length: int, schema: SequenceSchema, field: str) -> None:
    too_short = (schema.length is not None and length < schema.length) or (
        schema.min_length is not None and length < schema.min_length
    )
    too_long = (schema.length is not None and length > schema.length) or (
        schema.max_length is not None and length > schema.max_length
    )
    if not (too_short or too_long):
        return
    fix = "trim it" if too_long else "extend it"
    if schema.length is not None:
        fix = f"{fix} to {schema.length:,} nt"
    raise InvalidSequence(
        f"DNA sequence length is {length:,} nt, but this model needs {schema.length_rule()}; "
        f"{fix}.",
        field=field,
    )
