"""The workspace database core (issue 16): migrations, projects, experiments and the run queue.

Every test that takes ``db`` runs twice: on a SQLite file and on a real PostgreSQL server
(tests/support/postgres.py; one server per session, one database per test). Messages are
checked word for word; the queue is checked with real threads claiming at once.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select, text, update
from sqlalchemy.orm import Session

from helixserve.errors import (
    DatabaseUnavailable,
    ExperimentNotFound,
    InvalidDatabaseUrl,
    InvalidName,
    NameTaken,
    ProjectNotFound,
    RequestError,
    RunNotFound,
    RunStateConflict,
)
from helixserve.workspace import runs
from helixserve.workspace.db import Database, default_url
from helixserve.workspace.experiments import (
    ExperimentSpec,
    clone_experiment,
    create_experiment,
    find_experiment,
    get_experiment,
    list_experiments,
    spec_of,
)
from helixserve.workspace.models import Base, Dataset, Run, RunStatus
from helixserve.workspace.projects import (
    archive_project,
    create_project,
    get_project,
    list_projects,
    rename_project,
)
from tests.support import postgres as postgres_support

TABLES = {
    "projects",
    "datasets",
    "dataset_versions",
    "subsets",
    "experiments",
    "runs",
    "run_epochs",
    "run_logs",
    "deployments",
    "users",
    "login_sessions",
    "memberships",
    "user_keys",
    "audit_events",
    "sign_in_failures",
}
FIX = (
    "Set HELIXSERVE_DATABASE_URL to sqlite:////path/to/workspace.db or "
    "postgresql+psycopg://user:password@host:5432/dbname."
)
DATASET_ID = "dataset-0001"
SPEC = ExperimentSpec(
    dataset_id=DATASET_ID,
    dataset_version="ab" * 32,
    target="expression",
    train_subset="train",
    val_subset="val",
    test_subset="test",
    recipe="cnn",
    params={"epochs": 3, "lr": 0.001},
)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.fixture
def experiment_id(db: Database) -> str:
    with db.session() as session:
        lab(session, "The lab")
        return create_experiment(session, "lab", "utr", SPEC).id


def lab(session: Session, title: str = "") -> None:
    """Project ``lab`` with the dataset :data:`SPEC` names."""
    project = create_project(session, "lab", title)
    session.add(Dataset(id=DATASET_ID, project_id=project.id, name="utrs"))
    session.flush()


def submitted(db: Database, experiment_id: str, count: int) -> list[str]:
    with db.session() as session:
        return [runs.submit(session, experiment_id).id for _ in range(count)]


# --- the database: migrations, URLs, settings -----------------------------------------------------


def test_migrations_run_twice_and_create_every_table(database_url: str) -> None:
    database = Database(database_url)
    database.upgrade()
    database.upgrade()
    with database.connect() as connection:
        assert set(inspect(connection).get_table_names()) == TABLES | {"alembic_version"}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert version == [("0004",)]
    database.close()


def test_migrations_create_what_the_models_declare(db: Database) -> None:
    with db.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_two_processes_may_upgrade_at_once(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(3)]
    with ThreadPoolExecutor(len(databases)) as pool:
        list(pool.map(Database.upgrade, databases))
    with databases[0].connect() as connection:
        assert set(inspect(connection).get_table_names()) >= TABLES
    for database in databases:
        database.close()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'new' / 'folder' / 'w.db'}")
    with database.connect() as connection:
        pragmas = [
            connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 1, 30000]
    assert (tmp_path / "new" / "folder" / "w.db").exists()
    database.close()


def test_a_url_that_does_not_parse_is_refused() -> None:
    with pytest.raises(InvalidDatabaseUrl) as caught:
        Database("not a url")
    assert str(caught.value) == (
        f"database URL 'not a url' is not a URL SQLAlchemy can read. {FIX}"
    )


def test_another_backend_is_refused_with_the_password_hidden() -> None:
    with pytest.raises(InvalidDatabaseUrl) as caught:
        Database("mysql://root:s3cret@db:3306/lab")
    assert str(caught.value) == (
        "database URL 'mysql://root:***@db:3306/lab' uses 'mysql'; the workspace runs on SQLite "
        f"or PostgreSQL only. {FIX}"
    )


def test_a_missing_driver_names_the_extra() -> None:
    with pytest.raises(InvalidDatabaseUrl) as caught:
        Database("postgresql+pg8000://helix:s3cret@db/lab")
    assert str(caught.value) == (
        "database URL 'postgresql+pg8000://helix:***@db/lab' needs a driver that is not installed "
        "(No module named 'pg8000'). Install the postgres extra: "
        f"pip install 'helixserve[postgres]'. {FIX}"
    )


def test_a_server_that_cannot_be_reached_is_unavailable() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    database = Database(f"postgresql://helix:s3cret@127.0.0.1:{port}/lab")
    with pytest.raises(DatabaseUnavailable) as caught:
        database.upgrade()
    message = str(caught.value)
    shown = f"postgresql+psycopg://helix:***@127.0.0.1:{port}/lab"
    assert message.startswith(f"cannot use the workspace database {shown}: connection ")
    assert message.endswith(
        "Check that the database server is running and reachable, or fix the URL. " + FIX
    )
    assert "s3cret" not in message


def test_a_missing_postgresql_is_skipped_here_but_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres_support, "binaries", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must test the workspace on PostgreSQL"):
        postgres_support.required_binaries()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        postgres_support.required_binaries()


def test_default_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HELIXSERVE_DATABASE_URL", raising=False)
    assert default_url() == f"sqlite:///{tmp_path}/.helixserve/workspace.db"
    monkeypatch.setenv("HELIXSERVE_DATABASE_URL", "postgresql+psycopg://helix@db/lab")
    assert default_url() == "postgresql+psycopg://helix@db/lab"


def test_timestamps_come_back_utc_aware(db: Database) -> None:
    in_paris = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    with db.session() as session:
        create_project(session, "lab").created_at = in_paris
    with db.session() as session:
        created = get_project(session, "lab").created_at
    assert created == in_paris
    assert (created.tzinfo, created.hour) == (UTC, 10)


# --- projects -------------------------------------------------------------------------------------


def test_projects_crud(db: Database) -> None:
    with db.session() as session:
        assert [p.name for p in list_projects(session)] == []
        created = create_project(session, "yeast-utr", "5' UTRs")
        create_project(session, "amr")
    assert (created.name, created.title, created.archived) == ("yeast-utr", "5' UTRs", False)
    assert len(created.id) == 11
    with db.session() as session:
        rename_project(session, "amr", "amr-genes")
        archive_project(session, "yeast-utr")
    with db.session() as session:
        assert [p.name for p in list_projects(session)] == ["amr-genes"]
        everything = list_projects(session, include_archived=True)
        assert [(p.name, p.archived) for p in everything] == [
            ("amr-genes", False),
            ("yeast-utr", True),
        ]
        assert get_project(session, "yeast-utr").id == created.id
        archive_project(session, "yeast-utr", archived=False)
    with db.session() as session:
        assert len(list_projects(session)) == 2


def test_project_errors(db: Database) -> None:
    with pytest.raises(ProjectNotFound) as missing, db.session() as session:
        get_project(session, "lab")
    assert str(missing.value) == "no project named 'lab'; there are no projects yet."
    with db.session() as session:
        create_project(session, "lab")
        create_project(session, "amr")
    with pytest.raises(NameTaken) as taken, db.session() as session:
        create_project(session, "lab")
    assert str(taken.value) == "a project named 'lab' already exists; choose another name."
    with pytest.raises(NameTaken), db.session() as session:
        rename_project(session, "amr", "lab")
    with pytest.raises(InvalidName) as invalid, db.session() as session:
        create_project(session, "my lab")
    assert str(invalid.value) == (
        "project name 'my lab' is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, with no '..', slashes or spaces (e.g. 'primer-binding')."
    )
    with pytest.raises(ProjectNotFound) as unknown, db.session() as session:
        rename_project(session, "nope", "other")
    assert str(unknown.value) == "no project named 'nope'; projects: amr, lab."


def test_a_failed_session_rolls_back(db: Database) -> None:
    with pytest.raises(NameTaken), db.session() as session:
        create_project(session, "first")
        create_project(session, "first")
    with db.session() as session:
        assert list_projects(session) == []


# --- experiments ----------------------------------------------------------------------------------


def test_experiments_are_stored_as_given_and_cloned(db: Database) -> None:
    blocks = [{"type": "conv1d", "filters": 128, "kernel": 13}, {"type": "dense", "units": 1}]
    with db.session() as session:
        lab(session)
        first = create_experiment(session, "lab", "utr", SPEC)
        custom = create_experiment(
            session,
            "lab",
            "utr-blocks",
            SPEC.model_copy(update={"blocks": blocks, "recipe": "blocks"}),
        )
    with db.session() as session:
        assert spec_of(get_experiment(session, first.id)) == SPEC
        assert get_experiment(session, custom.id).blocks == blocks
        clone = clone_experiment(session, first.id, "utr-2")
        changed = clone_experiment(
            session, first.id, "utr-3", SPEC.model_copy(update={"params": {"epochs": 9}})
        )
    with db.session() as session:
        assert spec_of(get_experiment(session, clone.id)) == SPEC
        assert get_experiment(session, clone.id).cloned_from == first.id
        assert get_experiment(session, changed.id).params == {"epochs": 9}
        assert find_experiment(session, "lab", "utr-3").id == changed.id
        names = [e.name for e in list_experiments(session, "lab")]
    assert names == ["utr", "utr-blocks", "utr-2", "utr-3"]


def test_experiment_errors(db: Database, experiment_id: str) -> None:
    with pytest.raises(NameTaken) as taken, db.session() as session:
        create_experiment(session, "lab", "utr", SPEC)
    assert str(taken.value) == (
        "project 'lab' already has an experiment named 'utr'; choose another name."
    )
    with pytest.raises(ExperimentNotFound) as unknown, db.session() as session:
        find_experiment(session, "lab", "cnn")
    assert (
        str(unknown.value) == "project 'lab' has no experiment named 'cnn'; its experiments: utr."
    )
    with pytest.raises(ExperimentNotFound) as by_id, db.session() as session:
        get_experiment(session, "no-such-id")
    assert str(by_id.value) == "no experiment with id 'no-such-id'."
    with pytest.raises(ProjectNotFound), db.session() as session:
        create_experiment(session, "elsewhere", "utr", SPEC)
    with pytest.raises(InvalidName), db.session() as session:
        create_experiment(session, "lab", "../utr", SPEC)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
NUMBERS = itertools.count(1)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.text(min_size=1, max_size=12), JSON, max_size=6))
def test_json_params_round_trip(db: Database, experiment_id: str, params: dict[str, Any]) -> None:
    with db.session() as session:
        clone = clone_experiment(
            session,
            experiment_id,
            f"utr-{next(NUMBERS)}",
            SPEC.model_copy(update={"params": params}),
        )
    with db.session() as session:
        assert get_experiment(session, clone.id).params == params


# --- the run queue --------------------------------------------------------------------------------


def test_runs_are_numbered_per_experiment(db: Database, experiment_id: str) -> None:
    with db.session() as session:
        first = runs.submit(session, experiment_id, epochs_planned=10)
        second = runs.submit(session, experiment_id, "ray", init_from_run=first.id)
        other = clone_experiment(session, experiment_id, "utr-2")
        third = runs.submit(session, other.id)
    assert [(r.number, r.engine, r.status) for r in (first, second, third)] == [
        (1, "local", RunStatus.QUEUED),
        (2, "ray", RunStatus.QUEUED),
        (1, "local", RunStatus.QUEUED),
    ]
    assert (first.epochs_planned, second.init_from_run) == (10, first.id)
    with db.session() as session:
        mine = runs.list_runs(session, "lab", experiment_id=experiment_id)
        assert [r.id for r in mine] == [first.id, second.id]
        assert len(runs.list_runs(session, "lab", statuses=[RunStatus.QUEUED])) == 3


def test_submit_errors(db: Database, experiment_id: str) -> None:
    with pytest.raises(RequestError) as engine, db.session() as session:
        runs.submit(session, experiment_id, "slurm")
    assert str(engine.value) == (
        "engine 'slurm' is not known; use one of: local, ray ('local': a worker process on this "
        "machine, 'ray': a Ray cluster)."
    )
    with pytest.raises(ExperimentNotFound), db.session() as session:
        runs.submit(session, "nope")
    with pytest.raises(RunNotFound) as run, db.session() as session:
        runs.submit(session, experiment_id, init_from_run="nope")
    assert str(run.value) == "no run with id 'nope'."


def test_claim_takes_the_oldest_queued_run(db: Database, experiment_id: str) -> None:
    ids = submitted(db, experiment_id, 3)
    with db.session() as session:  # submitted in one order, queued in the reverse order
        for offset, run_id in enumerate(reversed(ids)):
            session.execute(
                update(Run).where(Run.id == run_id).values(created_at=T0 + seconds(offset))
            )
    claimed = [runs.claim(db, "w1", now=T0 + seconds(60)) for _ in range(4)]
    assert [r.id if r else None for r in claimed] == [*reversed(ids), None]
    first = claimed[0]
    assert first is not None
    assert (first.status, first.worker, first.claimed_at, first.heartbeat_at) == (
        RunStatus.RUNNING,
        "w1",
        T0 + seconds(60),
        T0 + seconds(60),
    )
    assert first.started_at == T0 + seconds(60)


def test_concurrent_claimers_never_get_the_same_run(db: Database, experiment_id: str) -> None:
    ids = submitted(db, experiment_id, 50)
    start = threading.Barrier(4)

    def claimer(worker: str) -> list[str]:
        start.wait()
        mine = []
        while (run := runs.claim(db, worker)) is not None:
            mine.append(run.id)
        return mine

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(claimer, ["w1", "w2", "w3", "w4"]))
    claimed = [run_id for mine in got for run_id in mine]
    assert sorted(claimed) == sorted(ids)
    assert len(set(claimed)) == 50
    with db.session() as session:
        rows = session.execute(select(Run.id, Run.status, Run.worker)).all()
    owner = {run_id: f"w{i + 1}" for i, mine in enumerate(got) for run_id in mine}
    assert {(r.id, r.status, r.worker) for r in rows} == {
        (run_id, RunStatus.RUNNING, owner[run_id]) for run_id in ids
    }


def test_sweep_interrupts_runs_without_heartbeats(db: Database, experiment_id: str) -> None:
    submitted(db, experiment_id, 2)
    alive, silent = runs.claim(db, "w1", now=T0), runs.claim(db, "w2", now=T0)
    assert alive is not None and silent is not None
    with db.session() as session:
        assert runs.heartbeat(session, alive.id, worker="w1", now=T0 + seconds(10)) is False
    with db.session() as session:
        assert runs.sweep(session, T0 + seconds(30)) == [silent.id]  # alive: exactly 20 s old
    with db.session() as session:
        assert runs.sweep(session, T0 + seconds(30)) == []
        assert runs.get_run(session, alive.id).status is RunStatus.RUNNING
        swept = runs.get_run(session, silent.id)
    assert (swept.status, swept.error) == (
        RunStatus.INTERRUPTED,
        "the worker stopped sending heartbeats for over 20 s; resume the run to go on from its "
        "last checkpoint.",
    )
    with pytest.raises(RunStateConflict) as late, db.session() as session:
        runs.heartbeat(session, silent.id, worker="w2")
    assert str(late.value) == (
        f"run {silent.id!r} is interrupted (worker 'w2'), not running for worker 'w2': stop "
        "training it; it was swept, stopped or taken over."
    )
    with pytest.raises(RunStateConflict) as epoch, db.session() as session:
        runs.record_epoch(session, silent.id, 1, train_loss=0.5, val_loss=0.6)
    assert str(epoch.value) == (
        f"run {silent.id!r} is interrupted; recording an epoch needs a run that is running."
    )
    with pytest.raises(RunStateConflict) as other, db.session() as session:
        runs.heartbeat(session, alive.id, worker="w2")  # not w2's run
    assert str(other.value).startswith(
        f"run {alive.id!r} is running (worker 'w1'), not running for worker 'w2': stop"
    )
    with pytest.raises(RunStateConflict) as anyone, db.session() as session:
        runs.heartbeat(session, silent.id)
    assert str(anyone.value) == (
        f"run {silent.id!r} is interrupted: stop training it; it was swept, stopped or taken over."
    )


def test_resume_keeps_epochs_and_checkpoint(db: Database, experiment_id: str) -> None:
    submitted(db, experiment_id, 1)
    run = runs.claim(db, "w1", now=T0)
    assert run is not None
    with db.session() as session:
        runs.record_epoch(session, run.id, 1, train_loss=0.9, val_loss=1.0, checkpoint="ck/1")
        runs.log(session, run.id, "epoch 1 done")
    with db.session() as session:
        runs.sweep(session, T0 + seconds(60))
    with db.session() as session:
        resumed = runs.resume(session, run.id)
    assert (resumed.status, resumed.worker, resumed.error, resumed.checkpoint) == (
        RunStatus.QUEUED,
        None,
        None,
        "ck/1",
    )
    again = runs.claim(db, "w2", now=T0 + seconds(120))
    assert again is not None
    assert (again.id, again.worker, again.started_at) == (run.id, "w2", T0)
    with db.session() as session:
        assert [e.epoch for e in runs.epochs_since(session, run.id)] == [1]
        assert [line.line for line in runs.logs_since(session, run.id)] == ["epoch 1 done"]
        runs.finish(session, run.id, "runs/r1", {"r2": 0.6}, {"r2": 0.6})
    with pytest.raises(RunStateConflict) as finished, db.session() as session:
        runs.resume(session, run.id)
    assert str(finished.value) == (
        f"run {run.id!r} is finished; resuming needs a run that is stopped or interrupted."
    )


def test_stopping_a_queued_and_a_running_run(db: Database, experiment_id: str) -> None:
    running, queued = submitted(db, experiment_id, 2)
    claimed = runs.claim(db, "w1")
    assert claimed is not None and claimed.id == running
    with db.session() as session:
        assert runs.request_stop(session, queued).status is RunStatus.STOPPED
        asked = runs.request_stop(session, running)
    assert (asked.status, asked.stop_requested) == (RunStatus.RUNNING, True)
    with db.session() as session:
        assert runs.heartbeat(session, running, worker="w1") is True
        stopped = runs.mark_stopped(session, running, checkpoint="ck/3")
    assert (stopped.status, stopped.checkpoint) == (RunStatus.STOPPED, "ck/3")
    with pytest.raises(RunStateConflict) as twice, db.session() as session:
        runs.request_stop(session, running)
    assert str(twice.value) == f"run {running!r} is stopped; stopping needs a run that is running."
    with db.session() as session:
        assert runs.resume(session, running).stop_requested is False
        assert runs.resume(session, queued).status is RunStatus.QUEUED
    assert runs.claim(db, "w2") is not None


def test_finish_fail_and_deploy(db: Database, experiment_id: str) -> None:
    good, bad = submitted(db, experiment_id, 2)
    runs.claim(db, "w1")
    runs.claim(db, "w1")
    with db.session() as session:
        done = runs.finish(
            session, good, "runs/good", {"auc": 0.91}, {"auc": 0.91}, best_epoch=4, now=T0
        )
        failed = runs.fail(session, bad, "CUDA out of memory", now=T0)
    assert (done.status, done.bundle, done.metrics, done.best_epoch, done.finished_at) == (
        RunStatus.FINISHED,
        "runs/good",
        {"auc": 0.91},
        4,
        T0,
    )
    assert (failed.status, failed.error) == (RunStatus.FAILED, "CUDA out of memory")
    with pytest.raises(RunStateConflict) as again, db.session() as session:
        runs.finish(session, good, "runs/good", {}, {})
    assert str(again.value) == f"run {good!r} is finished; finishing needs a run that is running."
    with db.session() as session:
        deployed = runs.record_deployment(session, good, "yeast-utr", 3, "production", now=T0)
    assert (deployed.model, deployed.version, deployed.alias, deployed.at) == (
        "yeast-utr",
        3,
        "production",
        T0,
    )
    with db.session() as session:
        assert deployed.project_id == get_project(session, "lab").id
    with pytest.raises(RunStateConflict) as undeployable, db.session() as session:
        runs.record_deployment(session, bad, "yeast-utr", 4)
    assert str(undeployable.value) == (
        f"run {bad!r} is failed; only a finished run can be deployed."
    )
    with pytest.raises(RunNotFound), db.session() as session:
        runs.fail(session, "nope", "x")


def test_epochs_since_gives_new_epochs_in_order(db: Database, experiment_id: str) -> None:
    submitted(db, experiment_id, 1)
    run = runs.claim(db, "w1")
    assert run is not None
    with db.session() as session:
        for epoch in (3, 1, 2):
            runs.record_epoch(
                session, run.id, epoch, train_loss=1 / epoch, val_loss=None, metrics={"e": epoch}
            )
    with db.session() as session:
        runs.record_epoch(session, run.id, 2, train_loss=0.25, val_loss=0.3)  # trained again
    with db.session() as session:
        everything = runs.epochs_since(session, run.id)
        later = runs.epochs_since(session, run.id, after_epoch=1)
        assert runs.epochs_since(session, run.id, after_epoch=3) == []
    assert [(e.epoch, e.train_loss, e.val_loss, e.metrics) for e in everything] == [
        (1, 1.0, None, {"e": 1}),
        (2, 0.25, 0.3, {}),
        (3, 1 / 3, None, {"e": 3}),
    ]
    assert [e.epoch for e in later] == [2, 3]
    with db.session() as session:
        assert [runs.log(session, run.id, f"line {n}") for n in range(3)] == [1, 2, 3]
        assert [r.line for r in runs.logs_since(session, run.id, after_seq=1)] == [
            "line 1",
            "line 2",
        ]
