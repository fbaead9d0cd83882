"""Who is calling: the principal of a request, from a key or a signed-in browser (issue 17).

Contract:
- :class:`Access` holds what the server knows about accounts: whether any user exists
  (:attr:`Access.accounts_on`, read when the workspace opens and refreshed at every sweep and
  after a change made through this server) and a short cache of users' keys.
- :meth:`Access.for_key` resolves a presented key: a service key of ``HELIXSERVE_API_KEYS``
  (:class:`~helixserve.serving.auth.KeyRing`) is the ``service`` principal of its scope; a
  user's key (``hsu_...``) is that user's principal
  (:func:`helixserve.workspace.keys.key_principal`), cached :data:`KEY_CACHE_S` seconds (a
  revoked key stops working at once in the process that revoked it, within that time
  elsewhere). Anything else is :class:`~helixserve.errors.AuthError` (401), worded the same for
  every kind of bad key.
- :meth:`Access.for_session` is the user of a browser's sign-in cookie, or ``None``.
- :meth:`Access.anonymous` is whoever sends nothing: the ``local`` owner while no user exists
  and no key is configured (the single-person workspace of ``make run``); else ``None``.
- :meth:`Access.workspace_caller` is whoever may use the workspace at all: a key's principal, else
  the browser's signed-in user, else the anonymous one; nobody is 401 (worded for keys while no
  user exists, as before accounts), and a service key of the ``predict`` scope is 403.
- Models: a model deployed from a project belongs to that project: its last ``deployments`` row
  (:attr:`Access.model_projects`, refreshed with :attr:`accounts_on` and at each deploy here),
  else the ``project_id`` in its served bundles' lineage (``served_project``: known the moment
  another process's deploy is served here, before this process reads the deployment). While
  accounts are on, :meth:`Access.model_caller` is whoever calls a model (a key, else the signed-in
  user; nobody: 401) and :meth:`Access.check_model` lets a principal use a project's model only
  with a role in the project (else the model is not found, worded as for an unknown one: no
  listing of names); models of no project (the pretrained zoo, ``helixserve models push``) are
  open to every principal, and service keys use every model (the operator made them). A user's
  role in a project is cached :data:`KEY_CACHE_S` seconds per user and project.
- :func:`needed_role` is the role a workspace route needs in its ``{project}``: declared in the
  route table as ``openapi_extra={ROLE: "owner"}`` (shown in the OpenAPI document), else
  ``viewer`` to read (``GET``) and ``editor`` to change anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.routing import APIRoute
from sqlalchemy import select

from helixserve.errors import AuthError, DatabaseError, Forbidden, ModelNotFound
from helixserve.serving.auth import KeyRing
from helixserve.workspace import accounts
from helixserve.workspace.keys import PREFIX, key_principal
from helixserve.workspace.members import LOCAL, Principal, role_in
from helixserve.workspace.models import Deployment, Project, Role
from helixserve.workspace.space import Workspace

KEY_CACHE_S = 5.0
RECHECK_S = 1.0
BAD_KEY = "the API key is not valid; check it, or ask for a new one."
SIGN_IN = (
    "this route needs you to sign in, or an API key: send it as 'Authorization: Bearer <key>' "
    "or 'X-API-Key: <key>'."
)
ROLE = "x-helixserve-role"
USER_COOKIE = "hs_user"  # a signed-in user's session token (see :mod:`.routes.ui_login`)


def needed_role(route: APIRoute) -> Role:
    """The role ``route`` needs in its project (see the module contract)."""
    declared = (route.openapi_extra or {}).get(ROLE)
    if declared is not None:
        return Role(declared)
    return Role.VIEWER if (route.methods or set()) <= {"GET", "HEAD"} else Role.EDITOR


class Access:
    """See the module contract."""

    def __init__(
        self,
        keys: KeyRing,
        workspace: Workspace,
        clock: Callable[[], float] = time.monotonic,
        served_project: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        self.keys = keys
        self.workspace = workspace
        self._served_project = served_project
        self._accounts_on = False
        self.model_projects: dict[str, str] = {}
        self._clock = clock
        self._user_keys: dict[str, tuple[float, Principal | None]] = {}
        self._roles: dict[tuple[str, str, str], tuple[float, Role | None]] = {}
        self._refreshed = float("-inf")

    def refresh(self) -> None:
        """Read whether any user exists and which project each deployed model belongs to (the
        workspace must be open)."""
        self._refreshed = self._clock()
        with self.workspace.db.session() as session:
            self._accounts_on = accounts.has_users(session)
            deployed = session.execute(select(Deployment.model, Deployment.project_id))
            self.model_projects = {model: project for model, project in deployed}

    def model_caller(self, key: str | None, user_token: str | None = None) -> Principal:
        """Whoever calls a model while accounts are on (see the module contract)."""
        who = self.for_key(key) if key else self.for_session(user_token) or self.anonymous()
        if who is None:
            raise AuthError(SIGN_IN)
        return who

    def project_of(self, name: str) -> str | None:
        """The project a model belongs to: its last deployment, else its served bundles'."""
        return self.model_projects.get(name) or self._served_project(name)

    def may_use_model(self, who: Principal, name: str) -> bool:
        project_id = self.project_of(name)
        if project_id is None or who.kind != "user" or who.user_id is None:
            return True
        cache_key, now = (who.user_id, who.key_project or "", project_id), self._clock()
        cached = self._roles.get(cache_key)
        if cached is None or now - cached[0] > KEY_CACHE_S:
            with self.workspace.db.session() as session:
                project = session.get(Project, project_id)
                cached = (now, None if project is None else role_in(session, who, project))
            self._roles[cache_key] = cached
        return cached[1] is not None

    def check_model(self, who: Principal, name: str) -> None:
        if not self.may_use_model(who, name):
            raise ModelNotFound(f"no model named {name!r} is served.")

    def forget_keys(self) -> None:
        """Drop the caches of users' keys and roles (after a key was revoked, a member removed or
        a user disabled here)."""
        self._user_keys.clear()
        self._roles.clear()

    @property
    def accounts_on(self) -> bool:
        """Whether any user exists. While none does, every read looks again when the last look is
        over :data:`RECHECK_S` old (:meth:`recheck`), so each server process notices the first
        user within a second, whichever process (or ``helixserve users add``) made it."""
        self.recheck()
        return self._accounts_on

    def recheck(self) -> None:
        """While accounts are off, read them again when the last look is over
        :data:`RECHECK_S` old: a user added by another process (``helixserve users add``) ends
        the open server within a second, not at the next sweep. A database that cannot be read
        leaves things as they were (the workspace routes answer 503 on their own)."""
        if self._accounts_on or self._clock() - self._refreshed <= RECHECK_S:
            return
        try:
            self.refresh()
        except DatabaseError:
            self._refreshed = self._clock()

    def anonymous(self) -> Principal | None:
        """The local owner while accounts are off and no key is configured."""
        self.recheck()
        return LOCAL if not self.accounts_on and self.keys.admin_open else None

    def for_key(self, key: str) -> Principal:
        if not key.startswith(PREFIX):
            scope = self.keys.scope_of(key)  # AuthError for an unknown key
            return Principal("service", f"{scope} key", admin=scope == "admin", scope=scope)
        digest = accounts.token_digest(key)
        now = self._clock()
        cached = self._user_keys.get(digest)
        if cached is None or now - cached[0] > KEY_CACHE_S:
            with self.workspace.db.session() as session:
                cached = (now, key_principal(session, key))
            self._user_keys[digest] = cached
        if cached[1] is None:
            raise AuthError(BAD_KEY)
        return cached[1]

    def for_session(self, token: str | None) -> Principal | None:
        if not token or not self.accounts_on:
            return None
        with self.workspace.db.session() as session:
            user = accounts.session_user(session, token)
            if user is None:
                return None
            return Principal("user", user.name, user.id, admin=user.admin)

    def workspace_caller(self, key: str | None, user_token: str | None = None) -> Principal:
        """Whoever may use the workspace (see the module contract)."""
        who = self.for_key(key) if key else self.for_session(user_token) or self.anonymous()
        if who is None:
            if self.accounts_on:
                raise AuthError(SIGN_IN)
            self.keys.check(None, "admin")  # raises: "this route needs an API key with ..."
            raise AuthError(SIGN_IN)
        if who.kind == "service" and not who.admin:
            raise Forbidden(
                "this route needs an API key with the 'admin' scope; this key has only 'predict'."
            )
        return who
