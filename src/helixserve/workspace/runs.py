"""Runs and the run queue: rows in the workspace database, claimed atomically by workers.

Contract (docs/design/workspace.md, "The queue"):
- States: ``queued -> running -> finished | failed | stopped | interrupted``; :func:`resume`
  puts a ``stopped`` or ``interrupted`` run back to ``queued``, keeping its epochs, logs and
  checkpoint. Every change of state is one conditional ``UPDATE ... WHERE status IN (...)``, so
  two processes never both move the same run; an operation on a run in the wrong state raises
  :class:`~helixserve.errors.RunStateConflict` naming the state, an unknown id
  :class:`~helixserve.errors.RunNotFound`.
- :func:`claim` moves the oldest queued run (by submission, then id; optionally only runs of one
  ``engine``, so local workers and the Ray worker each take their own) to ``running`` in one
  statement, ``UPDATE runs ... WHERE id = (SELECT id ... LIMIT 1) AND status = 'queued'
  RETURNING id``: on PostgreSQL the inner select is ``FOR UPDATE SKIP LOCKED`` (claimers skip
  each other's rows instead of waiting); SQLite runs the statement under its single write lock.
  Either way a run is claimed by exactly one worker; no row returned means the queue is empty.
- The worker calls :func:`heartbeat` every :data:`HEARTBEAT_EVERY_S` seconds, and
  :func:`record_epoch` / :func:`log` while it trains; each refuses a run that is no longer
  ``running`` (swept, or stopped), which tells a worker that lost its run to give up.
  :func:`sweep` marks ``running`` runs whose last heartbeat is older than :data:`STALE_AFTER_S`
  seconds ``interrupted`` (any process may call it: the web app, workers before claiming).
- Functions other than :func:`claim` take an open session (which commits) and only flush;
  :func:`claim` takes the :class:`~helixserve.workspace.db.Database` and commits its own
  transaction. Times are timezone-aware UTC; ``now`` arguments exist for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.orm import Session

from helixserve.errors import RequestError, RunNotFound, RunStateConflict
from helixserve.store.names import check_alias, check_name, check_version
from helixserve.workspace.db import Database
from helixserve.workspace.experiments import get_experiment
from helixserve.workspace.models import (
    ENGINES,
    Deployment,
    Experiment,
    Run,
    RunEpoch,
    RunLog,
    RunStatus,
    UtcDateTime,
    utcnow,
)
from helixserve.workspace.projects import get_project

HEARTBEAT_EVERY_S = 5.0
STALE_AFTER_S = 20.0
RESUMABLE = (RunStatus.STOPPED, RunStatus.INTERRUPTED)
SWEPT = (
    f"the worker stopped sending heartbeats for over {STALE_AFTER_S:.0f} s; resume the run to go "
    "on from its last checkpoint."
)


def get_run(session: Session, run_id: str) -> Run:
    """The run with this id (freshly read), else :class:`RunNotFound`."""
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r}.")
    return run


def list_runs(
    session: Session,
    project: str,
    *,
    experiment_id: str | None = None,
    statuses: Iterable[RunStatus] = (),
) -> list[Run]:
    """The runs of ``project`` (a name), oldest first; optionally of one experiment / states."""
    query = select(Run).where(Run.project_id == get_project(session, project).id)
    if experiment_id is not None:
        query = query.where(Run.experiment_id == experiment_id)
    wanted = list(statuses)
    if wanted:
        query = query.where(Run.status.in_(wanted))
    return list(session.scalars(query.order_by(Run.created_at, Run.number)))


def _engine(engine: str) -> str:
    if engine not in ENGINES:
        raise RequestError(
            f"engine {engine!r} is not known; use one of: {', '.join(ENGINES)} "
            "('local': a worker process on this machine, 'ray': a Ray cluster)."
        )
    return engine


def submit(
    session: Session,
    experiment_id: str,
    engine: str = "local",
    *,
    epochs_planned: int | None = None,
    init_from_run: str | None = None,
) -> Run:
    """Queue a new run of an experiment; it is numbered 1, 2, ... per experiment.
    ``init_from_run``: start from that run's weights (clone-and-continue)."""
    experiment = get_experiment(session, experiment_id)
    _engine(engine)
    if init_from_run is not None:
        get_run(session, init_from_run)
    # Serialise numbering per experiment (PostgreSQL row lock; SQLite has one writer anyway).
    session.execute(select(Experiment.id).where(Experiment.id == experiment.id).with_for_update())
    following = (
        select(func.coalesce(func.max(Run.number), 0) + 1)
        .where(Run.experiment_id == experiment.id)
        .scalar_subquery()
    )
    run = Run(
        project_id=experiment.project_id,
        experiment_id=experiment.id,
        number=following,
        status=RunStatus.QUEUED,
        engine=engine,
        init_from_run=init_from_run,
        epochs_planned=epochs_planned,
    )
    session.add(run)
    session.flush()
    session.refresh(run)
    return run


