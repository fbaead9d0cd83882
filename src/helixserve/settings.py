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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from helixserve.errors import HelixError
from helixserve.inputs.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from helixserve.inputs.sequence import DEFAULT_MAX_SEQUENCE_LENGTH

MiB = 1024 * 1024
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
    workers: int = Field(default=1, ge=1, le=64, description="server processes")
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
    intra_op_threads: int = Field(default=1, ge=1, le=256, description="ONNX Runtime threads")
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
