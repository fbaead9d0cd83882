"""Workspace pages (HTML): a run (live curves, logs, evaluation, deploy) and the compare page.

Contract:
- ``GET /projects/{p}/runs/{id}``: status, train/validation loss per epoch (drawn on the server;
  ``static/workspace.js`` follows ``/api/v1/projects/{p}/runs/{id}/events`` and redraws as each
  epoch arrives), the best epoch, an ETA, the log, Stop (queued or running) and Resume (stopped
  or interrupted) buttons; a queued run says whether a worker can train here (no PyTorch: how
  to install the training extra and start a worker). A finished run shows its test metrics, the
  evaluation plots of its bundle (loss curves, ROC / confusion matrix, predicted-vs-measured and
  error distribution, per-class metrics), the rows its dataset version refused, "Clone and
  continue training" and the Deploy form; each deployment of it lists the exact calls
  (:func:`~helixserve.serving.workspace_views.usage`). A run of another project is 404.
- ``POST .../stop``, ``.../resume``, ``.../continue`` (a new queued run of the same experiment
  from this run's weights: ``init_from_run``), ``.../deploy`` (``model``, ``alias`` ``""`` /
  ``production`` / ``staging``): :func:`~helixserve.workspace.deploy.deploy`, then the server's
  registry reloads at once, so the model is served when the page comes back. A refused deploy
  shows the run page with the message next to the field.
- ``GET /projects/{p}/compare?run=<id>&run=...``: a picker of the project's runs; for the runs
  chosen, metrics side by side, loss curves overlaid and every setting, those that differ marked
  (:func:`~helixserve.workspace.compare.compare_runs`).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from helixserve.error_table import status_of
from helixserve.errors import HelixError, RequestError, RunStateConflict
from helixserve.serving import workspace_views as views
from helixserve.serving.deps import (
    PageCaller,
    PagesDep,
    PostedForm,
    ServerDep,
    WorkspaceDep,
    workspace_page_guard,
)
from helixserve.serving.routes.ui_workspace import REPORT_ROWS, see
from helixserve.serving.routes.ui_workspace_experiments import epochs_planned
from helixserve.serving.server import Server
from helixserve.serving.workspace_pages import stack_view, text
from helixserve.workspace import audit, runs
from helixserve.workspace.compare import compare_runs
from helixserve.workspace.deploy import deploy, project_run
from helixserve.workspace.experiments import get_experiment
from helixserve.workspace.members import Principal, require
from helixserve.workspace.models import DatasetVersion, Deployment, Role, Run, RunStatus
from helixserve.workspace.space import Workspace

router = APIRouter(dependencies=[Depends(workspace_page_guard)], include_in_schema=False)
LOG_LINES = 500
ALIASES = ("", "production", "staging")


def worker_can_train() -> bool:
    """Whether this environment has PyTorch, which a worker needs to train."""
    return importlib.util.find_spec("torch") is not None


def run_context(server: Server, project: str, run_id: str, base_url: str) -> dict[str, Any]:
    """Everything the run page shows (see the module contract)."""
    space = server.workspace_ready()
    with space.db.session() as session:
        run = project_run(session, project, run_id)
        experiment = get_experiment(session, run.experiment_id)
        shown = views.points(runs.epochs_since(session, run.id))
        lines = runs.logs_since(session, run.id)[-LOG_LINES:]
        version = session.get(DatasetVersion, (experiment.dataset_id, experiment.dataset_version))
        deployed = session.scalars(
            select(Deployment).where(Deployment.run_id == run.id).order_by(Deployment.at)
        ).all()
        children = session.scalars(select(Run).where(Run.init_from_run == run.id)).all()
    best = views.best_epoch(run, shown)
    bundle = views.bundle_view(space, run) if run.status is RunStatus.FINISHED else None
    return {
        "project_name": project,
        "run": run,
        "experiment": experiment,
        "points": shown,
        "best": best,
        "eta": views.duration_text(views.eta_seconds(run, shown)),
        "curve": views.curve_svg(shown, best),
        "logs": lines,
        "bundle": bundle,
        "stack": _stack(experiment),
        "refused": (version.report.get("refused", []) if version else [])[:REPORT_ROWS],
        "refused_count": version.refused_rows if version else 0,
        "deployments": [(d, _calls(server, d, bundle, base_url)) for d in reversed(deployed)],
        "children": children,
        "can_train": worker_can_train(),
        "aliases": ALIASES,
        "values": {"model": f"{project}-{experiment.name}".lower()[:64]},
        "errors": {},
    }


def _stack(experiment: Any) -> Any:
    if experiment.blocks is None:
        return None
    return stack_view(experiment.recipe, experiment.params, experiment.blocks, 2)


def _calls(
    server: Server, deployment: Deployment, bundle: views.BundleView | None, base_url: str
) -> list[views.Snippet]:
    if bundle is None:
        return []
    grpc = server.settings.grpc_port
    host = base_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    target = f"{host}:{grpc}" if grpc else None
    keys_on = not server.keys.predict_open
    return views.usage(base_url, target, deployment.model, deployment.version, bundle, keys_on)


@router.get("/projects/{project}/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, project: str, run_id: str, server: ServerDep, page: PagesDep
) -> Response:
    context = run_context(server, project, run_id, str(request.base_url))
    return page(request, "workspace/run.html", **context)


def _change_run(
    space: Workspace,
    who: Principal,
    project: str,
    run_id: str,
    change: Callable[[Session, str], Run],
    action: str,
) -> Response:
    """``change`` run ``run_id`` of ``project`` (another project's is 404), audit it as
    ``action``, then show its page."""
    with space.db.session() as session:
        project_run(session, project, run_id)
        change(session, run_id)
        audit.record_in(session, who, action, project, f"run {run_id}")
    return see(f"/projects/{project}/runs/{run_id}")


@router.post("/projects/{project}/runs/{run_id}/stop")
def stop_run(
    project: str, run_id: str, _form: PostedForm, space: WorkspaceDep, who: PageCaller
) -> Response:
    return _change_run(space, who, project, run_id, runs.request_stop, "run.stop")


@router.post("/projects/{project}/runs/{run_id}/resume")
def resume_run(
    project: str, run_id: str, _form: PostedForm, space: WorkspaceDep, who: PageCaller
) -> Response:
    return _change_run(space, who, project, run_id, runs.resume, "run.resume")


@router.post("/projects/{project}/runs/{run_id}/continue")
def continue_run(
    project: str, run_id: str, _form: PostedForm, space: WorkspaceDep, who: PageCaller
) -> Response:
    """Clone and continue: a new run of the experiment, starting from this run's weights."""
    with space.db.session() as session:
        run = project_run(session, project, run_id)
        if run.status is not RunStatus.FINISHED:
            raise RunStateConflict(
                f"run {run_id!r} is {run.status.value}; only a finished (trained) run can be "
                "cloned to continue training."
            )
        experiment = get_experiment(session, run.experiment_id)
        planned = epochs_planned(experiment)
        new = runs.submit(
            session, experiment.id, run.engine, epochs_planned=planned, init_from_run=run.id
        )
        new_id = new.id
        target = f"run {experiment.name}:{new.number}"
        audit.record_in(session, who, "run.start", project, target, init_from_run=run.id)
    return see(f"/projects/{project}/runs/{new_id}")


def _deploy(
    space: Workspace, who: Principal, project: str, run_id: str, model: str, alias: str
) -> None:
    """Deploy; only an owner may point ``production`` at it (as on the REST route)."""
    with space.db.session() as session:
        if alias == "production":
            require(session, who, project, Role.OWNER)
        deployment, manifest = deploy(session, space, project, run_id, model, alias or None)
        audit.record(
            session,
            who,
            "run.deploy",
            project_id=deployment.project_id,
            target=f"{manifest.name}@{manifest.version}",
            details={"run": run_id, "alias": alias or None},
        )


@router.post("/projects/{project}/runs/{run_id}/deploy", response_class=HTMLResponse)
async def deploy_run(
    request: Request,
    project: str,
    run_id: str,
    form: PostedForm,
    server: ServerDep,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    model, alias = text(form, "model"), text(form, "alias")
    try:
        if alias not in ALIASES:
            raise RequestError(f"alias {alias!r}: choose production, staging or none.")
        await asyncio.to_thread(_deploy, space, who, project, run_id, model, alias)
    except HelixError as err:
        base = str(request.base_url)
        context = await asyncio.to_thread(run_context, server, project, run_id, base)
        context |= {"values": {"model": model, "alias": alias}, "errors": {"model": str(err)}}
        return page(request, "workspace/run.html", status_of(err), **context)
    await asyncio.to_thread(server.access.refresh)
    await server.refresh()
    return see(f"/projects/{project}/runs/{run_id}#deployments")


@router.get("/projects/{project}/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    project: str,
    space: WorkspaceDep,
    page: PagesDep,
    run: Annotated[list[str] | None, Query()] = None,
) -> Response:
    chosen = list(dict.fromkeys(run or []))
    with space.db.session() as session:
        every = runs.list_runs(session, project)
        names = {r.experiment_id: get_experiment(session, r.experiment_id).name for r in every}
        comparison = compare_runs(session, project, chosen) if chosen else None
    view = views.compare_view(comparison) if comparison else None
    return page(
        request,
        "workspace/compare.html",
        project_name=project,
        every=[(r, names[r.experiment_id]) for r in reversed(every)],
        chosen=set(chosen),
        comparison=comparison,
        view=view,
    )
