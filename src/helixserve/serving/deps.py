"""The route table's shared dependencies (FastAPI ``Depends``): the one place a route gets its
server, key, model, limits, page renderer or checked form from.

Contract:
- :func:`get_server` is the :class:`~helixserve.serving.server.Server` the app was built for
  (``app.state.server``); route handlers are module-level functions and reach state only
  through these dependencies.
- :func:`api_key` is the caller's key (``Authorization: Bearer`` or ``X-API-Key``);
  :func:`predict_model` resolves ``{name}`` at ``?version=`` (number or alias; default: the
  production alias, else the latest) after checking the key's ``predict`` scope, raising
  :class:`~helixserve.errors.AuthError` / :class:`~helixserve.errors.ModelNotFound`;
  :func:`admin_scope` checks the ``admin`` scope.
- Workspace API: :func:`caller` (``CallerDep``) is the principal calling
  (:class:`~helixserve.serving.access.Access`); :func:`project_caller`, the guard of every
  workspace route, also checks the role the route needs in its ``{project}``
  (:func:`~helixserve.serving.access.needed_role`).
- :func:`get_workspace` (``WorkspaceDep``) is the server's workspace, or 503 when its database
  is not available; routes open their own ``with workspace.db.session()`` so that a failed
  commit is the route's error, never an error after the answer was sent.
- :func:`upload_limits` are the decompressed-size and record limits of uploaded files.
- Web UI: every page route is guarded by :func:`page_guard` (a key session while API keys are
  on, else :class:`~helixserve.serving.sessions.LoginNeeded`, answered with the key form).
  :func:`page_model` / :func:`dna_page_model` find the page's model or raise
  :class:`~helixserve.errors.NotFound`; :func:`posted_form` is the CSRF-checked form, or raises
  :class:`~helixserve.serving.csrf.FormRefused`. The app answers any error on a page with
  ``error.html`` at the status of :mod:`helixserve.error_table`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.datastructures import FormData

from helixserve.errors import Forbidden, InputError, NotFound
from helixserve.explain.ism import dna_schema
from helixserve.serving import csrf
from helixserve.serving.access import USER_COOKIE, needed_role
from helixserve.serving.auth import key_from_headers
from helixserve.serving.files import UploadLimits
from helixserve.serving.jobs import JobStore
from helixserve.serving.registry import LoadedModel
from helixserve.serving.server import Server
from helixserve.serving.sessions import COOKIE, LoginNeeded
from helixserve.serving.ui import Pages
from helixserve.workspace.members import LOCAL, Principal, require
from helixserve.workspace.space import Workspace


async def get_server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


async def api_key(request: Request) -> str | None:
    """The key of ``X-API-Key`` or ``Authorization: Bearer`` (ASGI header names are lower case;
    read straight from the scope, the last of a repeated header: this runs on every
    prediction)."""
    headers = dict(request.scope["headers"])
    authorization, x_api_key = headers.get(b"authorization"), headers.get(b"x-api-key")
    return key_from_headers(
        None if authorization is None else authorization.decode("latin-1"),
        None if x_api_key is None else x_api_key.decode("latin-1"),
    )


def request_id(request: Request) -> str:
    """The id :mod:`helixserve.serving.app` gave this request ("" outside it)."""
    return str(request.scope.get("state", {}).get("request_id", ""))


ServerDep = Annotated[Server, Depends(get_server)]
KeyDep = Annotated[str | None, Depends(api_key)]
VersionQuery = Annotated[
    str | None,
    Query(description="version number or alias; default: the production alias, else the latest"),
]


async def predict_model(
    name: str, server: ServerDep, key: KeyDep, version: VersionQuery = None
) -> LoadedModel:
    """``name`` at ``version``, for a key with the ``predict`` scope."""
    return server.model(name, version, key)


async def get_workspace(server: ServerDep) -> Workspace:
    """The server's workspace, or 503 saying why it is not available."""
    return server.workspace_ready()


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]


async def admin_scope(server: ServerDep, key: KeyDep) -> None:
    server.keys.check(key, "admin")


def caller(server: ServerDep, key: KeyDep) -> Principal:
    """Whoever calls a workspace API route (:meth:`~helixserve.serving.access.Access.
    workspace_caller`; a plain ``def``: a user's key may need the database)."""
    return server.access.workspace_caller(key)


