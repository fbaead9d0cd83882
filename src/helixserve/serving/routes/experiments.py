"""Recipe and experiment routes of the workspace API.

Contract (see :mod:`.projects` for what every workspace route shares):
- ``GET /api/v1/recipes``: each recipe's declared hyper-parameters as plain data
  (:meth:`~helixserve.params.declare.Param.as_dict`: name, type, default, choices, range, help),
  the column role it reads (:data:`~helixserve.workspace.checks.READS`) and, for the neural
  recipes, its network as a block stack (:func:`~helixserve.workspace.presets.presets`, default
  parameters) with the input shape that stack takes.
- ``POST /api/v1/projects/{project}/experiments`` (201): the settings are checked by
  :func:`~helixserve.workspace.checks.check_experiment` before anything is stored; a bad
  subset, column, parameter or block stack is 422 naming the field, an unknown dataset 404,
  a name taken 409. ``GET .../experiments`` (oldest first), ``GET .../experiments/{experiment}``
  (by name or id), ``POST .../experiments/{experiment}/clone`` (201; ``changes`` are checked the
  same way; ``params`` merge into the original's; lineage in ``cloned_from``).
- An experiment is found within the project of the path only
  (:func:`~helixserve.workspace.experiments.project_experiment`): another project's is 404.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED
from helixserve.serving.deps import CallerDep, WorkspaceDep
from helixserve.serving.routes.projects import GUARD, PREFIX
from helixserve.serving.schemas import ERRORS
from helixserve.serving.workspace_schemas import (
    CloneIn,
    ExperimentIn,
    ExperimentList,
    ExperimentOut,
    RecipeList,
    RecipeOut,
)
from helixserve.workspace import audit, checks, experiments
from helixserve.workspace.models import Dataset, Experiment
from helixserve.workspace.presets import PRESETS, presets, recipe_input

router = APIRouter(tags=["workspace"], dependencies=GUARD, responses=ERRORS)
EXPERIMENTS = PREFIX + "/{project}/experiments"


@router.get("/api/v1/recipes")
def recipes() -> RecipeList:
    """The recipes: their hyper-parameters, the column role they read, their block preset."""
    found = []
    for name, params in DECLARED.items():
        neural = name in PRESETS
        found.append(
            RecipeOut(
                name=name,
                reads=checks.READS[name],
                params=[p.as_dict() for p in declarations(params)],
                preset=[b.model_dump() for b in presets(name)] if neural else None,
                input_shape=list(recipe_input(name)) if neural else None,
            )
        )
    return RecipeList(recipes=found)


def experiment_out(session: Session, experiment: Experiment) -> ExperimentOut:
    """The answer for one experiment (its dataset by name)."""
    return ExperimentOut.of(experiment, session.get_one(Dataset, experiment.dataset_id).name)


@router.post(EXPERIMENTS, status_code=201)
def create_experiment(
    workspace: WorkspaceDep, who: CallerDep, project: str, body: ExperimentIn
) -> ExperimentOut:
    """Create an experiment; its settings are checked first."""
    with workspace.db.session() as session:
        spec = checks.check_experiment(session, workspace, project, body)
        made = experiments.create_experiment(session, project, body.name, spec)
        audit.record_in(session, who, "experiment.create", project, f"experiment {made.name}")
        return experiment_out(session, made)


@router.get(EXPERIMENTS)
def list_experiments(workspace: WorkspaceDep, project: str) -> ExperimentList:
    """The project's experiments, oldest first."""
    with workspace.db.session() as session:
        found = experiments.list_experiments(session, project)
        return ExperimentList(experiments=[experiment_out(session, e) for e in found])


@router.get(EXPERIMENTS + "/{experiment}")
def get_experiment(workspace: WorkspaceDep, project: str, experiment: str) -> ExperimentOut:
    """One experiment, by name or id."""
    with workspace.db.session() as session:
        return experiment_out(session, experiments.project_experiment(session, project, experiment))


@router.post(EXPERIMENTS + "/{experiment}/clone", status_code=201)
def clone_experiment(
    workspace: WorkspaceDep, project: str, experiment: str, body: CloneIn
) -> ExperimentOut:
    """A new experiment with this one's settings, some changed (checked again)."""
    with workspace.db.session() as session:
        original = experiments.project_experiment(session, project, experiment)
        changes = body.changes.model_dump(exclude_unset=True)
        request = checks.with_changes(checks.request_of(session, original), changes)
        spec = checks.check_experiment(session, workspace, project, request)
        made = experiments.clone_experiment(session, original.id, body.name, spec)
        return experiment_out(session, made)
