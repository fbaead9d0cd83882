"""One workspace: its database, its dataset files, the bundles of its trained runs.

Contract:
- :class:`Workspace` holds what every workspace operation needs: the
  :class:`~helixserve.workspace.db.Database` (migrated on :meth:`Workspace.open`), the dataset
  files (:class:`~helixserve.store.datasets.DatasetBlobs` under ``<workspace store>``), the
  *runs store* (a :class:`~helixserve.store.store.ModelStore` under ``<workspace store>/runs``
  holding one model ``run-<id>`` per finished run, never served), the model store runs are
  deployed into, a local cache folder and the upload limits.
- :meth:`Workspace.from_settings` builds it from ``HELIXSERVE_DATABASE_URL``,
  ``HELIXSERVE_WORKSPACE_STORE``, ``HELIXSERVE_STORE`` and the upload limits; nothing is opened
  or created until :meth:`Workspace.open`. The web app, the CLI and the workers build it the
  same way, so they share one workspace.
- :func:`run_model_name` is the runs store's name for a run's bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helixserve.settings import Settings
from helixserve.store.configured import s3_options, store_from_settings
from helixserve.store.datasets import DatasetBlobs
from helixserve.store.store import ModelStore, default_cache_dir
from helixserve.workspace.db import Database
from helixserve.workspace.rows import ProfileLimits


def run_model_name(run_id: str) -> str:
    """The runs store's model name for run ``run_id`` (model names are lower case)."""
    return f"run-{run_id.lower()}"


@dataclass
class Workspace:
    """See the module contract."""

    db: Database
    blobs: DatasetBlobs
    runs: ModelStore
    models: ModelStore
    cache_dir: Path
    limits: ProfileLimits
    max_upload_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Workspace:
        """The workspace ``settings`` name (see the module contract)."""
        root = settings.workspace_store.rstrip("/")
        s3 = s3_options(settings)
        cache = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir().parent
        return cls(
            db=Database(settings.database_url),
            blobs=DatasetBlobs(root, s3),
            runs=ModelStore.open(
                f"{root}/runs",
                s3=s3,
                cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
            ),
            models=store_from_settings(settings),
            cache_dir=cache / "workspace",
            limits=ProfileLimits.from_settings(settings),
            max_upload_bytes=settings.max_upload_bytes,
        )

    def open(self) -> Workspace:
        """Migrate the database to this version's schema (safe to repeat); ``self``."""
        self.db.upgrade()
        return self
