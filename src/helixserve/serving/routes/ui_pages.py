"""The web UI's pages (HTML): catalogue, model page, predict form, scored-file jobs, compare.

Contract: ``/``, ``/models/{name}`` (+ ``/plots/{file}``), ``/models/{name}/predict`` (GET the
form, or with ``?job=ID&row=N`` a scored file's row predicted and explained; POST one input),
``/models/{name}/upload`` (a file: redirects to its job), ``/jobs/{id}`` (each row of a DNA
model's file links to its explanation) and ``/jobs/{id}/{results|errors}.csv``,
``/compare?m=...``, and the seed's ``/dnasequence`` and ``/dnafile`` redirects. What each
page shows is in :mod:`helixserve.serving.ui`; every route is behind
:func:`~helixserve.serving.deps.page_guard`; an error is the error page at the status of
:mod:`helixserve.error_table` (an unknown model 404, a form that fails its CSRF check 403, a file
that cannot be scored 422 or 413), a form shown again with field errors the ``InputError`` status.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from helixserve.errors import InvalidImage, ModelNotFound, NotFound
from helixserve.serving import ui, ui_ism
from helixserve.serving.deps import (
    JobsDep,
    PageCaller,
    PageModel,
    PagesDep,
    PostedForm,
    ServerDep,
    page_guard,
)
from helixserve.serving.domain import prediction_list
from helixserve.serving.files import errors_csv, results_csv, score_file
from helixserve.serving.lineage import lineage_chain
from helixserve.serving.markdown import to_html
from helixserve.serving.registry import LoadedModel
from helixserve.serving.responses import upload as takes_upload
from helixserve.serving.server import Server
from helixserve.serving.ui_compare import curves, select, version_refs

router = APIRouter(dependencies=[Depends(page_guard)], include_in_schema=False)


def not_found() -> Response:
    return Response("not found", 404, media_type="text/plain")


@router.get("/", response_class=HTMLResponse)
def home(request: Request, server: ServerDep, page: PagesDep, who: PageCaller) -> Response:
    """The models the caller may use (every model while no user exists)."""
    registry, access = server.registry, server.access
    names = [n for n in registry.names() if not access.accounts_on or access.may_use_model(who, n)]
    return page(request, "home.html", models=[registry.resolve(n) for n in names])


@router.get("/models/{name}", response_class=HTMLResponse)
async def model_page(
    request: Request, model: PageModel, server: ServerDep, page: PagesDep
) -> Response:
    card = (model.predictor.bundle_path / "card.md").read_text(encoding="utf-8")
    drawn = ui.plots(model)
    chain = await asyncio.to_thread(
        lineage_chain, model.manifest, partial(ui.lineage_manifest, server)
    )
    return page(
        request,
        "model.html",
        model=model,
        entry=server.registry.entry(model.name),
        card=to_html(card),
        plots=drawn,
        images=ui.png_plots(model, drawn),
        chain=chain,
        served=ui.served_links(server, chain),
    )


@router.get("/models/{name}/plots/{file}")
async def plot_image(request: Request, server: ServerDep, name: str, file: str) -> Response:
    """A PNG plot of the bundle (one the page cannot draw from JSON, e.g. saliency maps)."""
    try:
        model = ui.page_model(server, request, name, request.query_params.get("version"))
    except ModelNotFound:
        return not_found()
    if f"plots/{file}" not in model.manifest.files or not file.endswith(".png"):
        return not_found()
    data = (model.predictor.bundle_path / "plots" / file).read_bytes()
    return Response(data, media_type="image/png")


@router.get("/models/{name}/predict", response_class=HTMLResponse)
async def predict_page(
    request: Request,
    model: PageModel,
    page: PagesDep,
    server: ServerDep,
    jobs: JobsDep,
    who: PageCaller,
    job: str | None = None,
    row: int | None = None,
) -> Response:
    """The predict form; with ``job`` and ``row`` (a row of a scored file, from its job page),
    that row's sequence predicted and explained."""
    if job is None or row is None:
        blank: dict[str, Any] = {"values": {}, "result": None, "errors": {}, "preview": None}
        return page(request, "predict.html", model=model, logo=None, **blank)
    found = await asyncio.to_thread(jobs.of, job, who, server.registry)
    item = next((r.item for r in found.rows if r.index == row), None) if found else None
    if found is None or found.model.name != model.name or not isinstance(item, str):
        raise NotFound(
            f"no sequence at row {row} of that scored file (the server keeps the last 16 "
            "uploads); upload the file again, or paste the sequence."
        )
    status, context = await _predicted(server, model, {"sequence": item}, item, None)
    return page(request, "predict.html", status, model=model, **context)


