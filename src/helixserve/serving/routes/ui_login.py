"""``/login`` and ``/logout``: the web UI's key sessions (see :mod:`helixserve.serving.ui_login`).

Contract: ``GET /login`` shows the key form; ``POST /login`` (``key``, ``next``, CSRF token)
opens a session for a configured key and redirects (303) to ``next`` when it is a local path,
else shows the form again (401); ``POST /logout`` forgets the session and redirects to
``/login``. These routes are not behind the page guard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from helixserve.error_table import status_of
from helixserve.errors import AuthError
from helixserve.serving.deps import PagesDep, PostedForm, ServerDep
from helixserve.serving.sessions import COOKIE, cookie_options, local_path
from helixserve.serving.ui_login import login_form

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, page: PagesDep, to: Annotated[str, Query(alias="next")] = "/"
) -> Response:
    return login_form(page, request, 200, None, local_path(to))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, posted: PostedForm, server: ServerDep, page: PagesDep
) -> Response:
    next_path = local_path(str(posted.get("next") or "/"))
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


@router.post("/logout")
async def logout(request: Request, _form: PostedForm, server: ServerDep) -> Response:
    server.sessions.close(request.cookies.get(COOKIE))
    reply = RedirectResponse("/login", 303)
    https = request.url.scheme == "https"
    reply.delete_cookie(COOKIE, path="/", secure=https, httponly=True, samesite="strict")
    return reply
