"""The workspace's tables as SQLAlchemy 2 typed ORM classes (docs/design/workspace.md, "Tables").

Contract:
- Exactly the tables of the map: ``projects``, ``datasets``, ``dataset_versions``, ``subsets``,
  ``experiments``, ``runs``, ``run_epochs``, ``run_logs``, ``deployments``; and for teams
  (issue 17, docs/security.md) ``users``, ``login_sessions``, ``memberships``, ``user_keys``,
  ``audit_events``. The Alembic revisions (``migrations/versions/``) create the same schema; a
  test compares the two.
- Ids are short random strings (:func:`new_id`, ``secrets.token_urlsafe(8)``: 11 characters of
  ``A-Z a-z 0-9 - _``), except a dataset version's id, the sha256 hex of its bytes (unique within
  its dataset: the same bytes may be a version of two datasets).
- Every timestamp is timezone-aware UTC (:class:`UtcDateTime`): naive datetimes are refused on
  the way in; values come back with ``tzinfo=UTC`` from SQLite and PostgreSQL alike.
- JSON columns hold what ``json.dumps`` accepts; nullable JSON columns (``blocks``, ``metrics``,
  ``headline``) store Python ``None`` as SQL ``NULL``.
- Two columns beyond the map: ``experiments`` names are unique in their project (the CLI and the
  pages address experiments by name), and ``runs.created_at`` (submission time) orders the queue.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 16
NAME_LENGTH = 64
THROTTLE_KEY_LENGTH = 80  # 'name:' + a sha256 in hex, or 'address:' + an IP address
SHA256_LENGTH = 64


def new_id() -> str:
    """A short random id: ``secrets.token_urlsafe(8)`` (11 characters)."""
    return secrets.token_urlsafe(8)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC (``timestamptz`` on PostgreSQL, text on SQLite), read back
    timezone-aware UTC. A naive datetime raises :class:`ValueError` (a bug, never user input)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: workspace timestamps must be UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RunStatus(StrEnum):
    """A run's state: ``queued -> running -> finished | failed | stopped | interrupted``;
    ``stopped`` and ``interrupted`` runs can be resumed (back to ``queued``)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


def text_enum(kind: type[StrEnum], name: str) -> Enum:
    """A column of ``kind``'s values stored as text (no database enum type to migrate)."""
    return Enum(
        kind,
        name=name,
        native_enum=False,
        length=16,
        values_callable=lambda kinds: [k.value for k in kinds],
        validate_strings=True,
    )


RUN_STATUS = text_enum(RunStatus, "run_status")
ENGINES = ("local", "ray")


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names, the same on every database (Alembic needs names to alter them later)."""


class Base(DeclarativeBase):
    """Declarative base of every workspace table."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class Project(Base):
    """A project: every row a person owns belongs to one (``project_id``)."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    archived: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    """A named dataset in a project; its content lives in immutable :class:`DatasetVersion`."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersion(Base):
    """One uploaded file of a dataset, addressed by the sha256 of its bytes."""

    __tablename__ = "dataset_versions"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(SHA256_LENGTH), primary_key=True, index=True)
    filename: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    good_rows: Mapped[int] = mapped_column(BigInteger)
    refused_rows: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subset(Base):
    """A named row selection of a dataset (``spec``: ``workspace.subsets.SubsetSpec``)."""

    __tablename__ = "subsets"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    """Dataset version + subsets + recipe + hyper-parameters (or a block stack): what to train."""

    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    dataset_version: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    target: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)  # columns the recipe reads, by role
    normalise_on: Mapped[str | None] = mapped_column(Text)  # a subset name
    positive: Mapped[str | None] = mapped_column(Text)  # a binary target's positive class
    seed: Mapped[int] = mapped_column(Integer, default=0)
    train_subset: Mapped[str] = mapped_column(Text)
    val_subset: Mapped[str] = mapped_column(Text)
    test_subset: Mapped[str | None] = mapped_column(Text)
    recipe: Mapped[str] = mapped_column(String(NAME_LENGTH))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    blocks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    cloned_from: Mapped[str | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One training of an experiment, and its row in the queue (see :mod:`.runs`)."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("experiment_id", "number"),
        Index("ix_runs_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(RUN_STATUS, default=RunStatus.QUEUED)
    engine: Mapped[str] = mapped_column(String(16), default="local")
    init_from_run: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    worker: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    stop_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    epochs_planned: Mapped[int | None]
    best_epoch: Mapped[int | None]
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    headline: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    bundle: Mapped[str | None] = mapped_column(Text)
    checkpoint: Mapped[str | None] = mapped_column(Text)


class RunEpoch(Base):
    """One epoch's losses and metrics of a run (the live curves)."""

    __tablename__ = "run_epochs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class RunLog(Base):
    """One line of a run's log, numbered from 1 per run (``seq``)."""

    __tablename__ = "run_logs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    line: Mapped[str] = mapped_column(Text)


class Deployment(Base):
    """A run's bundle published as ``model@version`` in the model store (and its alias)."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    alias: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Role(StrEnum):
    """A member's role in a project, each including the ones before it: ``viewer`` (read,
    predict), ``editor`` (upload, run, deploy to staging), ``owner`` (members, production,
    delete)."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class User(Base):
    """A person who signs in; ``admin`` manages users and sees every project."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, with its own salt and cost
    admin: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """A signed-in browser: the sha256 of its cookie's token (never the token itself)."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(SHA256_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Membership(Base):
    """A user's role in a project."""

    __tablename__ = "memberships"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[Role] = mapped_column(text_enum(Role, "role"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserKey(Base):
    """A user's API key: its sha256, scope, optional project and expiry, last use."""

    __tablename__ = "user_keys"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(SHA256_LENGTH), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # predict | write | admin
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what, when, where: kept when the project or user it names is deleted."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(Text)  # a user's name, "key <id>", "local" or "admin key"
    action: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    target: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    address: Mapped[str | None] = mapped_column(Text)


class SignInFailures(Base):
    """Failed sign-ins of one account name or address (``name:<sha256>`` / ``address:<ip>``),
    shared by every server process (:mod:`helixserve.workspace.throttle`); times are Unix
    seconds."""

    __tablename__ = "sign_in_failures"

    key: Mapped[str] = mapped_column(String(THROTTLE_KEY_LENGTH), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float)
    failures: Mapped[int] = mapped_column(Integer)
    blocked_until: Mapped[float] = mapped_column(Float, index=True)


__all__ = [
    "ENGINES",
    "AuditEvent",
    "Base",
    "Dataset",
    "DatasetVersion",
    "Deployment",
    "Experiment",
    "LoginSession",
    "Membership",
    "Project",
    "Role",
    "Run",
    "RunEpoch",
    "RunLog",
    "RunStatus",
    "SignInFailures",
    "Subset",
    "User",
    "UserKey",
    "UtcDateTime",
    "new_id",
    "utcnow",
]
