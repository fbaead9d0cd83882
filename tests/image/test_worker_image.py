"""The worker image (the Dockerfile's ``worker`` stage: the train extra, CPU torch), built and run
for real (``make image-worker``: its build installs about 1 GB, too long for CI's ``make image``).

torch==2.13.0's CPU wheel: where this machine keeps it (``/opt/wheels``), the build finds it
there through a file server on loopback (``find-links`` in the ``pip.conf`` build secret, so
that its port is no part of the cache key; and no PyTorch index, which is not reachable here);
elsewhere the Dockerfile's default, PyTorch's CPU index, serves it. Checked: torch is the CPU
build; ``helixserve worker --once`` starts and finds no run; ``helixserve train`` trains a small
binary model in the container and publishes it into a mounted store.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.docker_engine import Engine

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
WHEELS = Path("/opt/wheels")
MOTIF = "CGACCGAACTCC"


@pytest.fixture(scope="module")
def wheel_server() -> Iterator[str | None]:
    """A file server on loopback for WHEELS (``None`` where it holds no torch wheel)."""
    if not any(WHEELS.glob("torch-2.13.0*.whl")):
        yield None
        return
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(WHEELS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def worker_image(engine: Engine, bases: None, wheel_server: str | None, figures: list[str]) -> str:
    if wheel_server is None:  # the Dockerfile's default: PyTorch's CPU index
        built = engine.build("helixserve-worker", ROOT, target="worker")
    else:
        built = engine.build(
            "helixserve-worker",
            ROOT,
            target="worker",
            build_args={"PIP_EXTRA_INDEX_URL": ""},
            pip_options={"find-links": wheel_server},
        )
    figures.append(built.describe())
    return "helixserve-worker"


def test_torch_is_the_cpu_build(engine: Engine, worker_image: str) -> None:
    script = "import torch; print(torch.__version__, torch.cuda.is_available())"
    done = engine.docker("run", "--rm", "--network", "none", worker_image, "python", "-c", script)
    assert done.stdout.split() == ["2.13.0+cpu", "False"]


def test_the_worker_starts_and_finds_no_run(engine: Engine, worker_image: str) -> None:
    done = engine.docker(
        "run", "--rm", "--network", "none", worker_image, "helixserve", "worker", "--once"
    )
    assert done.returncode == 0
    assert engine.docker("run", "--rm", worker_image, "id", "-u").stdout.strip() == "10001"


def _sequences(folder: Path, count: int = 200) -> None:
    rng = random.Random(7)
    rows, labels = [], []
    for index in range(count):
        bases = [rng.choice("ACGT") for _ in range(50)]
        if index % 2 == 0:
            start = rng.randrange(0, 50 - len(MOTIF))
            bases[start : start + len(MOTIF)] = MOTIF
        rows.append("".join(bases))
        labels.append(str(1 - index % 2))
    (folder / "sequences.txt").write_text("\n".join(rows) + "\n")
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")


def test_trains_a_model_in_the_container(engine: Engine, worker_image: str, tmp_path: Path) -> None:
    _sequences(tmp_path)
    tmp_path.chmod(0o777)  # the image's user (uid 10001) writes the store there
    command = [
        "helixserve",
        "train",
        "dna-binary",
        "--data",
        "/data/sequences.txt",
        "--labels",
        "/data/labels.txt",
        "--name",
        "tiny",
        "--epochs",
        "2",
        "--store",
        "/data/store",
    ]
    done = engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{tmp_path}:/data",
        worker_image,
        *command,
        timeout=600,
    )
    lines = done.stdout.splitlines()
    assert any(line.startswith("trained and published in ") for line in lines), done.stdout
    assert lines[-1] == "published tiny@1 to the store file:///data/store"
    assert (tmp_path / "store" / "tiny" / "versions" / "1" / "model.onnx").is_file()
