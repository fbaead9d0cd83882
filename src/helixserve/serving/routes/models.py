"""Model description routes of the domain API: ``GET /api/v1/models`` and
``GET /api/v1/models/{name}[?version=]`` (manifest, versions, aliases, card; 404 for an unknown
model or version). Open while no user exists; with accounts on they need a caller and show only
the models the caller may use (:class:`~helixserve.serving.access.Access`). See
:mod:`helixserve.serving.domain` for the shapes.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from helixserve.serving import domain
from helixserve.serving.deps import KeyDep, ServerDep, VersionQuery
from helixserve.serving.responses import respond
from helixserve.serving.schemas import ERRORS, ModelDetail, ModelList

router = APIRouter(prefix="/api/v1/models", tags=["domain API"])


@router.get("", response_model=ModelList)
def models(server: ServerDep, key: KeyDep) -> Response:
    """Every served model with its default version, versions, aliases and metrics (while
    accounts are on: the models the caller may use)."""
    access = server.access
    if not access.accounts_on:
        return respond(domain.model_list(server.registry))
    who = access.model_caller(key)
    return respond(domain.model_list(server.registry, lambda n: access.may_use_model(who, n)))


@router.get("/{name}", response_model=ModelDetail, responses=ERRORS)
def model(server: ServerDep, key: KeyDep, name: str, version: VersionQuery = None) -> Response:
    """One model: manifest (input schema, labels, metrics), versions, aliases and card."""
    if server.access.accounts_on:
        server.access.check_model(server.access.model_caller(key), name)
    return respond(domain.model_detail(server.registry, name, version))
