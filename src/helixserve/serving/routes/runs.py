"""Run routes of the workspace API: the queue, compare, clone-and-continue, deploy.

Contract (see :mod:`.projects` for what every workspace route shares):
- ``POST /api/v1/projects/{project}/experiments/{experiment}/runs`` (201) queues a run
  (``engine`` ``local`` or ``ray``; ``init_from_run``: a finished run of the project to start
  from); a worker trains it. ``GET .../runs?experiment=&status=`` lists runs oldest first;
  ``GET .../runs/{run}?after_log=`` gives one with its epochs and log lines.
- ``POST .../runs/{run}/stop`` (a queued run stops at once, a running one after its epoch),
  ``POST .../runs/{run}/resume`` (a stopped or interrupted run is queued again) and
  ``POST .../runs/{run}/continue`` (201: a new run, of the run's experiment or another of the same
  recipe, e.g. a clone, starting from this finished run's weights); a run in the wrong state is
  409 naming its state.
- ``GET /api/v1/projects/{project}/compare?run=a&run=b``: metrics, curves and the settings that
  differ (:func:`~helixserve.workspace.compare.compare_runs`).
- ``POST .../runs/{run}/deploy`` (201; ``{"model", "alias"}``): the finished run's bundle becomes
  the next version of ``model`` (:func:`~helixserve.workspace.deploy.deploy`; 409 for a run that
  is not finished), the server re-reads its store at once, and the answer says whether it serves
  the version and gives the calls that use it (:mod:`helixserve.serving.calls`).
- Runs are found within the project of the path only
  (:func:`~helixserve.workspace.deploy.project_run`): another project's run is 404.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from helixserve.errors import HelixError
from helixserve.serving.calls import model_calls
from helixserve.serving.deps import CallerDep, ServerDep, WorkspaceDep
from helixserve.serving.routes.projects import GUARD, PREFIX
from helixserve.serving.schemas import ERRORS
from helixserve.serving.server import Server
from helixserve.serving.workspace_schemas import (
    ContinueIn,
    DeployIn,
    DeployOut,
    EpochOut,
    LogOut,
    RunDetail,
    RunIn,
    RunList,
    RunOut,
)
from helixserve.store.manifest import Manifest
from helixserve.workspace import audit, runs
from helixserve.workspace.compare import Comparison, compare_runs
from helixserve.workspace.deploy import continue_from, deploy, project_run
from helixserve.workspace.experiments import get_experiment, project_experiment
from helixserve.workspace.members import Principal, require
from helixserve.workspace.models import Deployment, Role, Run, RunStatus
from helixserve.workspace.space import Workspace

PRODUCTION = "production"
router = APIRouter(
    prefix=PREFIX + "/{project}", tags=["workspace"], dependencies=GUARD, responses=ERRORS
)


def run_out(session: Session, run: Run) -> RunOut:
    """The answer for one run (its experiment by name)."""
    return RunOut.of(run, get_experiment(session, run.experiment_id).name)


@router.post("/experiments/{experiment}/runs", status_code=201)
def submit_run(
    workspace: WorkspaceDep, who: CallerDep, project: str, experiment: str, body: RunIn
) -> RunOut:
    """Queue a run of an experiment (a worker trains it)."""
    with workspace.db.session() as session:
        chosen = project_experiment(session, project, experiment)
        if body.init_from_run is not None:
            run = continue_from(
                session,
                project,
                body.init_from_run,
                chosen.id,
                body.engine,
                epochs_planned=body.epochs,
            )
        else:
            run = runs.submit(session, chosen.id, body.engine, epochs_planned=body.epochs)
        audit.record_in(session, who, "run.start", project, f"run {chosen.name}:{run.number}")
        return run_out(session, run)


@router.get("/runs")
def list_runs(
    workspace: WorkspaceDep,
    project: str,
    experiment: Annotated[str | None, Query(description="an experiment's name or id")] = None,
    status: Annotated[
        list[RunStatus] | None, Query(description="only runs in these states")
    ] = None,
) -> RunList:
    """The project's runs, oldest first; optionally of one experiment, in some states."""
    with workspace.db.session() as session:
        chosen = None if experiment is None else project_experiment(session, project, experiment)
        found = runs.list_runs(
            session, project, experiment_id=chosen.id if chosen else None, statuses=status or ()
        )
        return RunList(runs=[run_out(session, r) for r in found])


