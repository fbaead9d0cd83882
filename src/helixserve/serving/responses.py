"""Route answers: a :class:`~helixserve.serving.problems.Reply` as a Starlette response, and the
mark of a hot route.

Contract:
- :func:`respond` wraps a ``Reply`` (status, body, content type, headers) in a
  :class:`ReplyResponse` that keeps the ``Reply`` (``.reply``): the app's fast path sends it
  as it is; through FastAPI it leaves it in the request state (:data:`REPLY`); either way the
  app counts its model, version and validation failures.
- :func:`hot` marks a route handler whose route the app also serves on its fast path
  (:mod:`helixserve.serving.app`), generated from the route itself (path, parameters, body
  contract, dependencies); a hot handler must answer with :func:`respond`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from helixserve.serving.problems import PROBLEM_JSON, Reply

_F = TypeVar("_F", bound=Callable[..., object])
HOT = "__helixserve_hot__"
REPLY = "helixserve_reply"  # the request state's key for the Reply a route answered with


class ReplyResponse(Response):
    """A Starlette response made from (and keeping) a :class:`Reply`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.status_code = reply.status
        self.body = reply.body
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send it, leaving the ``Reply`` in the request's state for the app's metrics and access
        log (the model and version that answered, validation failures)."""
        scope.setdefault("state", {})[REPLY] = self.reply
        await super().__call__(scope, receive, send)

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        """Built when Starlette sends the response (the fast path sends ``reply`` itself)."""
        reply = self.reply
        return [
            (b"content-length", str(len(reply.body)).encode()),
            (b"content-type", reply.content_type),
            *reply.headers,
        ]


def respond(reply: Reply, request: Request | None = None) -> ReplyResponse:
    """``reply`` as a response; with ``request``, a problem built below the HTTP layer (e.g. the
    422 of a predict request whose every input is invalid) gets its ``instance`` and
    ``request_id``."""
    if request is not None and reply.content_type == PROBLEM_JSON:
        body = orjson.loads(reply.body)
        if "request_id" not in body:
            rid = str(request.scope.get("state", {}).get("request_id", ""))
            body.update(instance=request.url.path, request_id=rid)
            reply.body = orjson.dumps(body)
    return ReplyResponse(reply)


def hot(handler: _F) -> _F:
    """Mark ``handler``'s route for the fast path (see the module contract)."""
    setattr(handler, HOT, True)
    return handler


def is_hot(handler: object) -> bool:
    return bool(getattr(handler, HOT, False))


UPLOAD = "__helixserve_upload__"


def upload(handler: _F) -> _F:
    """Mark ``handler``'s route as one that takes a file: its body limit is
    ``max_upload_bytes`` instead of ``max_request_bytes`` (:mod:`helixserve.serving.app`)."""
    setattr(handler, UPLOAD, True)
    return handler


def is_upload(handler: object) -> bool:
    return bool(getattr(handler, UPLOAD, False))
