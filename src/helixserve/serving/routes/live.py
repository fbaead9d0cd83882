"""Live workspace routes of the JSON API: a run's events as server-sent events, and block shapes.

Contract:
- ``GET /api/v1/projects/{project}/runs/{run_id}/events``: ``text/event-stream``
  (sse-starlette). Events, each with JSON ``data``:
  ``epoch`` ``{epoch, train_loss, val_loss, metrics, at}``, ``log`` ``{seq, line}`` and
  ``status`` ``{status, error, best_epoch, epochs_planned, started_at}``. The stream first
  replays what the database holds (every epoch and log line after the cursor, then the status),
  then polls the database every :data:`POLL_S` seconds, sending new epochs, new log lines and
  the status whenever it changes, so an epoch's point reaches the browser within a second. Each
  event's ``id`` is the cursor ``<last epoch>-<last log line>``: a client that reconnects with
  ``Last-Event-ID`` gets only what it has not seen (the status is sent again). The stream ends
  after the status of a ``finished``, ``failed``, ``stopped`` or ``interrupted`` run, and when
  the server starts draining. A run of another project, or an unknown one, is a 404 before any
  stream starts.
- ``POST /api/v1/blocks/shapes``: ``{recipe, params, blocks, classes}`` -> the recipe's input
  shape and each block's output shape as text (``128 x 58``, ``4352``) and parameter count;
  a stack that does not fit the recipe is a 422 whose message names the block
  (:func:`~helixserve.workspace.presets.check_recipe_blocks`), as are an unknown recipe and a
  hyper-parameter outside its declaration.
- Both need a workspace caller (:func:`live_access`): an API key in a header, or the browser's
  sign-in (the ``EventSource`` sends cookies, not headers); the events need a role in the
  run's project (none: 404, as for a project that does not exist).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from helixserve.errors import InputError
from helixserve.params.declare import InvalidParameter
from helixserve.params.recipes import DECLARED
from helixserve.serving.access import USER_COOKIE
from helixserve.serving.deps import KeyDep, ServerDep
from helixserve.serving.schemas import ERRORS
from helixserve.serving.sessions import COOKIE
from helixserve.workspace import runs
from helixserve.workspace.blocks import block_parameters, shape_text
from helixserve.workspace.deploy import project_run
from helixserve.workspace.members import LOCAL, Principal, require
from helixserve.workspace.models import Role, Run, RunStatus
from helixserve.workspace.presets import check_recipe_blocks, recipe_input
from helixserve.workspace.projects import listed
from helixserve.workspace.space import Workspace

router = APIRouter(tags=["workspace"])
POLL_S = 0.25
PING_S = 15
FINAL = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.INTERRUPTED})
_CURSOR = re.compile(r"^(\d{1,9})-(\d{1,9})$")
ADMIN_KEY = Principal("service", "admin key", admin=True, scope="admin")


def live_access(request: Request, server: ServerDep, key: KeyDep) -> Principal:
    """Whoever may use the workspace (:meth:`~helixserve.serving.access.Access.workspace_caller`:
    a key in a header, or the browser's signed-in user, whose ``EventSource`` sends cookies, not
    headers). While no user exists, a UI key session of an ``admin`` key (nothing while keys
    are off), as on the pages."""
    access = server.access
    if key is None and not access.accounts_on:
        server.check_page(request.cookies.get(COOKIE), "admin")
        return LOCAL if access.keys.admin_open else ADMIN_KEY
    return access.workspace_caller(key, request.cookies.get(USER_COOKIE))


LiveCaller = Annotated[Principal, Depends(live_access)]


async def live_workspace(server: ServerDep, _who: LiveCaller) -> Workspace:
    """The workspace, once :func:`live_access` let the caller in."""
    return server.workspace_ready()


LiveWorkspace = Annotated[Workspace, Depends(live_workspace)]


# --- run events -------------------------------------------------------------------------------


@dataclass
class Cursor:
    """What a client has seen: the last epoch and the last log line (0: none)."""

    epoch: int = 0
    seq: int = 0
    status: tuple[Any, ...] | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, last_event_id: str | None) -> Cursor:
        found = _CURSOR.fullmatch((last_event_id or "").strip())
        return cls(int(found[1]), int(found[2])) if found else cls()

    @property
    def id(self) -> str:
        return f"{self.epoch}-{self.seq}"


def status_data(run: Run) -> dict[str, Any]:
    """The ``status`` event's data for ``run``."""
    return {
        "status": run.status.value,
        "error": run.error,
        "best_epoch": run.best_epoch,
        "epochs_planned": run.epochs_planned,
        "started_at": run.started_at.isoformat() if run.started_at else None,
    }


def _event(kind: str, data: dict[str, Any], cursor: Cursor) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), event=kind, id=cursor.id)


