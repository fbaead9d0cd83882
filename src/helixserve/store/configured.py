"""The store the settings name: :func:`store_from_settings` (used by the CLI and the server).

Contract: the store URI is ``uri`` or ``HELIXSERVE_STORE``; S3 options come from
``HELIXSERVE_S3_*`` (unset ones leave the AWS credential chain in charge); the local bundle cache
is ``HELIXSERVE_CACHE_DIR`` or the default cache folder.
"""

from __future__ import annotations

from pathlib import Path

from helixserve.settings import Settings
from helixserve.store.fs import S3Options
from helixserve.store.store import ModelStore


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


def store_from_settings(settings: Settings, uri: str | None = None) -> ModelStore:
    """The store at ``uri`` (default: the configured one); see the module contract."""
    cache = Path(settings.cache_dir) if settings.cache_dir else None
    return ModelStore.open(uri or settings.store, s3=s3_options(settings), cache_dir=cache)
