"""Errors at the HTTP edge: RFC 9457 ``application/problem+json`` bodies and status codes.

Contract:
- :func:`problem_for` maps any exception to a :class:`Reply`: input errors -> 422 with
  ``errors: [{index, field, position, message}]``, except a file over a size limit
  (:class:`~helixserve.errors.FileTooLarge`) -> 413; :class:`~helixserve.errors.RequestError` -> its
  status (400/413/415); :class:`~helixserve.errors.ModelNotFound` -> 404;
  :class:`~helixserve.errors.AuthError` -> 401 (with ``WWW-Authenticate``) or 403;
  :class:`~helixserve.errors.ServiceUnavailable` -> 503 with ``Retry-After``. Anything else is a
  bug or an infrastructure failure: it is logged with the request id and the traceback, and the
  client gets an opaque 500 that names only the request id — never a traceback.
- :func:`item_errors` turns per-item input errors into the ``errors`` list (``index`` is the
  0-based position in the request; ``field`` names the JSON path; ``position`` is 1-based).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from helixserve.errors import (
    AuthError,
    FileTooLarge,
    InputError,
    InvalidRow,
    ModelNotFound,
    RequestError,
    ServiceUnavailable,
    StoreError,
)
from helixserve.runtime.predictor import ItemError

log = logging.getLogger("helixserve.server")
PROBLEM_JSON = b"application/problem+json"
_TYPE = "https://helixserve.dev/problems/"


@dataclass
class Reply:
    """A complete HTTP answer (body already serialised)."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    model: str = ""  # the model and version that answered (metrics, access log)
    version: str = ""
    failures: int = 0  # inputs rejected by validation


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    instance: str = "",
    request_id: str = "",
    errors: list[dict[str, Any]] | None = None,
) -> Reply:
    body: dict[str, Any] = {
        "type": _TYPE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if errors is not None:
        body["errors"] = errors
    return Reply(status, orjson.dumps(body), PROBLEM_JSON)


def problem_for(  # noqa: PLR0911 - one return per error family
    err: BaseException, *, instance: str = "", request_id: str = ""
) -> Reply:
    """The problem+json reply for ``err``; see the module contract."""
    where: dict[str, Any] = {"instance": instance, "request_id": request_id}
    if isinstance(err, FileTooLarge):
        return problem(413, "too-large", "Content too large", str(err), **where)
    if isinstance(err, InputError):
        errors = [
            {"index": err.index, "field": err.field, "position": err.position, "message": str(err)}
        ]
        return problem(422, "invalid-input", "Invalid input", str(err), errors=errors, **where)
    if isinstance(err, RequestError):
        return problem(
            err.status, "bad-request", _TITLES.get(err.status, "Bad request"), str(err), **where
        )
    if isinstance(err, ModelNotFound):
        return problem(404, "model-not-found", "Model not found", str(err), **where)
    if isinstance(err, AuthError):
        reply = problem(
            err.status,
            "unauthorized" if err.status == 401 else "forbidden",
            _TITLES[err.status],
            str(err),
            **where,
        )
        if err.status == 401:
            reply.headers.append((b"www-authenticate", b'Bearer realm="helixserve"'))
        return reply
    if isinstance(err, ServiceUnavailable):
        reply = problem(503, "unavailable", "Service unavailable", str(err), **where)
        reply.headers.append((b"retry-after", str(err.retry_after).encode()))
        return reply
    if isinstance(err, StoreError):
        log.error("store error [request %s]: %s", request_id, err)
        return problem(503, "store-unavailable", "Store unavailable", str(err), **where)
    log.error("internal error [request %s]", request_id, exc_info=err)
    return problem(
        500,
        "internal",
        "Internal server error",
        f"The server failed while handling this request (request id {request_id}). "
        "It has been logged; please report the request id.",
        **where,
    )


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid input",
}


def item_errors(errors: Iterable[ItemError], prefix: str = "inputs") -> list[dict[str, Any]]:
    """The ``errors`` list of a problem or a partial result; see the module contract."""
    out: list[dict[str, Any]] = []
    for item in errors:
        err = item.error
        base = f"{prefix}[{item.index}]"
        parts = err.field_errors if isinstance(err, InvalidRow) and err.field_errors else [err]
        for part in parts:
            field = base if part.field in (None, "sequence", "image") else f"{base}.{part.field}"
            out.append(
                {
                    "index": item.index,
                    "field": field,
                    "position": part.position,
                    "message": part.problem if part is not err else str(err),
                }
            )
    return out
