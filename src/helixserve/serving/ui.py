"""The web UI: server-rendered pages on the serving app, for people who do not write code.

Contract:
- Pages: ``/`` (catalogue), ``/models/{name}`` (card, metrics, curves, confusion matrix or
  scatter, versions), ``/models/{name}/predict`` (one input — a DNA text box, a form generated
  from a tabular schema, or an image upload — and a file upload), ``/jobs/{id}`` (a scored file:
  counts, paged results, per-row report, CSV downloads), ``/compare?m=a&m=b@2`` (models side by
  side, see :mod:`helixserve.serving.ui_compare`), and the seed's ``/dnasequence`` and
  ``/dnafile`` (redirects to the default DNA model). The catalogue, the model page and the
  compare page show each version's headline from
  :func:`~helixserve.store.manifest.headline_of` (the figure, its meaning as a tooltip, and the
  out-of-distribution figure where one exists), as the API and ``models list`` do; the model page
  also shows its lineage chain (:mod:`helixserve.serving.lineage`).
- With API keys on, every page needs a key session (:mod:`helixserve.serving.sessions`): without
  one the key form of :mod:`helixserve.serving.ui_login` is shown instead (status 401).
- Every form works without JavaScript (plain POST, page re-rendered with the answer or with the
  error next to the field); ``/static/app.js`` adds live validation, upload progress and
  drag-and-drop. Under every DNA prediction: an ISM logo and a per-base importance heat strip.
  The variant and design pages of DNA models are in :mod:`helixserve.serving.ui_explain`.
  Every asset is in the package: no CDN, no network.
- Predictions go through the same micro-batcher and validation as the API, so the messages are
  the API's. Scored files are kept in memory for the last :data:`MAX_JOBS` uploads.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from PIL import Image
from starlette.datastructures import UploadFile

from helixserve.error_table import TABLE, status_of
from helixserve.errors import HelixError, InputError, InvalidImage, ModelNotFound, NotFound
from helixserve.explain.ism import ism
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.serving import charts, csrf
from helixserve.serving.domain import prediction_list
from helixserve.serving.files import Row, errors_csv, results_csv, score_file
from helixserve.serving.lineage import Chain, lineage_chain
from helixserve.serving.markdown import to_html
from helixserve.serving.registry import LoadedModel
from helixserve.serving.server import Server
from helixserve.serving.sessions import COOKIE
from helixserve.serving.ui_compare import compare_router
from helixserve.serving.ui_login import mount_login
from helixserve.store.manifest import Manifest, headline_of
from helixserve.store.names import parse_ref

HERE = Path(__file__).parent
MAX_JOBS = 16
PAGE = 50
INVALID = TABLE[InputError].status  # a form shown again with its field errors


@dataclass
class Job:
    id: str
    model: LoadedModel
    filename: str
    rows: list[Row]


class Jobs(OrderedDict[str, Job]):
    def add(self, job: Job) -> None:
        self[job.id] = job
        while len(self) > MAX_JOBS:
            self.popitem(last=False)


def figure(value: float) -> str:
    """A test metric as the pages print it: a count as a whole number, else four decimals."""
    if value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4f}"


def kind_words(model: LoadedModel) -> str:
    schema = model.manifest.input
    if isinstance(schema, SequenceSchema):
        return f"DNA, {schema.length_rule()}"
    if isinstance(schema, TabularSchema):
        return f"{len(schema.features)} measurements"
    return f"image, {schema.width}x{schema.height}, {schema.channels} channel(s)"


def plots(model: LoadedModel) -> dict[str, Any]:
    """The model's plot data (JSON files in the bundle), as SVG / table data for templates."""
    folder = model.predictor.bundle_path / "plots"
    out: dict[str, Any] = {}
    for name in ("loss", "roc", "scatter", "errors", "confusion"):
        path = folder / f"{name}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if name == "loss":
                out[name] = charts.loss([("", data)])
            elif name == "confusion":
                out[name] = charts.confusion_rows(data)
            else:
                out[name] = getattr(charts, name)(data)
        except (ValueError, KeyError, TypeError):
            continue
    return out


class Pages:
    """Renders templates (the one place the UI builds responses)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(headline=headline_of, kind_words=kind_words)
        self.templates.env.filters["figure"] = figure

    def __call__(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        keys_on = not self.server.keys.predict_open
        signed_in = keys_on and self.server.sessions.scope(request.cookies.get(COOKIE)) is not None
        shared = {"csrf_token": csrf.token(request), "keys_on": keys_on, "signed_in": signed_in}
        response: Response = self.templates.TemplateResponse(
            request, template, {**context, **shared}, status_code=status
        )
        csrf.remember(request, response)
        return response

    def error(self, request: Request, err: BaseException, message: str | None = None) -> Response:
        """The error page for ``err`` with the status of :mod:`helixserve.error_table`, showing
        ``message`` (default ``str(err)``)."""
        message = str(err) if message is None else message
        return self(request, "error.html", status_of(err), message=message)


def page_guard(server: Server) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: the page needs a key session while API keys are on."""

    async def guard(request: Request) -> None:
        server.check_page(request.cookies.get(COOKIE))

    return guard


