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
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import Receive, Scope

from helixserve.serving.responses import ReplyResponse, is_hot


class FastRoute:
    """One hot route; see the module contract."""

    def __init__(self, route: APIRoute) -> None:
        _check(route.dependant, route.path)
        self.route = route
        self.path: str = route.path

    async def call(self, scope: Scope, receive: Receive, params: dict[str, str]) -> ReplyResponse:
        request = Request(scope, receive)
        query = QueryParams(scope.get("query_string", b""))
        cache: dict[Callable[..., Any], Any] = {}
        kwargs = await _solve(self.route.dependant, request, params, query, cache)
        response = await self.route.endpoint(**kwargs)
        if not isinstance(response, ReplyResponse):
            raise TypeError(f"hot route {self.path} must answer with respond(reply)")
        return response


class FastRoutes:
    """Every hot route of an app, matched in the app's order."""

    def __init__(self, routes: Iterable[APIRoute]) -> None:
        self.routes = [FastRoute(r) for r in routes if is_hot(r.endpoint)]

    def match(self, scope: Scope) -> tuple[FastRoute, dict[str, str]] | None:
        for fast in self.routes:
            found, child = fast.route.matches(scope)
            if found is Match.FULL:
                return fast, child["path_params"]
        return None


async def _solve(
    dependant: Dependant,
    request: Request,
    params: dict[str, str],
    query: QueryParams,
    cache: dict[Callable[..., Any], Any],
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for sub in dependant.dependencies:
        call = sub.call
        if call is None or sub.name is None:
            continue
        if call not in cache:
            sub_kwargs = await _solve(sub, request, params, query, cache)
            value = call(**sub_kwargs)
            cache[call] = await value if inspect.isawaitable(value) else value
        kwargs[sub.name] = cache[call]
    for field in dependant.path_params:
        kwargs[field.name] = params[field.alias]
    for field in dependant.query_params:
        kwargs[field.name] = query.get(field.alias, field.default)
    if dependant.request_param_name:
        kwargs[dependant.request_param_name] = request
    return kwargs


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