async def _predicted(
    server: Server, model: LoadedModel, values: dict[str, str], item: object, problem: str | None
) -> tuple[int, dict[str, Any]]:
    """The predict page's answer to one input: its status and the template's context."""
    limit = server.settings.max_image_pixels
    preview = ui.preview(item, limit) if isinstance(item, bytes) and item else None
    result, errors = None, {}
    wanted, wrong = ui_ism.asked(values)
    if problem is not None:
        errors = {"image": problem}
    else:
        batch = await model.batcher.submit([item])
        if batch.errors:
            errors = ui.field_errors(model, batch.errors[0].error)
        else:
            result = prediction_list(batch)[0]
    shown: dict[str, Any] = {}
    if result is not None and not wrong:
        shown = await ui_ism.explained(server.registry, model, item, wanted)
    errors = {**errors, **wrong}
    if "region_error" in shown:
        errors["region"] = shown.pop("region_error")
    filled = ui.filled_in(model, item) if result is not None else []
    context: dict[str, Any] = {"values": values, "result": result, "errors": errors}
    context |= {"preview": preview, "filled": filled}
    return (ui.INVALID if errors else 200), {**context, **shown}


@router.post("/models/{name}/predict", response_class=HTMLResponse)
async def predict_one(
    request: Request, model: PageModel, form: PostedForm, server: ServerDep, page: PagesDep
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    item, problem = await ui.form_item(model, form)
    status, context = await _predicted(server, model, values, item, problem)
    return page(request, "predict.html", status, model=model, **context)


@router.post("/models/{name}/upload")
@takes_upload
async def upload(
    model: PageModel, form: PostedForm, server: ServerDep, jobs: JobsDep, who: PageCaller
) -> Response:
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise InvalidImage("choose a file to upload first.")
    rows = await score_file(model, file.file, file.filename, server.upload_limits)
    job = ui.Job(secrets.token_urlsafe(12), model, file.filename, rows, ui.owner_of(who))
    await asyncio.to_thread(jobs.add, job)
    return RedirectResponse(f"/jobs/{job.id}", 303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(
    request: Request,
    job_id: str,
    jobs: JobsDep,
    server: ServerDep,
    page: PagesDep,
    who: PageCaller,
    page_no: int = 1,
) -> Response:
    job = await asyncio.to_thread(jobs.of, job_id, who, server.registry)
    if job is None:
        raise NotFound(
            "this result is no longer kept (the server keeps the last 16 "
            "uploads); upload the file again."
        )
    return page(request, "job.html", job=job, **ui.job_view(job, page_no))


@router.get("/jobs/{job_id}/{which}.csv")
async def download(
    job_id: str,
    which: str,
    jobs: JobsDep,
    server: ServerDep,
    who: PageCaller,
    spreadsheet_safe: bool = False,
) -> Response:
    job = await asyncio.to_thread(jobs.of, job_id, who, server.registry)
    if job is None or which not in ("results", "errors"):
        return not_found()
    safe = spreadsheet_safe
    data = (
        results_csv(job.model, job.rows, safe) if which == "results" else errors_csv(job.rows, safe)
    )
    stem = Path(job.filename).name.split(".")[0] or "upload"
    headers = {"content-disposition": ui.attachment(f"{stem}-{which}.csv")}
    return Response(data, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/compare", response_class=HTMLResponse)
def compare(
    request: Request,
    server: ServerDep,
    page: PagesDep,
    who: PageCaller,
    m: Annotated[list[str] | None, Query()] = None,
) -> Response:
    registry, access = server.registry, server.access

    def visible(name: str) -> bool:
        return not access.accounts_on or access.may_use_model(who, name)

    picked = select(registry, m or [], visible)
    return page(
        request,
        "compare.html",
        404 if not picked.chosen and m else 200,
        chosen=picked.chosen,
        metric_names=sorted({k for c in picked.chosen for k in c.manifest.metrics}),
        curves=curves(picked.chosen),
        problems=picked.problems,
        default=picked.default,
        all_refs=version_refs(registry, visible),
        selected={f"{c.name}@{c.version}" for c in picked.chosen},
    )


@router.get("/dnasequence")
async def seed_single(server: ServerDep) -> Response:
    return RedirectResponse(f"/models/{server.settings.default_dna_model}/predict", 307)


@router.get("/dnafile")
async def seed_file(server: ServerDep) -> Response:
    return RedirectResponse(f"/models/{server.settings.default_dna_model}/predict#upload", 307)
