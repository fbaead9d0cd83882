"""API keys: stored hashed, two scopes (``predict`` and ``admin``), never logged.

Contract:
- A configured key is an entry ``<scope>:<sha256 hex of the key>`` in ``HELIXSERVE_API_KEYS``
  (comma-separated); :func:`new_key` makes a random key and its entry (``helixserve keys new``).
  The plain key is never stored.
- Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (gRPC: the same names as
  metadata, lower-case).
- :meth:`KeyRing.check` raises :class:`~helixserve.errors.AuthError` (401) for a missing or
  unknown key, :class:`~helixserve.errors.Forbidden` (403) for a ``predict`` key on an admin
  route. ``predict`` routes are open when no ``predict`` key is configured (the local
  quickstart); ``admin`` routes are open only when no key at all is
  configured. An ``admin`` key may also predict.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Literal

from helixserve.errors import AuthError, Forbidden
from helixserve.settings import check_key_entry

Scope = Literal["predict", "admin"]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(scope: Scope) -> tuple[str, str]:
    """A fresh random key and the settings entry that accepts it."""
    key = "hs_" + secrets.token_urlsafe(32)
    return key, f"{scope}:{hash_key(key)}"


class KeyRing:
    """The accepted keys; see the module contract."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._scopes: dict[str, Scope] = {}
        for entry in entries:
            scope, digest = check_key_entry(entry).split(":")
            if self._scopes.get(digest) != "admin":
                self._scopes[digest] = "admin" if scope == "admin" else "predict"
        self.predict_open = "predict" not in self._scopes.values()
        self.admin_open = not self._scopes

    def scopes(self) -> dict[str, Scope]:
        """Each configured key's sha256 and the scope it grants."""
        return dict(self._scopes)

    def is_open(self, scope: Scope) -> bool:
        """Whether ``scope`` needs no key here (see the module contract)."""
        return self.predict_open if scope == "predict" else self.admin_open

    def scope_of(self, key: str) -> Scope:
        """The scope ``key`` grants; :class:`AuthError` (401) for a key that is not configured."""
        granted = self._scopes.get(hash_key(key))
        if granted is None:
            raise AuthError("the API key is not valid; check it, or ask for a new one.")
        return granted

    def check(self, key: str | None, scope: Scope) -> None:
        if self.is_open(scope):
            return
        if not key:
            raise AuthError(
                f"this route needs an API key with the {scope!r} scope: send it as "
                "'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
            )
        granted = self.scope_of(key)
        if scope == "admin" and granted != "admin":
            raise Forbidden(
                "this route needs an API key with the 'admin' scope; this key has only 'predict'."
            )


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
