"""Open Inference Protocol v2 over REST (``/v2``), as KServe / Triton / Seldon clients expect.

Contract: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready`` (503 while not
ready), and under both ``/v2/models/{name}`` and ``/v2/models/{name}/versions/{version}``:
``GET`` (model metadata), ``GET .../ready`` and ``POST .../infer``. The infer body is JSON
(:class:`~helixserve.serving.schemas.InferRequestBody`) optionally followed by binary tensor
data (``Inference-Header-Content-Length``), parsed once by
:func:`~helixserve.serving.oip_rest.parse_infer_request`. Errors answer ``{"error": ...}``.
``infer`` is hot (served by the app's fast path from this declaration).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from helixserve.serving import oip
from helixserve.serving.deps import KeyDep, ServerDep
from helixserve.serving.oip_rest import InferRequest, parse_infer_request
from helixserve.serving.problems import json_reply
from helixserve.serving.registry import LoadedModel
from helixserve.serving.responses import hot, respond
from helixserve.serving.schemas import OIP_ERRORS, InferResponse, ModelMetadata, ServerMetadata

router = APIRouter(tags=["Open Inference Protocol v2"])
PREFIXES = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata() -> dict[str, Any]:
    return oip.server_metadata()


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready", responses={503: {"model": dict[str, bool]}})
async def ready(server: ServerDep) -> Response:
    return respond(json_reply({"ready": server.ready}, 200 if server.ready else 503))


def visible_model(server: ServerDep, key: KeyDep, name: str) -> None:
    """While accounts are on, the caller may see model ``name`` (its project's members; every
    caller for a model of no project); a plain ``def``: a user's key may need the database."""
    access = server.access
    if access.accounts_on:
        access.check_model(access.model_caller(key), name)


VISIBLE = [Depends(visible_model)]


async def metadata(server: ServerDep, name: str, version: str | None = None) -> dict[str, Any]:
    registry = server.registry
    return oip.model_metadata(registry.entry(name), registry.resolve(name, version))


async def model_ready(server: ServerDep, name: str, version: str | None = None) -> dict[str, Any]:
    model = server.registry.resolve(name, version)
    return {"name": model.name, "version": str(model.version), "ready": True}


async def infer_model(
    server: ServerDep, key: KeyDep, name: str, version: str | None = None
) -> LoadedModel:
    """The model an infer request names, for a key with the ``predict`` scope."""
    return server.model(name, version, key)


async def infer_body(request: Request) -> InferRequest:
    """The infer request (JSON, then binary tensor data when the header says so)."""
    length = request.headers.get("inference-header-content-length")
    return parse_infer_request(await request.body(), length)


@hot
async def infer(
    server: ServerDep,
    model: Annotated[LoadedModel, Depends(infer_model)],
    body: Annotated[InferRequest, Depends(infer_body)],
) -> Response:
    return respond(await server.infer(model, body))


for _prefix in PREFIXES:
    router.add_api_route(
        _prefix,
        metadata,
        methods=["GET"],
        response_model=ModelMetadata,
        responses=OIP_ERRORS,
        dependencies=VISIBLE,
    )
    router.add_api_route(
        _prefix + "/ready", model_ready, methods=["GET"], responses=OIP_ERRORS, dependencies=VISIBLE
    )
    router.add_api_route(
        _prefix + "/infer",
        infer,
        methods=["POST"],
        response_model=InferResponse,
        responses=OIP_ERRORS,
        openapi_extra={"x-helixserve-body": "InferRequestBody"},
    )
