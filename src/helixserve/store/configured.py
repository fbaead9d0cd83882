"""The store the settings name: :func:`store_from_settings` (used by the CLI and the server).

Contract: the store URI is ``uri`` or ``HELIXSERVE_STORE``; S3 options come from
``HELIXSERVE_S3_*`` (unset ones leave the AWS credential chain in charge); the local bundle cache
is ``HELIXSERVE_CACHE_DIR`` or the default cache folder. Unless ``HELIXSERVE_PRETRAINED`` is
false, the store lies over the pretrained models shipped in the package (:data:`PRETRAINED_STORE`,
read-only): they are usable by name from every command and from ``serve``, and a model of the same
name in the user's store wins.
"""

from __future__ import annotations

from pathlib import Path

import helixserve
from helixserve.settings import Settings
from helixserve.store.fs import S3Options
from helixserve.store.store import ModelStore

PRETRAINED_STORE = Path(helixserve.__file__).resolve().parent / "zoo" / "store"


def pretrained_store(cache_dir: Path | None = None) -> ModelStore:
    """The read-only store of pretrained models shipped in the package."""
    return ModelStore.open(str(PRETRAINED_STORE), cache_dir=cache_dir)


def open_layered(
    uri: str, *, s3: S3Options | None, cache_dir: Path | None, pretrained: bool
) -> ModelStore:
    """The store at ``uri``, over the pretrained models when ``pretrained`` (and it is not the
    pretrained store itself)."""
    store = ModelStore.open(uri, s3=s3, cache_dir=cache_dir)
    if not pretrained or store.uri == pretrained_store().uri:
        return store
    return ModelStore.open(uri, s3=s3, cache_dir=cache_dir, under=pretrained_store(cache_dir))


def s3_options(settings: Settings) -> S3Options:
    """Explicit S3 options from ``HELIXSERVE_S3_*``."""
    secret = settings.s3_secret_access_key
    return S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        key=settings.s3_access_key_id,
        secret=secret.get_secret_value() if secret is not None else None,
        profile=settings.s3_profile,
    )


def store_from_settings(
    settings: Settings, uri: str | None = None, *, pretrained: bool = True
) -> ModelStore:
    """The store at ``uri`` (default: the configured one); see the module contract. With
    ``pretrained=False`` it is the store alone (the other end of a copy between stores)."""
    cache = Path(settings.cache_dir) if settings.cache_dir else None
    return open_layered(
        uri or settings.store,
        s3=s3_options(settings),
        cache_dir=cache,
        pretrained=pretrained and settings.pretrained,
    )
