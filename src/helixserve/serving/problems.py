"""Errors at the HTTP edge: RFC 9457 ``application/problem+json`` bodies and status codes.

Contract:
- Status, problem type and title come from the one error table, :mod:`helixserve.error_table`;
  nothing here decides them. :func:`problem_for` answers any exception as problem+json (the
  domain API ``/api/v1`` and every non-OIP route); :func:`oip_error_for` answers it as the Open
  Inference Protocol's ``{"error": "<message>"}`` with the table's ``oip`` status (``/v2``);
  :func:`error_reply` picks one of the two by path. A web UI page (:func:`is_page`: any path
  outside the API prefixes) shows the message on its HTML error page instead. The message is
  ``str(err)``.
- Invalid inputs (the ``InputError`` row) add ``errors: [{index, field, position, message}]``;
  a 401 adds ``WWW-Authenticate``; a :class:`~helixserve.errors.ServiceUnavailable` adds
  ``Retry-After``. A ``HelixError`` whose row is ``logged`` (the server's fault) is logged,
  message only. Anything that is not a ``HelixError`` is a bug or an infrastructure failure: it
  is logged with the request id and the traceback, and the client gets an opaque 500 that names
  only the request id — never a traceback.
- :func:`item_errors` turns per-item input errors into the ``errors`` list (``index`` is the
  0-based position in the request; ``field`` names the JSON path; ``position`` is 1-based).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from helixserve.error_table import INTERNAL, TABLE, Row, answer_for
from helixserve.errors import InputError, InvalidRow, ServiceUnavailable
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


def problem_from(row: Row, detail: str, **extra: Any) -> Reply:
    """A problem+json reply with the status, type and title of ``row``."""
    return problem(row.status, row.kind, row.title, detail, **extra)


def public_answer(err: BaseException, request_id: str = "") -> tuple[Row, str]:
    """The table's row for ``err`` and the message a client may see: ``str(err)`` for a
    ``HelixError``, else an opaque one naming ``request_id`` (and ``err`` is logged)."""
    row, message = answer_for(err)
    return row, message if message is not None else _logged(err, request_id)


def problem_for(err: BaseException, *, instance: str = "", request_id: str = "") -> Reply:
    """The problem+json reply for ``err``; see the module contract."""
    row, detail = public_answer(err, request_id)
    errors = None
    if isinstance(err, InputError) and row is TABLE[InputError]:  # not a file over a limit
        errors = [
            {"index": err.index, "field": err.field, "position": err.position, "message": detail}
        ]
    reply = problem_from(row, detail, instance=instance, request_id=request_id, errors=errors)
    _finish(reply, err, row)
    return reply


def oip_error_for(err: BaseException, *, request_id: str = "") -> Reply:
    """The Open Inference Protocol's ``{"error": ...}`` reply for ``err``; see the contract."""
    row, text = public_answer(err, request_id)
    reply = json_reply({"error": text}, status=row.oip)
    _finish(reply, err, row)
    return reply


def error_reply(err: BaseException, *, path: str, request_id: str = "") -> Reply:
    """:func:`oip_error_for` on the OIP routes (``/v2``), else :func:`problem_for`."""
    if path.startswith("/v2"):
        return oip_error_for(err, request_id=request_id)
    return problem_for(err, instance=path, request_id=request_id)


_NOT_PAGES = ("/api/", "/v2", "/healthz", "/readyz", "/metrics", "/docs", "/openapi", "/static/")


def is_page(path: str) -> bool:
    """Whether ``path`` is a web UI page (answered with HTML error pages), not an API route."""
    return not path.startswith(_NOT_PAGES)


def _logged(err: BaseException, request_id: str) -> str:
    """Log an unexpected error with its traceback; the opaque message the client gets."""
    log.error("internal error [request %s]", request_id, exc_info=err)
    return (
        f"The server failed while handling this request (request id {request_id}). "
        "It has been logged; please report the request id."
    )


def _finish(reply: Reply, err: BaseException, row: Row) -> None:
    """Add the headers a row asks for; log a ``HelixError`` whose row
    is ``logged`` (a server fault) by its message."""
    if row.status == 401:
        reply.headers.append((b"www-authenticate", b'Bearer realm="helixserve"'))
    if isinstance(err, ServiceUnavailable):
        reply.headers.append((b"retry-after", str(err.retry_after).encode()))
    if row.logged and row is not INTERNAL:  # INTERNAL: logged with its traceback already
        log.error("%s [%s]: %s", row.title, type(err).__name__, err)


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
