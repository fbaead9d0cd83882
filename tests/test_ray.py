"""Ray backends on a real local Ray cluster (a head and one worker node): batch scoring with
`predict --engine ray`, and serving with Ray Serve."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helixserve.batch.predict import score
from helixserve.batch.ray_engine import score_ray
from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore
from tests.support.ray_cluster import two_node_cluster
from tests.support.server import publish_gc
from tests.test_batch import random_fasta

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with two_node_cluster() as address:
        yield address


def test_ray_output_equals_the_local_engine(cluster: str, tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    data = tmp_path / "in.fa.gz"
    random_fasta(data, 20_000, seed=5, bad_every=97)
    predictor = Predictor.from_store(store, "gc")
    local = score(predictor, str(data), str(tmp_path / "local.csv"), batch_size=1500)
    remote = score_ray(
        predictor,
        store.uri,
        "gc",
        str(data),
        str(tmp_path / "ray.csv"),
        batch_size=1500,
        address=cluster,
        actors=2,
    )
    assert (remote.scored, remote.refused) == (local.scored, local.refused)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "ray.errors.csv").read_bytes() == (
        tmp_path / "local.errors.csv"
    ).read_bytes()


def test_ray_serve_answers_the_domain_api(cluster: str, tmp_path: Path) -> None:
    import httpx
    from ray import serve

    from helixserve.serving.ray_serve import deploy
    from helixserve.settings import Settings
    from tests.support.server import free_port

    zoo = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
    port = free_port()
    settings = Settings(
        store=str(zoo),
        port=port,
        cache_dir=str(tmp_path / "cache"),
        reload_interval_s=0,
        access_log=False,
    )
    try:
        deploy(settings, replicas=2, cpus_per_replica=0.25)
        url = f"http://127.0.0.1:{port}"
        binds = "CGACCGAACTCC" + "A" * 38
        reply = httpx.post(
            url + "/api/v1/models/primer-binding/predict",
            json={"inputs": [binds, "ACGF"]},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["predictions"][0]["label"] == "1" and body["predictions"][1] is None
        seed = httpx.post(url + "/api/v1/getdnaclassapi", json={"dnasequence": binds}, timeout=30)
        assert seed.text == "1"
        assert httpx.get(url + "/readyz", timeout=30).json()["status"] == "ready"
        oip = httpx.get(url + "/v2/models/primer-binding", timeout=30).json()
        assert oip["inputs"][0] == {"name": "sequence", "datatype": "BYTES", "shape": [-1]}
    finally:
        serve.shutdown()
