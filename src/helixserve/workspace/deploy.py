"""Deploy: a finished run's bundle becomes a version of a served model; or it is trained further.

Contract:
- :func:`project_run` is run ``run_id`` of ``project``: its id, or ``EXPERIMENT:NUMBER`` (run 2
  of experiment ``cuperus`` is ``cuperus:2``; ids and names never hold ``:``); a run of another
  project is :class:`~helixserve.errors.RunNotFound` as if it did not exist (nothing leaks across
  projects).
- :func:`deploy` copies the run's bundle from the runs store (``run.bundle``, ``run-<id>@1``)
  into the model store as the next version of ``model`` (a new model or a new version of an
  existing one, pretrained names included: the copy lies in the person's store), with the model
  card's title renamed, lineage ``trained`` from ``workspace run <id>`` (project name and id,
  experiment, run number in its details: a server knows the model's project from the bundle
  itself, before it reads the deployment) and the alias moved to it when one is given, then
  records the
  :class:`~helixserve.workspace.models.Deployment`. Only a finished run can be deployed
  (:class:`~helixserve.errors.RunStateConflict`). A server polling the model store
  (``HELIXSERVE_RELOAD_INTERVAL_S``) serves it at its next look; the web app that deploys reloads
  at once.
- :func:`continue_from` queues a run that starts from a finished run's weights (the tutorial's
  "clone a trained model and continue"): a run of the same experiment, or of another experiment of
  the same project and recipe (typically a clone with changed parameters), whose
  ``init_from_run`` is the finished run. An unfinished run is a
  :class:`~helixserve.errors.RunStateConflict`; an experiment of another recipe an
  :class:`~helixserve.errors.InputError` (field ``experiment``).
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from helixserve.errors import InputError, RunNotFound, RunStateConflict
from helixserve.store.bundle import make_manifest
from helixserve.store.manifest import Lineage, Manifest
from helixserve.store.names import check_alias, check_name
from helixserve.workspace.experiments import get_experiment, project_experiment
from helixserve.workspace.models import Deployment, Experiment, Run, RunStatus
from helixserve.workspace.projects import get_project
from helixserve.workspace.runs import get_run, record_deployment, submit
from helixserve.workspace.space import Workspace

NUMBER = re.compile(r"[0-9]{1,9}")


def project_run(session: Session, project: str, run_id: str) -> Run:
    """Run ``run_id`` (an id or ``EXPERIMENT:NUMBER``) if it belongs to ``project``, else
    :class:`RunNotFound`."""
    owner = get_project(session, project)
    name, numbered, number = run_id.rpartition(":")
    run: Run | None = None
    if numbered and NUMBER.fullmatch(number):
        query = (
            select(Run)
            .join(Experiment, Run.experiment_id == Experiment.id)
            .where(Experiment.project_id == owner.id, Experiment.name == name)
            .where(Run.number == int(number))
        )
        found = session.scalar(query)
        run = None if found is None else get_run(session, found.id)
    elif not numbered:
        try:
            run = get_run(session, run_id)
        except RunNotFound:
            run = None
    if run is None or run.project_id != owner.id:
        raise RunNotFound(f"project {project!r} has no run {run_id!r}.")
    return run


def deploy(
    session: Session,
    space: Workspace,
    project: str,
    run_id: str,
    model: str,
    alias: str | None = None,
) -> tuple[Deployment, Manifest]:
    """Publish run ``run_id``'s bundle as the next version of ``model``; see the contract."""
    check_name(model)
    if alias is not None:
        check_alias(alias)
    run = project_run(session, project, run_id)
    if run.status is not RunStatus.FINISHED or run.bundle is None:
        raise RunStateConflict(
            f"run {run_id!r} is {run.status.value}; only a finished run can be deployed."
        )
    manifest, files = space.runs.read_files(run.bundle)
    experiment = get_experiment(session, run.experiment_id)
    card = files["card.md"].decode("utf-8").replace(manifest.name, model)
    files = {**files, "card.md": card.encode("utf-8")}
    lineage = Lineage(
        how="trained",
        source=f"workspace run {run.id}",
        details={
            "project": project,
            "project_id": run.project_id,
            "experiment": experiment.name,
            "run": run.number,
        },
    )
    fields = manifest.model_dump(exclude={"files", "version", "name", "lineage"})
    published = space.models.publish(
        make_manifest(files, name=model, lineage=lineage, **fields), files
    )
    if alias is not None:
        space.models.set_alias(model, alias, published.version)
    deployment = record_deployment(session, run.id, model, published.version, alias)
    return deployment, published


def continue_from(
    session: Session,
    project: str,
    run_id: str,
    experiment: str | None = None,
    engine: str = "local",
    *,
    epochs_planned: int | None = None,
) -> Run:
    """Queue a run of ``experiment`` (a name or id; default: the run's own) that starts from
    finished run ``run_id``'s weights; see the module contract."""
    source = project_run(session, project, run_id)
    if source.status is not RunStatus.FINISHED or source.bundle is None:
        raise RunStateConflict(
            f"run {run_id!r} is {source.status.value}; only a finished run's weights can be "
            "trained further."
        )
    original = get_experiment(session, source.experiment_id)
    chosen = original if experiment is None else project_experiment(session, project, experiment)
    if chosen.recipe != original.recipe:
        raise InputError(
            f"run {run_id!r} trained the {original.recipe} recipe, but experiment "
            f"{chosen.name!r} uses {chosen.recipe}; continue with an experiment of the same "
            f"recipe (clone {original.name!r} and change its parameters).",
            field="experiment",
        )
    return submit(
        session, chosen.id, engine, epochs_planned=epochs_planned, init_from_run=source.id
    )
