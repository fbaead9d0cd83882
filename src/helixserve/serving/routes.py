"""The FastAPI app: every route declared (OpenAPI, ``/docs``), the non-hot ones handled here.

Contract:
- Routes: ``/healthz``, ``/readyz``, ``/metrics``; ``/api/v1/models``, ``/api/v1/models/{name}``,
  ``.../predict``, ``.../predict-file``, ``/api/v1/getdnaclassapi``, ``/api/v1/admin/reload``;
  the Open Inference Protocol v2 under ``/v2``; ``/docs`` with its assets served from this
  server (:mod:`helixserve.serving.api_docs`; no ``/redoc``). The hot POST routes are served
  by the raw-ASGI front (:mod:`helixserve.serving.app`); their declarations here call the same
  :class:`~helixserve.serving.server.Server` methods, so behaviour cannot drift.
- Every error is problem+json (OIP routes: ``{"error": ...}``), including FastAPI's own
  validation errors and unknown paths; nothing answers with a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from functools import partial
from typing import Annotated, Any

from fastapi import FastAPI, File, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

import helixserve
from helixserve.errors import HelixError, RequestError
from helixserve.explain.design import design
from helixserve.explain.ism import BASES, Variant, ism, variant_effects
from helixserve.serving import domain, oip
from helixserve.serving.api_docs import mount_docs
from helixserve.serving.auth import key_from_headers
from helixserve.serving.files import predict_file
from helixserve.serving.metrics import CONTENT_TYPE
from helixserve.serving.problems import (
    Reply,
    error_reply,
    is_page,
    json_reply,
    problem,
    public_answer,
)
from helixserve.serving.schemas import (
    ERRORS,
    OIP_ERRORS,
    DesignRequest,
    DesignResponse,
    ExplainRequest,
    ExplainResponse,
    FileResponse,
    InferRequestBody,
    InferResponse,
    ModelDetail,
    ModelList,
    ModelMetadata,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    SeedRequest,
    ServerMetadata,
    Status,
    VariantsRequest,
    VariantsResponse,
)
from helixserve.serving.server import Server
from helixserve.serving.ui import Pages, mount_ui
from helixserve.serving.ui_explain import mount_explain_ui

VersionQuery = Annotated[
    str | None,
    Query(description="version number or alias; default: the production alias, else the latest"),
]


def respond(reply: Reply, request: Request | None = None) -> Response:
    headers = {k.decode(): v.decode() for k, v in reply.headers}
    return Response(reply.body, reply.status, headers, media_type=reply.content_type.decode())


def _key(request: Request) -> str | None:
    h = request.headers
    return key_from_headers(h.get("authorization"), h.get("x-api-key"))


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def build_api(server: Server) -> FastAPI:
    """The FastAPI app bound to ``server``; see the module contract."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    api = FastAPI(
        title="helixserve",
        version=helixserve.__version__,
        lifespan=lifespan,
        description="Predictions from life-science models: DNA, tabular lab values, images.",
        docs_url=None,
        redoc_url=None,
    )
    _errors(api)
    mount_docs(api)
    _operations(api, server)
    _domain(api, server)
    _oip(api, server)
    _explain(api, server)
    mount_ui(api, server)
    mount_explain_ui(api, server)
    return api


def _errors(api: FastAPI) -> None:
    @api.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(err.status_code, "Error")
        reply = problem(
            err.status_code,
            "http",
            title,
            str(err.detail),
            instance=request.url.path,
            request_id=_rid(request),
        )
        if request.url.path.startswith("/v2"):
            reply = json_reply({"error": str(err.detail)}, err.status_code)
        reply.headers += [(k.encode(), v.encode()) for k, v in (err.headers or {}).items()]
        return respond(reply)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> Response:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return await any_error(request, RequestError(message))

    @api.exception_handler(HelixError)
    async def domain_error(request: Request, err: HelixError) -> Response:
        return await any_error(request, err)

    @api.exception_handler(ClientDisconnect)
    async def gone(request: Request, err: ClientDisconnect) -> Response:
        """The body stopped short (the client left, or the app refused it at its size limit):
        not a server fault, so nothing is logged as one."""
        message = "the client disconnected before sending the whole body."
        return await any_error(request, RequestError(message))

    @api.exception_handler(Exception)
    async def any_error(request: Request, err: Exception) -> Response:
        path = request.url.path
        pages: Pages | None = getattr(request.app.state, "pages", None)
        if pages is not None and is_page(path):  # a web UI page: the HTML error page
            return pages.error(request, err, public_answer(err, _rid(request))[1])
        return respond(error_reply(err, path=path, request_id=_rid(request)))


