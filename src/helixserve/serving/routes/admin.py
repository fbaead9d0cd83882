"""Operations and admin routes: ``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/admin/reload``.

Contract: ``/healthz`` answers ``{"status": "ok"}`` while the process runs; ``/readyz`` says
whether models are loaded (503 with the reason when not, or while draining); ``/metrics`` is the
Prometheus text exposition; ``POST /api/v1/admin/reload`` re-reads the store now and needs a key
with the ``admin`` scope when keys are configured (401/403 otherwise).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from helixserve.serving.deps import ServerDep, admin_scope
from helixserve.serving.metrics import CONTENT_TYPE
from helixserve.serving.responses import respond
from helixserve.serving.schemas import ERRORS, ReadyResponse, Status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Status)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(server: ServerDep) -> Response:
    """Readiness: models are loaded; says why not, and whether the store is reachable."""
    return respond(server.readiness())


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(server: ServerDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(server.metrics.render(), media_type=CONTENT_TYPE)


@router.post("/api/v1/admin/reload", responses=ERRORS)
async def reload(server: ServerDep, _admin: Annotated[None, Depends(admin_scope)]) -> Response:
    """Re-read the store now (needs an ``admin`` key when keys are configured)."""
    return respond(await server.reload())
