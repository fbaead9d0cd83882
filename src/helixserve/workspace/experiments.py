"""Experiments: what to train (dataset version + subsets + recipe + parameters or block stack).

Contract:
- Every function takes an open :class:`~sqlalchemy.orm.Session`, which commits; they only flush.
- :class:`ExperimentSettings` declares, once, what an experiment trains on its dataset version
  (target, subsets, recipe, input columns, normalisation, positive class, seed,
  hyper-parameters, block stack),
  with each field's description: the stored :class:`ExperimentSpec` (+ dataset id and version
  sha256), the workspace's request (:class:`~helixserve.workspace.checks.ExperimentRequest`)
  and the API's request body are made of it. :func:`settings_of` reads those fields from a
  stored experiment or any of these models.
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

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from helixserve.errors import ExperimentNotFound, NameTaken
from helixserve.store.names import check_name
from helixserve.workspace.models import Experiment, Project
from helixserve.workspace.projects import get_project, listed


class ExperimentSettings(BaseModel):
    """What an experiment trains on its dataset version (see the module contract);
    ``blocks=None``: the recipe's own architecture."""

    model_config = ConfigDict(frozen=True)

    target: str
    train_subset: str
    val_subset: str
    test_subset: str | None = None
    recipe: str = Field(examples=["dna-regression"])
    inputs: dict[str, Any] = Field(default_factory=dict, description="role -> column(s)")
    normalise_on: str | None = Field(default=None, description="a subset name")
    positive: str | None = Field(
        default=None,
        description="the positive class of a binary target (default: 1, true, yes, + ...)",
    )
    seed: int = 0
    params: dict[str, Any] = Field(default_factory=dict, description="hyper-parameters by name")
    blocks: list[dict[str, Any]] | None = Field(
        default=None, description="a block stack instead of the recipe's network"
    )


class ExperimentSpec(ExperimentSettings):
    """An experiment's settings as stored (see the module contract)."""

    dataset_id: str
    dataset_version: str


def settings_of(source: Experiment | ExperimentSettings) -> dict[str, Any]:
    """The :class:`ExperimentSettings` fields of ``source`` by name, as they are there (a model
    made of them holds copies)."""
    return {name: getattr(source, name) for name in ExperimentSettings.model_fields}


def spec_of(experiment: Experiment) -> ExperimentSpec:
    """The settings of a stored experiment (to change with ``model_copy(update=...)``)."""
    return ExperimentSpec.model_validate(experiment, from_attributes=True)


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
        cloned_from=cloned_from,
        **spec.model_dump(),
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
    (or ``spec``, e.g. ``spec_of(original).model_copy(update={"params": ...})``)."""
    original = get_experiment(session, experiment_id)
    project = session.get_one(Project, original.project_id).name
    return create_experiment(
        session, project, name, spec or spec_of(original), cloned_from=original.id
    )
