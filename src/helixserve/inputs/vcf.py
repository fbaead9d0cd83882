"""Reading VCF files line by line: the header, then one located record per data line.

Contract:
- :func:`read_vcf` takes a path or a binary stream (plain, gzip or bgzip: detected by content,
  through :func:`~helixserve.inputs.textio.opened`) and returns a :class:`VcfReader`: its
  ``header`` (every ``##`` meta line and the ``#CHROM`` column line, as read) is parsed when it is
  made, and iterating it yields, lazily and in file order, one :class:`VcfRecord` or one
  :class:`~helixserve.inputs.records.BadRecord` per data line. Memory does not grow with the file.
- Only the columns variant scoring needs are read: CHROM, POS, ID, REF and ALT (comma-separated;
  ``.`` = no ALT). ``text`` keeps the whole line exactly, so a writer can give it back unchanged but
  for its INFO column (:func:`with_info`); genotypes and the other columns are never parsed.
- A bad line never stops the others: fewer than 8 tab-separated columns, an empty CHROM, a POS
  that is not a whole number from 1, a REF that is not A/C/G/T/N letters, undecodable bytes or an
  over-long line each give a ``BadRecord`` (``index``: the 1-based number of the data line among
  the data lines, ``line``: the physical line, ``id``: ``CHROM:POS`` as written) whose message says
  what was found and what a VCF line holds. Blank lines are skipped (not counted). ALT alleles are
  kept as written (symbolic ``<DEL>``, ``*``, breakends): whether one can be scored is the
  scorer's question (:func:`allele_problem` words the answer).
- Whole-file problems raise :class:`~helixserve.errors.InvalidFile`: an empty or binary file, no
  ``#CHROM`` line before the first data line (or at all), a truncated gzip stream (after every
  complete line before it was yielded). ``max_decompressed`` caps what a gzip file may inflate to
  (:class:`~helixserve.errors.FileTooLarge`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType

from helixserve.errors import InputError, InvalidFile
from helixserve.inputs.records import BadRecord, bad_record
from helixserve.inputs.textio import Line, Source, check_head, iter_lines, line_problem, opened

COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
_REF_LETTERS = frozenset("ACGTNacgtn")


@dataclass(frozen=True, slots=True)
class VcfRecord:
    """One readable VCF data line: 1-based ``pos``, upper-case ``ref``, ``alts`` as written."""

    index: int
    line: int
    chrom: str
    pos: int
    id: str
    ref: str
    alts: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        """``CHROM:POS``, the record's name in messages."""
        return f"{self.chrom}:{self.pos}"


@dataclass(frozen=True)
class VcfHeader:
    """The header lines as read: ``##`` meta lines, then the ``#CHROM`` line."""

    meta: tuple[str, ...]
    columns: str

    def with_info(self, definitions: list[str]) -> str:
        """The header text with ``definitions`` (``##INFO=<ID=...`` and other ``##`` lines)
        added before ``#CHROM``, replacing the lines of the same INFO ID or meta key."""
        added = {_meta_key(d) for d in definitions}
        kept = [m for m in self.meta if _meta_key(m) not in added]
        return "\n".join([*kept, *definitions, self.columns]) + "\n"


def _meta_key(line: str) -> str:
    """``##INFO=<ID=DP`` for an INFO definition, else the meta key (``##fileformat``)."""
    if line.startswith("##INFO="):
        return line.split(",", maxsplit=1)[0]
    return line.split("=", maxsplit=1)[0]


def allele_problem(alt: str) -> str | None:
    """Why an ALT allele cannot be scored as a sequence change, or ``None`` if it can."""
    if alt == ".":
        return "no ALT allele ('.'): the record states no change to score"
    if alt.startswith("<"):
        return f"ALT {alt} is a symbolic allele (a structural variant without its bases)"
    if alt == "*":
        return "ALT * stands for an allele removed by an overlapping deletion; it has no bases"
    if "[" in alt or "]" in alt:
        return f"ALT {alt} is a breakend (a rearrangement join), not a sequence change"
    bad = sorted(set(alt.upper()) - set("ACGTN"))
    if bad:
        return f"ALT {alt!r} holds {bad[0]!r}; an ALT allele is bases A, C, G, T or N"
    return None


