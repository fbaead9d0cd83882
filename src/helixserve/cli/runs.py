"""``helixserve runs ...``: queue runs, follow them, stop, resume, compare and deploy them.

Contract: the commands work on the configured workspace (:func:`helixserve.cli.workspace.opened`)
through :mod:`helixserve.workspace.runs`, :mod:`~helixserve.workspace.compare` and
:mod:`~helixserve.workspace.deploy`, as ``/api/v1/projects/{project}/runs`` does; runs are
addressed by id or as ``EXPERIMENT:NUMBER`` (``cuperus:1``) within the project (another
project's run is not found). ``start`` queues a run
(``helixserve worker`` trains it; ``--from RUN`` starts from a finished run's weights);
``wait`` follows a run until it ends, printing each epoch as it is recorded (exit 1 unless it
finished: failed, stopped, interrupted, or still going after ``--timeout``);
``deploy`` publishes a finished run as the next version of a model in the store and prints the
calls that use it (a running server serves it at its next look at the store,
``HELIXSERVE_RELOAD_INTERVAL_S``, or at once after ``POST /api/v1/admin/reload``). Errors (a run
in the wrong state, an unknown run) are ``Error: ...`` with exit 1.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import typer

from helixserve.cli.options import examples
from helixserve.cli.workspace import ProjectOption, console, opened, say, shown, table, when
from helixserve.errors import RunStateConflict
from helixserve.serving.auth import KeyRing
from helixserve.serving.calls import model_calls
from helixserve.settings import load_settings
from helixserve.workspace import runs
from helixserve.workspace.compare import compare_runs
from helixserve.workspace.deploy import continue_from, deploy, project_run
from helixserve.workspace.experiments import get_experiment, project_experiment
from helixserve.workspace.models import RunStatus

runs_app = typer.Typer(
    help="Runs: queue trainings, follow, stop, resume, compare and deploy them.",
    no_args_is_help=True,
)
RunArgument = Annotated[
    str, typer.Argument(metavar="RUN", help="The run: its id, or EXPERIMENT:NUMBER (cuperus:1).")
]


@runs_app.command(
    "start",
    epilog=examples(
        ("Queue a run of experiment cuperus", "runs start cuperus -p yeast"),
        ("On a Ray cluster", "runs start cuperus -p yeast --engine ray"),
        (
            "Train a clone further from a finished run's weights",
            "runs start cuperus-slow -p yeast --from cuperus:1",
        ),
    ),
)
def start(
    experiment: Annotated[
        str, typer.Argument(metavar="EXPERIMENT", help="The experiment's name or id.")
    ],
    project: ProjectOption,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="A worker on this machine, or a Ray cluster."),
    ] = "local",
    epochs: Annotated[int | None, typer.Option(metavar="N", help="Epochs planned (ETA).")] = None,
    start_from: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="RUN", help="Start from this finished run's weights (id or NAME:N)."
        ),
    ] = None,
) -> None:
    """Queue a run of an experiment; helixserve worker trains it."""
    with opened() as (_, session):
        chosen = project_experiment(session, project, experiment)
        if start_from is not None:
            run = continue_from(
                session, project, start_from, chosen.id, engine, epochs_planned=epochs
            )
        else:
            run = runs.submit(session, chosen.id, engine, epochs_planned=epochs)
    say(f"queued run {chosen.name}:{run.number} (id {run.id}, engine {engine})")


@runs_app.command(
    "list",
    epilog=examples(
        ("The runs of project yeast", "runs list -p yeast"),
        ("The finished runs of one experiment", "runs list -p yeast -e cuperus --status finished"),
    ),
)
def list_runs(
    project: ProjectOption,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", metavar="EXPERIMENT", help="Only this experiment's."),
    ] = None,
    status: Annotated[
        list[RunStatus] | None,
        typer.Option(
            metavar="STATE",
            help=f"Only runs in this state ({', '.join(RunStatus)}); repeatable.",
        ),
    ] = None,
) -> None:
    """List a project's runs, oldest first, with their state and headline metric."""
    with opened() as (_, session):
        chosen = project_experiment(session, project, experiment) if experiment else None
        found = runs.list_runs(
            session,
            project,
            experiment_id=chosen.id if chosen else None,
            statuses=status or [],
        )
        listing = table("run", "id", "status", "engine", "metric", "from", "created")
        for run in found:
            metric = str((run.headline or {}).get("metric", ""))
            value = (run.metrics or {}).get(metric)
            listing.add_row(
                f"{get_experiment(session, run.experiment_id).name}:{run.number}",
                run.id,
                run.status.value,
                run.engine,
                f"{metric} {shown(value)}" if metric else "-",
                run.init_from_run or "-",
                when(run.created_at),
            )
    if not found:
        say(f"No runs yet in project {project}: helixserve runs start EXPERIMENT -p {project}")
        return
    console.print(listing)


