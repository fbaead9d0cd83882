"""The store layer: model bundles (manifest, integrity, versions, aliases) on a local disk or S3.

- :mod:`~helixserve.store.names` — safe names, versions, aliases; ``name@ref`` parsing.
- :mod:`~helixserve.store.manifest` — the ``manifest.json`` contract (pydantic).
- :mod:`~helixserve.store.bundle` — hashing and integrity checks.
- :mod:`~helixserve.store.fs` — one fsspec code path for folders and ``s3://``.
- :mod:`~helixserve.store.store` — :class:`ModelStore`: publish, resolve, alias, pull, delete.
"""

from helixserve.store.bundle import make_manifest, sha256_bytes
from helixserve.store.fs import S3Options
from helixserve.store.manifest import (
    FORMAT_VERSION,
    LABEL_SEPARATOR,
    Headline,
    HeadlineFigure,
    Lineage,
    Manifest,
    OutputSchema,
    headline_of,
    label_problem,
    parse_manifest,
)
from helixserve.store.names import Ref, parse_ref
from helixserve.store.store import LocalBundle, ModelStore

__all__ = [
    "FORMAT_VERSION",
    "LABEL_SEPARATOR",
    "Headline",
    "HeadlineFigure",
    "Lineage",
    "LocalBundle",
    "Manifest",
    "ModelStore",
    "OutputSchema",
    "Ref",
    "S3Options",
    "headline_of",
    "label_problem",
    "make_manifest",
    "parse_manifest",
    "parse_ref",
    "sha256_bytes",
]
