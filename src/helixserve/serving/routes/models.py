"""Model description routes of the domain API: ``GET /api/v1/models`` and
``GET /api/v1/models/{name}[?version=]`` (manifest, versions, aliases, card; 404 for an unknown
model or version). See :mod:`helixserve.serving.domain` for the shapes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from helixserve.serving import domain
from helixserve.serving.deps import ServerDep, VersionQuery
from helixserve.serving.responses import respond
from helixserve.serving.schemas import ERRORS, ModelDetail, ModelList

router = APIRouter(prefix="/api/v1/models", tags=["domain API"])


@router.get("", response_model=ModelList)
async def models(server: ServerDep) -> Response:
    """Every served model with its default version, versions, aliases and metrics."""
    return respond(domain.model_list(server.registry))


@router.get("/{name}", response_model=ModelDetail, responses=ERRORS)
async def model(server: ServerDep, name: str, version: VersionQuery = None) -> Response:
    """One model: manifest (input schema, labels, metrics), versions, aliases and card."""
    return respond(domain.model_detail(server.registry, name, version))
