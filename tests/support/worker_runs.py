"""A tiny DNA workspace for the worker's tests, and helpers to queue runs and watch them.

- :func:`dna_csv`: ``n`` 50-nt sequences (``id, sequence, label, split``); label 1 rows carry the
  motif ``GATTACA`` at a random place, so a few epochs learn something; split T / V / test.
- :func:`open_space` builds a :class:`Workspace` under ``tmp_path`` (its own store, workspace
  store and caches) on ``database_url``; :func:`worker_env` is the environment that makes a
  ``helixserve worker`` subprocess use the same workspace.
- :func:`add_dataset` uploads a file as dataset ``name`` of project ``lab`` with subsets ``t``,
  ``v`` and ``test`` from its split column; :func:`queue` checks and creates an experiment and
  submits a run of it, returning the run's id.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from helixserve.errors import ExperimentNotFound, ProjectNotFound
from helixserve.settings import Settings
from helixserve.workspace import runs
from helixserve.workspace.checks import ExperimentRequest, check_experiment
from helixserve.workspace.datasets import add_subset, add_version, create_dataset
from helixserve.workspace.experiments import create_experiment, find_experiment
from helixserve.workspace.models import Run
from helixserve.workspace.projects import create_project, get_project
from helixserve.workspace.space import Workspace

MOTIF = "GATTACA"
SPLITS = ("T", "T", "T", "V", "test")


def dna_csv(n: int = 200, seed: int = 0, value: Callable[[int], str] | None = None) -> bytes:
    """The tiny labelled DNA table (see the module docstring); ``value(i)`` adds a column."""
    rng = np.random.default_rng(seed)
    header = "id,sequence,label,split" + (",value" if value else "")
    lines = [header]
    for i in range(n):
        letters = list(rng.choice(list("ACGT"), 50))
        label = i % 2
        if label:
            at = int(rng.integers(0, 50 - len(MOTIF)))
            letters[at : at + len(MOTIF)] = list(MOTIF)
        row = f"s{i},{''.join(letters)},{label},{SPLITS[i % 5]}"
        lines.append(row + (f",{value(i)}" if value else ""))
    return ("\n".join(lines) + "\n").encode()


def settings_for(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        workspace_store=str(tmp_path / "workspace"),
        store=str(tmp_path / "store"),
        cache_dir=str(tmp_path / "cache"),
        pretrained=False,
    )


def open_space(tmp_path: Path, database_url: str) -> Workspace:
    return Workspace.from_settings(settings_for(tmp_path, database_url)).open()


def worker_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of a ``helixserve worker`` subprocess on the same workspace."""
    return {
        **os.environ,
        "HELIXSERVE_DATABASE_URL": database_url,
        "HELIXSERVE_WORKSPACE_STORE": str(tmp_path / "workspace"),
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }


def add_dataset(space: Workspace, name: str = "dna", data: bytes | None = None) -> None:
    """Dataset ``name`` of project ``lab`` (made if needed) with subsets t / v / test."""
    with space.db.session() as session:
        try:
            get_project(session, "lab")
        except ProjectNotFound:
            create_project(session, "lab")
        create_dataset(session, "lab", name)
        add_version(session, space, "lab", name, io.BytesIO(data or dna_csv()), f"{name}.csv")
        for part in ("T", "V", "test"):
            where = {"kind": "where", "column": "split", "op": "==", "value": part}
            add_subset(session, "lab", name, part.lower(), where)


def queue(
    space: Workspace,
    name: str = "e1",
    *,
    dataset: str = "dna",
    recipe: str = "dna-binary",
    target: str = "label",
    params: Mapping[str, Any] | None = None,
    blocks: list[dict[str, Any]] | None = None,
    engine: str = "local",
    init_from_run: str | None = None,
    test_subset: str | None = "test",
    normalise_on: str | None = None,
    positive: str | None = None,
) -> str:
    """Check and create experiment ``name`` (unless it exists) and submit a run; its id."""
    request = ExperimentRequest(
        dataset=dataset,
        target=target,
        train_subset="t",
        val_subset="v",
        test_subset=test_subset,
        recipe=recipe,
        params=dict(params if params is not None else {"epochs": 3}),
        blocks=blocks,
        normalise_on=normalise_on,
        positive=positive,
    )
    with space.db.session() as session:
        try:
            experiment = find_experiment(session, "lab", name)
        except ExperimentNotFound:
            spec = check_experiment(session, space, "lab", request)
            experiment = create_experiment(session, "lab", name, spec)
        run = runs.submit(session, experiment.id, engine, init_from_run=init_from_run)
        return run.id


def get(space: Workspace, run_id: str) -> Run:
    with space.db.session() as session:
        return runs.get_run(session, run_id)


def log_lines(space: Workspace, run_id: str) -> list[str]:
    with space.db.session() as session:
        return [row.line for row in runs.logs_since(session, run_id)]


def epochs(space: Workspace, run_id: str) -> list[int]:
    with space.db.session() as session:
        return [row.epoch for row in runs.epochs_since(session, run_id)]


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
