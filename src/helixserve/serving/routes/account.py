"""The caller's own account: ``/api/v1/me``, their API keys and their password.

Contract:
- ``GET /api/v1/me``: who the caller is (``local``, ``user`` or ``service``), whether an admin,
  and their role in each project they can see.
- ``POST /api/v1/me/keys`` (201) makes a key (scope, label, optional project and expiry; the key
  is in this answer only), ``GET /api/v1/me/keys`` lists the caller's keys without secrets,
  ``DELETE /api/v1/me/keys/{id}`` revokes one (it stops working at once here, within
  :data:`~helixserve.serving.access.KEY_CACHE_S` s in other server processes).
- ``POST /api/v1/me/password`` ``{old, new}`` changes the password and closes every session.
- Keys and the password are a user's: the local owner and service keys get 403, and so does a
  user's key without the ``admin`` scope (a key cannot make a stronger key). Every change is
  audited; no answer or log carries a password, and only the creating answer carries a key.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from helixserve.errors import Forbidden
from helixserve.serving.deps import CallerDep, ServerDep, WorkspaceDep, caller
from helixserve.serving.schemas import ERRORS
from helixserve.serving.team_schemas import KeyIn, KeyList, KeyOut, MeOut, NewKeyOut, PasswordIn
from helixserve.workspace import accounts, audit, keys
from helixserve.workspace.members import Principal, role_in, visible_projects
from helixserve.workspace.models import User

router = APIRouter(
    prefix="/api/v1/me", tags=["teams"], dependencies=[Depends(caller)], responses=ERRORS
)


def _user(session: Session, who: Principal) -> User:
    """The caller as a user who may manage their account; else Forbidden."""
    if who.kind != "user" or who.user_id is None:
        raise Forbidden(
            "keys and passwords belong to users; sign in as one (helixserve users add makes them)."
        )
    if who.scope not in (None, "admin"):
        raise Forbidden(f"a key with the {who.scope!r} scope cannot manage keys or passwords.")
    user = session.get(User, who.user_id)
    if user is None:
        raise Forbidden("this user no longer exists.")
    return user


@router.get("")
def me(workspace: WorkspaceDep, who: CallerDep) -> MeOut:
    """Who you are here, and your role in each project you can see."""
    with workspace.db.session() as session:
        roles = {p.name: role_in(session, who, p) for p in visible_projects(session, who)}
        return MeOut(
            name=who.name,
            admin=who.admin,
            kind=who.kind,
            projects={name: role for name, role in roles.items() if role is not None},
        )


@router.post("/keys", status_code=201)
def make_key(request: Request, workspace: WorkspaceDep, who: CallerDep, body: KeyIn) -> NewKeyOut:
    """Make an API key: its value is in this answer only."""
    with workspace.db.session() as session:
        user = _user(session, who)
        made, row = keys.create_key(
            session,
            user,
            body.scope,
            label=body.label,
            project=body.project,
            expires_at=keys.new_expiry(body.expires_in_days),
        )
        audit.record(
            session,
            who,
            "key.create",
            project_id=row.project_id,
            target=f"key {row.id}",
            details={"scope": body.scope, "label": body.label},
            address=_address(request),
        )
        return NewKeyOut(**KeyOut.of(row).model_dump(), key=made)


@router.get("/keys")
def list_keys(workspace: WorkspaceDep, who: CallerDep) -> KeyList:
    """Your keys (never their values)."""
    with workspace.db.session() as session:
        return KeyList(keys=[KeyOut.of(k) for k in keys.user_keys(session, _user(session, who))])


@router.delete("/keys/{key_id}")
def revoke(
    request: Request, server: ServerDep, workspace: WorkspaceDep, who: CallerDep, key_id: str
) -> KeyOut:
    """Revoke one of your keys."""
    with workspace.db.session() as session:
        row = keys.revoke_key(session, _user(session, who), key_id)
        audit.record(
            session,
            who,
            "key.revoke",
            project_id=row.project_id,
            target=f"key {row.id}",
            address=_address(request),
        )
        answer = KeyOut.of(row)
    server.access.forget_keys()
    return answer


@router.post("/password")
def change_password(
    request: Request, server: ServerDep, workspace: WorkspaceDep, who: CallerDep, body: PasswordIn
) -> MeOut:
    """Change your password; every browser you signed in with is signed out."""
    with workspace.db.session() as session:
        user = _user(session, who)
        accounts.change_password(session, user, body.old, body.new)
        audit.record(
            session, who, "user.password", target=f"user {user.name}", address=_address(request)
        )
    server.access.forget_keys()
    return me(workspace, who)


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None
