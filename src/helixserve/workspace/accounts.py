"""Accounts: users, their passwords and their sign-in sessions (issue 17; docs/security.md).

Contract:
- A user name follows the project-name rules (:func:`helixserve.store.names.check_name`); names
  are unique. A password has at least :data:`MIN_PASSWORD` characters and is not the user's name;
  otherwise :class:`~helixserve.errors.InputError` says what to change.
- Passwords are hashed with argon2id (``argon2-cffi``'s :class:`~argon2.PasswordHasher`, its
  RFC 9106 low-memory profile: salt and cost live in the hash). A hash made under older costs is
  replaced at the next successful sign-in.
- :func:`authenticate` answers every failure — an unknown name, a wrong password, a disabled
  account — with the same :class:`SignInFailed` message, and spends about the same time on an
  unknown name as on a known one (it verifies against a dummy hash), so neither the message nor
  the timing tells whether a user exists. Rate limits live where the requests arrive
  (:mod:`helixserve.workspace.throttle`).
- Sessions: :func:`open_session` makes a random token (32 bytes, URL-safe) for the browser's
  cookie and stores only its sha256, with an expiry ``ttl_s`` from now; :func:`session_user` is
  the signed-in user of a token, or ``None`` when the token is unknown, expired (its row is
  deleted) or its user is disabled. :func:`close_session` deletes one; a password change, reset
  or disable deletes all of the user's sessions (every browser is signed out).
- :func:`has_users` tells the server whether anyone can sign in (with none, a loopback server
  runs as one local owner; docs/security.md).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm import Session

from helixserve.errors import AuthError, InputError, NameTaken, NotFound
from helixserve.store.names import check_name
from helixserve.workspace.models import LoginSession, User, utcnow

MIN_PASSWORD = 10
SESSION_TTL_S = 8 * 3600
HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
_DUMMY = HASHER.hash("not a password of anyone: spends the time a real check spends")


WRONG_CURRENT = "the current password is not right; type the one you sign in with."


class SignInFailed(AuthError):
    """A user name and password that do not sign in (never says which part was wrong)."""

    def __init__(self, message: str = "wrong user name or password.") -> None:
        super().__init__(message)


class UserNotFound(NotFound):
    """No user of that name (admin commands only: sign-in never says so)."""


def token_digest(token: str) -> str:
    """The sha256 hex of a session token or key: what the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_password(name: str, password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD} "
            "(a few words are easier to remember than symbols)."
        )
    if password.casefold() == name.casefold():
        raise InputError("the password is the user name; choose another.")
    return password


def has_users(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(User)))


def add_user(session: Session, name: str, password: str, *, admin: bool = False) -> User:
    """A new user (see the module contract for the name and password rules)."""
    check_name(name, "user name")
    check_password(name, password)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise NameTaken(f"a user named {name!r} already exists; choose another name.")
    user = User(name=name, password_hash=HASHER.hash(password), admin=admin)
    session.add(user)
    try:
        session.flush()
    except DbIntegrityError:
        raise NameTaken(f"a user named {name!r} already exists; choose another name.") from None
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserNotFound(f"no user named {name!r}; helixserve users list shows them.")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def authenticate(session: Session, name: str, password: str) -> User:
    """The user ``name`` if ``password`` is theirs and they are enabled; else SignInFailed."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        _verify(_DUMMY, password)
        raise SignInFailed()
    if not _verify(user.password_hash, password) or user.disabled:
        raise SignInFailed()
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    return user


def _verify(digest: str, password: str) -> bool:
    try:
        return HASHER.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(session: Session, user: User, password: str) -> None:
    """A new password (an admin's reset, or the user's change): every session is closed."""
    check_password(user.name, password)
    user.password_hash = HASHER.hash(password)
    user.password_changed_at = utcnow()
    close_sessions(session, user.id)


def change_password(session: Session, user: User, old: str, new: str) -> None:
    """The user's own change: ``old`` must be their current password."""
    if not _verify(user.password_hash, old):
        raise SignInFailed(WRONG_CURRENT)
    set_password(session, user, new)


def set_disabled(session: Session, user: User, disabled: bool) -> None:
    user.disabled = disabled
    if disabled:
        close_sessions(session, user.id)


def open_session(session: Session, user: User, ttl_s: float = SESSION_TTL_S) -> str:
    """A new sign-in session of ``user``: the token for the cookie (only its sha256 is kept)."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=ttl_s)
    session.add(LoginSession(id=token_digest(token), user_id=user.id, expires_at=expires))
    session.flush()
    return token


def session_user(session: Session, token: str, now: datetime | None = None) -> User | None:
    """The user signed in with ``token`` (see the module contract), or ``None``."""
    row = session.get(LoginSession, token_digest(token))
    if row is None:
        return None
    if row.expires_at <= (now or utcnow()):
        session.delete(row)
        session.flush()
        return None
    user = session.get(User, row.user_id)
    return None if user is None or user.disabled else user


def close_session(session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.id == token_digest(token)))


def close_sessions(session: Session, user_id: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