def _operations(api: FastAPI, server: Server) -> None:
    @api.get("/healthz", response_model=Status, tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @api.get(
        "/readyz",
        response_model=ReadyResponse,
        tags=["operations"],
        responses={503: {"model": ReadyResponse}},
    )
    async def readyz() -> Response:
        """Readiness: models are loaded; says why not, and whether the store is reachable."""
        return respond(server.readiness())

    @api.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(server.metrics.render(), media_type=CONTENT_TYPE)

    @api.post("/api/v1/admin/reload", tags=["operations"], responses=ERRORS)
    async def reload(request: Request) -> Response:
        """Re-read the store now (needs an ``admin`` key when keys are configured)."""
        return respond(await server.reload(_key(request)))


def _domain(api: FastAPI, server: Server) -> None:
    tags: list[str | Enum] = ["domain API"]

    @api.get("/api/v1/models", response_model=ModelList, tags=tags)
    async def models() -> Response:
        """Every served model with its default version, versions, aliases and metrics."""
        return respond(domain.model_list(server.registry))

    @api.get("/api/v1/models/{name}", response_model=ModelDetail, tags=tags, responses=ERRORS)
    async def model(name: str, version: VersionQuery = None) -> Response:
        """One model: manifest (input schema, labels, metrics), versions, aliases and card."""
        return respond(domain.model_detail(server.registry, name, version))

    @api.post(
        "/api/v1/models/{name}/predict", response_model=PredictResponse, tags=tags, responses=ERRORS
    )
    async def predict(
        name: str, body: PredictRequest, request: Request, version: VersionQuery = None
    ) -> Response:
        """Predict a list of inputs (DNA strings, tabular rows as objects, base64 images)."""
        raw = await request.body()
        return respond(await server.predict(name, version, raw, _key(request)))

    @api.post(
        "/api/v1/models/{name}/predict-file",
        response_model=FileResponse,
        tags=tags,
        responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
    )
    async def predict_upload(
        name: str,
        request: Request,
        file: Annotated[UploadFile, File()],
        version: VersionQuery = None,
        accept: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Score a FASTA/CSV/TSV/text file (gzip too) or one image; bad rows are reported."""
        model = server.model(name, version, _key(request))
        as_csv = "text/csv" in (accept or "")
        return respond(
            await predict_file(model, file.file, file.filename or "", as_csv, server.upload_limits)
        )

    @api.post(
        "/api/v1/getdnaclassapi",
        tags=tags,
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}},
            422: {"content": {"text/plain": {}}},
            400: {"content": {"text/plain": {}}},
        },
    )
    async def seed(body: SeedRequest, request: Request) -> Response:
        """The seed article's route: the class (0/1) of one DNA sequence, as plain text."""
        return respond(await server.seed(await request.body(), _key(request)))


def _oip(api: FastAPI, server: Server) -> None:
    tags: list[str | Enum] = ["Open Inference Protocol v2"]
    registry = server.registry

    @api.get("/v2", response_model=ServerMetadata, tags=tags)
    async def server_metadata() -> dict[str, Any]:
        return oip.server_metadata()

    @api.get("/v2/health/live", tags=tags)
    async def live() -> dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready", tags=tags, responses={503: {"model": dict[str, bool]}})
    async def ready() -> Response:
        return respond(json_reply({"ready": server.ready}, 200 if server.ready else 503))

    async def metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return oip.model_metadata(registry.entry(name), registry.resolve(name, version))

    async def model_ready(name: str, version: str | None = None) -> dict[str, Any]:
        model = registry.resolve(name, version)
        return {"name": model.name, "version": str(model.version), "ready": True}

    async def infer(
        name: str, body: InferRequestBody, request: Request, version: str | None = None
    ) -> Response:
        raw = await request.body()
        length = request.headers.get("inference-header-content-length")
        return respond(await server.infer(name, version, raw, length, _key(request)))

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        api.get(prefix, response_model=ModelMetadata, tags=tags, responses=OIP_ERRORS)(metadata)
        api.get(prefix + "/ready", tags=tags, responses=OIP_ERRORS)(model_ready)
        api.post(prefix + "/infer", response_model=InferResponse, tags=tags, responses=OIP_ERRORS)(
            infer
        )


def _explain(api: FastAPI, server: Server) -> None:
    tags: list[str | Enum] = ["explain and design"]

    async def off_loop(model: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an explanation in the model's batch thread (many rows per call)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(model.batcher.executor, partial(fn, *args, **kwargs))

    @api.post(
        "/api/v1/models/{name}/explain", response_model=ExplainResponse, tags=tags, responses=ERRORS
    )
    async def explain(
        name: str, body: ExplainRequest, request: Request, version: VersionQuery = None
    ) -> dict[str, Any]:
        """In-silico mutagenesis: the score change of every single-base substitution."""
        model = server.model(name, version, _key(request))
        result = await off_loop(model, ism, model.predictor, body.sequence, body.target)
        return {
            "model": model.name,
            "version": model.version,
            "alphabet": BASES,
            **dataclasses.asdict(result),
        }

    @api.post(
        "/api/v1/models/{name}/variants",
        response_model=VariantsResponse,
        tags=tags,
        responses=ERRORS,
    )
    async def variants(
        name: str, body: VariantsRequest, request: Request, version: VersionQuery = None
    ) -> dict[str, Any]:
        """Predicted change for each variant (position, ref, alt) of one sequence."""
        model = server.model(name, version, _key(request))
        listed = [Variant(v.position, v.ref, v.alt) for v in body.variants]
        score, effects = await off_loop(
            model, variant_effects, model.predictor, body.sequence, listed, body.target
        )
        return {"model": model.name, "version": model.version, "score": score, "effects": effects}

    @api.post(
        "/api/v1/models/{name}/design", response_model=DesignResponse, tags=tags, responses=ERRORS
    )
    async def design_route(
        name: str, body: DesignRequest, request: Request, version: VersionQuery = None
    ) -> dict[str, Any]:
        """Greedy design: the best allowed single-base change per round, with its trajectory."""
        model = server.model(name, version, _key(request))
        steps = await off_loop(
            model,
            design,
            model.predictor,
            body.start,
            goal=body.goal,
            rounds=body.rounds,
            fixed=body.fixed,
            forbid=body.forbid,
            gc=body.gc,
            target=body.target,
        )
        return {
            "model": model.name,
            "version": model.version,
            "steps": [dataclasses.asdict(s) for s in steps],
        }
