"""`helixserve predict --engine ray` on a real local Ray cluster (a head and one worker node)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helixserve.batch.predict import score
from helixserve.batch.ray_engine import score_ray
from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore
from tests.support.server import publish_gc
from tests.test_batch import random_fasta

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import ray
    from ray.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 150_000_000, "include_dashboard": False})  # fmt: skip
    head.add_node(num_cpus=1, object_store_memory=150_000_000)
    head.wait_for_nodes()
    ray.init(address=head.address, include_dashboard=False, log_to_driver=False)
    try:
        yield head.address
    finally:
        ray.shutdown()
        head.shutdown()


def test_ray_output_equals_the_local_engine(cluster: str, tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    data = tmp_path / "in.fa.gz"
    random_fasta(data, 20_000, seed=5, bad_every=97)
    predictor = Predictor.from_store(store, "gc")
    local = score(predictor, str(data), str(tmp_path / "local.csv"), batch_size=1500)
    remote = score_ray(predictor, store.uri, "gc", str(data), str(tmp_path / "ray.csv"),
                       batch_size=1500, address=cluster, actors=2)  # fmt: skip
    assert (remote.scored, remote.refused) == (local.scored, local.refused)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "ray.errors.csv").read_bytes() == (
        tmp_path / "local.errors.csv"
    ).read_bytes()
