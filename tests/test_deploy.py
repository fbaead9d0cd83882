"""Deployment files: the Dockerfile's steps run for real in a clean venv (no Docker engine here),
and the compose / Kubernetes / KServe files point at routes and ports the server has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _run_steps() -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [
        line.removeprefix("RUN ").strip()
        for line in text.splitlines()
        if line.startswith("RUN ") and "useradd" not in line
    ]


def test_dockerfile_is_slim_and_non_root() -> None:
    assert DOCKERFILE.startswith("# helixserve serving image")
    assert "\nFROM python:3.11-slim\n" in DOCKERFILE
    assert "\nUSER helixserve\n" in DOCKERFILE
    assert "HEALTHCHECK" in DOCKERFILE and "/readyz" in DOCKERFILE
    steps = " ".join(_run_steps())
    assert "torch" not in steps and "train," not in steps and '".[s3]"' in steps


def test_dockerfile_steps_in_a_clean_venv(tmp_path: Path) -> None:
    """COPY the same files, RUN the same commands with a fresh Python, start the same CMD, and
    run the HEALTHCHECK command against it."""
    app = tmp_path / "opt"
    app.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, app / name)
    shutil.copytree(ROOT / "requirements", app / "requirements")
    shutil.copytree(ROOT / "src", app / "src", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_NO_CACHE_DIR": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for step in _run_steps():
        command = step.replace(" && rm -rf /root/.cache", "")
        subprocess.run(["sh", "-c", command], cwd=app, env=env, check=True, capture_output=True)
    python = venv / "bin" / "python"
    missing = subprocess.run(
        [str(python), "-c", "import torch"], capture_output=True, text=True, check=False
    )
    assert "No module named 'torch'" in missing.stderr
    port = free_port()
    serve_env = {
        **env,
        "HELIXSERVE_PORT": str(port),
        "HELIXSERVE_GRPC_PORT": "0",
        "HELIXSERVE_HOST": "127.0.0.1",
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "c"),
    }
    cmd = re.search(r'^CMD \["sh", "-c", "(.*)"\]$', DOCKERFILE, re.MULTILINE)
    assert cmd is not None
    server = subprocess.Popen(
        ["sh", "-c", cmd.group(1).replace('\\"', '"')],
        cwd=tmp_path,
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = re.search(r'CMD \["python", "-c", "(.*)"\]', DOCKERFILE)
        assert health is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check = subprocess.run(
                [str(python), "-c", health.group(1)],
                env=serve_env,
                capture_output=True,
                check=False,
            )
            if check.returncode == 0:
                break
            time.sleep(0.5)
        assert check.returncode == 0, "the HEALTHCHECK never passed"
        models = httpx.get(f"http://127.0.0.1:{port}/api/v1/models").json()["models"]
        assert "primer-binding" in [m["name"] for m in models]
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_compose_and_kubernetes_files_match_the_server() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert set(compose["services"]) == {"s3", "helixserve", "prometheus"}
    assert compose["services"]["helixserve"]["ports"] == ["8000:8000", "8001:8001"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/metrics"
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "helixserve.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert [p["containerPort"] for p in container["ports"]] == [8000, 8001]
    kserve = list(
        yaml.safe_load_all((ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text())
    )
    assert [d["kind"] for d in kserve] == ["ClusterServingRuntime", "InferenceService"]
    assert kserve[0]["spec"]["protocolVersions"] == ["v2", "grpc-v2"]


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/v2/models/primer-binding/ready"]
)
def test_probe_paths_exist(path: str) -> None:
    from helixserve.serving.api import build_api
    from helixserve.serving.server import Server
    from helixserve.settings import Settings

    api = build_api(Server(Settings(store=str(ROOT / "src/helixserve/zoo/store"), grpc_port=0)))
    templates = set(api.openapi()["paths"])
    wanted = path.replace("primer-binding", "{name}")
    assert wanted in templates
