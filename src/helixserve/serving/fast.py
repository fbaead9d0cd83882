"""The fast path: the hot routes of the route table served without FastAPI's per-request work.

Contract:
- :class:`FastRoutes` is generated from the route table's routes whose handler is marked
  :func:`~helixserve.serving.responses.hot`; nothing here names a path. For each it uses the
  route's own matcher (path pattern and method), and solves the handler's parameters the way
  FastAPI does for the kinds a hot route may declare: path parameters, optional ``str`` query
  parameters, the ``Request``, and dependencies built of those (each called once per request;
  body contracts are dependencies, e.g. :meth:`~helixserve.serving.schemas.Contract.
  from_request`). A hot route that declares anything else is refused when the app is built
  (``TypeError``), so the fast path cannot silently differ from the route.
- :meth:`FastRoutes.match` returns the route and its path parameters for a request, or ``None``;
  :meth:`FastRoute.call` runs the handler and returns its
  :class:`~helixserve.serving.responses.ReplyResponse`, raising what the handler raises.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from helixserve.serving.responses import ReplyResponse, is_hot


@dataclass(frozen=True)
class _Plan:
    """How to call one handler or dependency: what FastAPI's ``Dependant`` says, read once."""

    call: Callable[..., Any]
    subs: tuple[tuple[str, _Plan], ...]
    path: tuple[tuple[str, str], ...]  # (argument, path parameter)
    query: tuple[tuple[str, str, Any], ...]  # (argument, query parameter, default)
    request: str | None
    is_async: bool

    @classmethod
    def of(cls, dependant: Dependant, call: Callable[..., Any]) -> _Plan:
        subs = tuple(
            (sub.name, cls.of(sub, sub.call))
            for sub in dependant.dependencies
            if sub.name is not None and sub.call is not None
        )
        return cls(
            call,
            subs,
            tuple((f.name, f.alias) for f in dependant.path_params),
            tuple((f.name, f.alias, f.default) for f in dependant.query_params),
            dependant.request_param_name,
            inspect.iscoroutinefunction(call),
        )

    async def run(self, request: Request, params: dict[str, str], cache: dict[Any, Any]) -> Any:
        kwargs: dict[str, Any] = {}
        for name, sub in self.subs:
            if sub.call not in cache:  # each dependency once per request, as FastAPI does
                value = await sub.run(request, params, cache)
                cache[sub.call] = value
            kwargs[name] = cache[sub.call]
        for name, alias in self.path:
            kwargs[name] = params[alias]
        if self.query:  # parsed only when there is a query string (the common case has none)
            query = request.query_params if request.scope.get("query_string") else {}
            for name, alias, default in self.query:
                kwargs[name] = query.get(alias, default)
        if self.request is not None:
            kwargs[self.request] = request
        return await self.call(**kwargs) if self.is_async else self.call(**kwargs)


class FastRoute:
    """One hot route; see the module contract."""

    def __init__(self, route: APIRoute) -> None:
        _check(route.dependant, route.path)
        self.route = route
        self.path: str = route.path
        self.plan = _Plan.of(route.dependant, route.endpoint)

    async def call(self, scope: Scope, receive: Receive, params: dict[str, str]) -> ReplyResponse:
        request = Request(scope, receive)
        request._body = await read_body(receive)
        response = await self.plan.run(request, params, {})
        if not isinstance(response, ReplyResponse):
            raise TypeError(f"hot route {self.path} must answer with respond(reply)")
        return response


class FastRoutes:
    """Every hot route of the route table, matched in its order."""

    def __init__(self, routes: Iterable[APIRoute]) -> None:
        self.routes = [FastRoute(r) for r in routes if is_hot(r.endpoint)]

    def match(self, scope: Scope) -> tuple[FastRoute, dict[str, str]] | None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for fast in self.routes:
            route = fast.route  # the route's own compiled pattern, converters and methods
            found = route.path_regex.match(path)
            if found is not None and route.methods and scope["method"] in route.methods:
                convert = route.param_convertors
                return fast, {k: convert[k].convert(v) for k, v in found.groupdict().items()}
        return None


async def read_body(receive: Receive) -> bytes:
    """The whole request body (its size is capped by the app's ``receive``)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check(dependant: Dependant, path: str) -> None:
    """Refuse a hot route whose parameters the fast path would not solve as FastAPI does."""
    unsupported = (
        dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )
    if unsupported:
        raise TypeError(f"hot route {path}: only path/query/Request/dependency parameters")
    for field in dependant.query_params:
        if field.field_info.is_required() or field.field_info.annotation not in (str | None, str):
            raise TypeError(f"hot route {path}: query parameter {field.name} must be str | None")
    for sub in dependant.dependencies:
        _check(sub, path)
