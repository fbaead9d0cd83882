"""What each error becomes at every edge: the one error table.

Contract:
- :data:`TABLE` maps a :class:`~helixserve.errors.HelixError` class to a :class:`Row`: HTTP
  status, RFC 9457 problem ``type`` (the last part of ``https://helixserve.dev/problems/<type>``),
  ``title``, gRPC status code (the ``grpc.StatusCode`` *name*, so this module needs no grpc), and
  ``oip_status``, the one per-protocol difference (see below); ``logged`` marks the server's
  own faults, which every edge logs (message only) besides answering. It is pure data next to the
  exceptions and imports only :mod:`helixserve.errors`, so every layer may read it.
- :func:`row_for` looks an exception up by its MRO: the most specific listed class wins, so a
  subclass defined anywhere (``OipError``, ``FormRefused``, ``LoginNeeded``, ``InvalidVariant``,
  ``TrainingError``, ``BatchError``) takes its nearest listed base's row. Every ``HelixError``
  has a row (the ``HelixError`` row is the fallback: a deliberate error, message shown, 500).
  Anything else gets ``None``: the edge answers the opaque :data:`INTERNAL` (500 / INTERNAL with
  only a request id) and logs the traceback.
- Readers: REST domain API (:mod:`helixserve.serving.problems`), OIP REST (same module,
  ``{"error": ...}`` bodies), gRPC (:mod:`helixserve.serving.grpc_server`), the web UI's error
  pages (:mod:`helixserve.serving.ui`) and the CLI (``Error: <message>``, exit 1 for every
  ``HelixError``). The message shown is always ``str(err)``.

Decisions where the edges used to disagree (docs/serving.md has the same table):
- ``InputError`` is 422 on ``/api/v1`` (and UI pages) but 400 on ``/v2``: the Open Inference
  Protocol says a failed request answers "an HTTP error status (usually 400)" and KServe and
  Triton answer 400 for a bad tensor, so existing OIP clients see what they expect. This is the
  only ``oip_status`` set. gRPC: INVALID_ARGUMENT (it was missing: bad inputs became INTERNAL).
- A store failure (``StoreError``) is 503 / UNAVAILABLE everywhere (gRPC said INTERNAL, and
  ``/v2`` answered problem+json instead of the protocol's ``{"error": ...}``).
- A damaged bundle is not an outage: ``IntegrityError`` is 500 / DATA_LOSS and ``ManifestError``
  500 / INTERNAL (REST said 503, which invites retries that cannot help).
- A bad model name (``InvalidName``) is the caller's: 400 / INVALID_ARGUMENT (REST said 503).
- ``VersionConflict`` is 409 / FAILED_PRECONDITION (REST said 503), like every workspace
  ``Conflict`` (a name taken, a run in the wrong state).
- The workspace database: unreachable or failing (``DatabaseError``) is 503 / UNAVAILABLE like a
  store outage; a bad ``HELIXSERVE_DATABASE_URL`` (``InvalidDatabaseUrl``) is the server's
  configuration, 500 / INTERNAL with its message. Both are logged.
- Every size limit (``RequestTooLarge``, ``FileTooLarge``) is 413, problem type ``too-large``,
  gRPC RESOURCE_EXHAUSTED, as gRPC itself answers an oversized message (REST typed a request
  over the limit ``bad-request``; the UI answered an upload over the limit 422).
- A model that cannot load or run (``ModelLoadError``, ``ModelRunError``) and any other
  deliberate ``HelixError`` is 500 / INTERNAL *with its message* (REST and gRPC hid it behind a
  request id like a bug; ``OipError`` on ``/api/v1`` was an opaque 500 too).
- The web UI's pages answer with the same statuses (an upload's every error was 422, a store
  outage included; an uncaught error on a page was problem+json, now the HTML error page). A
  variant or design page of a model that takes no DNA stays 404 (it raises ``NotFound``).
- 401 vs 403 and 400 vs 413 are classes now (``Forbidden``, ``RequestTooLarge``), not a
  ``status`` attribute that each edge read differently.
"""

from __future__ import annotations

from dataclasses import dataclass

