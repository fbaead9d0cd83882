"""Settings: defaults, HELIXSERVE_* variables, .env, and the message for a bad value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helixserve.errors import HelixError
from helixserve.settings import (
    MAX_AUTO_WORKERS,
    Settings,
    cgroup_quota,
    load_settings,
    usable_cpus,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in (
        "STORE",
        "HOST",
        "PORT",
        "API_KEYS",
        "MAX_UPLOAD_BYTES",
        "WORKERS",
        "INTRA_OP_THREADS",
    ):
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


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2: 1.5 CPUs
        ({"cpu.max": "max 100000\n"}, None),  # v2, no limit
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1
        ({"cpu.max": "junk\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_the_cgroup_cpu_quota_is_read(tmp_path: Path, files: dict[str, str], quota: float) -> None:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert cgroup_quota(root) == quota


def test_usable_cpus_follow_the_affinity_and_the_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == affinity  # no quota here
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU still gets one process
    assert usable_cpus(tmp_path) == 1


def test_workers_and_threads_default_to_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: a server process per usable CPU (at most 8), the CPUs shared out as threads."""
    cpus = usable_cpus()
    auto = Settings()
    assert (auto.workers, auto.intra_op_threads) == ("auto", "auto")
    assert auto.server_workers() == min(cpus, MAX_AUTO_WORKERS)
    assert auto.onnx_threads() == max(1, cpus // auto.server_workers())
    monkeypatch.setenv("HELIXSERVE_WORKERS", "1")
    one = Settings()
    assert (one.server_workers(), one.onnx_threads()) == (1, cpus)
    monkeypatch.setenv("HELIXSERVE_INTRA_OP_THREADS", "3")
    assert Settings().onnx_threads() == 3
    monkeypatch.setenv("HELIXSERVE_WORKERS", "0")
    with pytest.raises(HelixError) as err:
        load_settings()
    assert str(err.value).startswith("setting HELIXSERVE_WORKERS is not valid: ")
