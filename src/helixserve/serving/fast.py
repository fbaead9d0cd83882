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

_STEP, _PATH, _QUERY, _REQUEST = range(4)
_Arg = tuple[str, int, Any, Any]  # (argument, source kind, key, default)


@dataclass(frozen=True)
class _Step:
    """One call (a dependency, or the handler last) and where each of its arguments comes from."""

    call: Callable[..., Any]
    is_async: bool
    args: tuple[_Arg, ...]


class _Plan:
    """A handler's dependency graph, read once from FastAPI's ``Dependant`` and flattened into
    steps (dependencies first, each call once per request, as FastAPI does)."""

    def __init__(self, dependant: Dependant, handler: Callable[..., Any]) -> None:
        self.steps: list[_Step] = []
        self._index: dict[Any, int] = {}
        self._add(dependant, handler)

    def _add(self, dependant: Dependant, call: Callable[..., Any]) -> int:
        if call in self._index:
            return self._index[call]
        args: list[_Arg] = []
        for sub in dependant.dependencies:
            if sub.name is not None and sub.call is not None:
                args.append((sub.name, _STEP, self._add(sub, sub.call), None))
        args += [(f.name, _PATH, f.alias, None) for f in dependant.path_params]
        args += [(f.name, _QUERY, f.alias, f.default) for f in dependant.query_params]
        if dependant.request_param_name:
            args.append((dependant.request_param_name, _REQUEST, None, None))
        self.steps.append(_Step(call, inspect.iscoroutinefunction(call), tuple(args)))
        self._index[call] = len(self.steps) - 1
        return len(self.steps) - 1

    async def run(self, request: Request, params: dict[str, str]) -> Any:
        """Call every step; the handler's answer is the last value."""
        values: list[Any] = []
        query: Any = None
        for step in self.steps:
            kwargs: dict[str, Any] = {}
            for name, kind, key, default in step.args:
                if kind == _STEP:
                    kwargs[name] = values[key]
                elif kind == _PATH:
                    kwargs[name] = params[key]
                elif kind == _REQUEST:
                    kwargs[name] = request
                else:  # parsed only when there is a query string (the common case has none)
                    if query is None:
                        query = request.query_params if request.scope["query_string"] else {}
                    kwargs[name] = query.get(key, default)
            value = step.call(**kwargs)
            values.append(await value if step.is_async else value)
        return values[-1]


class FastRoute:
    """One hot route; see the module contract."""

    def __init__(self, route: APIRoute) -> None:
        _check(route.dependant, route.path)
        self.route = route
        self.path: str = route.path
        self.plan = _Plan(route.dependant, route.endpoint)

    async def call(self, scope: Scope, receive: Receive, params: dict[str, str]) -> ReplyResponse:
        request = Request(scope, receive)
        request._body = await read_body(receive)
        response = await self.plan.run(request, params)
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
