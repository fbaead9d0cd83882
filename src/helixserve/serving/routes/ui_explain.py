"""The web UI's explain pages for DNA models: ``/models/{name}/variants`` and
``/models/{name}/design`` (GET the form, POST it).

Contract: see :mod:`helixserve.serving.ui_explain` for the fields and answers. A model that does
not take DNA (or is not served) is the 404 error page, a form that fails its CSRF check the 403
one; field errors are shown next to their field with the ``InputError`` status (422).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from helixserve.errors import InputError
from helixserve.explain.ism import screen_variants
from helixserve.serving.deps import DnaPageModel, PagesDep, PostedForm, page_guard
from helixserve.serving.ui import INVALID, sequence_from_text
from helixserve.serving.ui_explain import (
    MAX_ROUNDS,
    design_arguments,
    designed,
    in_batch_thread,
    listed_variants,
    variant_rows,
)

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
