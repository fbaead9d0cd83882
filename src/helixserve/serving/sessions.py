"""Key sessions for the web UI: with API keys on, a person enters a key once and the browser keeps
a session cookie. The API never reads that cookie.

Contract:
- :class:`SessionBook` maps a random session id (32 random bytes, URL-safe) to the *scope* the
  key granted (``predict`` or ``admin``) and an expiry: never the key, nor its hash. Ids are
  stored hashed (sha256), so the book's memory holds nothing a browser could replay. A session
  lasts :data:`SESSION_TTL_S` from sign-in; at most :data:`MAX_SESSIONS` are kept (the oldest
  are forgotten first).
- The book lives in this process's memory: a restart forgets every session, and with
  ``--workers`` above 1 each process has its own book, so a browser may be asked for the key
  again when another worker answers (run one worker, or a load balancer with sticky sessions,
  for the web UI behind keys).
- :func:`check_page` guards a UI page: nothing to do when the scope needs no key (see
  :class:`~helixserve.serving.auth.KeyRing`); else it raises :class:`LoginNeeded` (shown as the
  key form, status 401) without a live session, or :class:`~helixserve.errors.AuthError` (403)
  for an ``admin`` page and a ``predict`` session.
- :func:`cookie_options` are the session cookie's attributes: ``HttpOnly``, ``SameSite=Strict``,
  ``Path=/``, ``Max-Age`` the TTL, and ``Secure`` when the request came over https.
- The API (``/api/v1``, ``/v2``, gRPC) ignores the cookie and keeps requiring the key in a
  header: a browser sends cookies on its own, so a cookie there would open the API to
  cross-site request forgery.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from helixserve.errors import AuthError
from helixserve.serving.auth import KeyRing, Scope

COOKIE = "hs_session"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 10_000


class LoginNeeded(AuthError):
    """A UI page behind API keys was asked for without a live key session."""


class SessionBook:
    """Live UI sessions of this process; see the module contract."""

    def __init__(
        self,
        ttl_s: float = SESSION_TTL_S,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.limit, self.clock = ttl_s, limit, clock
        self._live: OrderedDict[str, tuple[Scope, float]] = OrderedDict()

    def open(self, scope: Scope) -> str:
        """A new session id for ``scope`` (the browser's cookie value)."""
        session_id = secrets.token_urlsafe(32)
        self._live[_digest(session_id)] = (scope, self.clock() + self.ttl_s)
        while len(self._live) > self.limit:
            self._live.popitem(last=False)
        return session_id

    def scope(self, session_id: str | None) -> Scope | None:
        """The scope of a live session, or ``None`` (no, unknown or expired session)."""
        if not session_id:
            return None
        digest = _digest(session_id)
        found = self._live.get(digest)
        if found is None:
            return None
        if found[1] <= self.clock():
            del self._live[digest]
            return None
        return found[0]

    def close(self, session_id: str | None) -> None:
        """Forget a session (sign-out); unknown ids are ignored."""
        if session_id:
            self._live.pop(_digest(session_id), None)

    def __len__(self) -> int:
        return len(self._live)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def check_page(keys: KeyRing, book: SessionBook, session_id: str | None, scope: Scope) -> None:
    """Raise unless a UI page of ``scope`` may be shown (see the module contract)."""
    if keys.is_open(scope):
        return
    granted = book.scope(session_id)
    if granted is None:
        raise LoginNeeded(
            "this server needs an API key: enter it once below and this browser keeps a session "
            f"for {SESSION_TTL_S // 3600} hours (or until you choose Forget key)."
        )
    if scope == "admin" and granted != "admin":
        raise AuthError(
            "this page needs a key with the 'admin' scope; the key entered has only 'predict'. "
            "Choose Forget key and enter an admin key.",
            status=403,
        )


def cookie_options(https: bool) -> dict[str, Any]:
    """Keyword arguments of ``Response.set_cookie`` for the session cookie."""
    return {
        "max_age": SESSION_TTL_S,
        "httponly": True,
        "samesite": "strict",
        "secure": https,
        "path": "/",
    }


def local_path(target: str) -> str:
    """``target`` if it is a path on this server (``/models/x?version=2``), else ``/``: a sign-in
    form never sends a browser to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    return target