def claim(
    db: Database, worker: str, *, engine: str | None = None, now: datetime | None = None
) -> Run | None:
    """Move the oldest queued run (of ``engine``, when given) to ``running`` for ``worker``;
    ``None`` if none is queued."""
    moment = now or utcnow()
    queued = select(Run.id).where(Run.status == RunStatus.QUEUED)
    if engine is not None:
        queued = queued.where(Run.engine == _engine(engine))
    oldest = (
        queued.order_by(Run.created_at, Run.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite compiles it away
        .scalar_subquery()
    )
    statement = (
        update(Run)
        .where(Run.id == oldest, Run.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            worker=worker,
            claimed_at=moment,
            heartbeat_at=moment,
            started_at=func.coalesce(Run.started_at, literal(moment, UtcDateTime())),
        )
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        claimed = session.execute(statement).scalars().all()
        return get_run(session, claimed[0]) if len(claimed) == 1 else None


def _move(
    session: Session,
    run_id: str,
    allowed: tuple[RunStatus, ...],
    doing: str,
    **values: Any,
) -> Run:
    """One conditional state change: ``values`` are set only while the run's status is one of
    ``allowed``; otherwise :class:`RunStateConflict` saying what ``doing`` needs."""
    statement = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_(allowed))
        .values(**values)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    if not session.execute(statement).scalars().all():
        run = get_run(session, run_id)
        needed = " or ".join(status.value for status in allowed)
        raise RunStateConflict(
            f"run {run_id!r} is {run.status.value}; {doing} needs a run that is {needed}."
        )
    return get_run(session, run_id)


def _end(
    session: Session,
    run_id: str,
    status: RunStatus,
    doing: str,
    now: datetime | None,
    **values: Any,
) -> Run:
    """A running run ends in ``status`` at ``now`` (default: now), with ``values`` set."""
    ended = {"status": status, "finished_at": now or utcnow(), **values}
    return _move(session, run_id, (RunStatus.RUNNING,), doing, **ended)


def heartbeat(
    session: Session, run_id: str, *, worker: str | None = None, now: datetime | None = None
) -> bool:
    """Record that the worker training ``run_id`` is alive; returns ``stop_requested``.
    With ``worker``, the run must also be that worker's (a swept-and-reclaimed run is not)."""
    statement = (
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING)
        .values(heartbeat_at=now or utcnow())
        .returning(Run.stop_requested)
        .execution_options(synchronize_session=False)
    )
    if worker is not None:
        statement = statement.where(Run.worker == worker)
    answered = session.execute(statement).scalars().all()
    if not answered:
        run = get_run(session, run_id)
        owner = f" (worker {run.worker!r}), not running for worker {worker!r}" if worker else ""
        raise RunStateConflict(
            f"run {run_id!r} is {run.status.value}{owner}: stop training it; it was swept, "
            "stopped or taken over."
        )
    return bool(answered[0])


def sweep(
    session: Session, now: datetime | None = None, *, stale_after_s: float = STALE_AFTER_S
) -> list[str]:
    """Mark ``running`` runs whose heartbeat is older than ``stale_after_s`` seconds
    ``interrupted``; returns their ids."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after_s)
    statement = (
        update(Run)
        .where(
            Run.status == RunStatus.RUNNING,
            or_(Run.heartbeat_at < cutoff, Run.heartbeat_at.is_(None)),
        )
        .values(status=RunStatus.INTERRUPTED, error=SWEPT)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.execute(statement).scalars().all())


def _running(session: Session, run_id: str, doing: str) -> Run:
    run = get_run(session, run_id)
    if run.status is not RunStatus.RUNNING:
        raise RunStateConflict(
            f"run {run_id!r} is {run.status.value}; {doing} needs a run that is running."
        )
    return run


def record_epoch(
    session: Session,
    run_id: str,
    epoch: int,
    *,
    train_loss: float | None,
    val_loss: float | None,
    metrics: Mapping[str, Any] | None = None,
    checkpoint: str | None = None,
    at: datetime | None = None,
) -> RunEpoch:
    """Store one epoch of a running run (replacing that epoch if a resumed run trains it again);
    ``checkpoint``: where the state after this epoch was saved (kept on the run)."""
    run = _running(session, run_id, "recording an epoch")
    row = session.get(RunEpoch, (run_id, epoch))
    if row is None:
        row = RunEpoch(run_id=run_id, epoch=epoch)
        session.add(row)
    row.train_loss, row.val_loss = train_loss, val_loss
    row.metrics = dict(metrics or {})
    row.at = at or utcnow()
    if checkpoint is not None:
        run.checkpoint = checkpoint
    session.flush()
    return row


def log(session: Session, run_id: str, line: str, *, at: datetime | None = None) -> int:
    """Append one line to a run's log; returns its number (1, 2, ... per run)."""
    get_run(session, run_id)
    following = (
        select(func.coalesce(func.max(RunLog.seq), 0) + 1)
        .where(RunLog.run_id == run_id)
        .scalar_subquery()
    )
    row = RunLog(run_id=run_id, seq=following, at=at or utcnow(), line=line)
    session.add(row)
    session.flush()
    session.refresh(row)
    return row.seq


