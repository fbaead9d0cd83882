"""The route table: every handler is a module-level function of ``serving/routes/``, and the fast
path generated from it answers exactly as the plain FastAPI route does."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from helixserve.serving.api import build_api, route_table
from helixserve.serving.fast import FastRoutes
from helixserve.serving.problems import Reply
from helixserve.serving.responses import ReplyResponse, hot, is_hot, respond
from helixserve.serving.routes import ROUTERS
from helixserve.serving.server import Server
from helixserve.settings import Settings
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
SEQ = "CGACCGAACTCCACGTACGTACGTACGTACGTACGTACGTACGTACGTAC"
PREDICT = "/api/v1/models/primer-binding/predict"
INFER = "/v2/models/primer-binding/infer"
OIP = {"inputs": [{"name": "sequence", "shape": [1], "datatype": "BYTES", "data": [SEQ]}]}


def test_every_handler_is_a_module_level_function_of_the_route_table() -> None:
    for router in ROUTERS:
        for route in router.routes:
            endpoint = getattr(route, "endpoint", None)
            assert endpoint is not None
            assert "<locals>" not in endpoint.__qualname__, endpoint.__qualname__
            assert endpoint.__module__.startswith("helixserve.serving.routes."), endpoint


def test_the_app_serves_exactly_the_route_table() -> None:
    api = build_api(Server(Settings(store=str(ZOO), grpc_port=0)))
    documented = set(api.openapi()["paths"])
    table = {r.path for r in route_table() if r.include_in_schema}
    assert documented == table


def test_hot_routes_are_generated_from_their_declarations() -> None:
    fast = FastRoutes(route_table())
    assert sorted(f.path for f in fast.routes) == sorted(
        r.path for r in route_table() if is_hot(r.endpoint)
    )
    assert {f.path for f in fast.routes} == {
        PREDICT.replace("primer-binding", "{name}"),
        "/api/v1/getdnaclassapi",
        INFER.replace("primer-binding", "{name}"),
        "/v2/models/{name}/versions/{version}/infer",
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Running]]:
    tmp = tmp_path_factory.mktemp("both")
    with (
        running(ZOO, tmp / "fast", grpc_port=0, max_request_bytes=100_000) as fast,
        running(
            ZOO, tmp / "plain", grpc_port=0, max_request_bytes=100_000, fast_path=False
        ) as plain,
    ):
        yield fast, plain


CASES = [
    (PREDICT, json.dumps({"inputs": [SEQ, SEQ + "F"]}).encode(), {}),
    (PREDICT + "?version=production", json.dumps({"inputs": [SEQ]}).encode(), {}),
    (PREDICT + "?version=9", json.dumps({"inputs": [SEQ]}).encode(), {}),
    ("/api/v1/models/nope/predict", json.dumps({"inputs": [SEQ]}).encode(), {}),
    (PREDICT, json.dumps({"inputs": ["ACGF"]}).encode(), {}),
    (PREDICT, b"{bad", {}),
    (PREDICT, b"", {}),
    (PREDICT, b'{"inputs": "ACGT"}', {}),
    (PREDICT, b'{"inputs": []}', {}),
    (PREDICT, b'{"inputs": ["A"], "x": 1, "a": 2}', {}),
    (PREDICT, json.dumps({"inputs": ["A"] * 10_001}).encode(), {}),
    (PREDICT, b"[1, 2]", {}),
    (PREDICT, b'{"inputs": [1, null, {"a": [1]}]}', {}),
    ("/api/v1/getdnaclassapi", json.dumps({"dnasequence": SEQ}).encode(), {}),
    ("/api/v1/getdnaclassapi", json.dumps({"dnasequence": SEQ + "F"}).encode(), {}),
    ("/api/v1/getdnaclassapi", b'{"sequence": "A"}', {}),
    ("/api/v1/getdnaclassapi", b"nope", {}),
    ("/api/v1/getdnaclassapi", b"", {}),
    (INFER, json.dumps(OIP).encode(), {}),
    ("/v2/models/primer-binding/versions/1/infer", json.dumps(OIP).encode(), {}),
    (INFER, b"{", {}),
    (INFER, json.dumps(OIP).encode(), {"inference-header-content-length": "x"}),
    ("/v2/models/nope/infer", json.dumps(OIP).encode(), {}),
]


@pytest.mark.parametrize(
    ("path", "body", "headers"), CASES, ids=[str(i) for i in range(len(CASES))]
)
def test_the_fast_path_answers_as_the_fastapi_route(
    both: tuple[Running, Running], path: str, body: bytes, headers: dict[str, str]
) -> None:
    answers = []
    for server in both:
        sent = {"content-type": "application/json", "x-request-id": "same-id", **headers}
        reply = httpx.post(server.url + path, content=body, headers=sent, timeout=30)
        # "connection: close" after a 413: the fast path's send closes the connection for every
        # 413 (a body it may not have read), the app's only for bodies cut off at the limit.
        kept = {k: v for k, v in reply.headers.items() if k not in ("date", "server", "connection")}
        answers.append((reply.status_code, kept, reply.content))
    assert answers[0] == answers[1]


def test_a_binary_infer_request_is_alike_on_both_paths(both: tuple[Running, Running]) -> None:
    head = {
        "inputs": [
            {"name": "sequence", "shape": [1], "datatype": "BYTES", "parameters": {}},
        ]
    }
    packed = len(SEQ).to_bytes(4, "little") + SEQ.encode()
    head["inputs"][0]["parameters"] = {"binary_data_size": len(packed)}
    data = json.dumps(head).encode()
    answers = []
    for server in both:
        reply = httpx.post(
            server.url + INFER,
            content=data + packed,
            headers={"inference-header-content-length": str(len(data))},
            timeout=30,
        )
        answers.append((reply.status_code, reply.content))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200, base64.b64encode(answers[0][1])


def test_the_handlers_take_their_state_through_dependencies() -> None:
    for route in route_table():
        source = inspect.getsource(route.endpoint)
        assert "request.app.state" not in source, route.path


# --- the generated plan on a route of its own: every kind of parameter a hot route may declare -

CALLS: list[str] = []


async def shared(request: Request) -> str:
    CALLS.append("shared")
    return str(request.scope["path"])


def numbered(path: Annotated[str, Depends(shared)], n: str, q: str | None = None) -> str:
    return f"{path} {n!r} {q!r}"


@hot
async def probe(
    request: Request,
    first: Annotated[str, Depends(numbered)],
    again: Annotated[str, Depends(shared)],
    tag: str,
    q: str | None = "none",
) -> Response:
    body = await request.body()
    return respond(Reply(200, orjson.dumps([first, again, tag, q, body.decode()])))


def uncached(request: Request) -> str:
    return ""


@hot
async def refused(value: Annotated[str, Depends(uncached, use_cache=False)]) -> Response:
    return respond(Reply(200, b""))


@hot
async def typed(n: int) -> Response:
    return respond(Reply(200, b""))


def _hot(router: APIRouter) -> FastRoutes:
    return FastRoutes(r for r in router.routes if isinstance(r, APIRoute))


def _fast_answer(fast: FastRoutes, path: str, query: bytes) -> tuple[int, bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": [],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"hi", "more_body": False}

    found = fast.match(scope)
    assert found is not None
    fast_route, params = found

    async def call() -> ReplyResponse:
        return await fast_route.call(scope, receive, params)

    reply = asyncio.run(call()).reply
    return reply.status, reply.body


async def _plain_answer(app: FastAPI, url: str) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(url, content=b"hi")


@pytest.mark.parametrize("query", [b"", b"q=x", b"q=x&q=y", b"q="])
def test_the_generated_plan_solves_parameters_as_fastapi(query: bytes) -> None:
    router = APIRouter()
    router.post("/probe/{n}/{tag:path}")(probe)
    app = FastAPI()
    app.include_router(router)
    path = "/probe/7/t%20x/y"
    expected = asyncio.run(_plain_answer(app, path + "?" + query.decode()))
    CALLS.clear()
    status, body = _fast_answer(_hot(router), "/probe/7/t x/y", query)
    assert (status, body) == (expected.status_code, expected.content)
    assert CALLS == ["shared"]  # once per request, as FastAPI does


@pytest.mark.parametrize(
    ("handler", "why"), [(refused, "use_cache=False"), (typed, "path parameter n must be str")]
)
def test_a_hot_route_the_plan_would_solve_differently_is_refused(
    handler: Callable[..., Any], why: str
) -> None:
    router = APIRouter()
    router.post("/refused/{n}")(handler)
    with pytest.raises(TypeError, match=why):
        _hot(router)
