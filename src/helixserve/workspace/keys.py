"""Users' API keys: made, listed, revoked, and resolved to a principal (issue 17).

Contract:
- :func:`create_key` makes a random key (``hsu_`` + 32 random bytes, URL-safe) for a user with a
  scope (``predict``: read and predict; ``write``: up to editor; ``admin``: everything the user
  may do, owner included; never more than the user's own roles), an optional
  project (the key reaches only that project, where the user is a member) and an optional
  expiry; it returns the plain key once and stores only its sha256.
- :func:`key_principal` resolves a presented key: the :class:`~.members.Principal` of its user,
  with the key's scope and project, and records its last use (at most once a minute, so a busy
  key does not write on every request). An unknown, revoked or expired key, or one of a disabled
  user, is ``None``: the caller answers 401 without saying which.
- :func:`revoke_key` marks a key revoked (it stays listed, with when); only its user or an admin
  revokes it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from helixserve.errors import InputError, NotFound
from helixserve.workspace.accounts import token_digest
from helixserve.workspace.members import SCOPE_ROLE, KeyScope, Principal
from helixserve.workspace.models import Membership, User, UserKey, utcnow
from helixserve.workspace.projects import get_project

PREFIX = "hsu_"
LAST_USED_EVERY = timedelta(minutes=1)


def create_key(
    session: Session,
    user: User,
    scope: str,
    *,
    label: str = "",
    project: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, UserKey]:
    """A new key of ``user`` (see the module contract): the plain key, shown once, and its row."""
    if scope not in SCOPE_ROLE:
        raise InputError(f"scope {scope!r} is not one of predict, write, admin.")
    project_id = None
    if project is not None:
        found = get_project(session, project)
        if not user.admin and session.get(Membership, (found.id, user.id)) is None:
            raise InputError(f"{user.name} is not a member of project {project!r}.")
        project_id = found.id
    if expires_at is not None and expires_at <= utcnow():
        raise InputError("the expiry is in the past; give a date in the future.")
    key = PREFIX + secrets.token_urlsafe(32)
    row = UserKey(
        user_id=user.id,
        label=label,
        digest=token_digest(key),
        scope=scope,
        project_id=project_id,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return key, row


def key_principal(session: Session, key: str, now: datetime | None = None) -> Principal | None:
    """The principal of a user's key, or ``None`` (see the module contract)."""
    row = session.scalar(select(UserKey).where(UserKey.digest == token_digest(key)))
    at = now or utcnow()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= at:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if row.last_used_at is None or at - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = at
    scope = cast(KeyScope, row.scope)  # checked when the key was made
    return Principal(
        "user", user.name, user.id, admin=user.admin, scope=scope, key_project=row.project_id
    )


def user_keys(session: Session, user: User) -> list[UserKey]:
    query = select(UserKey).where(UserKey.user_id == user.id).order_by(UserKey.created_at)
    return list(session.scalars(query))


def revoke_key(session: Session, who: User, key_id: str) -> UserKey:
    row = session.get(UserKey, key_id)
    if row is None or (row.user_id != who.id and not who.admin):
        raise NotFound(f"no key {key_id!r} of {who.name}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def new_expiry(days: float | None) -> datetime | None:
    """``days`` from now (``None``: the key does not expire)."""
    return None if days is None else utcnow() + timedelta(days=days)
