"""Cross-site request forgery protection for the web UI's forms (double-submit cookie).

Contract:
- Every page rendered by :class:`~helixserve.serving.ui.Pages` has a ``csrf_token`` in its
  template context: the value of the ``hs_csrf`` cookie when the browser sent a well-formed one,
  else a new random token, which :func:`remember` then sets as that cookie (``HttpOnly``,
  ``SameSite=Strict``, path ``/``, and ``Secure`` when the request came over https). Each UI
  form carries the token in a hidden ``csrf_token`` field.
- :func:`checked_form` reads a UI form post and raises :class:`FormRefused` (shown as a 403 page)
  unless the field equals the cookie (compared in constant time) and the browser did not mark
  the request ``Sec-Fetch-Site: cross-site``. Another site can neither read nor set this
  server's cookie, so it cannot forge a matching pair. The JSON API is not affected: it takes
  no cookies (API keys travel in headers).
"""

from __future__ import annotations

import hmac
import re
import secrets

from fastapi import Request, Response
from starlette.datastructures import FormData

from helixserve.errors import Forbidden

COOKIE = "hs_csrf"
FIELD = "csrf_token"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class FormRefused(Forbidden):
    """A UI form post without a matching CSRF token, or sent from another site."""


def token(request: Request) -> str:
    """The page's token: the browser's cookie, or a new one (set by :func:`remember`)."""
    given = request.cookies.get(COOKIE, "")
    if _WELL_FORMED.fullmatch(given):
        return given
    fresh: str = getattr(request.state, "csrf_new", "") or secrets.token_urlsafe(24)
    request.state.csrf_new = fresh
    return fresh


def remember(request: Request, response: Response) -> None:
    """Set the cookie on ``response`` when :func:`token` made a new one."""
    fresh = getattr(request.state, "csrf_new", "")
    if fresh:
        secure = request.url.scheme == "https"
        response.set_cookie(
            COOKIE, fresh, httponly=True, samesite="strict", path="/", secure=secure
        )


async def checked_form(request: Request) -> FormData:
    """The posted form, once its token matches the cookie; see the module contract."""
    form = await request.form()
    field = form.get(FIELD)
    cookie = request.cookies.get(COOKIE, "")
    cross_site = request.headers.get("sec-fetch-site", "") == "cross-site"
    if (
        cross_site
        or not isinstance(field, str)
        or not cookie
        or not hmac.compare_digest(field.encode(), cookie.encode())
    ):
        raise FormRefused(
            "this form could not be accepted: it did not come from a page of this server, or "
            "the page is too old (its security token does not match). Reload the page and "
            "submit the form again."
        )
    return form
