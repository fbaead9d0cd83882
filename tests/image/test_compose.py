"""compose.yaml for real (``make image``): helixserve + SeaweedFS (S3) + PostgreSQL (the workspace)
+ Prometheus, each image built from this checkout and Debian/PyPI packages, started by Debian's
``docker-compose`` (1.29) with ``compose.loopback.yaml`` laid over it (host network, loopback,
free ports: see that file). The one change an override cannot make is made to a copy of
compose.yaml: without its published ports (:func:`without_ports`).

The order is an operator's: start the store and the database, make the bucket, push the zoo's
primer-binding model into the store with the write key (``helixserve models push``, run in the
helixserve image), then start the server (read-only key, no pretrained models, so whatever it
predicts came from S3) and Prometheus. Checked: it predicts through the S3 store; a version
pushed while it runs is served a moment later; a project made through the API is a row in the
PostgreSQL service's database; Prometheus scrapes the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import s3fs
import yaml

from helixserve.serving.auth import new_key
from tests.support.docker_engine import Engine
from tests.support.s3server import free_ports

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]  # the first builds the images

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "helixserve-compose-test"
LOOPBACK = Path(__file__).with_name("compose.loopback.yaml")
# image tag -> (build context, Dockerfile), as compose.yaml builds them
SERVICE_IMAGES = {
    "helixserve-seaweedfs": (ROOT, ROOT / "deploy/seaweedfs/Dockerfile"),
    "helixserve-postgres": (ROOT / "deploy/postgres", ROOT / "deploy/postgres/Dockerfile"),
    "helixserve-prometheus": (ROOT / "deploy/prometheus", ROOT / "deploy/prometheus/Dockerfile"),
}
WRITE_KEY = ("helixserve-write", "change-me-write")  # deploy/seaweedfs-s3.json's publisher
PORTS = (
    "HS_S3_PORT",
    "HS_WEED_MASTER",
    "HS_WEED_MASTER_GRPC",
    "HS_WEED_VOLUME",
    "HS_WEED_VOLUME_GRPC",
    "HS_WEED_FILER",
    "HS_WEED_FILER_GRPC",
    "HS_WEED_S3_GRPC",
    "HS_DB_PORT",
    "HS_HTTP_PORT",
    "HS_GRPC_PORT",
    "HS_PROM_PORT",
)
PROMETHEUS = """\
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: helixserve
    metrics_path: /metrics
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""


@dataclass
class Stack:
    engine: Engine
    env: dict[str, str]
    admin_key: str
    files: list[Path]

    def port(self, name: str) -> int:
        return int(self.env[name])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['HS_HTTP_PORT']}"

    def compose(self, *args: str) -> str:
        return self.engine.compose(self.files, PROJECT, *args, env=self.env, directory=ROOT)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def push(self) -> str:
        """``helixserve models push primer-binding`` into the S3 store, in the helixserve image."""
        settings = {
            "HELIXSERVE_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.env['HS_S3_PORT']}",
            "HELIXSERVE_S3_REGION": "us-east-1",
            "HELIXSERVE_S3_ACCESS_KEY_ID": WRITE_KEY[0],
            "HELIXSERVE_S3_SECRET_ACCESS_KEY": WRITE_KEY[1],
        }
        options = [o for name, value in settings.items() for o in ("-e", f"{name}={value}")]
        command = [
            "helixserve",
            "models",
            "push",
            "primer-binding",
            "--to",
            "s3://models/helixserve",
        ]
        done = self.engine.docker(
            "run", "--rm", "--network", "host", *options, "helixserve", *command
        )
        return done.stdout.strip()


def _build_service_images(engine: Engine, figures: list[str]) -> None:
    for tag, (context, dockerfile) in SERVICE_IMAGES.items():
        figures.append(engine.build(tag, context, dockerfile=dockerfile).describe())


