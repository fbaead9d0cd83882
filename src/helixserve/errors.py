"""Typed domain errors shared by every layer.

Contract:
- Every error helixserve raises on purpose derives from :class:`HelixError`; ``str(err)`` is a
  complete message for a person: what was wrong, where, what arrived and how to fix it.
- Input errors (:class:`InputError` and subclasses) also carry *where* as data (``field``,
  ``position`` (1-based), ``character``, and for records read from a file ``index`` (1-based record
  number), ``record_id`` and ``line`` (1-based line number)), so an API can return them as
  structured problem details and a CLI can print them.
- These classes are raised deep (``inputs``, ``store``, ``runtime``) and translated only at the
  edges, every edge through the one table :mod:`helixserve.error_table` (HTTP status, problem
  type, title, gRPC code per class); the CLI prints ``Error: ...`` and exits 1. A class needs
  no edge code of its own: it takes the row of its nearest listed base class.
"""

from __future__ import annotations

from typing import Self, TypeVar

_E = TypeVar("_E", bound="InputError")


class HelixError(Exception):
    """Base class of every deliberate helixserve error; ``str()`` is the user-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(HelixError):
    """An input (sequence, row, image, file) is not acceptable.

    ``problem`` is the message without location; ``str()`` prefixes the record location when
    one is known, e.g. ``record 1,203 (id chr2_77), line 2,407: <problem>``.
    """

    def __init__(
        self,
        problem: str,
        *,
        field: str | None = None,
        position: int | None = None,
        character: str | None = None,
        index: int | None = None,
        record_id: str | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.field = field
        self.position = position
        self.character = character
        self.index = index
        self.record_id = record_id
        self.line = line
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = describe_location(self.index, self.record_id, self.line)
        return f"{where}: {self.problem}" if where else self.problem

    def at(self, *, index: int | None, record_id: str | None, line: int | None) -> Self:
        """Return a copy of this error located at a record of a file."""
        located = _blank(type(self), self.__dict__)
        located.index, located.record_id, located.line = index, record_id, line
        located.message = located._compose()
        located.args = (located.message,)
        return located

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle by state (keyword-only constructors cannot be rebuilt from ``args``)."""
        return (_blank, (type(self), self.__dict__))


def _blank(cls: type[_E], state: dict[str, object]) -> _E:
    """An instance of ``cls`` with ``state``, made without calling ``__init__``."""
    made = cls.__new__(cls)
    made.__dict__.update(state)
    made.args = (state.get("message", ""),)
    return made


class InvalidSequence(InputError):
    """A DNA/RNA sequence is empty, has a character outside the alphabet, or has a bad length."""


class InvalidRow(InputError):
    """A tabular row has missing, unknown, non-numeric or out-of-range fields.

    ``field_errors`` holds one :class:`InputError` per bad field (each with ``field`` set).
    """

    def __init__(
        self,
        problem: str,
        *,
        field_errors: list[InputError],
        index: int | None = None,
        record_id: str | None = None,
        line: int | None = None,
    ) -> None:
        self.field_errors = field_errors
        super().__init__(problem, index=index, record_id=record_id, line=line)


class InvalidImage(InputError):
    """An image cannot be decoded, is too large, is a decompression bomb or has the wrong shape."""


class InvalidFile(InputError):
    """A whole file cannot be read: empty, binary, truncated, unknown format or missing column."""


class FileTooLarge(InvalidFile):
    """A file is over a size limit once read: it decompresses to more bytes than allowed (a gzip
    bomb) or holds more records than one upload may. The whole file is refused."""


class InvalidTensor(InputError):
    """An array given to an encoder/decoder has the wrong shape, dtype or values."""


class EmptyDataset(InvalidFile):
    """A dataset file was read but none of its rows is valid; the message names the file and
    the first refused row."""


class InvalidSubset(InputError):
    """A dataset subset cannot be made: an unknown column or subset, an operator that does not
    fit the column's values, a fraction outside (0, 1), or subsets that refer to each other."""


class EmptySubset(InvalidSubset):
    """A dataset subset is valid but selects no row; the message names the subset."""


class SplitOverlap(InvalidSubset):
    """Training, validation and test subsets share rows; the message names the subsets."""


