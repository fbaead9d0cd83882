"""Prediction routes of the domain API.

Contract:
- ``POST /api/v1/models/{name}/predict[?version=]``: body :class:`~helixserve.serving.schemas.
  PredictRequest`; answer :class:`~helixserve.serving.schemas.PredictResponse` (one prediction
  per input, ``null`` + an ``errors`` entry for each bad one; 422 when all are bad).
- ``POST /api/v1/models/{name}/predict-file``: a multipart ``file`` (FASTA/CSV/TSV/text, gzip
  too, or one image); JSON, or CSV when ``Accept: text/csv`` (cells exact; formula-like cells
  quoted with ``?spreadsheet_safe=true``).
- ``POST /api/v1/getdnaclassapi``: the seed article's route, ``{"dnasequence": ...}`` in, the
  class as plain text out (the default DNA model); a body that breaks the contract is a plain-text
  400, an invalid sequence a plain-text 422.
- ``predict`` and ``getdnaclassapi`` are hot: the app's fast path serves them from these same
  declarations (:func:`~helixserve.serving.responses.hot`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from fastapi.responses import Response

from helixserve.errors import RequestError
from helixserve.serving import domain
from helixserve.serving.deps import KeyDep, LimitsDep, ModelDep, ServerDep
from helixserve.serving.files import SPREADSHEET_SAFE, predict_file
from helixserve.serving.registry import LoadedModel
from helixserve.serving.responses import hot, respond, upload
from helixserve.serving.schemas import (
    ERRORS,
    FileResponse,
    PredictRequest,
    PredictResponse,
    SeedRequest,
)
from helixserve.serving.server import stamp

router = APIRouter(tags=["domain API"])
PredictBody = Annotated[PredictRequest, Depends(PredictRequest.from_request)]
SeedBody = Annotated[SeedRequest | RequestError, Depends(SeedRequest.or_refusal)]


@router.post(
    "/api/v1/models/{name}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={"x-helixserve-body": "PredictRequest"},
)
@hot
async def predict(request: Request, model: ModelDep, body: PredictBody) -> Response:
    """Predict a list of inputs (DNA strings, tabular rows as objects, base64 images)."""
    return respond(stamp(await domain.predict_json(model, body.inputs), model), request)


@router.post(
    "/api/v1/models/{name}/predict-file",
    response_model=FileResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
@upload
async def predict_upload(
    model: ModelDep,
    limits: LimitsDep,
    file: Annotated[UploadFile, File()],
    accept: Annotated[str | None, Header()] = None,
    spreadsheet_safe: Annotated[bool, Query(description=SPREADSHEET_SAFE)] = False,
) -> Response:
    """Score a FASTA/CSV/TSV/text file (gzip too) or one image; bad rows are reported."""
    as_csv = "text/csv" in (accept or "")
    name = file.filename or ""
    return respond(await predict_file(model, file.file, name, as_csv, limits, spreadsheet_safe))


async def seed_model(server: ServerDep, key: KeyDep) -> LoadedModel:
    """The seed route's model: the default DNA model (``HELIXSERVE_DEFAULT_DNA_MODEL``)."""
    return server.model(server.settings.default_dna_model, None, key)


@router.post(
    "/api/v1/getdnaclassapi",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        422: {"content": {"text/plain": {}}},
        400: {"content": {"text/plain": {}}},
    },
    openapi_extra={"x-helixserve-body": "SeedRequest"},
)
@hot
async def seed(model: Annotated[LoadedModel, Depends(seed_model)], body: SeedBody) -> Response:
    """The seed article's route: the class (0/1) of one DNA sequence, as plain text."""
    if isinstance(body, RequestError):
        return respond(stamp(domain.refused_as_text(body), model))
    return respond(stamp(await domain.seed_dna_class(model, body.dnasequence), model))
