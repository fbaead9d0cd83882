"""Bundle contents: hashing, manifest drafting, and integrity checks of files against a manifest.

Contract:
- :func:`make_manifest` computes the sha256 of every file of a bundle (``model.onnx``,
  ``card.md``, ``history.json``, ``plots/...``) and returns a validated
  :class:`~helixserve.store.manifest.Manifest` (version 1 until the store assigns the real one).
- :func:`verify_file` raises :class:`~helixserve.errors.IntegrityError` naming the bundle, the
  file and both hashes (expected and actual) when the content does not match, and saying whether
  the file was truncated (shorter than expected is not knowable from a hash, so it says "changed
  or truncated").
- :func:`verify_dir` checks every file a manifest lists in a local bundle directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helixserve.errors import IntegrityError
from helixserve.store.manifest import Manifest

CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_manifest(files: Mapping[str, bytes], **fields: Any) -> Manifest:
    """A manifest for ``files`` (path -> content) with the given fields (name, task, input...)."""
    hashes = {path: sha256_bytes(data) for path, data in sorted(files.items())}
    return Manifest(**{"version": 1, **fields, "files": hashes})


def verify_file(label: str, path: str, expected: str, actual: str) -> None:
    """Raise :class:`IntegrityError` if ``actual`` differs from ``expected``."""
    if actual != expected:
        raise IntegrityError(
            f"{path} of {label} is corrupted: its sha256 is {actual}, but the manifest says "
            f"{expected}. The file was changed or truncated after publishing; publish the model "
            "again, or use another version."
        )


def verify_dir(folder: Path, manifest: Manifest, label: str) -> None:
    """Check every file of a local bundle directory against its manifest."""
    for relative, expected in manifest.files.items():
        path = folder / relative
        if not path.is_file():
            raise IntegrityError(
                f"{relative} of {label} is missing from {folder}; pull the model again."
            )
        verify_file(label, relative, expected, sha256_file(path))