def finish(
    session: Session,
    run_id: str,
    bundle: str,
    metrics: Mapping[str, Any],
    headline: Mapping[str, Any],
    *,
    best_epoch: int | None = None,
    now: datetime | None = None,
) -> Run:
    """A running run trained to the end: its bundle's location, test metrics and headline."""
    return _end(
        session,
        run_id,
        RunStatus.FINISHED,
        "finishing",
        now,
        bundle=bundle,
        metrics=dict(metrics),
        headline=dict(headline),
        best_epoch=best_epoch,
        error=None,
    )


def fail(session: Session, run_id: str, message: str, *, now: datetime | None = None) -> Run:
    """A running run failed; ``message`` says why (shown to the person)."""
    return _end(session, run_id, RunStatus.FAILED, "failing", now, error=message)


def request_stop(session: Session, run_id: str, *, now: datetime | None = None) -> Run:
    """Stop a run: a queued one is ``stopped`` at once; a running one gets ``stop_requested``
    (its worker stops after the epoch and calls :func:`mark_stopped`)."""
    queued = (
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.QUEUED)
        .values(status=RunStatus.STOPPED, stop_requested=True, finished_at=now or utcnow())
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    if session.execute(queued).scalars().all():
        return get_run(session, run_id)
    return _move(session, run_id, (RunStatus.RUNNING,), "stopping", stop_requested=True)


def mark_stopped(
    session: Session, run_id: str, *, checkpoint: str | None = None, now: datetime | None = None
) -> Run:
    """The worker stopped a running run (asked to, or shutting down); it can be resumed."""
    kept: dict[str, str] = {} if checkpoint is None else {"checkpoint": checkpoint}
    return _end(session, run_id, RunStatus.STOPPED, "marking stopped", now, **kept)


def resume(session: Session, run_id: str) -> Run:
    """Queue a stopped or interrupted run again; it keeps its epochs, logs and checkpoint."""
    return _move(
        session,
        run_id,
        RESUMABLE,
        "resuming",
        status=RunStatus.QUEUED,
        worker=None,
        claimed_at=None,
        heartbeat_at=None,
        finished_at=None,
        stop_requested=False,
        error=None,
    )


def epochs_since(session: Session, run_id: str, after_epoch: int = 0) -> list[RunEpoch]:
    """A run's epochs after ``after_epoch``, in epoch order (the live curves' new points)."""
    get_run(session, run_id)
    query = (
        select(RunEpoch)
        .where(RunEpoch.run_id == run_id, RunEpoch.epoch > after_epoch)
        .order_by(RunEpoch.epoch)
    )
    return list(session.scalars(query))


def logs_since(session: Session, run_id: str, after_seq: int = 0) -> list[RunLog]:
    """A run's log lines after line ``after_seq``, in order."""
    get_run(session, run_id)
    query = (
        select(RunLog).where(RunLog.run_id == run_id, RunLog.seq > after_seq).order_by(RunLog.seq)
    )
    return list(session.scalars(query))


def record_deployment(
    session: Session,
    run_id: str,
    model: str,
    version: int,
    alias: str | None = None,
    *,
    now: datetime | None = None,
) -> Deployment:
    """Record that a finished run's bundle was published as ``model@version`` (and ``alias``);
    the copy into the model store is the caller's (the deploy route)."""
    check_name(model)
    check_version(version)
    if alias is not None:
        check_alias(alias)
    run = get_run(session, run_id)
    if run.status is not RunStatus.FINISHED:
        raise RunStateConflict(
            f"run {run_id!r} is {run.status.value}; only a finished run can be deployed."
        )
    deployment = Deployment(
        run_id=run.id,
        project_id=run.project_id,
        model=model,
        version=version,
        alias=alias,
        at=now or utcnow(),
    )
    session.add(deployment)
    session.flush()
    return deployment
