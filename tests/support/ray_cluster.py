"""A local two-node Ray cluster (head + one worker node, 1 CPU each) for the Ray tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
OBJECT_STORE = 150_000_000


@contextmanager
def two_node_cluster() -> Iterator[str]:
    """Start the cluster, connect this process to it, yield its address; shut both down after."""
    import ray
    from ray.cluster_utils import Cluster

    head = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": OBJECT_STORE,
            "include_dashboard": False,
        },
    )
    head.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    head.wait_for_nodes()
    ray.init(address=head.address, include_dashboard=False, log_to_driver=False)
    try:
        yield head.address
    finally:
        ray.shutdown()
        head.shutdown()
