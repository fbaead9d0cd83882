"""Live workspace routes of the JSON API: a run's events as server-sent events, and block shapes.

Contract:
- ``GET /api/v1/projects/{project}/runs/{run_id}/events``: ``text/event-stream``
  (sse-starlette). Events, each with JSON ``data``:
  ``epoch`` ``{epoch, train_loss, val_loss, metrics, at}``, ``log`` ``{seq, line}`` and
  ``status`` ``{status, error, best_epoch, epochs_planned, started_at}``. The stream first
  replays what the database holds (every epoch and log line after the cursor, then the status),
  then follows the run: new epochs, new log lines and the status whenever it changes, read
  from the database every :data:`~helixserve.serving.live_feed.POLL_S` seconds, so an epoch's
  point reaches the browser within a second. Each event's ``id`` is the cursor
  ``<last epoch>-<last log line>``: a client that reconnects with ``Last-Event-ID`` gets only what
  it has not seen (the status is sent again). The stream ends after the status of a
  ``finished``, ``failed``, ``stopped`` or ``interrupted`` run, and when the server starts
  draining. A run of another project, or an unknown one, is a 404 before any stream starts.
  Every stream of a run in one server process shares one database poller
  (:mod:`helixserve.serving.live_feed`): the database work per run does not grow with its
  watchers; the access check is made for each stream as it opens.
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
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from helixserve.errors import InputError
from helixserve.params.declare import InvalidParameter
from helixserve.params.recipes import DECLARED
from helixserve.serving.access import USER_COOKIE
from helixserve.serving.deps import KeyDep, ServerDep
from helixserve.serving.live_feed import Cursor
from helixserve.serving.schemas import ERRORS
from helixserve.serving.sessions import COOKIE
from helixserve.workspace.blocks import block_parameters, shape_text
from helixserve.workspace.deploy import project_run
from helixserve.workspace.members import LOCAL, Principal, require
from helixserve.workspace.models import Role
from helixserve.workspace.presets import check_recipe_blocks, recipe_input
from helixserve.workspace.projects import listed
from helixserve.workspace.space import Workspace

router = APIRouter(tags=["workspace"])
PING_S = 15
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
    stream = server.live.follow(space, project, run_id, cursor, lambda: server.drain.draining)
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
