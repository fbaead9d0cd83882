"""The workspace database: engine, sessions and migrations (SQLite or PostgreSQL).

Contract:
- :class:`Database` takes a SQLAlchemy URL (``sqlite:///<path>``, ``postgresql+psycopg://...``;
  a bare ``postgresql://`` means psycopg 3; a SQLite path may start with ``~``). Any other
  backend, a URL that does not parse, or a missing driver raises
  :class:`~helixserve.errors.InvalidDatabaseUrl`, whose message names the URL (password shown as
  ``***``) and how to fix ``HELIXSERVE_DATABASE_URL``. Creating a :class:`Database` does not
  connect; a SQLite file's folder is created when missing.
- :meth:`Database.session` is a context manager: it commits when the block ends, rolls back when
  it raises. Loaded rows stay readable after the block (``expire_on_commit=False``).
  :meth:`Database.exists` says, without connecting, whether a SQLite file is there yet.
- :meth:`Database.upgrade` brings the schema to the newest Alembic revision (the migrations ship
  in this package, ``workspace/migrations/``). Every process that opens the database calls it;
  it is safe to run twice and from several processes at once (PostgreSQL: an advisory lock;
  SQLite: ``BEGIN IMMEDIATE``), and does nothing when the schema is current.
- A database that cannot be reached, or fails while used (a server down, a file that cannot be
  opened, a lock held past the timeout), raises :class:`~helixserve.errors.DatabaseUnavailable`
  from :meth:`~Database.upgrade`, :meth:`~Database.session` and :meth:`~Database.connect`.
- SQLite connections use WAL, ``foreign_keys=ON`` and a 30 s busy timeout.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from helixserve.errors import DatabaseUnavailable, InvalidDatabaseUrl
from helixserve.settings import load_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_S = 30
UPGRADE_LOCK = 0x68656C6978  # pg_advisory_xact_lock key: 'helix' as a number
HOW_TO_FIX = (
    "Set HELIXSERVE_DATABASE_URL to sqlite:////path/to/workspace.db or "
    "postgresql+psycopg://user:password@host:5432/dbname"
)


def default_url() -> str:
    """``HELIXSERVE_DATABASE_URL``, else SQLite ``~/.helixserve/workspace.db``."""
    return load_settings().database_url


def shown(url: str | URL) -> str:
    """The URL for a message: the password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def parse_url(url: str) -> URL:
    """Parse and check a database URL; ``postgresql://`` becomes ``postgresql+psycopg://``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidDatabaseUrl(
            f"database URL {shown(url)!r} is not a URL SQLAlchemy can read. {HOW_TO_FIX}."
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and (parsed.database or "").startswith("~"):
        parsed = parsed.set(database=str(Path(parsed.database or "").expanduser()))
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidDatabaseUrl(
            f"database URL {shown(parsed)!r} uses {parsed.get_backend_name()!r}; the workspace "
            f"runs on SQLite or PostgreSQL only. {HOW_TO_FIX}."
        )
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    _wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _wal(cursor: Any) -> None:
    """WAL mode (kept in the file: set once). Switching needs the file to itself and SQLite does
    not wait for that (no busy handler), so a new file opened by several processes at once
    retries for up to the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _make_engine(url: URL) -> Engine:
    try:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as err:
        extra = " Install the postgres extra: pip install 'helixserve[postgres]'."
        hint = extra if url.get_backend_name() == "postgresql" else ""
        raise InvalidDatabaseUrl(
            f"database URL {shown(url)!r} needs a driver that is not installed ({err}).{hint} "
            f"{HOW_TO_FIX}."
        ) from None


def _sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite database file (the default lies in ~/.helixserve)."""
    name = url.database or ""
    if name and name != ":memory:" and not name.startswith("file:"):
        try:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatabaseUnavailable(
                f"cannot create the folder of the workspace database {shown(url)}: {err}. "
                f"{HOW_TO_FIX} in a folder you can write."
            ) from None


class Database:
    """One workspace database: see the module contract."""

    def __init__(self, url: str) -> None:
        self.url = parse_url(url)
        if self.url.get_backend_name() == "sqlite":
            _sqlite_folder(self.url)
        self.engine = _make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({shown(self.url)!r})"

    def exists(self) -> bool:
        """Whether there is a database to use: a SQLite file on disk, or any server database
        (created by its administrator). Does not connect."""
        name = self.url.database or ""
        if self.dialect != "sqlite" or name == ":memory:" or name.startswith("file:"):
            return True
        return Path(name).is_file()

    def unavailable(self, err: DBAPIError) -> DatabaseUnavailable:
        """The :class:`DatabaseUnavailable` for a driver error, naming the URL and a fix."""
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        return DatabaseUnavailable(
            f"cannot use the workspace database {shown(self.url)}: {reason}. Check that the "
            f"database server is running and reachable, or fix the URL. {HOW_TO_FIX}."
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits at the end of the block and rolls back if it raises."""
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as err:
            raise self.unavailable(err) from err

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection in a transaction (committed at the end, rolled back on error)."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except (OperationalError, InterfaceError) as err:
            raise self.unavailable(err) from err

    def upgrade(self) -> None:
        """Alembic ``upgrade head``, serialised between processes; see the module contract."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        quiet = logging.getLogger("alembic")
        if quiet.level == logging.NOTSET:  # its INFO lines are noise in a server's or worker's log
            quiet.setLevel(logging.WARNING)
        with self.connect() as connection:
            if self.dialect == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