@router.get("/runs/{run}")
def get_run(
    workspace: WorkspaceDep,
    project: str,
    run: str,
    after_log: Annotated[int, Query(ge=0, description="log lines after this number")] = 0,
) -> RunDetail:
    """One run with its epochs (the curves) and log lines."""
    with workspace.db.session() as session:
        found = project_run(session, project, run)
        return RunDetail(
            **run_out(session, found).model_dump(),
            epochs=[EpochOut.of(e) for e in runs.epochs_since(session, found.id)],
            logs=[LogOut.of(line) for line in runs.logs_since(session, found.id, after_log)],
        )


@router.post("/runs/{run}/stop")
def stop_run(workspace: WorkspaceDep, who: CallerDep, project: str, run: str) -> RunOut:
    """Stop a run: a queued one at once, a running one after its current epoch."""
    with workspace.db.session() as session:
        stopped = runs.request_stop(session, project_run(session, project, run).id)
        audit.record_in(session, who, "run.stop", project, f"run {stopped.id}")
        return run_out(session, stopped)


@router.post("/runs/{run}/resume")
def resume_run(workspace: WorkspaceDep, who: CallerDep, project: str, run: str) -> RunOut:
    """Queue a stopped or interrupted run again, from its last checkpoint."""
    with workspace.db.session() as session:
        resumed = runs.resume(session, project_run(session, project, run).id)
        audit.record_in(session, who, "run.resume", project, f"run {resumed.id}")
        return run_out(session, resumed)


@router.post("/runs/{run}/continue", status_code=201)
def continue_run(workspace: WorkspaceDep, project: str, run: str, body: ContinueIn) -> RunOut:
    """Train further from a finished run's weights: a new run of its experiment, or of another
    experiment of the same recipe (clone the experiment first to change its settings)."""
    with workspace.db.session() as session:
        made = continue_from(
            session, project, run, body.experiment, body.engine, epochs_planned=body.epochs
        )
        return run_out(session, made)


@router.get("/compare")
def compare(
    workspace: WorkspaceDep,
    project: str,
    run: Annotated[list[str], Query(description="run ids; repeat: ?run=a&run=b")],
) -> Comparison:
    """Runs of this project side by side: metrics, curves, and the settings that differ."""
    with workspace.db.session() as session:
        return compare_runs(session, project, run)


def _deploy(
    workspace: Workspace, who: Principal, project: str, run: str, body: DeployIn
) -> tuple[Deployment, Manifest]:
    """Deploy; an editor may deploy, only an owner may point ``production`` at it."""
    with workspace.db.session() as session:
        if body.alias == PRODUCTION:
            require(session, who, project, Role.OWNER)
        deployment, manifest = deploy(session, workspace, project, run, body.model, body.alias)
        target = f"{manifest.name}@{manifest.version}"
        details = {"run": run, "alias": body.alias}
        audit.record(
            session,
            who,
            "run.deploy",
            project_id=deployment.project_id,
            target=target,
            details=details,
        )
        return deployment, manifest


def _served(server: Server, manifest: Manifest) -> tuple[bool, str | None]:
    """Whether the server serves ``manifest``'s version now, else why not."""
    try:
        server.registry.resolve(manifest.name, manifest.version)
    except HelixError as err:
        ref = f"{manifest.name}@{manifest.version}"
        return False, server.registry.load_errors.get(ref, str(err))
    return True, None


@router.post("/runs/{run}/deploy", status_code=201)
async def deploy_run(
    request: Request,
    server: ServerDep,
    workspace: WorkspaceDep,
    project: str,
    run: str,
    body: DeployIn,
    who: CallerDep,
) -> DeployOut:
    """Publish a finished run as the next version of a model; served at once (an editor may
    deploy; the ``production`` alias needs an owner)."""
    deployment, manifest = await anyio.to_thread.run_sync(
        _deploy, workspace, who, project, run, body
    )
    server.access.model_projects[manifest.name] = deployment.project_id
    await server.refresh()
    served, error = _served(server, manifest)
    port = server.settings.grpc_port
    target = f"{request.url.hostname}:{port}" if port else None
    keyed = not server.keys.is_open("predict")
    calls = model_calls(manifest, str(request.base_url), target, keyed)
    return DeployOut.of(deployment, project, served, error, calls)