@runs_app.command(
    "show", epilog=examples(("A run's state, epochs and metrics", "runs show cuperus:1 -p yeast"))
)
def show(run_id: RunArgument, project: ProjectOption) -> None:
    """Show a run: its state, its epochs (losses) and its test metrics."""
    with opened() as (_, session):
        run = project_run(session, project, run_id)
        name = get_experiment(session, run.experiment_id).name
        epochs = runs.epochs_since(session, run.id)
    say(f"run {name}:{run.number} (id {run.id}): {run.status.value}, engine {run.engine}")
    if run.init_from_run:
        say(f"started from run {run.init_from_run}")
    if run.error:
        say(f"error: {run.error}")
    curve = table("epoch", "train loss", "val loss", "best")
    for epoch in epochs:
        best = "*" if epoch.epoch == run.best_epoch else ""
        curve.add_row(str(epoch.epoch), shown(epoch.train_loss), shown(epoch.val_loss), best)
    if epochs:
        console.print(curve)
    metrics = table("metric (test)", "value")
    for key, value in sorted((run.metrics or {}).items()):
        metrics.add_row(key, shown(value))
    if run.metrics:
        console.print(metrics)


@runs_app.command(
    "wait",
    epilog=examples(
        ("Follow a run until it ends", "runs wait cuperus:1 -p yeast"),
        ("Give up after ten minutes", "runs wait cuperus:1 -p yeast --timeout 600"),
    ),
)
def wait(
    run_id: RunArgument,
    project: ProjectOption,
    timeout: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Give up (exit 1) after this long.")
    ] = None,
    poll: Annotated[float, typer.Option(metavar="SECONDS", help="Look this often.")] = 1.0,
) -> None:
    """Follow a run until it ends: each epoch as it is recorded, then its test metrics; exit 1
    unless it finished."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with opened() as (space, session):
        run = project_run(session, project, run_id)
        name = f"{get_experiment(session, run.experiment_id).name}:{run.number}"
        seen = 0
        while True:
            with space.db.session() as looking:
                run = runs.get_run(looking, run.id)
                for epoch in runs.epochs_since(looking, run.id, seen):
                    say(
                        f"epoch {epoch.epoch}: train loss {shown(epoch.train_loss)}, "
                        f"validation loss {shown(epoch.val_loss)}"
                    )
                    seen = epoch.epoch
            if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise RunStateConflict(
                    f"run {name} is still {run.status.value} after {timeout:g} s."
                )
            time.sleep(poll)
    if run.status is not RunStatus.FINISHED:
        why = f": {run.error}" if run.error else ""
        raise RunStateConflict(
            f"run {name} ended {run.status.value}{why}; see helixserve runs logs {name} -p "
            f"{project}."
        )
    metrics = ", ".join(f"{k} {shown(v)}" for k, v in sorted((run.metrics or {}).items()))
    say(f"run {name} finished: best epoch {run.best_epoch}; test {metrics}")


@runs_app.command("logs", epilog=examples(("A run's log", "runs logs cuperus:1 -p yeast")))
def logs(
    run_id: RunArgument,
    project: ProjectOption,
    after: Annotated[int, typer.Option(metavar="N", help="Only lines after line N.")] = 0,
) -> None:
    """Print a run's log lines."""
    with opened() as (_, session):
        run = project_run(session, project, run_id)
        lines = runs.logs_since(session, run.id, after)
    for line in lines:
        say(f"{line.seq:>5} {when(line.at)} {line.line}")


