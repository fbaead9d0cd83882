"""The web UI's key form: with API keys on, a person enters a key once per browser session
(routes in :mod:`helixserve.serving.routes.ui_login`).

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

from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import Response

from helixserve.serving.sessions import local_path

if TYPE_CHECKING:
    from helixserve.serving.ui import Pages


def back_to(request: Request) -> str:
    """The page to return to after signing in: this one, or for a form post the form's page."""
    path = request.url.path
    if request.method != "GET" and path.endswith("/upload"):
        path = path.removesuffix("/upload") + "/predict"
    query = request.url.query
    return local_path(path + (f"?{query}" if query else ""))


def login_form(
    page: Pages,
    request: Request,
    status: int,
    message: str | None,
    next_path: str,
    user: str = "",
) -> Response:
    """The sign-in form (``login.html``) with ``message``, the page to return to and the user
    name typed (never the password)."""
    return page(request, "login.html", status, message=message, next=next_path, user=user)