def poll(space: Workspace, project: str, run_id: str, cursor: Cursor) -> tuple[list[Any], bool]:
    """New events after ``cursor`` (which moves on) and whether the run has ended. The run is
    read first: a run found finished has all its epochs written already."""
    events: list[ServerSentEvent] = []
    with space.db.session() as session:
        run = project_run(session, project, run_id)
        status = status_data(run)
        epochs = runs.epochs_since(session, run_id, cursor.epoch)
        lines = runs.logs_since(session, run_id, cursor.seq)
        for row in epochs:
            cursor.epoch = row.epoch
            point = {
                "epoch": row.epoch,
                "train_loss": row.train_loss,
                "val_loss": row.val_loss,
                "metrics": row.metrics,
                "at": row.at.isoformat(),
            }
            events.append(_event("epoch", point, cursor))
        for line in lines:
            cursor.seq = line.seq
            events.append(_event("log", {"seq": line.seq, "line": line.line}, cursor))
        key = tuple(status.values())
        if key != cursor.status:
            cursor.status = key
            events.append(_event("status", status, cursor))
        return events, run.status in FINAL


async def run_events(
    space: Workspace, project: str, run_id: str, cursor: Cursor, draining: Callable[[], bool]
) -> AsyncIterator[ServerSentEvent]:
    """Replay, then follow the run until it ends (see the module contract)."""
    while True:
        events, ended = await asyncio.to_thread(poll, space, project, run_id, cursor)
        for event in events:
            yield event
        if ended or draining():
            return
        await asyncio.sleep(POLL_S)


def _check_run(space: Workspace, who: Principal, project: str, run_id: str) -> None:
    with space.db.session() as session:
        require(session, who, project, Role.VIEWER)
        project_run(session, project, run_id)


EVENTS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "Server-sent events. `epoch`: {epoch, train_loss, val_loss, metrics, at}; `log`: "
            "{seq, line}; `status`: {status, error, best_epoch, epochs_planned, started_at}. "
            "Each event's id is the cursor `<epoch>-<log line>` for Last-Event-ID."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}


@router.get(
    "/api/v1/projects/{project}/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={**ERRORS, **EVENTS_DOC},
)
async def events(
    project: str,
    run_id: str,
    space: LiveWorkspace,
    server: ServerDep,
    who: LiveCaller,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """A run's live epochs, log lines and status (see the module contract)."""
    await asyncio.to_thread(_check_run, space, who, project, run_id)
    cursor = Cursor.parse(last_event_id)
    stream = run_events(space, project, run_id, cursor, lambda: server.drain.draining)
    return EventSourceResponse(stream, ping=PING_S, headers={"Cache-Control": "no-store"})


# --- block shapes -----------------------------------------------------------------------------


class ShapesRequest(BaseModel):
    """A block stack to check for a recipe."""

    model_config = ConfigDict(strict=True, extra="forbid")

    recipe: str = Field(description="a neural recipe: dna-binary, dna-regression, ...")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the recipe's hyper-parameters (input size)"
    )
    blocks: list[dict[str, Any]] = Field(description='[{"type": "conv1d", ...}, ...]')
    classes: int = Field(2, ge=2, le=100_000, description="classes of a multiclass target")


class BlockShape(BaseModel):
    number: int = Field(description="1-based place in the stack")
    type: str
    shape: str = Field(description="output shape, channels first: '128 x 58'")
    parameters: int


class ShapesResponse(BaseModel):
    input: str = Field(description="the recipe's input shape: '4 x 70'")
    blocks: list[BlockShape]
    total_parameters: int


def block_shapes(body: ShapesRequest) -> ShapesResponse:
    """Each block's output shape and parameters, or a 422 naming the block."""
    if body.recipe not in DECLARED:
        raise InputError(
            f"unknown recipe {body.recipe!r}; choose one of {listed(list(DECLARED))}.",
            field="recipe",
        )
    try:
        DECLARED[body.recipe].build(dict(body.params))
    except InvalidParameter as err:
        raise InputError(str(err), field="params") from None
    shapes = check_recipe_blocks(body.recipe, body.params, body.blocks, classes=body.classes)
    first = recipe_input(body.recipe, body.params)
    counts = block_parameters(first, body.blocks)
    rows = [
        BlockShape(number=n, type=str(block["type"]), shape=shape_text(shape), parameters=count)
        for n, (block, shape, count) in enumerate(zip(body.blocks, shapes, counts, strict=True), 1)
    ]
    return ShapesResponse(input=shape_text(first), blocks=rows, total_parameters=sum(counts))


@router.post(
    "/api/v1/blocks/shapes",
    response_model=ShapesResponse,
    responses=ERRORS,
    dependencies=[Depends(live_access)],
)
async def shapes(body: ShapesRequest) -> ShapesResponse:
    """Each block's output shape and parameter count for a recipe's input."""
    return block_shapes(body)
