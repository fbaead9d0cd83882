"""One typed settings object, read from ``HELIXSERVE_*`` environment variables and ``.env``.

Contract:
- :class:`Settings` is the only place defaults live; every other module takes values from it.
  Each field is read from ``HELIXSERVE_<FIELD>`` (case-insensitive), then from a ``.env`` file
  in the working directory, else its default. Invalid values raise
  :class:`pydantic.ValidationError` naming the variable; :func:`load_settings` turns that into
  :class:`~helixserve.errors.HelixError` for the CLI.
- ``HELIXSERVE_API_KEYS`` is a comma-separated list (``key1,key2``); empty means no auth.
- ``HELIXSERVE_STORE`` is a local folder or a ``file://`` / ``s3://bucket/prefix`` URI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from helixserve.errors import HelixError
from helixserve.inputs.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from helixserve.inputs.sequence import DEFAULT_MAX_SEQUENCE_LENGTH

MiB = 1024 * 1024


def default_store() -> str:
    return str(Path.home() / ".helixserve" / "store")


class Settings(BaseSettings):
    """helixserve's configuration; see docs/configuration.md for each variable."""

    model_config = SettingsConfigDict(
        env_prefix="HELIXSERVE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    store: str = Field(default_factory=default_store, description="model store folder or URI")
    host: str = Field(default="127.0.0.1", description="address the server binds to")
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="accepted API keys; empty: no authentication"
    )
    s3_endpoint_url: str | None = Field(default=None, description="custom S3 endpoint")
    s3_region: str | None = Field(default=None, description="S3 region (else AWS_REGION)")
    s3_profile: str | None = Field(default=None, description="AWS profile (else AWS_PROFILE)")
    s3_access_key_id: str | None = Field(default=None, description="else AWS_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="else AWS_SECRET_...")
    cache_dir: str | None = Field(default=None, description="local bundle cache folder")
    max_upload_bytes: int = Field(default=200 * MiB, ge=1, description="largest accepted upload")
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, ge=1)
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_sequence_length: int = Field(default=DEFAULT_MAX_SEQUENCE_LENGTH, ge=1)
    default_dna_model: str = Field(default="primer-binding", min_length=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


def load_settings() -> Settings:
    """Read settings, turning a bad variable into a one-line :class:`HelixError`."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = "HELIXSERVE_" + str(first["loc"][0]).upper() if first["loc"] else "HELIXSERVE_*"
        raise HelixError(
            f"setting {name} is not valid: {first['msg']} (got {first.get('input')!r}). "
            "Fix the environment variable or the .env file."
        ) from None
