"""The account pages: ``/account`` (a user's keys and password) and ``/admin/users`` (users).

Contract:
- ``GET /account``: the signed-in user's keys (never their values) and the password form.
  ``POST /account/keys`` makes a key and shows it this once; ``POST /account/keys/{id}/revoke``
  revokes one; ``POST /account/password`` changes the password (every session of the user ends,
  so the next page asks to sign in again). Only a user may: the local owner and key sessions
  get 403.
- ``GET /admin/users`` lists the users; ``POST /admin/users`` adds one; ``.../{name}/disable``,
  ``.../enable`` and ``.../reset`` (a new password) change one. An admin user may, and the
  local owner of a one-person server, so that the first admin can be made from the browser
  (from then on everyone signs in). Every change is in the audit log.
- Forms are CSRF-checked (:data:`~helixserve.serving.deps.PostedForm`); a refusal shows the page
  again at the error table's status with the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from helixserve.error_table import status_of
from helixserve.errors import Forbidden, HelixError, InputError
from helixserve.serving.deps import PageCaller, PagesDep, PostedForm, ServerDep, page_guard
from helixserve.serving.routes.ui_workspace import see
from helixserve.serving.workspace_pages import text
from helixserve.workspace import accounts, audit, keys
from helixserve.workspace.members import Principal, visible_projects
from helixserve.workspace.models import User

router = APIRouter(dependencies=[Depends(page_guard)], include_in_schema=False)


def _user(session: Session, who: Principal) -> User:
    user = session.get(User, who.user_id) if who.kind == "user" and who.user_id else None
    if user is None:
        raise Forbidden("this page is a signed-in user's; sign in (helixserve users add NAME).")
    return user


def _account(
    request: Request, page: PagesDep, server: ServerDep, who: Principal, **extra: Any
) -> Response:
    status = extra.pop("status", 200)
    with server.workspace_ready().db.session() as session:
        user = _user(session, who)
        projects = {p.id: p.name for p in visible_projects(session, who)}
        found = keys.user_keys(session, user)
    context = {"keys": found, "projects": projects, "errors": {}, **extra}
    return page(request, "account/account.html", status, **context)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, page: PagesDep, server: ServerDep, who: PageCaller) -> Response:
    return _account(request, page, server, who)


@router.post("/account/keys", response_class=HTMLResponse)
def make_key(
    request: Request, form: PostedForm, page: PagesDep, server: ServerDep, who: PageCaller
) -> Response:
    days = text(form, "days")
    try:
        expiry = keys.new_expiry(float(days)) if days else None
        with server.workspace_ready().db.session() as session:
            made, row = keys.create_key(
                session,
                _user(session, who),
                text(form, "scope"),
                label=text(form, "label"),
                project=text(form, "project") or None,
                expires_at=expiry,
            )
            audit.record(
                session, who, "key.create", project_id=row.project_id, target=f"key {row.id}"
            )
    except ValueError:
        return _account(
            request,
            page,
            server,
            who,
            status=422,
            errors={"days": f"{days!r} is not a number of days."},
        )
    except HelixError as err:
        return _account(request, page, server, who, status=status_of(err), message=str(err))
    return _account(request, page, server, who, new_key=made, status=201)


@router.post("/account/keys/{key_id}/revoke")
def revoke_key(key_id: str, _form: PostedForm, server: ServerDep, who: PageCaller) -> Response:
    with server.workspace_ready().db.session() as session:
        row = keys.revoke_key(session, _user(session, who), key_id)
        audit.record(session, who, "key.revoke", project_id=row.project_id, target=f"key {row.id}")
    server.access.forget_keys()
    return see("/account")


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request, form: PostedForm, page: PagesDep, server: ServerDep, who: PageCaller
) -> Response:
    try:
        with server.workspace_ready().db.session() as session:
            user = _user(session, who)
            accounts.change_password(session, user, text(form, "old"), text(form, "new"))
            audit.record(session, who, "user.password", target=f"user {user.name}")
    except HelixError as err:
        errors = {"password": str(err)}
        return _account(request, page, server, who, status=status_of(err), errors=errors)
    return see("/login")


# --- users (admins) -------------------------------------------------------------------------


def _admin(who: Principal) -> None:
    if who.kind == "local" or (who.kind == "user" and who.admin):
        return
    raise Forbidden("only an admin manages users; ask one (helixserve users list shows them).")


def _users(
    request: Request, page: PagesDep, server: ServerDep, who: Principal, **extra: Any
) -> Response:
    _admin(who)
    status = extra.pop("status", 200)
    with server.workspace_ready().db.session() as session:
        people = accounts.list_users(session)
    context = {"people": people, "values": {}, "errors": {}, **extra}
    return page(request, "account/users.html", status, **context)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, page: PagesDep, server: ServerDep, who: PageCaller) -> Response:
    return _users(request, page, server, who)


@router.post("/admin/users", response_class=HTMLResponse)
def add_user(
    request: Request, form: PostedForm, page: PagesDep, server: ServerDep, who: PageCaller
) -> Response:
    _admin(who)
    name, admin = text(form, "name"), text(form, "admin") == "true"
    try:
        with server.workspace_ready().db.session() as session:
            accounts.add_user(session, name, text(form, "password"), admin=admin)
            audit.record(session, who, "user.add", target=f"user {name}", details={"admin": admin})
    except HelixError as err:
        values, errors = {"name": name}, {"name": str(err)}
        return _users(
            request, page, server, who, status=status_of(err), values=values, errors=errors
        )
    server.access.refresh()  # the first user switches accounts on at once
    return see("/admin/users")


def _change(
    server: ServerDep,
    who: Principal,
    name: str,
    action: str,
    change: Callable[[Session, User], None],
) -> Response:
    _admin(who)
    with server.workspace_ready().db.session() as session:
        user = accounts.get_user(session, name)
        change(session, user)
        audit.record(session, who, action, target=f"user {name}")
    server.access.forget_keys()
    return see("/admin/users")


@router.post("/admin/users/{name}/disable")
def disable_user(name: str, _form: PostedForm, server: ServerDep, who: PageCaller) -> Response:
    return _change(
        server, who, name, "user.disable", lambda s, u: accounts.set_disabled(s, u, True)
    )


@router.post("/admin/users/{name}/enable")
def enable_user(name: str, _form: PostedForm, server: ServerDep, who: PageCaller) -> Response:
    return _change(
        server, who, name, "user.enable", lambda s, u: accounts.set_disabled(s, u, False)
    )


@router.post("/admin/users/{name}/reset")
def reset_user(name: str, form: PostedForm, server: ServerDep, who: PageCaller) -> Response:
    password = text(form, "password")
    if not password:
        raise InputError("type the new password first.")
    return _change(
        server, who, name, "user.reset", lambda s, u: accounts.set_password(s, u, password)
    )
