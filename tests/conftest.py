"""Shared fixtures: the real datasets in ../shared/data and small helpers."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = Path(__file__).resolve().parent / "files"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real datasets. Absent on a developer's machine: skipped with the reason. Absent in CI
    (``CI=true``, where shared/ must sit beside the clone): a failure, so they never go unrun."""
    if not SHARED_DATA.is_dir():
        message = f"real datasets not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI must provide shared/ beside the clone)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def files() -> Path:
    return FILES


def write(path: Path, data: bytes | str, *, gz: bool = False) -> Path:
    """Write text or bytes to ``path`` (gzip-compressed when ``gz``) and return it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path
