"""``/login`` and ``/logout``: signing in to the web UI (see :mod:`helixserve.serving.ui_login`).

Contract: ``GET /login`` shows the sign-in form (user name and password while accounts are on;
the key form while API keys are on). ``POST /login`` with ``user`` and ``password`` (and
``next``, CSRF token) checks the throttle (:mod:`helixserve.workspace.throttle`, shared by
every server process: 429 while the name or address is blocked), then the password
(:func:`~helixserve.workspace.accounts.authenticate`: one message for every failure, 401; the
failure counted in its own transaction). A success closes the browser's previous session, opens
a new one (a new token: no session fixation), sets its cookie
(:data:`~helixserve.serving.access.USER_COOKIE`, ``HttpOnly``, ``SameSite=Strict``, ``Secure``
over https) and redirects (303) to ``next`` when it is a local path. ``POST /login`` with
``key`` opens a key session as before. ``POST /logout`` deletes the session server-side, clears
both cookies and redirects to ``/login``. These routes are not behind the page guard.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from helixserve.error_table import status_of
from helixserve.errors import AuthError, HelixError
from helixserve.serving.access import USER_COOKIE
from helixserve.serving.deps import PagesDep, PostedForm, ServerDep
from helixserve.serving.server import Server
from helixserve.serving.sessions import COOKIE, cookie_options, local_path
from helixserve.serving.ui import Pages
from helixserve.serving.ui_login import login_form
from helixserve.workspace import accounts, audit, throttle
from helixserve.workspace.accounts import SESSION_TTL_S
from helixserve.workspace.members import Principal

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, page: PagesDep, to: Annotated[str, Query(alias="next")] = "/"
) -> Response:
    return login_form(page, request, 200, None, local_path(to))


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, posted: PostedForm, server: ServerDep, page: PagesDep) -> Response:
    next_path = local_path(str(posted.get("next") or "/"))
    if "user" in posted:
        return _sign_in(request, posted, server, page, next_path)
    key = str(posted.get("key") or "").strip()
    if not key:
        return login_form(page, request, 401, "enter an API key first.", next_path)
    try:
        server.keys.scope_of(key)  # a key that is not configured is refused here
    except AuthError as err:
        return login_form(page, request, status_of(err), str(err), next_path)
    server.sessions.close(request.cookies.get(COOKIE))  # a new sign-in replaces the old one
    reply = RedirectResponse(next_path, 303)
    https = request.url.scheme == "https"
    reply.set_cookie(COOKIE, server.sessions.open(key), **cookie_options(https))
    return reply


def _sign_in(
    request: Request, posted: FormData, server: Server, page: Pages, next_path: str
) -> Response:
    name, password = str(posted.get("user") or "").strip(), str(posted.get("password") or "")
    address = request.client.host if request.client else None
    db = server.workspace_ready().db
    try:
        with db.session() as session:
            throttle.check(session, name, address, time.time())
        try:
            with db.session() as session:
                user = accounts.authenticate(session, name, password)
                throttle.succeeded(session, name)
                old = request.cookies.get(USER_COOKIE)
                if old:
                    accounts.close_session(session, old)
                token = accounts.open_session(session, user)
                who = Principal("user", user.name, user.id, admin=user.admin)
                target = f"user {user.name}"
                audit.record(session, who, "user.signin", target=target, address=address)
        except accounts.SignInFailed:
            with db.session() as session:  # its own transaction: the failure must be kept
                throttle.failed(session, name, address, time.time())
            raise
    except HelixError as err:
        return login_form(page, request, status_of(err), str(err), next_path, name)
    reply = RedirectResponse(next_path, 303)
    options = {**cookie_options(request.url.scheme == "https"), "max_age": SESSION_TTL_S}
    reply.set_cookie(USER_COOKIE, token, **options)
    return reply


@router.post("/logout")
def logout(request: Request, _form: PostedForm, server: ServerDep) -> Response:
    server.sessions.close(request.cookies.get(COOKIE))
    token = request.cookies.get(USER_COOKIE)
    if token:
        with server.workspace_ready().db.session() as session:
            accounts.close_session(session, token)
    reply = RedirectResponse("/login", 303)
    https = request.url.scheme == "https"
    for cookie in (COOKIE, USER_COOKIE):
        reply.delete_cookie(cookie, path="/", secure=https, httponly=True, samesite="strict")
    return reply
