"""Deployment files: the serving image's Dockerfile steps run for real in a clean venv (fast, no
Docker engine: ``make image`` builds and runs the images themselves, tests/image), and the
compose / Kubernetes / KServe files point at routes and ports the server has."""

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


def _stages() -> dict[str, list[str]]:
    """Each stage's lines (continuations joined), by the name after ``AS``."""
    stages: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in DOCKERFILE.replace("\\\n", " ").splitlines():
        if line.startswith("FROM "):
            lines = stages.setdefault(line.split(" AS ")[1], [])
        lines.append(line)
    return stages


def _run_steps(*stages: str) -> list[str]:
    """The RUN commands of ``stages`` (default: the serving image's, base then serving), without
    their ``--mount`` flags; not the ``useradd`` (a test makes no user)."""
    found = _stages()
    return [
        re.sub(r"^RUN (--mount=\S+ )*", "", line).strip()
        for stage in stages or ("base", "serving")
        for line in found[stage]
        if line.startswith("RUN ") and "useradd" not in line
    ]


def test_dockerfile_is_slim_and_non_root() -> None:
    assert DOCKERFILE.startswith("# helixserve serving image")
    assert "\nFROM python:3.11-slim AS base\n" in DOCKERFILE
    stages = _stages()
    assert list(stages) == ["base", "worker", "serving"]  # serving last: the default target
    assert [s[0] for s in stages.values()] == [
        "FROM python:3.11-slim AS base",
        "FROM base AS worker",
        "FROM base AS serving",
    ]
    for name in ("worker", "serving"):
        assert "USER helixserve" in stages[name]
    assert any("HEALTHCHECK" in line and "/readyz" in line for line in stages["serving"])
    assert "HEALTHCHECK NONE" in stages["worker"]  # a worker serves no /readyz
    steps = " ".join(_run_steps())
    assert "torch" not in steps and "train," not in steps and '".[s3,postgres,explain]"' in steps
    assert '".[train,s3,postgres]"' in " ".join(_run_steps("worker"))


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
    services = compose["services"]
    assert set(services) == {"s3", "db", "helixserve", "worker", "prometheus"}
    assert services["helixserve"]["ports"] == ["8000:8000", "8001:8001"]
    assert services["helixserve"]["build"] == {"context": ".", "target": "serving"}
    assert services["worker"]["build"] == {"context": ".", "target": "worker"}
    assert services["worker"]["profiles"] == ["train"]  # not started by a plain `up`
    for name, service in services.items():  # every image builds here: no registry's image
        assert "build" in service and service["image"].startswith("helixserve"), name
    database = services["helixserve"]["environment"]["HELIXSERVE_DATABASE_URL"]
    assert database.startswith("postgresql+psycopg://helix:") and "@db:5432/" in database
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
