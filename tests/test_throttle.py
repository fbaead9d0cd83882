"""Failed sign-ins slow down guessing (issue 17), counted in the workspace database on SQLite and
on a real PostgreSQL: per account name and per address, the same answer whether or not the
account exists, doubling blocks with a ceiling, forgotten after a success or the window, one
count shared by every process (two :class:`Database` objects on one database stand for two
server processes), and no name kept in plain text."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from helixserve.errors import TooManyAttempts
from helixserve.workspace import throttle
from helixserve.workspace.db import Database
from helixserve.workspace.models import SignInFailures

START = 1_000_000.0


class Guard:
    """The throttle as a server process uses it: each call in its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.now = START

    def failed(self, name: str, address: str | None) -> None:
        with self.db.session() as session:
            throttle.failed(session, name, address, self.now)

    def succeeded(self, name: str) -> None:
        with self.db.session() as session:
            throttle.succeeded(session, name)

    def blocked_for(self, name: str, address: str | None) -> int | None:
        """``Retry-After`` if ``name`` from ``address`` is blocked now, else ``None``."""
        try:
            with self.db.session() as session:
                throttle.check(session, name, address, self.now)
        except TooManyAttempts as err:
            assert str(err) == f"too many failed sign-ins; wait {err.retry_after} s and try again."
            return err.retry_after
        return None


@pytest.fixture
def guard(db: Database) -> Guard:
    return Guard(db)


@pytest.fixture
def second_process(database_url: str, db: Database) -> Iterator[Guard]:
    """Another connection pool on the same (already migrated) database."""
    other = Database(database_url)
    yield Guard(other)
    other.close()


def test_an_account_is_blocked_after_five_failures_for_doubling_times(guard: Guard) -> None:
    for _ in range(throttle.FREE_FAILURES - 1):
        guard.failed("Ana", "10.0.0.1")
        assert guard.blocked_for("ana", "10.0.0.2") is None
    waits = []
    for _ in range(4):
        guard.failed("ana", "10.0.0.1")
        waits.append(guard.blocked_for("ANA", "10.0.0.9"))  # any address, any case
    assert waits == [2, 4, 8, 16]
    guard.now += 16
    assert guard.blocked_for("ana", None) is None
    guard.succeeded("ana")
    guard.failed("ana", None)
    assert guard.blocked_for("ana", None) is None


def test_the_block_has_a_ceiling_and_old_failures_are_forgotten(guard: Guard) -> None:
    for _ in range(40):
        guard.failed("bo", None)
    assert guard.blocked_for("bo", None) == throttle.MAX_BLOCK_S
    guard.now += throttle.WINDOW_S + throttle.MAX_BLOCK_S
    guard.failed("bo", None)
    assert guard.blocked_for("bo", None) is None
    with guard.db.session() as session:  # the finished window was deleted; a new one began
        assert session.scalars(select(SignInFailures.failures)).all() == [1]


@pytest.mark.parametrize("exists", [True, False])
def test_one_address_guessing_many_names_is_blocked(guard: Guard, exists: bool) -> None:
    """Names that exist or not: the throttle never looks, so the answers cannot differ."""
    names = [f"{'user' if exists else 'ghost'}{i}" for i in range(throttle.ADDRESS_FREE_FAILURES)]
    for name in names:
        guard.failed(name, "10.0.0.7")
    assert guard.blocked_for("someone-else", "10.0.0.7") == 2
    assert guard.blocked_for("someone-else", "10.0.0.8") is None


def test_every_process_shares_the_count(guard: Guard, second_process: Guard) -> None:
    """Failures alternate between two processes; both see one count, and a block made by one
    holds in the other."""
    for attempt in range(throttle.FREE_FAILURES):
        (guard if attempt % 2 else second_process).failed("cy", "10.0.0.3")
    assert guard.blocked_for("cy", None) == 2
    assert second_process.blocked_for("cy", None) == 2


def test_failures_at_the_same_moment_are_all_counted(guard: Guard, second_process: Guard) -> None:
    """Two processes, eight threads each, one failure per thread: no lost update."""
    errors: list[BaseException] = []

    def fail(process: Guard) -> None:
        try:
            process.failed("dee", None)
        except BaseException as err:  # reported below, with the count
            errors.append(err)

    threads = [threading.Thread(target=fail, args=(p,)) for p in [guard, second_process] * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with guard.db.session() as session:
        assert session.scalars(select(SignInFailures.failures)).all() == [16]


def test_names_are_kept_only_as_digests(guard: Guard) -> None:
    guard.failed("my secret passphrase", "10.0.0.4")
    with guard.db.session() as session:
        stored = sorted(session.scalars(select(SignInFailures.key)))
    assert stored == ["address:10.0.0.4", throttle.keys("MY SECRET PASSPHRASE", None)[0]]
    assert all("secret" not in key for key in stored)
