"""Model names, versions, aliases and references (``name``, ``name@3``, ``name@production``).

Contract:
- A model name or alias is 1-64 characters from ``A-Z a-z 0-9 . _ -``, starts with a letter or
  digit, and contains no ``..``; an alias is not all digits (digits mean a version). Versions are
  whole numbers from 1, in ASCII digits without leading zeros. Anything else raises
  :class:`~helixserve.errors.InvalidName` quoting the bad part safely (control characters
  escaped), so no name can reach outside the store's root.
- :func:`parse_ref` splits ``name[@version|@alias]`` into a :class:`Ref`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helixserve.errors import InvalidName

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION = re.compile(r"[1-9][0-9]{0,8}")  # ASCII digits only, no leading zero


def _quoted(value: str) -> str:
    shown = value if len(value) <= 80 else value[:80] + "..."
    return repr(shown)


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a safe model name or alias, else raise :class:`InvalidName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"{what} {_quoted(str(name))} is not allowed: use 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit, with no '..', slashes or spaces "
            "(e.g. 'primer-binding')."
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a safe alias name (not all digits)."""
    check_name(alias, "alias")
    if alias.isascii() and alias.isdigit():
        raise InvalidName(
            f"alias {_quoted(alias)} is not allowed: an alias cannot be all digits, which would "
            "read as a version number. Use a word such as 'production' or 'staging'."
        )
    return alias


def check_version(version: int | str) -> int:
    """Return the version as an int if it is a whole number from 1, else raise."""
    text = str(version)
    if not VERSION.fullmatch(text):
        raise InvalidName(
            f"version {_quoted(text)} is not allowed: versions are whole numbers from 1 "
            "(e.g. 'primer-binding@3')."
        )
    return int(text)


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed model reference: exactly one of ``version`` / ``alias`` may be set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(text: str) -> Ref:
    """Parse ``name``, ``name@3`` or ``name@production``."""
    name, sep, tail = text.partition("@")
    check_name(name)
    if not sep:
        return Ref(name)
    if tail.isascii() and tail.isdigit():
        return Ref(name, version=check_version(tail))
    return Ref(name, alias=check_alias(tail))