def with_info(text: str, added: dict[str, str]) -> str:
    """A VCF data line with ``added`` (key: value) in its INFO column, replacing entries of the
    same keys (a file scored again keeps one value per key); every other column unchanged."""
    cells = text.split("\t")
    kept = [e for e in cells[7].split(";") if e not in (".", "") and e.split("=")[0] not in added]
    cells[7] = ";".join([*kept, *(f"{k}={v}" for k, v in added.items())])
    return "\t".join(cells)


class VcfReader:
    """A VCF file opened for reading: ``header``, then its records (see the module contract)."""

    def __init__(self, source: Source, max_decompressed: int | None = None) -> None:
        self._stack = ExitStack()
        stream: io.BufferedReader = self._stack.enter_context(opened(source, max_decompressed))
        try:
            check_head(stream)
            self._lines = iter_lines(stream)
            self.header, self._first = _read_header(self._lines)
        except BaseException:
            self._stack.close()
            raise

    def __iter__(self) -> Iterator[VcfRecord | BadRecord]:
        index = 0
        lines = iter(self._lines) if self._first is None else _chain(self._first, self._lines)
        for number, text in lines:
            if isinstance(text, str) and not text.strip():
                continue
            index += 1
            yield _record(index, number, text)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> VcfReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_vcf(source: Source, max_decompressed: int | None = None) -> VcfReader:
    """Open a VCF (see the module contract); close it with ``with`` or :meth:`VcfReader.close`."""
    return VcfReader(source, max_decompressed)


def _chain(first: Line, rest: Iterator[Line]) -> Iterator[Line]:
    yield first
    yield from rest


def _read_header(lines: Iterator[Line]) -> tuple[VcfHeader, Line | None]:
    meta: list[str] = []
    for number, text in lines:
        if isinstance(text, InputError):
            raise InvalidFile(f"line {number:,} of the VCF header: {text.problem}")
        if text.startswith("##"):
            meta.append(text)
        elif text.startswith("#"):
            return VcfHeader(tuple(meta), text), None
        elif text.strip():
            raise InvalidFile(
                f"line {number:,} of the VCF is a data line, but no '#CHROM POS ID REF ALT ...' "
                "header line came before it; a VCF starts with its ## meta lines and the #CHROM "
                "line."
            )
    raise InvalidFile(
        "the VCF has no '#CHROM POS ID REF ALT QUAL FILTER INFO' header line and no records; "
        "check that this is a VCF file."
    )


def _record(index: int, number: int, text: str | InputError) -> VcfRecord | BadRecord:
    if isinstance(text, InputError):
        return bad_record(InputError(text.problem), index, number)
    cells = text.split("\t")
    where = f"{cells[0]}:{cells[1]}" if len(cells) > 1 else None
    try:
        return _parse(index, number, text, cells)
    except InputError as err:
        return bad_record(err, index, number, where)


def _parse(index: int, number: int, text: str, cells: list[str]) -> VcfRecord:
    problem = line_problem(text)
    if problem is not None:
        raise InputError(problem)
    if text.startswith("#"):
        raise InputError(
            "a '#' line after the #CHROM header line; header lines come first, data lines after."
        )
    if len(cells) < len(COLUMNS):
        raise InputError(
            f"the line has {len(cells)} tab-separated column(s); a VCF data line has at least 8 "
            "(CHROM POS ID REF ALT QUAL FILTER INFO). Check that the columns are separated by "
            "tabs, not spaces."
        )
    chrom, pos, ident, ref, alt = (c.strip() for c in cells[:5])
    if not chrom:
        raise InputError("CHROM is empty; it names the reference sequence (contig) of the variant.")
    if not (pos.isascii() and pos.isdigit()) or int(pos) < 1:
        raise InputError(f"POS {pos!r} is not a whole number from 1; VCF positions are 1-based.")
    if not ref or not set(ref) <= _REF_LETTERS:
        raise InputError(
            f"REF {ref!r} is not reference bases; REF is one or more of A, C, G, T, N."
        )
    alts = tuple(alt.split(",")) if alt not in (".", "") else (".",)
    return VcfRecord(index, number, chrom, int(pos), ident, ref.upper(), alts, text)
