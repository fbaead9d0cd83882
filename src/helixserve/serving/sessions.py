"""Key sessions for the web UI: with API keys on, a person enters a key once and the browser keeps
a session cookie. The API never reads that cookie.

Contract:
- :class:`SessionBook` issues and checks session tokens: a fingerprint of the key entered (an
  HMAC of its sha256 under the secret: never the key, nor its hash), an expiry
  :data:`SESSION_TTL_S` after sign-in and a random nonce, signed with HMAC-SHA256 under the
  server's session secret. The scope comes from the keys configured *now*: a session of a key
  that was removed is no session, and a key moved from admin to predict has predict. A token that
  was changed, signed under another secret, is not ASCII or has expired is no session.
- The secret is ``HELIXSERVE_SESSION_SECRET``; ``helixserve serve --workers N`` makes one for its
  workers when it is unset, so every worker of one server accepts the same sessions. Several
  replicas behind a load balancer need the setting (the same value in each). Unset with one
  process: a random secret, so a restart signs everyone out.
- Sign-out (``close``) clears the browser's cookie and revokes the token in this process (at
  most :data:`MAX_REVOKED` remembered until they expire); another process still honours a copy
  of the cookie until it expires.
- :func:`check_page` guards a UI page: nothing to do when the scope needs no key (see
  :class:`~helixserve.serving.auth.KeyRing`); else it raises :class:`LoginNeeded` (shown as the
  key form, status 401) without a live session, or :class:`~helixserve.errors.Forbidden` (403)
  for an ``admin`` page and a ``predict`` session.
- :func:`cookie_options` are the session cookie's attributes: ``HttpOnly``, ``SameSite=Strict``,
  ``Path=/``, ``Max-Age`` the TTL, and ``Secure`` when the request came over https.
- The API (``/api/v1``, ``/v2``, gRPC) ignores the cookie and keeps requiring the key in a
  header: a browser sends cookies on its own, so a cookie there would open the API to
  cross-site request forgery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from helixserve.errors import AuthError, Forbidden
from helixserve.serving.auth import KeyRing, Scope, hash_key

COOKIE = "hs_session"
SESSION_TTL_S = 12 * 3600
MAX_REVOKED = 10_000


class LoginNeeded(AuthError):
    """A UI page behind API keys was asked for without a live key session."""


class SessionBook:
    """Signed UI session tokens; see the module contract."""

    def __init__(
        self,
        keys: KeyRing,
        secret: bytes | None = None,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.ttl_s, self.clock = ttl_s, clock
        self._holders = {self._sign(digest)[:22]: scope for digest, scope in keys.scopes().items()}
        self._revoked: OrderedDict[str, float] = OrderedDict()

    def open(self, key: str) -> str:
        """A new signed session token for a configured ``key`` (the browser's cookie value)."""
        body = f"{self._sign(hash_key(key))[:22]}.{int(self.clock() + self.ttl_s)}."
        body += secrets.token_urlsafe(16)
        return f"{body}.{self._sign(body)}"

    def scope(self, token: str | None) -> Scope | None:
        """The scope of a live session, or ``None`` (no, forged, revoked or expired token, or a
        key no longer configured)."""
        if not token or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 4:
            return None
        expected = self._sign(".".join(parts[:3])).encode("ascii")
        if not hmac.compare_digest(expected, parts[3].encode("ascii")):
            return None
        holder, expiry, nonce = parts[0], parts[1], parts[2]
        if not expiry.isdigit() or int(expiry) <= self.clock() or nonce in self._revoked:
            return None
        return self._holders.get(holder)

    def close(self, token: str | None) -> None:
        """Revoke a session in this process (sign-out); unknown tokens are ignored."""
        if self.scope(token) is None or token is None:
            return
        parts = token.split(".")
        self._revoked[parts[2]] = float(parts[1])
        now = self.clock()
        for nonce, expiry in list(self._revoked.items()):
            if expiry <= now or len(self._revoked) > MAX_REVOKED:
                del self._revoked[nonce]

    def _sign(self, body: str) -> str:
        digest = hmac.new(self.secret, body.encode("ascii"), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


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
        raise Forbidden(
            "this page needs a key with the 'admin' scope; the key entered has only 'predict'. "
            "Choose Forget key and enter an admin key."
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
