"""A real PostgreSQL server for tests, and the ``database_url`` fixture (SQLite and PostgreSQL).

- :func:`postgres` starts a throw-away server (Debian's ``postgresql`` package: ``initdb`` and
  ``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin``) in a temporary folder, listening on a
  free loopback port and a Unix socket in that folder; trust authentication, user ``helix``.
  As root, ``initdb`` and the server run as the ``postgres`` user (initdb refuses root).
- ``postgres_server`` (session scope) starts one server for the whole session; each test gets its
  own database (``CREATE DATABASE t_<n>``) from :meth:`PostgresServer.new_database`.
- Without the binaries the PostgreSQL tests are skipped with the reason, except in CI
  (``CI=true``), where a missing PostgreSQL fails them (``.ci/run`` installs it).
- ``database_url`` runs a test twice: on a SQLite file in ``tmp_path`` and on a fresh PostgreSQL
  database; ``db`` is that database as a migrated :class:`~helixserve.workspace.db.Database`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from helixserve.workspace.db import Database

USER = "helix"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``pg_ctl``."""
    found = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (path.parent / "pg_ctl").exists()
    ]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` connects to database ``db`` as ``helix``."""

    port: int
    folder: Path
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database ``t_<n>`` and return its URL."""
        name = f"t_{next(self.counter)}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_owner(command: list[str]) -> list[str]:
    """Run as ``postgres`` when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], log: Path) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}\n{tail}")


def _start(pg_ctl: str, data: Path, folder: Path, log: Path, tries: int = 3) -> int:
    """Start the server on a free port (another, if one is taken meanwhile); returns it."""
    for attempt in range(tries):
        port = _free_port()
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"], log)
            return port
        except RuntimeError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


@contextmanager
def postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """Start a throw-away PostgreSQL server; stop it and delete its files at the end."""
    folder = Path(tempfile.mkdtemp(prefix="helix-pg-"))  # short: the socket path has a limit
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "log"
    _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8"], log)
    pg_ctl = str(bin_dir / "pg_ctl")
    port = _start(pg_ctl, data, folder, log)
    try:
        yield PostgresServer(port=port, folder=folder)
    finally:
        _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], log)
        shutil.rmtree(folder, ignore_errors=True)


def required_binaries() -> Path:
    """The binaries; without them: skip the test, or fail it in CI (``CI=true``)."""
    bin_dir = binaries()
    if bin_dir is None:
        message = "PostgreSQL not found in /usr/lib/postgresql (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI must test the workspace on PostgreSQL")
        pytest.skip(message)
    return bin_dir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (skipped without binaries, failed in CI)."""
    with postgres(required_binaries()) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workspace.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """That database, migrated to the newest schema (closed at the end)."""
    database = Database(database_url)
    database.upgrade()
    yield database
    database.close()