CallerDep = Annotated[Principal, Depends(caller)]


def project_caller(request: Request, who: CallerDep, workspace: WorkspaceDep) -> Principal:
    """The caller, checked for the role the route needs in its ``{project}`` (every workspace
    API route's guard; :func:`~helixserve.workspace.members.require`)."""
    project = request.path_params.get("project")
    if project is not None:
        with workspace.db.session() as session:
            require(session, who, project, needed_role(request.scope["route"]))
    return who


async def upload_limits(server: ServerDep) -> UploadLimits:
    return server.upload_limits


ModelDep = Annotated[LoadedModel, Depends(predict_model)]
LimitsDep = Annotated[UploadLimits, Depends(upload_limits)]


# --- web UI ---------------------------------------------------------------------------------


async def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


async def get_jobs(request: Request) -> JobStore:
    jobs: JobStore = request.app.state.jobs
    return jobs


PagesDep = Annotated[Pages, Depends(get_pages)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]


def page_caller(request: Request, server: ServerDep) -> Principal:
    """Whoever looks at a UI page (kept on ``request.state.who`` for the page's header): while
    accounts are on, the signed-in user, else a key session, else
    :class:`~helixserve.serving.sessions.LoginNeeded` (the sign-in form); before accounts, the
    key session while API keys are on (:meth:`Server.check_page`), else the local owner."""
    who = _page_caller(request, server)
    request.state.who = who
    return who


def _page_caller(request: Request, server: Server) -> Principal:
    access = server.access
    access.recheck()
    if access.accounts_on:
        user = access.for_session(request.cookies.get(USER_COOKIE))
        if user is not None:
            return user
    scope = server.sessions.scope(request.cookies.get(COOKIE))
    if scope is not None:
        return Principal("service", f"{scope} key", admin=scope == "admin", scope=scope)
    if access.accounts_on:
        raise LoginNeeded("sign in to use this server.")
    server.check_page(None)  # raises the key form while predict keys are on
    return LOCAL if server.keys.admin_open else Principal("service", "anyone")


PageCaller = Annotated[Principal, Depends(page_caller)]


def page_guard(who: PageCaller) -> None:
    """Every UI route: someone may look (:func:`page_caller`)."""


def workspace_page_guard(
    request: Request, who: PageCaller, server: ServerDep, space: WorkspaceDep
) -> None:
    """Every workspace page: a caller who may use the workspace (a key session needs the
    ``admin`` scope), with the role the route needs in its ``{project}``."""
    if who.kind == "service" and who.scope is None:  # no session, and admin keys are on
        server.check_page(None, "admin")
    if who.kind == "service" and not who.admin:
        raise Forbidden(
            "this page needs a key with the 'admin' scope; the key entered has only 'predict'. "
            "Choose Forget key and enter an admin key."
        )
    project = request.path_params.get("project")
    if project is not None:
        with space.db.session() as session:
            require(session, who, project, needed_role(request.scope["route"]))


def page_model(
    name: str, server: ServerDep, who: PageCaller, version: str | None = None
) -> LoadedModel:
    """The model a page shows, if the caller may use it; an unknown one raises
    :class:`~helixserve.errors.ModelNotFound`, shown as the 404 error page."""
    if server.access.accounts_on:
        server.access.check_model(who, name)
    return server.registry.resolve(name, version)


async def dna_page_model(model: Annotated[LoadedModel, Depends(page_model)]) -> LoadedModel:
    """The model of a DNA-only page (variants, design); a model that does not take DNA has no
    such page (:class:`~helixserve.errors.NotFound`)."""
    try:
        dna_schema(model.predictor)
    except InputError as err:
        raise NotFound(str(err)) from None
    return model


async def posted_form(request: Request) -> FormData:
    """The form of a UI post, CSRF-checked (:class:`~helixserve.serving.csrf.FormRefused`, a
    :class:`~helixserve.errors.Forbidden`: the 403 error page)."""
    return await csrf.checked_form(request)


PageModel = Annotated[LoadedModel, Depends(page_model)]
DnaPageModel = Annotated[LoadedModel, Depends(dna_page_model)]
PostedForm = Annotated[FormData, Depends(posted_form)]
