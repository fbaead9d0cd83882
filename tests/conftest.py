"""Shared fixtures: the real datasets in ../shared/data and small helpers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = Path(__file__).resolve().parent / "files"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real datasets; tests using them are skipped (with this reason) when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def files() -> Path:
    return FILES


def write(path: Path, data: bytes | str, *, gz: bool = False) -> Path:
    """Write text or bytes to ``path`` (gzip-compressed when ``gz``) and return it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path
