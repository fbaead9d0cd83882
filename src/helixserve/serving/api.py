"""The FastAPI app: the route table of :mod:`helixserve.serving.routes` bound to one server.

Contract:
- :func:`build_api` makes the app, puts the server, the page renderer and the job list in
  ``app.state`` (where :mod:`helixserve.serving.deps` finds them), mounts ``/static`` and
  ``/docs`` with its assets (:mod:`helixserve.serving.api_docs`; no ``/redoc``) and includes
  every router of :data:`~helixserve.serving.routes.ROUTERS`. Its lifespan starts and stops the
  server.
- Every error is problem+json (OIP routes: ``{"error": ...}``; UI pages: the error page or the
  key form), including FastAPI's own validation errors and unknown paths; nothing answers with
  a traceback. Exceptions are mapped by :mod:`helixserve.serving.problems` through the one
  error table, :mod:`helixserve.error_table`. A 405 lists in ``Allow`` the methods of every
  route of that path (a path may have one route per method).
- ``/openapi.json`` documents the bodies that routes read through a contract dependency
  (``openapi_extra={"x-helixserve-body": "<schema name>"}``) with that schema, as if FastAPI had
  read them itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

import helixserve
from helixserve.error_table import status_of
from helixserve.errors import HelixError, RequestError
from helixserve.serving import schemas
from helixserve.serving.api_docs import mount_docs
from helixserve.serving.deps import request_id
from helixserve.serving.jobs import JobStore
from helixserve.serving.problems import error_reply, is_page, json_reply, problem, public_answer
from helixserve.serving.responses import respond
from helixserve.serving.routes import ROUTERS
from helixserve.serving.server import Server
from helixserve.serving.sessions import LoginNeeded
from helixserve.serving.ui import HERE, Pages
from helixserve.serving.ui_explain import score_words
from helixserve.serving.ui_ism import PAGE_ISM_MAX
from helixserve.serving.ui_login import back_to, login_form
from helixserve.serving.ui_vcf import window_words

BODY = "x-helixserve-body"


class AppState(State):
    """``app.state`` whose values are also plain attributes, so that reading one (the server, on
    every request) does not go through :class:`State`'s ``__getattr__`` after a failed lookup."""

    def __setattr__(self, key: str, value: Any) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        super().__delattr__(key)
        object.__delattr__(self, key)


class HelixAPI(FastAPI):
    """FastAPI with the contract bodies documented (see the module contract)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    name = operation.pop(BODY, None)
                    if name is not None:
                        _document_body(operation, name, components)
        return self.openapi_schema  # type: ignore[return-value]


def _document_body(operation: dict[str, Any], name: str, components: dict[str, Any]) -> None:
    ref = "#/components/schemas/{model}"
    model = getattr(schemas, name)
    found = model.model_json_schema(ref_template=ref)
    for sub, sub_schema in found.pop("$defs", {}).items():
        components.setdefault(sub, sub_schema)
    components.setdefault(name, found)
    content = {"application/json": {"schema": {"$ref": ref.format(model=name)}}}
    operation["requestBody"] = {"required": True, "content": content}


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    server: Server = api.state.server
    await server.start()
    try:
        yield
    finally:
        await server.stop()


def route_table() -> list[APIRoute]:
    """Every route of :data:`~helixserve.serving.routes.ROUTERS`, in the app's order."""
    return [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def build_api(server: Server) -> FastAPI:
    """The FastAPI app bound to ``server``; see the module contract."""
    api = HelixAPI(
        title="helixserve",
        version=helixserve.__version__,
        lifespan=lifespan,
        description="Predictions from life-science models: DNA, tabular lab values, images.",
        docs_url=None,
        redoc_url=None,
    )
    pages = Pages(server)
    pages.templates.env.globals.update(
        score_words=score_words, vcf_window=window_words, page_ism_max=PAGE_ISM_MAX
    )
    api.state = AppState()
    api.state.server, api.state.pages = server, pages
    api.state.jobs = JobStore(server.settings.jobs_dir)
    for kind, handler in HANDLERS:
        api.add_exception_handler(kind, handler)
    mount_docs(api)
    api.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in ROUTERS:
        api.include_router(router)
    return api


async def http_error(request: Request, exc: Exception) -> Response:
    err = cast(HTTPException, exc)  # registered for HTTPException only
    title = {404: "Not found", 405: "Method not allowed"}.get(err.status_code, "Error")
    reply = problem(
        err.status_code,
        "http",
        title,
        str(err.detail),
        instance=request.url.path,
        request_id=request_id(request),
    )
    if request.url.path.startswith("/v2"):
        reply = json_reply({"error": str(err.detail)}, err.status_code)
    headers = dict(err.headers or {})
    if err.status_code == 405:  # every method of the path, not only the first route's
        headers["Allow"] = ", ".join(_methods(request))
    reply.headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    return respond(reply)


def _methods(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's (one route per method)."""
    found: set[str] = set()
    for route in route_table():  # the app's own list wraps included routers (FastAPI 0.165)
        if route.matches(request.scope)[0] is Match.PARTIAL:
            found |= route.methods or set()
    return sorted(found)


async def invalid_request(request: Request, exc: Exception) -> Response:
    err = cast(RequestValidationError, exc)  # registered for it only
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    if tuple(first.get("loc", ())) == ("body",) and isinstance(first.get("input"), bytes):
        message += (  # FastAPI reads a body as JSON only when it says it is JSON
            "; send a JSON object with Content-Type: application/json "
            """(curl --json '{"name": "..."}')"""
        )
    return await any_error(request, RequestError(message))


async def gone(request: Request, _err: Exception) -> Response:
    """The body stopped short (the client left, or the app refused it at its size limit):
    not a server fault, so nothing is logged as one."""
    message = "the client disconnected before sending the whole body."
    return await any_error(request, RequestError(message))


async def any_error(request: Request, err: Exception) -> Response:
    """Every error: the HTML error page on a UI page, else the edge's error reply; the status,
    type and title from :mod:`helixserve.error_table`."""
    path, rid = request.url.path, request_id(request)
    if is_page(path):
        pages: Pages = request.app.state.pages
        return pages.error(request, err, public_answer(err, rid)[1])
    return respond(error_reply(err, path=path, request_id=rid))


async def needs_key(request: Request, err: Exception) -> Response:
    """A UI page without a key session: the key form in its place (401); on an API route it is
    answered like every error there."""
    if not is_page(request.url.path):
        return await any_error(request, err)
    pages: Pages = request.app.state.pages
    return login_form(pages, request, status_of(err), str(err), back_to(request))


HANDLERS: tuple[tuple[type[Exception], Any], ...] = (
    (HTTPException, http_error),
    (RequestValidationError, invalid_request),
    (LoginNeeded, needs_key),
    (HelixError, any_error),
    (ClientDisconnect, gone),
    (Exception, any_error),
)
