"""``helixserve worker --engine ray`` on a real local Ray cluster (a head and one worker node, as
in tests/test_ray.py): a run submitted with engine ``ray`` is trained inside a Ray task (another
process, which beats and records its epochs itself), finishes, and its bundle serves."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helixserve.runtime import Prediction, Predictor
from helixserve.worker.ray_engine import RayWorker
from helixserve.workspace.models import RunStatus
from tests.support.ray_cluster import two_node_cluster
from tests.support.worker_runs import (
    add_dataset,
    epochs,
    get,
    log_lines,
    open_space,
    queue,
    settings_for,
)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with two_node_cluster() as address:
        yield address


def test_a_ray_run_trains_in_a_ray_task_and_finishes(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    database = f"sqlite:///{tmp_path / 'workspace.db'}"
    space = open_space(tmp_path, database)
    add_dataset(space)
    local = queue(space, "here", params={"epochs": 1})
    run_id = queue(space, "there", params={"epochs": 2, "filters": 8, "hidden": 8}, engine="ray")
    worker = RayWorker(space, settings_for(tmp_path, database), "ray-driver", address=cluster)
    assert worker.run(once=True) == {"finished": 1}
    run = get(space, run_id)
    assert (run.status, run.worker) == (RunStatus.FINISHED, "ray-driver")
    assert get(space, local).status is RunStatus.QUEUED  # a local worker's, not Ray's
    assert epochs(space, run_id) == [1, 2]
    lines = log_lines(space, run_id)
    assert lines[0] == "submitted to Ray by worker ray-driver: asks for 1 CPU, 0 GPU"
    found = re.fullmatch(r"on Ray, process (\d+) of .+", lines[1])
    assert lines[2] == "claimed by worker ray-driver"
    assert found is not None and int(found.group(1)) != os.getpid()
    assert lines[-1].startswith(f"published {run.bundle} in ")
    answer = Predictor.from_store(space.runs, run.bundle or "").predict(["ACGT" * 12 + "AC"])[0]
    assert isinstance(answer, Prediction)
    space.db.close()
