"""Slowing down password guessing: failed sign-ins counted per account name and per address, in
the workspace database, so every server process (``--workers N``, several hosts on one
PostgreSQL) shares one count.

Contract:
- :func:`check` raises :class:`~helixserve.errors.TooManyAttempts` (429, ``Retry-After``) while
  the name or the address is blocked; call it *before* the password is checked. The message is
  the same whether or not the account exists (the throttle never looks at the users).
- :func:`failed` records a failure in one statement per key (an upsert, so two processes failing
  at once both count): after :data:`FREE_FAILURES` failures of one name within :data:`WINDOW_S`
  of the first, that name is blocked for 2 s, doubling with each further failure up to
  :data:`MAX_BLOCK_S`; an address gets :data:`ADDRESS_FREE_FAILURES` (one person may mistype
  several accounts; one address guessing many accounts is blocked in the same way).
  :func:`succeeded` forgets the name's failures (not the address's).
- Names are case-folded and stored only as their sha256 (a password typed into the name field
  is not kept). Rows whose window and block are over are deleted by the next :func:`failed`; a
  blocked address records no further failures, so one address adds a bounded number of rows.
- ``now`` (Unix seconds) is an argument for tests; the routes pass ``time.time()``.
"""

from __future__ import annotations

import hashlib
import math

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from helixserve.errors import TooManyAttempts
from helixserve.workspace.models import SignInFailures

FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
WINDOW_S = 900.0
MAX_BLOCK_S = 900.0


def keys(name: str, address: str | None) -> list[str]:
    """The rows one attempt counts against: its name's and (when known) its address's."""
    digest = hashlib.sha256(name.casefold().encode()).hexdigest()
    return [f"name:{digest}"] + ([f"address:{address}"] if address else [])


def check(session: Session, name: str, address: str | None, now: float) -> None:
    """Raise :class:`TooManyAttempts` while ``name`` or ``address`` is blocked."""
    query = select(func.max(SignInFailures.blocked_until)).where(
        SignInFailures.key.in_(keys(name, address))
    )
    until = session.scalar(query)
    if until is not None and until > now:
        seconds = math.ceil(until - now)
        raise TooManyAttempts(
            f"too many failed sign-ins; wait {seconds} s and try again.", retry_after=seconds
        )


def failed(session: Session, name: str, address: str | None, now: float) -> None:
    """Count one failed sign-in of ``name`` from ``address``; block past the free failures."""
    session.execute(
        delete(SignInFailures).where(
            SignInFailures.window_start <= now - WINDOW_S, SignInFailures.blocked_until <= now
        )
    )
    for key in keys(name, address):
        count = _count(session, key, now)
        free = ADDRESS_FREE_FAILURES if key.startswith("address:") else FREE_FAILURES
        over = count - free + 1
        if over > 0:
            until = now + min(MAX_BLOCK_S, 2.0**over)
            session.execute(
                update(SignInFailures)
                .where(SignInFailures.key == key, SignInFailures.blocked_until < until)
                .values(blocked_until=until)
            )


def succeeded(session: Session, name: str) -> None:
    """Forget the failures of ``name`` (its address keeps its count)."""
    session.execute(delete(SignInFailures).where(SignInFailures.key == keys(name, None)[0]))


def _count(session: Session, key: str, now: float) -> int:
    """Add one failure to ``key``'s window (a new window once the old one is over); the count."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    first = {"key": key, "window_start": now, "failures": 1, "blocked_until": 0.0}
    statement = insert(SignInFailures).values(first)
    expired = SignInFailures.window_start <= now - WINDOW_S
    upsert = statement.on_conflict_do_update(
        index_elements=[SignInFailures.key],
        set_={
            "failures": case((expired, 1), else_=SignInFailures.failures + 1),
            "window_start": case((expired, now), else_=SignInFailures.window_start),
        },
    ).returning(SignInFailures.failures)
    return int(session.execute(upsert).scalar_one())
