"""The web UI's explain pages for DNA models: ``/models/{name}/variants`` and
``/models/{name}/design`` (GET the form, POST it), and the variant page's VCF upload
(``POST /models/{name}/variants/vcf``, then its result ``.../vcf/{id}`` and its downloads
``.../vcf/{id}/{effects.vcf|effects.tsv|errors.csv}``: :mod:`helixserve.serving.ui_vcf`).

Contract: see :mod:`helixserve.serving.ui_explain` for the fields and answers. A model that does
not take DNA (or is not served) is the 404 error page, a form that fails its CSRF check the 403
one; field errors are shown next to their field with the ``InputError`` status (422).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from helixserve.error_table import status_of
from helixserve.errors import InputError, NotFound
from helixserve.explain.ism import screen_variants
from helixserve.serving import ui_vcf
from helixserve.serving.deps import (
    DnaPageModel,
    JobsDep,
    PageCaller,
    PagesDep,
    PostedForm,
    ServerDep,
    page_guard,
)
from helixserve.serving.jobs import JobStore
from helixserve.serving.registry import LoadedModel
from helixserve.serving.responses import upload as takes_upload
from helixserve.serving.server import Server
from helixserve.serving.ui import INVALID, attachment, owner_of, sequence_from_text
from helixserve.serving.ui_explain import (
    MAX_ROUNDS,
    design_arguments,
    designed,
    in_batch_thread,
    listed_variants,
    variant_rows,
)
from helixserve.serving.vcf_files import score_upload
from helixserve.workspace.members import Principal

router = APIRouter(dependencies=[Depends(page_guard)], include_in_schema=False)


@router.get("/models/{name}/variants", response_class=HTMLResponse)
async def variants_page(request: Request, model: DnaPageModel, page: PagesDep) -> Response:
    return page(request, "variants.html", model=model, values={}, errors={}, rows=None)


@router.post("/models/{name}/variants", response_class=HTMLResponse)
async def variants_post(
    request: Request, model: DnaPageModel, form: PostedForm, page: PagesDep
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    errors: dict[str, str] = {}
    listed = await listed_variants(form, errors)
    sequence = sequence_from_text(values.get("sequence", ""))
    rows = None
    if not errors:
        try:
            reference, outcomes = await in_batch_thread(
                model, screen_variants, model.predictor, sequence, [i.variant for i in listed]
            )
            rows = variant_rows(reference, outcomes, listed)
        except InputError as err:
            errors["sequence"] = str(err)
    return page(
        request,
        "variants.html",
        INVALID if errors else 200,
        model=model,
        values=values,
        errors=errors,
        rows=rows,
    )


@router.post("/models/{name}/variants/vcf", response_class=HTMLResponse)
@takes_upload
async def variants_vcf_post(
    request: Request,
    model: DnaPageModel,
    form: PostedForm,
    page: PagesDep,
    server: ServerDep,
    jobs: JobsDep,
    who: PageCaller,
) -> Response:
    vcf, reference, options, errors = ui_vcf.read_form(form)
    status = INVALID
    if vcf is not None and reference is not None and not errors:
        try:
            result = await score_upload(
                model,
                vcf.file,
                reference.file,
                reference.filename or "",
                options,
                server.upload_limits,
            )
        except InputError as err:
            errors[ui_vcf.field_of(err)] = str(err)
            status = status_of(err)
        else:
            job_id = secrets.token_urlsafe(12)
            content = ui_vcf.stored(result, model, vcf.filename or "")
            await asyncio.to_thread(jobs.add_result, job_id, owner_of(who), model, content)
            where = f"/models/{model.name}/variants/vcf/{job_id}?version={model.version}"
            return RedirectResponse(where, 303)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    return page(
        request, "variants.html", status, model=model, values=values, errors=errors, rows=None
    )


async def _vcf_result(
    job_id: str, model: LoadedModel, jobs: JobStore, server: Server, who: Principal
) -> dict[str, Any]:
    found = await asyncio.to_thread(jobs.result_of, job_id, owner_of(who), server.registry)
    if found is None or found[0].name != model.name:
        raise NotFound(
            "this result is no longer kept (the server keeps the last 16 uploads); upload the "
            "VCF again."
        )
    return found[1]


@router.get("/models/{name}/variants/vcf/{job_id}", response_class=HTMLResponse)
async def variants_vcf_page(
    request: Request,
    job_id: str,
    model: DnaPageModel,
    page: PagesDep,
    server: ServerDep,
    jobs: JobsDep,
    who: PageCaller,
) -> Response:
    result = await _vcf_result(job_id, model, jobs, server, who)
    return page(request, "variants_vcf.html", model=model, job_id=job_id, result=result)


@router.get("/models/{name}/variants/vcf/{job_id}/{file}")
async def variants_vcf_download(
    job_id: str,
    file: str,
    model: DnaPageModel,
    server: ServerDep,
    jobs: JobsDep,
    who: PageCaller,
) -> Response:
    result = await _vcf_result(job_id, model, jobs, server, who)
    if file not in ui_vcf.DOWNLOADS:
        raise NotFound(f"no file {file!r} here; the downloads are {', '.join(ui_vcf.DOWNLOADS)}.")
    stem = result["vcf"].split(".")[0] or "variants"
    headers = {"content-disposition": attachment(f"{stem}.{file}")}
    data = result["files"][file].encode("utf-8")
    return Response(data, media_type=ui_vcf.DOWNLOADS[file], headers=headers)


@router.get("/models/{name}/design", response_class=HTMLResponse)
async def design_page(request: Request, model: DnaPageModel, page: PagesDep) -> Response:
    return page(
        request,
        "design.html",
        model=model,
        values={},
        errors={},
        steps=None,
        max_rounds=MAX_ROUNDS,
    )


@router.post("/models/{name}/design", response_class=HTMLResponse)
async def design_post(
    request: Request, model: DnaPageModel, form: PostedForm, page: PagesDep
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    kwargs, errors = design_arguments(values)
    context = await designed(model, kwargs, errors) if not errors else {}
    return page(
        request,
        "design.html",
        INVALID if errors else 200,
        model=model,
        values=values,
        errors=errors,
        max_rounds=MAX_ROUNDS,
        asked=kwargs,
        **context,
    )
