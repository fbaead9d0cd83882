"""Record types every reader yields: a good :class:`Record` or a located :class:`BadRecord`.

Contract: ``index`` is the 1-based number of the record among the file's records (header and
comment lines not counted), ``line`` the 1-based physical line where it starts, ``id`` the
record's id when the file gives one. A ``BadRecord``'s ``error`` message already starts with
that location (``record 12 (id x), line 14: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from helixserve.errors import InputError


@dataclass(frozen=True, slots=True)
class Record:
    """One sequence record as read (raw text, not yet validated)."""

    index: int
    line: int
    id: str | None
    sequence: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that could not be read or validated; ``error`` names where and why."""

    index: int
    line: int
    id: str | None
    error: InputError


def bad_record(error: InputError, index: int, line: int, record_id: str | None = None) -> BadRecord:
    """Locate ``error`` at a record and wrap it (``line`` 0: a file without lines, e.g. Parquet)."""
    located = error.at(index=index, record_id=record_id, line=line or None)
    return BadRecord(index, line, record_id, located)
