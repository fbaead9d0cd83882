"""The web UI's key form: with API keys on, a person enters a key once per browser session.

Contract:
- A UI page asked for without a key session (:class:`~helixserve.serving.sessions.LoginNeeded`)
  is answered with the key form (``login.html``, status 401) in its place; the form's ``next``
  field brings the person back to that page (for a form post: to the page that holds the form).
  Raised on an API route (not a page, see :func:`~helixserve.serving.problems.is_page`), it is
  answered like every error there (401 problem+json or ``{"error": ...}``).
- ``GET /login`` shows the form (or says that this server needs no key). ``POST /login`` (fields
  ``key``, ``next``, ``csrf_token``; the CSRF check of :mod:`helixserve.serving.csrf`) checks the
  key: a valid one opens a session and sets its cookie (see
  :func:`~helixserve.serving.sessions.cookie_options`), then redirects (303) to ``next`` when it
  is a path on this server, else to ``/``; a wrong one shows the form again with the key error
  (401). The key itself is never stored, logged or echoed.
- ``POST /logout`` (the "Forget key" button on every page; CSRF-checked) forgets the session,
  deletes the cookie and redirects (303) to ``/login``. Signing in again also forgets the
  browser's previous session.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from helixserve.error_table import status_of
from helixserve.errors import AuthError
from helixserve.serving import csrf
from helixserve.serving.problems import is_page
from helixserve.serving.server import Server
from helixserve.serving.sessions import COOKIE, LoginNeeded, cookie_options, local_path

if TYPE_CHECKING:
    from helixserve.serving.ui import Pages


def back_to(request: Request) -> str:
    """The page to return to after signing in: this one, or for a form post the form's page."""
    path = request.url.path
    if request.method != "GET" and path.endswith("/upload"):
        path = path.removesuffix("/upload") + "/predict"
    query = request.url.query
    return local_path(path + (f"?{query}" if query else ""))


def mount_login(api: FastAPI, server: Server, page: Pages) -> None:
    """Add ``/login``, ``/logout`` and the key form shown for :class:`LoginNeeded`."""

    def form(request: Request, status: int, message: str | None, next_path: str) -> Response:
        return page(request, "login.html", status, message=message, next=next_path)

    async def needs_key(request: Request, err: Exception) -> Response:
        if not is_page(request.url.path):  # an API route: the app's one error handler answers
            answer = api.exception_handlers[Exception](request, err)
            return await answer if inspect.isawaitable(answer) else answer
        return form(request, status_of(err), str(err), back_to(request))

    api.add_exception_handler(LoginNeeded, needs_key)

    @api.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(
        request: Request, to: Annotated[str, Query(alias="next")] = "/"
    ) -> Response:
        return form(request, 200, None, local_path(to))

    @api.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(request: Request) -> Response:
        try:
            posted = await csrf.checked_form(request)
        except csrf.FormRefused as err:
            return page.error(request, err)
        next_path = local_path(str(posted.get("next") or "/"))
        key = str(posted.get("key") or "").strip()
        if not key:
            return form(request, 401, "enter an API key first.", next_path)
        try:
            server.keys.scope_of(key)  # a key that is not configured is refused here
        except AuthError as err:
            return form(request, status_of(err), str(err), next_path)
        server.sessions.close(request.cookies.get(COOKIE))  # a new sign-in replaces the old one
        reply = RedirectResponse(next_path, 303)
        https = request.url.scheme == "https"
        reply.set_cookie(COOKIE, server.sessions.open(key), **cookie_options(https))
        return reply

    _logout_route(api, server, page)


def _logout_route(api: FastAPI, server: Server, page: Pages) -> None:
    @api.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        try:
            await csrf.checked_form(request)
        except csrf.FormRefused as err:
            return page.error(request, err)
        server.sessions.close(request.cookies.get(COOKIE))
        reply = RedirectResponse("/login", 303)
        https = request.url.scheme == "https"
        reply.delete_cookie(COOKIE, path="/", secure=https, httponly=True, samesite="strict")
        return reply
