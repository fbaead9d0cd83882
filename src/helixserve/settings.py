"""One typed settings object, read from ``HELIXSERVE_*`` environment variables and ``.env``.

Contract:
- :class:`Settings` is the only place defaults live; every other module takes values from it.
  Each field is read from ``HELIXSERVE_<FIELD>`` (case-insensitive), then from a ``.env`` file
  in the working directory, else its default. Invalid values raise
  :class:`pydantic.ValidationError` naming the variable; :func:`load_settings` turns that into
  :class:`~helixserve.errors.HelixError` for the CLI.
- ``HELIXSERVE_API_KEYS`` is a comma-separated list of hashed key entries
  ``<predict|admin>:<sha256 hex>`` (``helixserve keys new`` makes one); empty means no auth.
- ``HELIXSERVE_BATCH_POLICIES`` is JSON mapping a model name to its own batching values, e.g.
  ``{"yeast-utr": {"max_batch_size": 256, "max_wait_ms": 1}}``; others use the ``batch_*`` values.
- ``HELIXSERVE_STORE`` is a local folder or a ``file://`` / ``s3://bucket/prefix`` URI;
  ``HELIXSERVE_PRETRAINED=false`` hides the pretrained models shipped in the package.
- ``HELIXSERVE_DATABASE_URL`` is the workspace database, a SQLAlchemy URL: ``sqlite:///<path>``
  (default ``~/.helixserve/workspace.db``) or ``postgresql+psycopg://user:password@host:port/db``;
  :mod:`helixserve.workspace.db` checks it when it opens the database.
- ``HELIXSERVE_WORKERS`` and ``HELIXSERVE_INTRA_OP_THREADS`` default to ``auto``:
  :meth:`Settings.server_workers` is one server process per CPU this process may use
  (:func:`usable_cpus`: the affinity mask, capped by a cgroup CPU quota) up to
  :data:`MAX_AUTO_WORKERS`, and :meth:`Settings.onnx_threads` shares those CPUs among the workers
  (at least one thread each). A number overrides either.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from helixserve.errors import HelixError
from helixserve.inputs.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from helixserve.inputs.sequence import DEFAULT_MAX_SEQUENCE_LENGTH

MiB = 1024 * 1024
MAX_AUTO_WORKERS = 8  # each server process holds every model: past this, memory before speed
CGROUP = Path("/sys/fs/cgroup")
KEY_ENTRY = re.compile(r"^(predict|admin):([0-9a-f]{64})$")


def check_key_entry(entry: str) -> str:
    """Validate one ``scope:sha256`` API key entry, saying how to make a good one."""
    if not KEY_ENTRY.fullmatch(entry):
        shown = entry[:12] + "..." if len(entry) > 12 else entry
        raise ValueError(
            f"API key entry {shown!r} is not '<predict|admin>:<64 hex sha256 of the key>'; "
            "make one with `helixserve keys new --scope predict` (keys are stored hashed)"
        )
    return entry


class BatchOverride(BaseModel):
    """Batching values for one model (unset ones fall back to the global settings)."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1, le=65536)
    max_wait_ms: float | None = Field(default=None, ge=0, le=1000)
    max_queue_items: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)


def usable_cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may run on: its affinity mask, capped by the CPU quota of its
    cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_quota(root: Path = CGROUP) -> float | None:
    """CPUs' worth of time the cgroup allows (e.g. 1.5), or ``None`` when unlimited or unknown."""
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        own = []
    v2 = [line.split("::", 1)[1] for line in own if line.startswith("0::")]
    for folder in [root / v2[0].lstrip("/")] if v2 else []:
        if (folder / "cpu.max").is_file():
            return _ratio((folder / "cpu.max").read_text().split())
    if (root / "cpu.max").is_file():
        return _ratio((root / "cpu.max").read_text().split())
    v1 = root / "cpu"
    if (v1 / "cpu.cfs_quota_us").is_file() and (v1 / "cpu.cfs_period_us").is_file():
        quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
        return _ratio([quota, (v1 / "cpu.cfs_period_us").read_text().strip()])
    return None


def _ratio(fields: list[str]) -> float | None:
    """``quota period`` as CPUs; ``max`` or a negative quota (no limit), or junk: ``None``."""
    try:
        quota, period = float(fields[0]), float(fields[1])
    except (IndexError, ValueError):  # "max 100000" lands here too
        return None
    return quota / period if quota > 0 and period > 0 else None


def helixserve_home() -> Path:
    """The folder that holds the default store and workspace database (``~/.helixserve``)."""
    return Path.home() / ".helixserve"


def default_store() -> str:
    return str(helixserve_home() / "store")


def default_workspace_store() -> str:
    return str(helixserve_home() / "workspace")


def default_database_url() -> str:
    """SQLite file next to the default store: ``sqlite:///~/.helixserve/workspace.db``."""
    return "sqlite:///" + str(helixserve_home() / "workspace.db")


