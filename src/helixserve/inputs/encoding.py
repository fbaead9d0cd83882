"""Numeric encodings of validated DNA sequences, and their inverses.

Contract:
- Inputs are *validated, normalised* sequences (upper-case A/C/G/T/N, and with ``ambiguity=
  "frequencies"`` the IUPAC codes R/Y/S/W/K/M/B/D/H/V, see
  :func:`helixserve.inputs.sequence.validate_sequence`); lower-case is also accepted. Any other
  character raises :class:`~helixserve.errors.InvalidSequence` naming the sequence and position.
- One-hot: :func:`one_hot_encode` returns ``float32`` of shape ``(N, 4, L)``, channels in the order
  ``A, C, G, T``; ``L`` includes the optional fixed flanks (the yeast UTR model pads 50 nt to 70
  with 10 positions each side); an ``N`` in a flank is an all-zero position. Without ``pad_to``,
  all sequences in one call must have the same length.
  Ambiguity (``ambiguity``): ``"zeros"`` (default, the rule of every bundle made before the
  choice existed) encodes **N as all-zero** (``n_value=0.25`` gives the uniform column instead)
  and refuses the other IUPAC codes; ``"frequencies"`` encodes N and every IUPAC code as the
  probabilities of the bases it stands for (:data:`~helixserve.inputs.sequence.IUPAC_BASES`:
  N = 0.25 each, R = 0.5 A + 0.5 G, B = 1/3 each of C, G, T). :func:`one_hot_decode` reads all of
  them back (an all-zero or uniform column as ``N``, a frequency column as its code); a column
  that is none of these, or an array that is not numeric, raises
  :class:`~helixserve.errors.InvalidTensor`.
- Tokens: :func:`token_encode` returns ``int64`` of shape ``(N, max_length)`` with ``0`` = padding,
  ``A=1, C=2, G=3, T=4, N=5`` (:data:`TOKENS`); longer sequences are truncated (keeping the start by
  default), shorter ones padded (at the end by default). :func:`token_decode` drops the padding.
  Tokens know no IUPAC codes.
- Padding for one-hot: with ``pad_to``, sequences of different lengths are padded with all-zero
  positions to one length, at the end (``padding="right"``) or at the start (``"left"``, which
  keeps sequences aligned at their 3' end, as the yeast UTR model needs: the start codon follows).
  Padding is all-zero whatever the ambiguity rule, so it never looks like an ``N``.
- :func:`encode_batch` applies a model's :class:`SequenceSchema` (encoding, flanks, padding,
  ambiguity). :func:`fast_encode` validates and encodes a whole batch of clean sequences in one
  vectorised pass (exact length, or padded), equal to the item-by-item route, or returns ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from helixserve.errors import InvalidSequence, InvalidTensor
from helixserve.inputs.sequence import (
    ALPHABET_LETTERS,
    IUPAC_AMBIGUITY,
    IUPAC_BASES,
    SequenceSchema,
    show_char,
)

Ambiguity = Literal["zeros", "frequencies"]
ONE_HOT_ORDER = "ACGT"
TOKENS: dict[str, int] = {"A": 1, "C": 2, "G": 3, "T": 4, "N": 5}
PAD_TOKEN = 0
_INVALID = 255
_N_CODE, _PAD_CODE = 4, 5  # padding: all-zero whatever the ambiguity rule
_CODE_LETTERS = "ACGTN" + "\0" + "".join(IUPAC_AMBIGUITY)  # code -> letter (5: padding)
_FIRST_IUPAC = 6

_CODE = np.full(256, _INVALID, dtype=np.uint8)
for _i, _letter in enumerate(_CODE_LETTERS):
    if _letter != "\0":
        _CODE[ord(_letter)] = _i
        _CODE[ord(_letter.lower())] = _i
_TOKEN_OF_CODE = np.array([1, 2, 3, 4, 5], dtype=np.int64)
_LETTER_OF_TOKEN = np.frombuffer(b"\0ACGTN", dtype=np.uint8)


def _frequencies(letter: str) -> list[float]:
    bases = IUPAC_BASES.get(letter, letter)
    return [1.0 / len(bases) if base in bases else 0.0 for base in ONE_HOT_ORDER]


# the column of every code 4.. (N, padding, IUPAC codes) under the "frequencies" rule
_FREQUENCIES = np.array(
    [[0.0] * 4 if letter == "\0" else _frequencies(letter) for letter in _CODE_LETTERS],
    dtype=np.float32,
)


def _codes(sequence: str, index: int, iupac: bool = False) -> npt.NDArray[np.uint8]:
    """Per-character codes (0..4 for A, C, G, T, N; with ``iupac``, 6.. for the IUPAC codes);
    raises on anything else."""
    try:
        raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as err:
        raise _bad_character(sequence, index, err.start, iupac) from None
    codes = _CODE[raw]
    bad = np.flatnonzero((codes == _INVALID) | ((codes >= _FIRST_IUPAC) & (not iupac)))
    if bad.size:
        raise _bad_character(sequence, index, int(bad[0]), iupac)
    return codes


def _bad_character(sequence: str, index: int, offset: int, iupac: bool) -> InvalidSequence:
    allowed = "A, C, G, T, N and the IUPAC codes" if iupac else "A, C, G, T, N"
    return InvalidSequence(
        f"cannot encode: position {offset + 1:,} is "
        f"{show_char(sequence[offset])}; only {allowed} can be encoded. "
        "Validate sequences with validate_sequence() first.",
        position=offset + 1,
        character=sequence[offset],
        index=index + 1,
    )


def _check_list(sequences: object) -> None:
    if isinstance(sequences, str | bytes):
        raise InvalidTensor("pass a list of sequences, not a single string: ['ACGT'], not 'ACGT'.")


def _flank_codes(flank: str, name: str) -> npt.NDArray[np.uint8]:
    """Codes of a fixed flank; its N positions are padding (all-zero whatever the rule)."""
    if flank.strip("ACGTN"):
        raise InvalidSequence(
            f"{name} must contain only A, C, G, T, N, got {flank[:20]!r}.", field=name
        )
    codes = _CODE[np.frombuffer(flank.encode("ascii"), dtype=np.uint8)]
    codes[codes == _N_CODE] = _PAD_CODE
    return codes


def one_hot_encode(
    sequences: Sequence[str],
    *,
    flank_left: str = "",
    flank_right: str = "",
    n_value: float = 0.0,
    pad_to: int | None = None,
    padding: Literal["right", "left"] = "right",
    ambiguity: Ambiguity = "zeros",
) -> npt.NDArray[np.float32]:
    """One-hot encode sequences to ``(N, 4, flanks + L)``.

    Without ``pad_to`` all sequences must have one length ``L``. With it, each is padded with
    all-zero positions to ``L = pad_to`` — after the sequence (``padding="right"``) or before it
    (``"left"``: sequences stay aligned at their 3' end) — and a longer one is refused.
    ``ambiguity``: see the module contract (``n_value`` is N's value under ``"zeros"``).
    """
    _check_list(sequences)
    iupac = ambiguity == "frequencies"
    if pad_to is not None:
        codes = _padded_codes(sequences, pad_to, padding, flank_left, flank_right, iupac)
        return _one_hot_from_codes(codes, ambiguity, n_value)
    n = len(sequences)
    if n == 0:
        width = len(flank_left) + len(flank_right)
        return np.zeros((0, 4, width), dtype=np.float32)
    first = len(sequences[0])
    codes = _with_flanks(n, first, flank_left, flank_right)
    start = len(flank_left)
    for i, sequence in enumerate(sequences):
        if len(sequence) != first:
            raise InvalidSequence(
                f"one-hot encoding needs sequences of equal length: this one has "
                f"{len(sequence):,} nt but the first has {first:,} nt. Pad or trim them to one "
                "length, or use a model with variable-length (token) input.",
                index=i + 1,
            )
        codes[i, start : start + first] = _codes(sequence, i, iupac)
    return _one_hot_from_codes(codes, ambiguity, n_value)


def _padded_codes(
    sequences: Sequence[str],
    pad_to: int,
    padding: Literal["right", "left"],
    flank_left: str,
    flank_right: str,
    iupac: bool,
) -> npt.NDArray[np.uint8]:
    codes = _with_flanks(len(sequences), pad_to, flank_left, flank_right)
    start = len(flank_left)
    codes[:, start : start + pad_to] = _PAD_CODE
    for i, sequence in enumerate(sequences):
        if len(sequence) > pad_to:
            raise InvalidSequence(
                f"sequence is {len(sequence):,} nt, longer than the padded length {pad_to:,}; "
                "trim it or use a model with a longer input.",
                index=i + 1,
            )
        offset = start if padding == "right" else start + pad_to - len(sequence)
        codes[i, offset : offset + len(sequence)] = _codes(sequence, i, iupac)
    return codes


def _with_flanks(n: int, length: int, flank_left: str, flank_right: str) -> npt.NDArray[np.uint8]:
    """An ``(n, flanks + length)`` code array with the flanks filled in."""
    left, right = _flank_codes(flank_left, "flank_left"), _flank_codes(flank_right, "flank_right")
    codes = np.empty((n, len(left) + length + len(right)), dtype=np.uint8)
    codes[:, : len(left)] = left
    codes[:, codes.shape[1] - len(right) :] = right
    return codes


_CHANNELS = np.arange(4, dtype=np.uint8).reshape(1, 4, 1)


def _one_hot_from_codes(
    codes: npt.NDArray[np.uint8], ambiguity: Ambiguity, n_value: float = 0.0
) -> npt.NDArray[np.float32]:
    """``(N, L)`` codes to ``(N, 4, L)`` one-hot: 0..3 a base; 4 (N) ``n_value`` everywhere
    (``"zeros"``) or 0.25; 5 (padding) all-zero; 6.. an IUPAC code's base frequencies."""
    out: npt.NDArray[np.float32] = (codes[:, np.newaxis, :] == _CHANNELS).astype(np.float32)
    if ambiguity == "frequencies":
        rows, cols = np.nonzero(codes >= _N_CODE)
        if rows.size:
            out[rows, :, cols] = _FREQUENCIES[codes[rows, cols]]
    elif n_value:
        out += (codes == _N_CODE)[:, np.newaxis, :] * np.float32(n_value)
    return out


def _fast_table(alphabet: str, rna_to_dna: bool) -> npt.NDArray[np.uint8]:
    table = np.full(256, _INVALID, dtype=np.uint8)
    for letter in ALPHABET_LETTERS[alphabet] + ("U" if rna_to_dna else ""):
        code = _CODE[ord("T" if letter == "U" else letter)]
        table[ord(letter)] = table[ord(letter.lower())] = code
    return table


_FAST_TABLES = {
    (alphabet, rna): _fast_table(alphabet, rna)
    for alphabet in ALPHABET_LETTERS
    for rna in (False, True)
}


def fast_encode(items: Sequence[object], schema: SequenceSchema) -> npt.NDArray[np.float32] | None:
    """Validate and one-hot encode a whole batch in one vectorised pass, or return ``None``.

    It succeeds only when every item is already a clean sequence for ``schema`` (a ``str`` whose
    length the schema allows, letters of the alphabet in any case, U when RNA is accepted, no
    whitespace); the result then equals ``encode_batch([validate_sequence(s) ...])``. Otherwise
    the caller validates item by item, which gives each bad item its exact message.
    """
    if schema.encoding != "onehot" or not items:
        return None
    if schema.pad_to is not None:
        return _fast_padded(items, schema, schema.pad_to)
    length = schema.length
    if length is None or not all(type(s) is str and len(s) == length for s in items):
        return None
    codes = _fast_codes(items, schema)
    if codes is None:
        return None
    full = _with_flanks(len(items), length, schema.flank_left, schema.flank_right)
    full[:, len(schema.flank_left) : len(schema.flank_left) + length] = codes.reshape(-1, length)
    return _one_hot_from_codes(full, schema.ambiguity)


def _fast_codes(items: Sequence[object], schema: SequenceSchema) -> npt.NDArray[np.uint8] | None:
    """The codes of all items joined, or ``None`` when a character is not a clean letter."""
    try:
        raw = "".join(items).encode("ascii")  # type: ignore[arg-type]
    except UnicodeEncodeError:
        return None
    codes = _FAST_TABLES[(schema.alphabet, schema.rna_to_dna)][np.frombuffer(raw, dtype=np.uint8)]
    return None if (codes == _INVALID).any() else codes


def _fast_padded(
    items: Sequence[object], schema: SequenceSchema, pad_to: int
) -> npt.NDArray[np.float32] | None:
    """:func:`fast_encode` for a padded schema: every length within the schema's rule."""
    if not all(type(s) is str for s in items):
        return None
    lengths = np.array([len(s) for s in items], dtype=np.int64)  # type: ignore[arg-type]
    low = schema.length or schema.min_length or 1
    high = min(schema.length or schema.max_length or pad_to, pad_to)
    if not bool(((lengths >= low) & (lengths <= high)).all()):
        return None
    codes = _fast_codes(items, schema)
    if codes is None:
        return None
    full = _with_flanks(len(items), pad_to, schema.flank_left, schema.flank_right)
    start = len(schema.flank_left)
    full[:, start : start + pad_to] = _PAD_CODE
    rows = np.repeat(np.arange(len(items)), lengths)
    within = np.arange(codes.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    shift = start + (pad_to - lengths if schema.padding == "left" else np.zeros_like(lengths))
    full[rows, within + np.repeat(shift, lengths)] = codes
    return _one_hot_from_codes(full, schema.ambiguity)


def one_hot_decode(
    array: npt.NDArray[np.floating], *, flank_left: int = 0, flank_right: int = 0
) -> list[str]:
    """Decode ``(N, 4, L)`` one-hot back to sequences, dropping ``flank_left/right`` positions.

    A column whose four values are equal (all-zero or 0.25) decodes to ``N``; a column of an
    IUPAC code's base frequencies (e.g. 0.5 A + 0.5 G) to that code (``R``).
    """
    _check_one_hot_shape(array, flank_left, flank_right)
    first = array[:, :1, :]
    is_n = np.all(array == first, axis=1) & ((first[:, 0, :] == 0) | (first[:, 0, :] == 0.25))
    is_one_hot = np.all((array == 0) | (array == 1), axis=1) & (array.sum(axis=1) == 1)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[array.argmax(axis=1)]
    letters[is_n] = ord("N")
    known = is_n | is_one_hot
    for code in range(_FIRST_IUPAC, len(_CODE_LETTERS)):
        column = _FREQUENCIES[code].reshape(1, 4, 1)
        is_code = np.all(np.abs(array - column) < 1e-6, axis=1) & ~known
        letters[is_code] = ord(_CODE_LETTERS[code])
        known |= is_code
    if not known.all():
        seq_i, pos = (int(v) for v in np.argwhere(~known)[0])
        raise InvalidTensor(
            f"one-hot array is not one-hot at position {pos + 1:,}: "
            f"values {array[seq_i, :, pos].tolist()}; each position needs one 1 and three 0s "
            "(or four 0s or four 0.25s for N, or an IUPAC code's base frequencies).",
            index=seq_i + 1,
            position=pos + 1,
        )
    stop = array.shape[2] - flank_right
    return [row[flank_left:stop].tobytes().decode("ascii") for row in letters]


def _check_one_hot_shape(
    array: npt.NDArray[np.floating], flank_left: int, flank_right: int
) -> None:
    if array.ndim != 3 or array.shape[1] != 4:
        raise InvalidTensor(
            f"one-hot array must have shape (N, 4, L), got {tuple(array.shape)}; "
            "the channel axis (A, C, G, T) is axis 1."
        )
    if array.dtype.kind not in "biuf":  # not issubdtype(number): timedelta64 is an integer there
        raise InvalidTensor(f"one-hot array must hold numbers, got {array.dtype}.")
    if flank_left < 0 or flank_right < 0 or flank_left + flank_right > array.shape[2]:
        raise InvalidTensor(
            f"flanks of {flank_left} and {flank_right} positions do not fit sequences of "
            f"{array.shape[2]} positions."
        )


def token_encode(
    sequences: Sequence[str],
    max_length: int,
    *,
    truncate: Literal["right", "left"] = "right",
    padding: Literal["right", "left"] = "right",
) -> npt.NDArray[np.int64]:
    """Integer tokens ``(N, max_length)``: 0 pads, A=1, C=2, G=3, T=4, N=5.

    ``truncate="right"`` keeps the first ``max_length`` nt; ``"left"`` keeps the last.
    """
    _check_list(sequences)
    if max_length < 1:
        raise InvalidTensor(f"max_length must be at least 1, got {max_length}.")
    out = np.full((len(sequences), max_length), PAD_TOKEN, dtype=np.int64)
    for i, sequence in enumerate(sequences):
        tokens = _TOKEN_OF_CODE[_codes(sequence, i)]
        tokens = tokens[:max_length] if truncate == "right" else tokens[-max_length:]
        if padding == "right":
            out[i, : tokens.size] = tokens
        else:
            out[i, max_length - tokens.size :] = tokens
    return out


def token_decode(array: npt.NDArray[np.integer]) -> list[str]:
    """Decode ``(N, L)`` tokens back to sequences; padding (0) is dropped wherever it is."""
    if array.ndim != 2:
        raise InvalidTensor(f"token array must have shape (N, L), got {tuple(array.shape)}.")
    if array.dtype.kind not in "iu":  # not issubdtype(integer): timedelta64 would pass it
        raise InvalidTensor(f"token array must hold integers, got {array.dtype}.")
    bad = (array < 0) | (array > max(TOKENS.values()))
    if bad.any():
        seq_i, pos = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidTensor(
            f"token {int(array[seq_i, pos])} at position {pos + 1:,} is not a nucleotide "
            "token; tokens are 0 (padding), A=1, C=2, G=3, T=4, N=5.",
            index=seq_i + 1,
            position=pos + 1,
        )
    letters = _LETTER_OF_TOKEN[array.astype(np.intp)]
    return [row[row != 0].tobytes().decode("ascii") for row in letters]


def encode_batch(sequences: Sequence[str], schema: SequenceSchema) -> npt.NDArray[np.generic]:
    """Encode validated sequences the way the model's schema says (one-hot+flanks, or tokens)."""
    if schema.encoding == "tokens" and schema.pad_to is not None:  # the schema requires pad_to
        return token_encode(sequences, schema.pad_to, padding=schema.padding)
    return one_hot_encode(
        sequences,
        flank_left=schema.flank_left,
        flank_right=schema.flank_right,
        pad_to=schema.pad_to,
        padding=schema.padding,
        ambiguity=schema.ambiguity,
    )