def describe_location(index: int | None, record_id: str | None, line: int | None) -> str:
    """``record 1,203 (id chr2_77), line 2,407`` — the parts that are known, or ``""``."""
    parts: list[str] = []
    if index is not None:
        parts.append(f"record {index:,}" + (f" (id {record_id})" if record_id else ""))
    elif record_id:
        parts.append(f"id {record_id}")
    if line is not None:
        parts.append(f"line {line:,}")
    return ", ".join(parts)


class NotFound(HelixError):
    """Something asked for by name or id does not exist (a model: :class:`ModelNotFound`)."""


class StoreError(HelixError):
    """A model store operation failed (base class)."""


class InvalidName(StoreError):
    """A model name, version or alias is not allowed (e.g. ``..``, ``/`` or control characters)."""


class ModelNotFound(StoreError, NotFound):
    """No model, version or alias of that name in the store (or served)."""


class DatasetNotFound(NotFound, StoreError):
    """No dataset file with that sha256 in the store (listed before ``StoreError`` so that it
    answers 404, not the store outage's 503)."""


class InvalidFilename(InvalidName):
    """A dataset file name is not allowed: empty, too long, a path (``/``, ``\\``, ``..``) or
    control characters."""


class IntegrityError(StoreError):
    """A bundle file's sha256 does not match its manifest: corrupted or truncated."""


class ManifestError(StoreError):
    """A manifest is missing, not valid JSON, or does not match the bundle contract."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (network, endpoint, credentials)."""


class StorePermissionError(StoreError):
    """The store refused a write: e.g. read-only credentials."""


class VersionConflict(StoreError):
    """A version or alias operation conflicts with the store's state (e.g. alias points at it)."""


class CacheError(StoreError):
    """The local bundle cache cannot be written (see HELIXSERVE_CACHE_DIR)."""


class ModelLoadError(HelixError):
    """A bundle's model cannot be loaded or does not match its manifest's schema."""


class SelfTestError(ModelLoadError):
    """A bundle's self-test examples no longer give the outputs stored at publish time."""


class ModelRunError(HelixError):
    """ONNX Runtime failed while running a loaded model (a model problem, not the input's)."""


class ServiceUnavailable(HelixError):
    """The server cannot take the request now; ``retry_after`` (seconds) says when to try again."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyAttempts(ServiceUnavailable):
    """Too many failed sign-ins for one account or from one address: wait ``retry_after``
    seconds (HTTP 429)."""


class Overloaded(ServiceUnavailable):
    """A model's request queue is full (back-pressure instead of queueing without limit)."""


class RequestTimeout(ServiceUnavailable):
    """A request waited longer than the per-request timeout."""


class ShuttingDown(ServiceUnavailable):
    """The server is draining before it stops (SIGTERM); another instance should answer."""


class RequestError(HelixError):
    """A request to the API is malformed (not JSON, wrong fields), not the items in it."""


class RequestTooLarge(RequestError):
    """A request body (or one upload) is over its size limit, or holds too many items."""


class AuthError(HelixError):
    """Missing or wrong API key: the caller is not known (HTTP 401)."""


class Forbidden(AuthError):
    """The caller is known but may not do this: a key without the route's scope (HTTP 403)."""


class Conflict(HelixError):
    """The request conflicts with the current state: a name already taken, a run that is not in
    a state the operation needs (HTTP 409)."""


class NameTaken(Conflict):
    """A name that must be unique (a project, an experiment in a project) is already used."""


class RunStateConflict(Conflict):
    """A run is not in a state that allows the operation (e.g. resuming a finished run)."""


class ProjectNotFound(NotFound):
    """No workspace project of that name."""


class ExperimentNotFound(NotFound):
    """No experiment of that id or name (in that project)."""


class RunNotFound(NotFound):
    """No run of that id."""


class DatabaseError(HelixError):
    """The workspace database cannot be used (base class): unreachable, locked, misconfigured."""


class DatabaseUnavailable(DatabaseError):
    """The workspace database cannot be reached or answered with an error (HTTP 503)."""


class InvalidDatabaseUrl(DatabaseError):
    """``HELIXSERVE_DATABASE_URL`` (or a URL given in code) is not a usable database URL."""


class InvalidBlocks(InputError):
    """A block stack (a network written as a list of layers) cannot be built: an unknown block
    type or field, a value out of its range, a shape a block cannot take, an output that does not
    fit the task, or too many parameters. The message names the block (``block 3 (dense): ...``)."""
