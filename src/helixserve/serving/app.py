"""The HTTP application: the FastAPI app of :mod:`helixserve.serving.api` behind a thin raw-ASGI
front that adds request ids, metrics, the access log, body limits, security headers and draining.

Contract:
- :func:`create_app` returns an ASGI app. The route table is
  :mod:`helixserve.serving.routes`, and only there. Its hot routes (handlers marked
  :func:`~helixserve.serving.responses.hot`: predict, the seed route, OIP infer) are also served
  by a fast path (:class:`~helixserve.serving.fast.FastRoutes`) generated from those same route
  declarations: the route's own path pattern, parameters, dependencies and body contract, the
  handler called as it is, without FastAPI's middleware and per-request machinery. It answers
  as the FastAPI route does (status, headers, body; ``tests/test_routes.py``), except that every
  413 it sends closes the connection; ``HELIXSERVE_FAST_PATH=false`` turns it off (the benchmark
  measures both). Metrics label a request with its route's path template.
- Every response carries ``X-Request-ID`` (the client's, if it sent a sane one, else a new one).
  Each request is counted and timed in the metrics and, when ``access_log`` is on, written as one
  JSON line on standard output by :class:`~helixserve.serving.access_log.AccessLog` (method,
  path, status, duration, model, version, request id, client; never headers, so never keys).
- Request bodies above ``max_request_bytes`` (JSON) or ``max_upload_bytes`` (uploads: routes
  marked :func:`~helixserve.serving.responses.upload`, the API's ``predict-file`` and the web
  UI's ``/models/{name}/upload``) are refused with 413: at once when
  ``Content-Length`` declares too much, else as soon as the streamed (chunked) body passes the
  limit — a body is never buffered to be measured. A 413 carries ``Connection: close``, so the
  server stops reading and a client streaming gigabytes is cut off at the limit. CORS is applied
  when ``cors_origins`` is set.
- Every response says ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``;
  every HTML page also gets :data:`PAGE_CSP` (scripts and styles from this server only, no inline
  script, no framing: ``frame-ancestors 'none'``) and ``X-Frame-Options: DENY``. The API's
  ``/docs`` page (its assets served from this server too) gets
  :data:`~helixserve.serving.api_docs.DOCS_CSP`, which also allows Swagger UI's one inline script
  by its hash.
- While the server drains before stopping (:mod:`helixserve.serving.drain`), every request but
  the probes (``/healthz``, ``/readyz``, ``/metrics``, ``/v2/health/*``) gets 503 with
  ``Retry-After`` and ``Connection: close``; requests admitted before are counted until answered.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from helixserve.errors import RequestError, RequestTooLarge, ShuttingDown
from helixserve.serving.api import build_api, route_table
from helixserve.serving.api_docs import DOCS_CSP
from helixserve.serving.drain import end_with_parent
from helixserve.serving.fast import FastRoute, FastRoutes
from helixserve.serving.problems import Reply, error_reply
from helixserve.serving.responses import REPLY, is_upload
from helixserve.serving.server import Server
from helixserve.settings import Settings, load_settings
from helixserve.store.store import ModelStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBES = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ids = itertools.count(1)
MAX_CACHED_LABELS = 4096
_PREFIX = f"{os.getpid():x}-"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
PAGE_HEADERS = [(b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]
DOCS_HEADERS = [(b"content-security-policy", DOCS_CSP.encode()), (b"x-frame-options", b"DENY")]
DOCS_PAGES = frozenset({"/docs"})


class HelixApp:
    """The ASGI entry point; see the module contract."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.api = build_api(server)
        table = route_table()
        self.fast = FastRoutes(table) if server.settings.fast_path else None
        self.uploads = [r for r in table if is_upload(r.endpoint)]
        self.limit = server.settings.max_request_bytes
        self.log = server.settings.access_log
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        request_id = _request_id(headers)
        scope.setdefault("state", {})["request_id"] = request_id
        drain = self.server.drain
        if drain.draining and scope["path"] not in PROBES:
            route, status, labels = await _refuse(scope, send, request_id)
        else:
            drain.admit()
            try:
                route, status, labels = await self._dispatch(
                    scope, receive, send, headers, request_id
                )
            finally:
                drain.done()
        elapsed = time.perf_counter() - started
        self._count(route, labels, status, elapsed)
        if self.log:
            self.server.access_log.write(
                _access_record(scope, status, elapsed, labels, request_id, route)
            )

    def _count(self, route: str, labels: tuple[str, str], status: int, elapsed: float) -> None:
        """Time and count the request (the metric children are looked up once per label set)."""
        key = (route, *labels, status)
        children = self._children.get(key)
        if children is None:
            metrics = self.server.metrics
            children = (
                metrics.request_seconds.labels(route, *labels),
                metrics.requests.labels(route, *labels, str(status)),
            )
            if len(self._children) < MAX_CACHED_LABELS:
                self._children[key] = children
        children[0].observe(elapsed)
        children[1].inc()

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
    ) -> tuple[str, int, tuple[str, str]]:
        path: str = scope["path"]
        found = self.fast.match(scope) if self.fast is not None else None
        upload = found is None and self._is_upload(scope)
        limit = self.server.settings.max_upload_bytes if upload else self.limit
        declared = headers.get(b"content-length")
        early = None if declared is None else _too_large(declared, limit, upload)
        if early is not None:
            reply = error_reply(early, path=path, request_id=request_id)
            await _send(send, reply, request_id)
            return "body too large", reply.status, ("", "")
        capped = None
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            capped = _Capped(receive, limit, upload)  # a streamed body: counted as it arrives
        if found is not None:
            return await self._fast(scope, capped or receive, send, request_id, *found)
        status = await _forward(self.api, scope, capped or receive, send, request_id)
        if capped is not None and capped.error is not None and status == 0:
            reply = error_reply(capped.error, path=path, request_id=request_id)
            await _send(send, reply, request_id)
            return "body too large", reply.status, ("", "")
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or "unmatched"
        name = (scope.get("path_params") or {}).get("name", "")
        answered: Reply | None = scope.get("state", {}).get(REPLY)
        if answered is None:
            return route, status, (name, "")
        self._count_failures(answered)
        return route, status, (answered.model or name, answered.version)

    def _count_failures(self, reply: Reply) -> None:
        if reply.failures:
            self.server.metrics.validation_failures.labels(reply.model, reply.version).inc(
                reply.failures
            )

    def _is_upload(self, scope: Scope) -> bool:
        """The request goes to a route that takes a file upload (the upload size limit)."""
        if scope["method"] != "POST":
            return False
        return any(r.matches(scope)[0] is Match.FULL for r in self.uploads)

    async def _fast(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        fast: FastRoute,
        params: dict[str, str],
    ) -> tuple[str, int, tuple[str, str]]:
        """Answer a hot route on the fast path, as its FastAPI route and error handlers would."""
        path: str = scope["path"]
        scope["app"] = self.api
        try:
            reply = (await fast.call(scope, receive, params)).reply
        except ClientDisconnect:
            error = getattr(receive, "error", None)
            reply = error_reply(error or _gone(), path=path, request_id=request_id)
        except Exception as err:
            reply = error_reply(err, path=path, request_id=request_id)
        await _send(send, reply, request_id)
        self._count_failures(reply)
        model = reply.model or params.get("name", "")  # the path's, when no model answered
        return fast.path, reply.status, (model, reply.version or params.get("version", ""))