from helixserve.errors import (
    AuthError,
    Conflict,
    DatabaseError,
    FileTooLarge,
    Forbidden,
    HelixError,
    InputError,
    IntegrityError,
    InvalidDatabaseUrl,
    InvalidName,
    ManifestError,
    ModelLoadError,
    ModelNotFound,
    ModelRunError,
    NotFound,
    RequestError,
    RequestTooLarge,
    ServiceUnavailable,
    StoreError,
    TooManyAttempts,
    VersionConflict,
)


@dataclass(frozen=True)
class Row:
    """How one error class is answered; see the module contract."""

    status: int
    kind: str
    title: str
    grpc: str
    oip_status: int | None = None
    logged: bool = False

    @property
    def oip(self) -> int:
        """The HTTP status on the Open Inference Protocol routes (``/v2``)."""
        return self.status if self.oip_status is None else self.oip_status


TABLE: dict[type[HelixError], Row] = {
    HelixError: Row(500, "server-error", "Server error", "INTERNAL", logged=True),
    InputError: Row(422, "invalid-input", "Invalid input", "INVALID_ARGUMENT", oip_status=400),
    FileTooLarge: Row(413, "too-large", "Content too large", "RESOURCE_EXHAUSTED"),
    RequestError: Row(400, "bad-request", "Bad request", "INVALID_ARGUMENT"),
    RequestTooLarge: Row(413, "too-large", "Content too large", "RESOURCE_EXHAUSTED"),
    AuthError: Row(401, "unauthorized", "Unauthorized", "UNAUTHENTICATED"),
    Forbidden: Row(403, "forbidden", "Forbidden", "PERMISSION_DENIED"),
    NotFound: Row(404, "not-found", "Not found", "NOT_FOUND"),
    ModelNotFound: Row(404, "model-not-found", "Model not found", "NOT_FOUND"),
    StoreError: Row(503, "store-unavailable", "Store unavailable", "UNAVAILABLE", logged=True),
    InvalidName: Row(400, "invalid-name", "Invalid name", "INVALID_ARGUMENT"),
    IntegrityError: Row(500, "damaged-bundle", "Damaged model bundle", "DATA_LOSS", logged=True),
    ManifestError: Row(500, "invalid-bundle", "Invalid model bundle", "INTERNAL", logged=True),
    VersionConflict: Row(409, "conflict", "Conflict", "FAILED_PRECONDITION"),
    ModelLoadError: Row(500, "model-error", "Model error", "INTERNAL", logged=True),
    ModelRunError: Row(500, "model-error", "Model error", "INTERNAL", logged=True),
    ServiceUnavailable: Row(503, "unavailable", "Service unavailable", "UNAVAILABLE"),
    TooManyAttempts: Row(429, "too-many-attempts", "Too many attempts", "RESOURCE_EXHAUSTED"),
    Conflict: Row(409, "conflict", "Conflict", "FAILED_PRECONDITION"),
    DatabaseError: Row(
        503, "database-unavailable", "Database unavailable", "UNAVAILABLE", logged=True
    ),
    InvalidDatabaseUrl: Row(
        500, "database-misconfigured", "Database misconfigured", "INTERNAL", logged=True
    ),
}

INTERNAL = Row(500, "internal", "Internal server error", "INTERNAL", logged=True)
"""The answer to an exception that is not a ``HelixError`` (a bug): its message is never shown;
the edges log it with its traceback."""


def row_for(err: BaseException | type[BaseException]) -> Row | None:
    """The row of ``err`` (an instance or a class): its most specific listed class, or ``None``
    for anything that is not a :class:`~helixserve.errors.HelixError`."""
    kind = err if isinstance(err, type) else type(err)
    for cls in kind.__mro__:
        row = TABLE.get(cls)
        if row is not None:
            return row
    return None


def status_of(err: BaseException) -> int:
    """The HTTP status of ``err`` on ``/api/v1`` and the web UI (500 for a non-``HelixError``)."""
    return (row_for(err) or INTERNAL).status


def answer_for(err: BaseException) -> tuple[Row, str | None]:
    """``(row, message)``: the table's row and ``str(err)`` for a ``HelixError``;
    ``(INTERNAL, None)`` for anything else (the edge words the opaque message)."""
    row = row_for(err)
    return (row, str(err)) if row is not None else (INTERNAL, None)
