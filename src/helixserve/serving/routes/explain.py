"""Explain and design routes of the domain API (DNA models).

Contract: ``POST /api/v1/models/{name}/explain`` (in-silico mutagenesis of one sequence, by the
version asked for or its vetted int8 sibling as ``precision`` says, named in ``computed_by``:
:meth:`~helixserve.serving.registry.Registry.explainer`),
``.../variants`` (the predicted change of each listed variant: ``-`` for no bases; a variant that
does not fit the sequence is listed in ``errors`` with a ``null`` effect and the others are
scored, 422 only when none fits), ``.../variants/vcf`` (a multipart VCF and its reference FASTA:
every ALT allele's effect, refused alleles with their reason; JSON, or ``?format=`` csv, tsv, vcf
with INFO fields, or errors: :mod:`helixserve.serving.vcf_files`) and ``.../design`` (greedy
sequence design, with its trajectory); bodies are the pydantic contracts of
:mod:`helixserve.serving.schemas`. The work runs in the model's batch thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from helixserve.error_table import TABLE
from helixserve.errors import InputError
from helixserve.explain.design import design
from helixserve.explain.ism import BASES, Variant, allele_bases, dna_schema, ism, screen_variants
from helixserve.explain.precision import Choice
from helixserve.explain.scan import check_ism, ism_region, occlusion
from helixserve.explain.vcf_effects import Strands, VcfOptions
from helixserve.inputs.sequence import validate_sequence
from helixserve.serving.deps import LimitsDep, ModelDep, ServerDep
from helixserve.serving.explain_schemas import OcclusionRequest, OcclusionResponse, VcfResponse
from helixserve.serving.problems import Reply, json_reply, problem_from
from helixserve.serving.registry import LoadedModel
from helixserve.serving.responses import respond, upload
from helixserve.serving.schemas import (
    ERRORS,
    DesignRequest,
    DesignResponse,
    ExplainRequest,
    ExplainResponse,
    VariantsRequest,
    VariantsResponse,
)
from helixserve.serving.vcf_files import score_upload

router = APIRouter(prefix="/api/v1/models/{name}", tags=["explain and design"], responses=ERRORS)
_T = TypeVar("_T")


async def off_loop(model: LoadedModel, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run an explanation in the model's batch thread (many rows per call)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(model.batcher.executor, partial(fn, *args, **kwargs))


def _computed_by(choice: Choice) -> dict[str, Any]:
    return {
        "version": choice.version,
        "precision": choice.precision,
        "ism_spearman": choice.spearman,
        "ism_sequences": choice.sequences,
    }


@router.post("/explain", response_model=ExplainResponse)
async def explain(model: ModelDep, body: ExplainRequest, server: ServerDep) -> dict[str, Any]:
    """In-silico mutagenesis: the score change of every single-base substitution (of a
    ``region`` only, for long sequences), computed by the version's int8 sibling when its
    measured agreement passes (``precision``)."""
    schema = dna_schema(model.predictor)  # a tabular model's own message, whatever the precision
    by, choice = server.registry.explainer(model, body.precision)
    if body.region is not None:
        start, end = body.region
        work = partial(ism_region, by.predictor, body.sequence, start, end, body.target)
    else:
        check_ism(len(validate_sequence(body.sequence, schema)))
        work = partial(ism, by.predictor, body.sequence, body.target)
    result = await off_loop(by, work)
    return {
        "model": model.name,
        "version": model.version,
        "alphabet": BASES,
        **dataclasses.asdict(result),
        "region": body.region,
        "computed_by": _computed_by(choice),
    }


@router.post("/explain/occlusion", response_model=OcclusionResponse)
async def explain_occlusion(
    model: ModelDep, body: OcclusionRequest, server: ServerDep
) -> dict[str, Any]:
    """Block occlusion for sequences of any length: the score change when each block is
    replaced, at a cost of one scored sequence per block (``sequences``)."""
    dna_schema(model.predictor)
    by, choice = server.registry.explainer(model, body.precision)
    work = partial(occlusion, by.predictor, body.sequence, body.block, body.target)
    result = await off_loop(by, work)
    return {
        "model": model.name,
        "version": model.version,
        **dataclasses.asdict(result),
        "computed_by": _computed_by(choice),
    }


@router.post("/variants", response_model=VariantsResponse)
async def variants(request: Request, model: ModelDep, body: VariantsRequest) -> Response:
    """Predicted change for each variant (position, ref, alt; ``-`` for no bases) of one
    sequence; a variant that does not fit is reported and the others are scored."""
    listed = [Variant(v.position, allele_bases(v.ref), allele_bases(v.alt)) for v in body.variants]
    score, outcomes = await off_loop(
        model, screen_variants, model.predictor, body.sequence, listed, body.target
    )
    refused = [o for o in outcomes if o.error is not None]
    errors = [
        {"index": o.number - 1, "field": o.error.field, "position": None, "message": str(o.error)}
        for o in outcomes
        if o.error is not None
    ]
    if len(errors) == len(outcomes):
        detail = (
            str(refused[0].error)
            if len(errors) == 1
            else f"none of the {len(errors)} variants fits the sequence; see errors."
        )
        return respond(problem_from(TABLE[InputError], detail, errors=errors), request)
    effects = [o.change for o in outcomes]
    body_out = {"model": model.name, "version": model.version, "score": score}
    return respond(json_reply({**body_out, "effects": effects, "errors": errors}))


VcfFormat = Literal["json", "csv", "tsv", "vcf", "errors"]
VCF_TYPES = {
    "csv": b"text/csv; charset=utf-8",
    "tsv": b"text/tab-separated-values; charset=utf-8",
    "vcf": b"text/x-vcf; charset=utf-8",
    "errors": b"text/csv; charset=utf-8",
}


@router.post(
    "/variants/vcf",
    response_model=VcfResponse,
    responses={200: {"content": {t.decode().split(";")[0]: {} for t in VCF_TYPES.values()}}},
)
@upload
async def variants_vcf(
    model: ModelDep,
    limits: LimitsDep,
    vcf: Annotated[UploadFile, File(description="the variants: VCF, plain, gzip or bgzip")],
    reference: Annotated[
        UploadFile, File(description="the reference they were called against: FASTA")
    ],
    strands: Annotated[Strands, Query(description="forward, or both (the mean)")] = "forward",
    window: Annotated[
        int | None, Query(ge=1, description="window size in nt; default: what the model takes")
    ] = None,
    target: Annotated[str | None, Query(description="the class or label to score")] = None,
    format: Annotated[VcfFormat, Query(description="json, csv, tsv, vcf or errors")] = "json",
) -> Response:
    """Effects of every ALT allele of a VCF against its reference; refused alleles (reference
    mismatch, unknown contig, symbolic allele, ...) are listed with their reason and the others
    are scored."""
    dna_schema(model.predictor)
    options = VcfOptions(strands, window, target)
    name = reference.filename or "reference.fa"
    result = await score_upload(model, vcf.file, reference.file, name, options, limits)
    if format == "json":
        return respond(json_reply(result.as_json(model)))
    data = {
        "csv": result.table,
        "tsv": lambda: result.table("\t"),
        "vcf": result.vcf,
        "errors": result.errors,
    }[format]()
    return respond(Reply(200, data, VCF_TYPES[format]))


@router.post("/design", response_model=DesignResponse)
async def design_route(model: ModelDep, body: DesignRequest) -> dict[str, Any]:
    """Greedy design: the best allowed single-base change per round, with its trajectory."""
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