class Settings(BaseSettings):
    """helixserve's configuration; see docs/configuration.md for each variable."""

    model_config = SettingsConfigDict(
        env_prefix="HELIXSERVE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    store: str = Field(default_factory=default_store, description="model store folder or URI")
    database_url: str = Field(
        default_factory=default_database_url,
        min_length=1,
        description="workspace database: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    workspace_store: str = Field(
        default_factory=default_workspace_store,
        description="folder or URI for the workspace's dataset files and trained runs",
    )
    pretrained: bool = Field(
        default=True, description="also serve the pretrained models shipped in the package"
    )
    worker: bool = Field(
        default=True,
        description="helixserve serve also starts one worker process that trains queued runs "
        "(when the train extra is installed)",
    )
    host: str = Field(default="127.0.0.1", description="address the server binds to")
    port: int = Field(default=8000, ge=1, le=65535)
    grpc_port: int = Field(default=8001, ge=0, le=65535, description="gRPC port; 0: no gRPC")
    grpc_engine: Literal["h2", "grpcio"] = Field(
        default="h2",
        description="gRPC server: h2 = helixserve's HTTP/2 server on each process's event loop; "
        "grpcio = grpc.aio",
    )
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        default="auto", description="server processes; auto: one per usable CPU, at most 8"
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="hashed API key entries; empty: no authentication"
    )
    batch_max_size: int = Field(default=64, ge=1, le=65536, description="items per model call")
    batch_max_wait_ms: float = Field(default=0.0, ge=0, le=1000, description="wait for more")
    batch_max_queue: int = Field(default=4096, ge=1, description="waiting items before 503")
    request_timeout_s: float = Field(default=30.0, gt=0, description="per-request timeout")
    shutdown_drain_s: float = Field(
        default=1.0, ge=0, le=600, description="after SIGTERM, answer 503 this long at least"
    )
    batch_policies: dict[str, BatchOverride] = Field(default_factory=dict)
    intra_op_threads: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        default="auto",
        description="ONNX Runtime threads per model session; auto: the usable CPUs shared "
        "among the server processes",
    )
    reload_interval_s: float = Field(default=30.0, ge=0, description="store polling; 0: off")
    max_request_bytes: int = Field(default=16 * MiB, ge=1, description="largest JSON body")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    session_secret: SecretStr | None = Field(
        default=None, min_length=16, description="signs the web UI's key sessions"
    )
    access_log: bool = True
    fast_path: bool = Field(
        default=True,
        description="serve the hot routes (predict, seed, OIP infer) on the fast path generated "
        "from the route table; false: through FastAPI only (same answers, slower)",
    )
    s3_endpoint_url: str | None = Field(default=None, description="custom S3 endpoint")
    s3_region: str | None = Field(default=None, description="S3 region (else AWS_REGION)")
    s3_profile: str | None = Field(default=None, description="AWS profile (else AWS_PROFILE)")
    s3_access_key_id: str | None = Field(default=None, description="else AWS_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="else AWS_SECRET_...")
    cache_dir: str | None = Field(default=None, description="local bundle cache folder")
    jobs_dir: str | None = Field(
        default=None,
        description="where the web UI keeps scored files, shared by the server processes "
        "(serve sets a temporary folder)",
    )
    reload_signal: str | None = Field(
        default=None,
        description="a file the server processes replace after a reload, so all of them reload "
        "(serve sets one when it starts several processes)",
    )
    max_upload_bytes: int = Field(default=200 * MiB, ge=1, description="largest accepted upload")
    max_decompressed_bytes: int = Field(
        default=200 * MiB, ge=1, description="most a gzip upload may inflate to (gzip bombs)"
    )
    max_upload_records: int = Field(
        default=1_000_000, ge=1, description="most records (rows) one upload may hold"
    )
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, ge=1)
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_sequence_length: int = Field(default=DEFAULT_MAX_SEQUENCE_LENGTH, ge=1)
    default_dna_model: str = Field(default="primer-binding", min_length=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def server_workers(self) -> int:
        """Server processes: the setting, or for ``auto`` one per usable CPU (at most 8)."""
        if self.workers == "auto":
            return min(usable_cpus(), MAX_AUTO_WORKERS)
        return self.workers

    def onnx_threads(self) -> int:
        """ONNX Runtime threads per session: the setting, or the CPUs per server process."""
        if self.intra_op_threads == "auto":
            return max(1, usable_cpus() // self.server_workers())
        return self.intra_op_threads

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: list[str]) -> list[str]:
        return [check_key_entry(entry) for entry in value]


def load_settings() -> Settings:
    """Read settings, turning a bad variable into a one-line :class:`HelixError`."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = "HELIXSERVE_" + str(first["loc"][0]).upper() if first["loc"] else "HELIXSERVE_*"
        secret = name in (
            "HELIXSERVE_API_KEYS",
            "HELIXSERVE_DATABASE_URL",
            "HELIXSERVE_S3_SECRET_ACCESS_KEY",
            "HELIXSERVE_SESSION_SECRET",
        )
        got = "" if secret else f" (got {first.get('input')!r})"
        raise HelixError(
            f"setting {name} is not valid: {first['msg']}{got}. "
            "Fix the environment variable or the .env file."
        ) from None
