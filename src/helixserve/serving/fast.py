"""The fast path: the hot routes of the route table served without FastAPI's per-request work.

Contract:
- :class:`FastRoutes` is generated from the route table's routes whose handler is marked
  :func:`~helixserve.serving.responses.hot`; nothing here names a path. For each it uses the
  route's own matcher (path pattern, converters and method), and solves the handler's
  parameters the way FastAPI does for the kinds a hot route may declare: ``str`` path
  parameters, optional ``str`` query parameters, the ``Request``, and dependencies built of
  those (each called once per request, so none may say ``use_cache=False``; body contracts are
  dependencies, e.g. :meth:`~helixserve.serving.schemas.Contract.from_request`). A hot route
  that declares anything else is refused when the app is built (``TypeError``), so the fast
  path cannot silently differ from the route.
- Each hot route's dependency graph is read once, when the app is built, and compiled into one
  async function (Python source generated from the route's ``Dependant``, never written per
  route): the same calls in the same order with the same arguments as FastAPI's, without a
  per-request walk over the graph.
- :meth:`FastRoutes.match` returns the route and its path parameters for a request, or ``None``;
  :attr:`FastRoute.call` reads the body, runs the dependencies and the handler, and returns
  the handler's :class:`~helixserve.serving.responses.ReplyResponse`, raising what they raise.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.convertors import StringConvertor
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from helixserve.serving.responses import ReplyResponse, is_hot

_STEP, _PATH, _QUERY, _REQUEST = range(4)
_Arg = tuple[str, int, Any, Any]  # (argument, source kind, key, default)
_Call = Callable[[Scope, Receive, dict[str, str]], Awaitable[ReplyResponse]]
_NO_QUERY: Mapping[str, str] = MappingProxyType({})
# The frame of every generated call; ``{query}`` and ``{steps}`` are filled in per route.
_SOURCE = """\
async def call(scope, receive, params):
    request = Request(scope, receive)
    request._body = await read_body(receive)
{query}{steps}
    if not isinstance(answer, ReplyResponse):
        raise TypeError(refused)
    return answer
"""
_QUERY_SOURCE = "    query = request.query_params if scope['query_string'] else _NO_QUERY\n"


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

    def compile(self, path: str) -> _Call:
        """The plan as one async function ``call(scope, receive, params)``, generated as Python
        source and compiled once: the body read, each step a direct call with keyword arguments
        and its value a local (the handler's is ``answer``), the query string parsed only when a
        step reads it and the request has one (the common case has none)."""
        names: dict[str, Any] = {
            "Request": Request,
            "ReplyResponse": ReplyResponse,
            "read_body": read_body,
            "_NO_QUERY": _NO_QUERY,
            "refused": f"hot route {path} must answer with respond(reply)",
        }
        last = len(self.steps) - 1
        steps = "\n".join(_line(i, step, i == last, names) for i, step in enumerate(self.steps))
        reads_query = any(kind == _QUERY for step in self.steps for _, kind, _, _ in step.args)
        source = _SOURCE.format(query=_QUERY_SOURCE if reads_query else "", steps=steps)
        exec(compile(source, f"<fast path {path}>", "exec"), names)
        call: _Call = names["call"]
        return call


def _line(i: int, step: _Step, last: bool, names: dict[str, Any]) -> str:
    """The source line of step ``i`` (its callable and query defaults go into ``names``)."""
    names[f"call{i}"] = step.call
    args = []
    for j, (name, kind, key, default) in enumerate(step.args):
        if kind == _QUERY:
            names[f"default{i}_{j}"] = default
        args.append(f"{name}={_argument(kind, key, f'default{i}_{j}')}")
    awaited = "await " if step.is_async else ""
    return f"    {'answer' if last else f'value{i}'} = {awaited}call{i}({', '.join(args)})"


def _argument(kind: int, key: Any, default: str) -> str:
    """The expression of one argument in the generated source (see :meth:`_Plan.compile`)."""
    if kind == _STEP:
        return f"value{int(key)}"
    if kind == _PATH:
        return f"params[{str(key)!r}]"
    if kind == _REQUEST:
        return "request"
    return f"query.get({str(key)!r}, {default})"


class FastRoute:
    """One hot route; see the module contract."""

    def __init__(self, route: APIRoute) -> None:
        _check(route.dependant, route.path)
        self.route = route
        self.path: str = route.path
        self.methods = frozenset(route.methods or ())
        self.pattern = route.path_regex.match
        self.converters = route.param_convertors
        # a plain ``str`` parameter needs no conversion: the match's groups are the parameters
        self.plain = all(type(c) is StringConvertor for c in self.converters.values())
        self.plan = _Plan(route.dependant, route.endpoint)
        self.call: _Call = self.plan.compile(route.path)
        """``call(scope, receive, params)``: see the module contract."""

    def params(self, found: re.Match[str]) -> dict[str, str]:
        """The path parameters of a request whose path ``found`` matched."""
        convert = self.converters
        return {k: convert[k].convert(v) for k, v in found.groupdict().items()}


class FastRoutes:
    """Every hot route of the route table, matched in its order."""

    def __init__(self, routes: Iterable[APIRoute]) -> None:
        self.routes = [FastRoute(r) for r in routes if is_hot(r.endpoint)]
        self._by_method: dict[str, list[FastRoute]] = {}  # each method's routes, in order
        for fast in self.routes:
            for method in sorted(fast.methods):
                self._by_method.setdefault(method, []).append(fast)

    def match(self, scope: Scope) -> tuple[FastRoute, dict[str, str]] | None:
        """The route's own compiled pattern and methods decide; see the module contract."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for fast in self._by_method.get(scope["method"], ()):
            found = fast.pattern(path)
            if found is not None:
                return fast, found.groupdict() if fast.plain else fast.params(found)
        return None


async def read_body(receive: Receive) -> bytes:
    """The whole request body (its size is capped by the app's ``receive``)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the common case: the body in one message
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


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
    for field in dependant.path_params:  # FastAPI would validate the text as another type
        if field.field_info.annotation not in (str, str | None):
            raise TypeError(f"hot route {path}: path parameter {field.name} must be str")
    for field in dependant.query_params:
        if field.field_info.is_required() or field.field_info.annotation not in (str | None, str):
            raise TypeError(f"hot route {path}: query parameter {field.name} must be str | None")
    for sub in dependant.dependencies:
        if not sub.use_cache:  # FastAPI would call it at every use, the plan once
            raise TypeError(f"hot route {path}: dependency {sub.name} has use_cache=False")
        _check(sub, path)