def _gone() -> RequestError:
    return RequestError("the client disconnected before sending the whole body.")


async def _refuse(scope: Scope, send: Send, request_id: str) -> tuple[str, int, tuple[str, str]]:
    """While draining: 503 + Retry-After, and the connection closes after the answer."""
    path: str = scope["path"]
    err = ShuttingDown(
        "the server is shutting down; retry the request (another instance, or "
        "this one once restarted, will answer).",
        retry_after=1,
    )
    reply = error_reply(err, path=path, request_id=request_id)
    reply.headers.append((b"connection", b"close"))
    await _send(send, reply, request_id)
    return "draining", reply.status, ("", "")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name (the last of a repeated one)."""
    headers = dict(scope["headers"])
    if all(map(bytes.islower, headers)):  # as ASGI servers send them: nothing to lower
        return headers
    return {k.lower(): v for k, v in scope["headers"]}


def _request_id(headers: dict[bytes, bytes]) -> str:
    given = headers.get(b"x-request-id")
    if given is not None:
        text = given.decode("latin-1")
        if _REQUEST_ID.fullmatch(text):
            return text
    return f"{_PREFIX}{next(_ids):x}"


def _too_large(declared: bytes, limit: int, upload: bool) -> RequestError | None:
    """The 413 for a body whose ``Content-Length`` (``declared``) is over ``limit``, if it is."""
    if declared.isdigit() and int(declared) > limit:
        what, setting = ("upload", "UPLOAD") if upload else ("request body", "REQUEST")
        return RequestTooLarge(
            f"the {what} is {int(declared):,} bytes; the limit is {limit:,} "
            f"(HELIXSERVE_MAX_{setting}_BYTES).",
        )
    return None


class _Capped:
    """A ``receive`` that counts a streamed body; past ``limit`` it notes a 413 in ``error`` and
    tells the app the client has gone, so the app stops reading (its answer is then dropped)."""

    def __init__(self, receive: Receive, limit: int, upload: bool) -> None:
        self.receive, self.limit, self.upload = receive, limit, upload
        self.seen = 0
        self.error: RequestError | None = None

    async def __call__(self) -> Message:
        if self.error is not None:
            return {"type": "http.disconnect"}
        message = await self.receive()
        self.seen += len(message.get("body", b""))
        if self.seen > self.limit:
            what, setting = ("upload", "UPLOAD") if self.upload else ("request body", "REQUEST")
            self.error = RequestTooLarge(
                f"the {what} is over the limit of {self.limit:,} bytes "
                f"(HELIXSERVE_MAX_{setting}_BYTES).",
            )
            return {"type": "http.disconnect"}
        return message


async def _send(send: Send, reply: Reply, request_id: str) -> None:
    headers = [
        (b"content-type", reply.content_type),
        (b"content-length", str(len(reply.body)).encode()),
        (b"x-request-id", request_id.encode()),
        *COMMON_HEADERS,
        *reply.headers,
    ]
    if reply.status == 413:  # the body was not read: stop the client sending the rest
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _forward(api: ASGIApp, scope: Scope, receive: Receive, send: Send, rid: str) -> int:
    """Run the FastAPI app, adding the request id header and noting the status.

    With a :class:`_Capped` ``receive`` whose limit was passed before the app answered, the
    app's answer is dropped and 0 is returned: the caller sends the 413."""
    status = 0
    capped = receive if isinstance(receive, _Capped) else None

    async def sending(message: Message) -> None:
        nonlocal status
        if status == 0 and capped is not None and capped.error is not None:
            return
        if message["type"] == "http.response.start":
            status = message["status"]
            given = list(message.get("headers", []))
            message["headers"] = [
                *given,
                (b"x-request-id", rid.encode()),
                *COMMON_HEADERS,
                *_page_headers(scope["path"], given),
            ]
        await send(message)

    try:
        await api(scope, receive, sending)
    except Exception:  # already answered (opaque 500) and logged by the app's error handler
        return status if capped is not None and capped.error is not None else 500
    return status if status or (capped is not None and capped.error is not None) else 500


def _page_headers(path: str, given: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The content security policy and framing headers for an HTML page (none otherwise)."""
    kind = next((v for k, v in given if k.lower() == b"content-type"), b"")
    if not kind.startswith(b"text/html"):
        return []
    return DOCS_HEADERS if path in DOCS_PAGES else PAGE_HEADERS


def _access_record(
    scope: Scope, status: int, elapsed: float, labels: tuple[str, str], rid: str, route: str
) -> dict[str, Any]:
    client = scope.get("client")
    return {
        "ts": time.time(),
        "request_id": rid,
        "method": scope["method"],
        "path": scope["path"],
        "route": route,
        "status": status,
        "ms": round(elapsed * 1000, 3),
        "model": labels[0] or None,
        "version": labels[1] or None,
        "client": f"{client[0]}:{client[1]}" if client else None,
    }


def create_app(settings: Settings | None = None, store: ModelStore | None = None) -> ASGIApp:
    """The server's ASGI app (settings from the environment unless given)."""
    settings = settings or load_settings()
    if multiprocessing.parent_process() is not None:  # one of serve's --workers processes
        end_with_parent()
    app: ASGIApp = HelixApp(Server(settings, store))
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    return app