@runs_app.command("stop", epilog=examples(("Stop a run", "runs stop cuperus:1 -p yeast")))
def stop(run_id: RunArgument, project: ProjectOption) -> None:
    """Stop a run: a queued one at once, a running one after its current epoch."""
    with opened() as (_, session):
        run = runs.request_stop(session, project_run(session, project, run_id).id)
        name = f"{get_experiment(session, run.experiment_id).name}:{run.number}"
    asked = " (stop requested)" if run.status is RunStatus.RUNNING else ""
    say(f"run {name} is {run.status.value}{asked}")


@runs_app.command(
    "resume", epilog=examples(("Resume a stopped run", "runs resume cuperus:1 -p yeast"))
)
def resume(run_id: RunArgument, project: ProjectOption) -> None:
    """Queue a stopped or interrupted run again; it goes on from its last checkpoint."""
    with opened() as (_, session):
        run = runs.resume(session, project_run(session, project, run_id).id)
        name = f"{get_experiment(session, run.experiment_id).name}:{run.number}"
    say(f"run {name} is {run.status.value} again")


@runs_app.command(
    "deploy",
    epilog=examples(
        (
            "Serve a finished run as my-utr, alias production",
            "runs deploy cuperus:1 my-utr -p yeast --alias production",
        ),
    ),
)
def deploy_run(
    run_id: RunArgument,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The served model's name.")],
    project: ProjectOption,
    alias: Annotated[
        str | None, typer.Option(metavar="ALIAS", help="Point this alias at the new version.")
    ] = None,
) -> None:
    """Publish a finished run as the next version of a model, and show how to call it."""
    with opened() as (space, session):
        _, manifest = deploy(session, space, project, run_id, model, alias)
    settings = load_settings()
    base = f"http://{settings.host}:{settings.port}"
    grpc = f"{settings.host}:{settings.grpc_port}" if settings.grpc_port else None
    keyed = not KeyRing(settings.api_keys).is_open("predict")
    calls = model_calls(manifest, base, grpc, keyed)
    say(f"deployed run {run_id} as {model}@{manifest.version}" + (f" ({alias})" if alias else ""))
    say(
        f"a running server serves it within {settings.reload_interval_s:g} s, or at once after "
        f"POST {base}/api/v1/admin/reload. Call it with:"
    )
    say(calls.curl)


@runs_app.command(
    "compare",
    epilog=examples(("Two runs side by side", "runs compare cuperus:1 cuperus-slow:1 -p yeast")),
)
def compare(
    run_ids: Annotated[
        list[str],
        typer.Argument(metavar="RUN", help="Runs: ids, or EXPERIMENT:NUMBER (2 or more)."),
    ],
    project: ProjectOption,
) -> None:
    """Compare runs of a project: metrics side by side and the settings that differ."""
    with opened() as (_, session):
        found = compare_runs(session, project, run_ids)
    columns = [f"{r.experiment}:{r.number}" for r in found.runs]
    listing = table("", *columns)
    listing.add_row("id", *[r.id for r in found.runs])
    listing.add_row("status", *[r.status for r in found.runs])
    for name in found.metric_names:
        listing.add_row(name, *[shown(r.metrics.get(name)) for r in found.runs])
    for key in found.differs:
        values = [shown(r.settings.get(key)) for r in found.runs]
        marks = [" (default)" if key in r.defaults else "" for r in found.runs]
        listing.add_row(f"≠ {key}", *[v + m for v, m in zip(values, marks, strict=True)])
    console.print(listing)