def ui_router(server: Server) -> APIRouter:
    """A router whose every route is guarded by :func:`page_guard`."""
    return APIRouter(dependencies=[Depends(page_guard(server))])


def page_model(server: Server, request: Request, name: str, version: str | None) -> LoadedModel:
    """The model a page shows (the session is checked again, whatever the route's guard)."""
    return server.page_model(name, version, request.cookies.get(COOKIE))


def mount_ui(api: FastAPI, server: Server) -> None:
    """Add the UI's pages and static files to ``api``."""
    api.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    page = Pages(server)
    api.state.pages = page  # the app's error handler renders uncaught page errors with it
    ui = ui_router(server)
    _model_routes(ui, server, page)
    _predict_routes(ui, server, page)
    _job_routes(ui, server, page, Jobs())
    ui.include_router(compare_router(server.registry, page))

    @ui.get("/dnasequence", include_in_schema=False)
    async def seed_single() -> Response:
        return RedirectResponse(f"/models/{server.settings.default_dna_model}/predict", 307)

    @ui.get("/dnafile", include_in_schema=False)
    async def seed_file() -> Response:
        return RedirectResponse(f"/models/{server.settings.default_dna_model}/predict#upload", 307)

    api.include_router(ui)
    mount_login(api, server, page)


def _model_routes(ui: APIRouter, server: Server, page: Pages) -> None:
    registry = server.registry

    @ui.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> Response:
        models = [registry.resolve(n) for n in registry.names()]
        return page(request, "home.html", models=models)

    @ui.get("/models/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def model_page(request: Request, name: str, version: str | None = None) -> Response:
        try:
            model = page_model(server, request, name, version)
        except ModelNotFound as err:
            return page.error(request, err)
        entry = registry.entry(name)
        card = (model.predictor.bundle_path / "card.md").read_text(encoding="utf-8")
        drawn = plots(model)
        images = sorted(
            f.removeprefix("plots/")
            for f in model.manifest.files
            if f.startswith("plots/")
            and f.endswith(".png")
            and f.removeprefix("plots/").removesuffix(".png") not in drawn
        )
        chain = await asyncio.to_thread(lineage_chain, model.manifest, partial(_manifest, server))
        return page(
            request,
            "model.html",
            model=model,
            entry=entry,
            card=to_html(card),
            plots=drawn,
            images=images,
            chain=chain,
            served=_served(server, chain),
        )

    @ui.get("/models/{name}/plots/{file}", include_in_schema=False)
    async def plot_image(
        request: Request, name: str, file: str, version: str | None = None
    ) -> Response:
        """A PNG plot of the bundle (one the page cannot draw from JSON, e.g. saliency maps)."""
        try:
            model = page_model(server, request, name, version)
        except ModelNotFound:
            return Response("not found", 404, media_type="text/plain")
        if f"plots/{file}" not in model.manifest.files or not file.endswith(".png"):
            return Response("not found", 404, media_type="text/plain")
        data = (model.predictor.bundle_path / "plots" / file).read_bytes()
        return Response(data, media_type="image/png")


def _manifest(server: Server, ref: str) -> Manifest:
    """A version's manifest for the lineage chain: the loaded one, else the store's."""
    parsed = parse_ref(ref)
    entry = server.registry.snapshot.models.get(parsed.name)
    if entry is not None and parsed.version in entry.versions:
        return entry.versions[parsed.version].manifest
    return server.store.manifest(parsed)


def _served(server: Server, chain: Chain) -> set[str]:
    """The ``name@version`` of each link that this server serves (those get a link)."""
    models = server.registry.snapshot.models
    return {
        link.ref
        for link in chain.links
        if link.name in models and link.version in models[link.name].versions
    }


def _predict_routes(ui: APIRouter, server: Server, page: Pages) -> None:
    error_page = page.error

    @ui.get("/models/{name}/predict", response_class=HTMLResponse, include_in_schema=False)
    async def predict_page(request: Request, name: str, version: str | None = None) -> Response:
        try:
            model = page_model(server, request, name, version)
        except ModelNotFound as err:
            return error_page(request, err)
        return page(
            request,
            "predict.html",
            model=model,
            values={},
            result=None,
            errors={},
            preview=None,
            logo=None,
        )

    @ui.post("/models/{name}/predict", response_class=HTMLResponse, include_in_schema=False)
    async def predict_one(request: Request, name: str, version: str | None = None) -> Response:
        try:
            model = page_model(server, request, name, version)
        except ModelNotFound as err:
            return error_page(request, err)
        try:
            form = await csrf.checked_form(request)
        except csrf.FormRefused as err:
            return error_page(request, err)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        item, problem = await _form_item(model, form)
        limit = server.settings.max_image_pixels
        preview = _preview(item, limit) if isinstance(item, bytes) and item else None
        result, errors = None, {}
        if problem is not None:
            errors = {"image": problem}
        else:
            batch = await model.batcher.submit([item])
            if batch.errors:
                errors = _field_errors(model, batch.errors[0].error)
            else:
                result = prediction_list(batch)[0]
        shown = await _explained(model, item) if result is not None else {}
        status = INVALID if errors else 200
        return page(
            request,
            "predict.html",
            status,
            model=model,
            values=values,
            result=result,
            errors=errors,
            preview=preview,
            **shown,
        )


def _job_routes(ui: APIRouter, server: Server, page: Pages, jobs: Jobs) -> None:
    error_page = page.error

    @ui.post("/models/{name}/upload", include_in_schema=False)
    async def upload(request: Request, name: str, version: str | None = None) -> Response:
        try:
            model = page_model(server, request, name, version)
        except ModelNotFound as err:
            return error_page(request, err)
        try:
            form = await csrf.checked_form(request)
            file = form.get("file")
            if not isinstance(file, UploadFile) or not file.filename:
                raise InvalidImage("choose a file to upload first.")
            rows = await score_file(model, file.file, file.filename, server.upload_limits)
        except csrf.FormRefused as err:
            return error_page(request, err)
        except HelixError as err:
            return error_page(request, err)
        job = Job(secrets.token_urlsafe(12), model, file.filename, rows)
        jobs.add(job)
        return RedirectResponse(f"/jobs/{job.id}", 303)

    @ui.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    async def job_page(request: Request, job_id: str, page_no: int = 1) -> Response:
        job = jobs.get(job_id)
        if job is None:
            gone = NotFound(
                "this result is no longer kept (the server keeps the last 16 "
                "uploads); upload the file again."
            )
            return error_page(request, gone)
        good = [r for r in job.rows if r.prediction is not None]
        bad = [r for r in job.rows if r.error is not None]
        pages = max(1, -(-len(good) // PAGE))
        page_no = min(max(page_no, 1), pages)
        shown = good[(page_no - 1) * PAGE : page_no * PAGE]
        return page(
            request,
            "job.html",
            job=job,
            good=good,
            bad=bad,
            shown=shown,
            page_no=page_no,
            pages=pages,
        )

    @ui.get("/jobs/{job_id}/{which}.csv", include_in_schema=False)
    async def download(job_id: str, which: str) -> Response:
        job = jobs.get(job_id)
        if job is None or which not in ("results", "errors"):
            return Response("not found", 404, media_type="text/plain")
        data = results_csv(job.model, job.rows) if which == "results" else errors_csv(job.rows)
        stem = Path(job.filename).name.split(".")[0] or "upload"
        headers = {"content-disposition": attachment(f"{stem}-{which}.csv")}
        return Response(data, media_type="text/csv; charset=utf-8", headers=headers)


def attachment(name: str) -> str:
    """A Content-Disposition for ``name`` whatever its characters: an ASCII ``filename`` and the
    exact name as RFC 6266 ``filename*`` (a header must be Latin-1; '文件' used to be a 500)."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _form_item(model: LoadedModel, form: Any) -> tuple[object, str | None]:
    """The one input a predict form holds, or a problem to show next to the field."""
    schema = model.manifest.input
    if isinstance(schema, SequenceSchema):
        return _sequence_from_text(str(form.get("sequence") or "")), None
    if isinstance(schema, TabularSchema):
        return {f.name: form.get(f.name, "") for f in schema.features}, None
    upload = form.get("image")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return b"", "choose an image file (PNG, JPEG or TIFF) first."
    return await upload.read(), None


async def _explained(model: LoadedModel, item: object) -> dict[str, str]:
    """The ISM logo and importance heat strip of a DNA input (none for other kinds, or
    sequences over 2,000 nt)."""
    if not isinstance(model.manifest.input, SequenceSchema) or not isinstance(item, str):
        return {}
    if len(item) > 2000:
        return {}
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(model.batcher.executor, ism, model.predictor, item)
    return {
        "logo": charts.ism_logo(result.sequence, result.effects),
        "strip": charts.importance_strip(result.sequence, result.importance),
    }


def _preview(data: bytes, max_pixels: int) -> str | None:
    """A small PNG data URL of an uploaded image (any bit depth), or None if it cannot be read
    or has more than ``max_pixels`` pixels (checked from the header: a bomb is never decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > max_pixels:
                return None
            opened.thumbnail((256, 256))
            pixels = np.asarray(opened, dtype=np.float64)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    low, high = float(pixels.min()), float(pixels.max())
    scaled = ((pixels - low) / ((high - low) or 1.0) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(scaled).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _sequence_from_text(text: str) -> str:
    """A pasted sequence, or the sequence of pasted one-record FASTA text."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and lines[0].startswith(">"):
        return "".join(line for line in lines[1:] if not line.startswith(">"))
    return "".join(lines)


def _field_errors(model: LoadedModel, err: HelixError) -> dict[str, str]:
    schema = model.manifest.input
    if isinstance(schema, TabularSchema):
        parts = getattr(err, "field_errors", None) or [err]
        return {str(getattr(p, "field", "") or "row"): getattr(p, "problem", str(p)) for p in parts}
    if isinstance(schema, ImageSchema):
        return {"image": str(err)}
    return {"sequence": str(err), "position": str(getattr(err, "position", "") or "")}