def without_ports(folder: Path) -> Path:
    """compose.yaml without its published ports, which a container on the host's network
    cannot have and which an override file cannot take away (compose 1.29 has no ``!reset``)."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for service in compose["services"].values():
        service.pop("ports", None)
    written = folder / "compose.yaml"
    written.write_text(yaml.safe_dump(compose, sort_keys=False))
    return written


def _make_bucket(port: int) -> None:
    fs = s3fs.S3FileSystem(
        key=WRITE_KEY[0],
        secret=WRITE_KEY[1],
        skip_instance_cache=True,
        client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
    )
    fs.mkdir("models")


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(
    engine: Engine,
    serving_image: str,
    figures: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    _build_service_images(engine, figures)
    admin_key, admin_entry = new_key("admin")
    env = dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True))
    folder = tmp_path_factory.mktemp("compose")
    config = folder / "prometheus.yml"
    config.write_text(PROMETHEUS.format(port=env["HS_HTTP_PORT"]))
    config.parent.chmod(0o755)
    config.chmod(0o644)
    env.update(HS_PROM_CONFIG=str(config), HELIXSERVE_API_KEYS=admin_entry)
    running = Stack(engine, env, admin_key, [without_ports(folder), LOOPBACK])
    try:
        running.compose("up", "-d", "--no-build", "s3", "db")
        engine.wait_healthy(running.container("s3"))
        engine.wait_healthy(running.container("db"))
        _make_bucket(running.port("HS_S3_PORT"))
        assert (
            running.push() == "pushed primer-binding to s3://models/helixserve as primer-binding@1"
        )
        running.compose("up", "-d", "--no-build")
        engine.wait_healthy(running.container("helixserve"))
    except Exception:
        print(running.compose("logs", "--tail=40"))  # shown with the failure
        running.compose("down", "--volumes", "--remove-orphans")
        raise
    try:
        yield running
    finally:
        running.compose("down", "--volumes", "--remove-orphans")


def served_versions(stack: Stack) -> list[int]:
    answer = httpx.get(f"{stack.url}/api/v1/models/primer-binding", headers=stack.headers())
    assert answer.status_code == 200, answer.text
    versions: list[int] = answer.json()["versions"]
    return versions


def test_predicts_the_model_pushed_into_s3(stack: Stack) -> None:
    models = httpx.get(f"{stack.url}/api/v1/models", headers=stack.headers()).json()["models"]
    assert [m["name"] for m in models] == ["primer-binding"]  # no pretrained model: S3's only
    answer = httpx.post(
        f"{stack.url}/api/v1/models/primer-binding/predict",
        json={"inputs": ["CGACCGAACTCC" + "A" * 38, "ACGT" * 12 + "AC"]},
        headers=stack.headers(),
    )
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == ["1", "0"]


def test_serves_a_version_pushed_while_it_runs(stack: Stack) -> None:
    assert served_versions(stack) == [1]
    assert stack.push() == "pushed primer-binding to s3://models/helixserve as primer-binding@2"
    eventually(lambda: served_versions(stack) == [1, 2], "version 2 served")


def test_the_workspace_lives_in_the_postgresql_service(stack: Stack) -> None:
    made = httpx.post(
        f"{stack.url}/api/v1/projects", json={"name": "compose-lab"}, headers=stack.headers()
    )
    assert made.status_code == 201, made.text
    psql = ["psql", "-h", "127.0.0.1", "-U", "helix", "-d", "helixserve", "-Atc"]
    rows = stack.engine.docker(
        "exec",
        "-e",
        "PGPASSWORD=change-me-db",
        stack.container("db"),
        *psql,
        "SELECT name FROM projects",
    ).stdout.split()
    assert rows == ["compose-lab"]


def test_prometheus_scrapes_the_server(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.env['HS_PROM_PORT']}/api/v1/targets"

    def up() -> bool:
        targets = httpx.get(url).json()["data"]["activeTargets"]
        return [t["health"] for t in targets] == ["up"]

    eventually(up, "the helixserve target up in Prometheus")
