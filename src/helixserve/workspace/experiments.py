"""Experiments: what to train (dataset version + subsets + recipe + parameters or block stack).

Contract:
- Every function takes an open :class:`~sqlalchemy.orm.Session`, which commits; they only flush.
- :class:`ExperimentSpec` holds an experiment's settings; they are stored as given. Callers check
  them first: the recipe's parameters (``params.recipes``), the block stack
  (``workspace.blocks``), that the dataset version and subsets exist (``workspace.datasets`` /
  ``workspace.subsets``). ``params`` and ``blocks`` must be JSON (``json.dumps`` accepts them).
- An experiment name follows the model-name rules (else :class:`~helixserve.errors.InvalidName`)
  and is unique in its project (else :class:`~helixserve.errors.NameTaken`). The project is
  given by name (:class:`~helixserve.errors.ProjectNotFound` if unknown); an unknown experiment
  raises :class:`~helixserve.errors.ExperimentNotFound`. :func:`project_experiment` finds one by
  name or id within a project: an experiment of another project is not found (nothing leaks
  across projects).
- :func:`clone_experiment` copies an experiment's settings (optionally changed) into a new one
  whose ``cloned_from`` is the original's id; runs are never copied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from helixserve.errors import ExperimentNotFound, NameTaken
from helixserve.store.names import check_name
from helixserve.workspace.models import Experiment, Project
from helixserve.workspace.projects import get_project, listed


@dataclass(frozen=True)
class ExperimentSpec:
    """An experiment's settings (see the module contract); ``blocks=None``: the recipe's own
    architecture."""

    dataset_id: str
    dataset_version: str
    target: str
    train_subset: str
    val_subset: str
    recipe: str
    inputs: Mapping[str, Any] = field(default_factory=dict)  # role -> column(s) the recipe reads
    test_subset: str | None = None
    normalise_on: str | None = None
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    blocks: Sequence[Mapping[str, Any]] | None = None


def spec_of(experiment: Experiment) -> ExperimentSpec:
    """The settings of a stored experiment (to change with :func:`dataclasses.replace`)."""
    return ExperimentSpec(
        dataset_id=experiment.dataset_id,
        dataset_version=experiment.dataset_version,
        target=experiment.target,
        train_subset=experiment.train_subset,
        val_subset=experiment.val_subset,
        recipe=experiment.recipe,
        inputs=dict(experiment.inputs),
        test_subset=experiment.test_subset,
        normalise_on=experiment.normalise_on,
        seed=experiment.seed,
        params=dict(experiment.params),
        blocks=None if experiment.blocks is None else [dict(b) for b in experiment.blocks],
    )


def _taken(name: str, project: str) -> NameTaken:
    return NameTaken(
        f"project {project!r} already has an experiment named {name!r}; choose another name."
    )


def create_experiment(
    session: Session,
    project: str,
    name: str,
    spec: ExperimentSpec,
    *,
    cloned_from: str | None = None,
) -> Experiment:
    """Create experiment ``name`` in ``project`` (a project name) with ``spec``."""
    owner = get_project(session, project)
    check_name(name, "experiment name")
    same = select(Experiment.id).where(Experiment.project_id == owner.id, Experiment.name == name)
    if session.scalar(same) is not None:
        raise _taken(name, project)
    experiment = Experiment(
        project_id=owner.id,
        name=name,
        dataset_id=spec.dataset_id,
        dataset_version=spec.dataset_version,
        target=spec.target,
        inputs=dict(spec.inputs),
        normalise_on=spec.normalise_on,
        seed=spec.seed,
        train_subset=spec.train_subset,
        val_subset=spec.val_subset,
        test_subset=spec.test_subset,
        recipe=spec.recipe,
        params=dict(spec.params),
        blocks=None if spec.blocks is None else [dict(block) for block in spec.blocks],
        cloned_from=cloned_from,
    )
    session.add(experiment)
    try:
        session.flush()
    except IntegrityError:
        raise _taken(name, project) from None
    return experiment


def get_experiment(session: Session, experiment_id: str) -> Experiment:
    """The experiment with this id, else :class:`ExperimentNotFound`."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise ExperimentNotFound(f"no experiment with id {experiment_id!r}.")
    return experiment


def find_experiment(session: Session, project: str, name: str) -> Experiment:
    """The experiment named ``name`` in ``project``, else :class:`ExperimentNotFound`."""
    owner = get_project(session, project)
    experiment = session.scalar(
        select(Experiment).where(Experiment.project_id == owner.id, Experiment.name == name)
    )
    if experiment is None:
        names = session.scalars(
            select(Experiment.name)
            .where(Experiment.project_id == owner.id)
            .order_by(Experiment.name)
        ).all()
        raise ExperimentNotFound(
            f"project {project!r} has no experiment named {name!r}; "
            + (f"its experiments: {listed(names)}." if names else "it has no experiments yet.")
        )
    return experiment


def project_experiment(session: Session, project: str, ref: str) -> Experiment:
    """Experiment ``ref`` of ``project``: its name, else its id; one of another project raises
    :class:`ExperimentNotFound` as if it did not exist."""
    try:
        return find_experiment(session, project, ref)
    except ExperimentNotFound as missing:
        found = session.get(Experiment, ref)
        if found is None or found.project_id != get_project(session, project).id:
            raise missing from None
        return found


def list_experiments(session: Session, project: str) -> list[Experiment]:
    """The experiments of ``project``, oldest first."""
    owner = get_project(session, project)
    query = (
        select(Experiment)
        .where(Experiment.project_id == owner.id)
        .order_by(Experiment.created_at, Experiment.name)
    )
    return list(session.scalars(query))


def clone_experiment(
    session: Session, experiment_id: str, name: str, spec: ExperimentSpec | None = None
) -> Experiment:
    """A new experiment ``name`` in the same project with the settings of ``experiment_id``
    (or ``spec``, e.g. ``dataclasses.replace(spec_of(original), params=...)``)."""
    original = get_experiment(session, experiment_id)
    project = session.get_one(Project, original.project_id).name
    return create_experiment(
        session, project, name, spec or spec_of(original), cloned_from=original.id
    )
