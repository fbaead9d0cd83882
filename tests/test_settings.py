"""Settings: defaults, HELIXSERVE_* variables, .env, and the message for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from helixserve.errors import HelixError
from helixserve.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("STORE", "HOST", "PORT", "API_KEYS", "MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(f"HELIXSERVE_{name}", raising=False)


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.api_keys == []
    assert settings.store == str(Path.home() / ".helixserve" / "store")
    assert settings.default_dna_model == "primer-binding"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIXSERVE_PORT", "9001")
    monkeypatch.setenv("HELIXSERVE_API_KEYS", f" predict:{'a' * 64}, admin:{'b' * 64} ,,")
    monkeypatch.setenv("helixserve_store", "s3://bucket/models")
    settings = Settings()
    assert settings.port == 9001
    assert settings.api_keys == [f"predict:{'a' * 64}", f"admin:{'b' * 64}"]
    assert settings.store == "s3://bucket/models"


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HELIXSERVE_MAX_UPLOAD_BYTES=1024\n")
    assert Settings().max_upload_bytes == 1024


def test_bad_value_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIXSERVE_PORT", "eighty")
    with pytest.raises(HelixError) as info:
        load_settings()
    assert str(info.value) == (
        "setting HELIXSERVE_PORT is not valid: Input should be a valid integer, unable to parse "
        "string as an integer (got 'eighty'). Fix the environment variable or the .env file."
    )


def test_plain_api_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIXSERVE_API_KEYS", "my-secret-key-123")
    with pytest.raises(HelixError) as caught:
        load_settings()
    assert str(caught.value) == (
        "setting HELIXSERVE_API_KEYS is not valid: Value error, API key entry 'my-secret-ke...' "
        "is not '<predict|admin>:<64 hex sha256 of the key>'; make one with `helixserve keys "
        "new --scope predict` (keys are stored hashed). Fix the environment variable or the "
        ".env file."
    )
