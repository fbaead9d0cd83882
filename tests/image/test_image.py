"""The serving image, built from this checkout's Dockerfile and run for real (``make image``).

The container runs on the host's network (the private engine has no bridge), on free ports,
listening on 0.0.0.0 as the image does by default, so it needs API keys: one ``predict`` key and
one ``admin`` key. Checked: its HEALTHCHECK passes; it runs as uid 10001 and holds no torch; it
predicts the zoo's primer-binding model over REST and gRPC with the same numbers, and refuses a
request without a key; the ``explain`` extra's routes work in it (a VCF scored against its
reference with pysam, motifs matched to JASPAR); without any key it refuses to start; SIGTERM
stops it with exit code 0 (the last test: it stops the module's container).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc

from helixserve.cli.serve import OPEN_REFUSED
from helixserve.serving.auth import new_key
from tests.support.docker_engine import Engine
from tests.support.server import free_port

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]  # the first builds the images

NAME = "helixserve-smoke"
BINDS = "CGACCGAACTCC" + "A" * 38  # the primer-binding motif (tests/test_oip.py)
NO_MOTIF = "ACGT" * 12 + "AC"
EXAMPLES = Path(__file__).parents[2] / "src" / "helixserve" / "examples"


@dataclass(frozen=True)
class Served:
    url: str
    grpc: str
    predict_key: str
    admin_key: str


def env_options(values: dict[str, str]) -> list[str]:
    return [option for name, value in values.items() for option in ("-e", f"{name}={value}")]


@pytest.fixture(scope="module")
def served(engine: Engine, serving_image: str) -> Iterator[Served]:
    http, grpc = free_port(), free_port()
    predict_key, predict_entry = new_key("predict")
    admin_key, admin_entry = new_key("admin")
    settings = {
        "HELIXSERVE_PORT": str(http),
        "HELIXSERVE_GRPC_PORT": str(grpc),
        "HELIXSERVE_API_KEYS": f"{predict_entry},{admin_entry}",
        "HELIXSERVE_WORKERS": "1",
    }
    engine.docker(
        "run", "-d", "--name", NAME, "--network", "host", *env_options(settings), serving_image
    )
    try:
        engine.wait_healthy(NAME, timeout=120)
        yield Served(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}", predict_key, admin_key)
    finally:
        engine.docker("rm", "-f", NAME, check=False)


def test_runs_as_uid_10001_without_torch(engine: Engine, served: Served) -> None:
    assert engine.docker("exec", NAME, "id", "-u").stdout.strip() == "10001"
    torch = engine.docker("exec", NAME, "python", "-c", "import torch", check=False)
    assert torch.returncode == 1
    assert "ModuleNotFoundError: No module named 'torch'" in torch.stderr


def rest_probabilities(served: Served) -> np.ndarray:
    answer = httpx.post(
        f"{served.url}/api/v1/models/primer-binding/predict",
        json={"inputs": [BINDS, NO_MOTIF]},
        headers={"Authorization": f"Bearer {served.predict_key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["label"] for p in predictions] == ["1", "0"]
    return np.array([[p["probabilities"]["0"], p["probabilities"]["1"]] for p in predictions])


def test_predicts_over_rest_and_grpc_alike(served: Served) -> None:
    rest = rest_probabilities(served)
    client = tgrpc.InferenceServerClient(served.grpc)
    tensor = tgrpc.InferInput("sequence", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([BINDS.encode(), NO_MOTIF.encode()], dtype=object))
    headers = {"authorization": f"Bearer {served.predict_key}"}
    result = client.infer("primer-binding", [tensor], headers=headers)
    assert result.as_numpy("label").tolist() == [b"1", b"0"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), rest, rtol=1e-6)


def test_refuses_a_request_without_a_key(served: Served) -> None:
    answer = httpx.post(
        f"{served.url}/api/v1/models/primer-binding/predict", json={"inputs": [BINDS]}
    )
    assert answer.status_code == 401
    admin = httpx.get(
        f"{served.url}/api/v1/models",
        headers={"Authorization": f"Bearer {served.admin_key}"},
    )
    assert admin.status_code == 200
    assert "primer-binding" in [m["name"] for m in admin.json()["models"]]


def test_scores_a_vcf_and_matches_motifs(served: Served) -> None:
    """The image holds the explain extra: the VCF and motif routes answer, not 422."""
    headers = {"Authorization": f"Bearer {served.predict_key}"}
    files = {
        "vcf": ("calls.vcf", (EXAMPLES / "saureus_variants.vcf").read_bytes()),
        "reference": ("genes.fa", (EXAMPLES / "saureus_genes.fa").read_bytes()),
    }
    url = f"{served.url}/api/v1/models/amr-resistance/variants/vcf"
    answer = httpx.post(url, files=files, headers=headers, timeout=300)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["records"], body["scored"], body["refused"]) == (410, 357, 53)
    motifs = httpx.post(
        f"{served.url}/api/v1/models/primer-binding/motifs",
        json={"sequences": [BINDS] * 4, "width": 8, "top": 1},
        headers=headers,
        timeout=120,
    )
    assert motifs.status_code == 200, motifs.text
    found = motifs.json()["motifs"]
    assert found and found[0]["jaspar"], found


def test_refuses_to_start_open_beyond_loopback(engine: Engine, serving_image: str) -> None:
    """No key and no user: the image's 0.0.0.0 would be open to anyone, so it does not start."""
    port = str(free_port())
    settings = {"HELIXSERVE_PORT": port, "HELIXSERVE_GRPC_PORT": "0"}
    done = engine.docker(
        "run", "--rm", "--network", "host", *env_options(settings), serving_image, check=False
    )
    assert done.returncode == 1
    assert "Error: " + OPEN_REFUSED.format(host="0.0.0.0") in " ".join(done.stderr.split())


def test_sigterm_stops_it_cleanly(engine: Engine, served: Served) -> None:
    engine.docker("stop", "--time", "30", NAME, timeout=60)
    state = engine.inspect(NAME)["State"]
    assert isinstance(state, dict)
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False)
