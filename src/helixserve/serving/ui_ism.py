"""The explanation under a DNA prediction on the predict page, for sequences of any length.

Contract:
- The predict form's ``explain`` field chooses the method: ``auto`` (default), ``ism`` or
  ``occlusion``; ``region`` (``start-end``, 1-based, at most
  :data:`~helixserve.explain.scan.MAX_REGION` nt) asks for in-silico mutagenesis of those
  positions only. :func:`asked` reads them (a bad region is an error next to its field).
- :func:`explained` computes it as the explain API's precision ``auto`` does (the version's vetted
  int8 sibling, if any; ``computed_by`` then says so), in the model's batch thread:
  a region: its ISM logo and strip; ``ism`` (or ``auto``) for a sequence of at most
  :data:`PAGE_ISM_MAX` nt: full ISM (logo and per-base strip); ``occlusion``, or a longer
  sequence: block occlusion (:func:`~helixserve.explain.scan.occlusion`, at most 200 blocks: a
  signed strip). When a sequence is too long for the method asked, ``note`` says so — its length,
  what ISM would cost, what is shown instead — and offers a region. ``cost`` states what was
  computed: sequences scored and the seconds it took. Models that do not take DNA get nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from helixserve.errors import InputError
from helixserve.explain.ism import IsmResult, ism
from helixserve.explain.precision import Choice
from helixserve.explain.scan import (
    MAX_REGION,
    Occlusion,
    auto_block,
    check_region,
    ism_cost,
    ism_region,
    occlusion,
    occlusion_cost,
)
from helixserve.inputs.sequence import SequenceSchema, validate_sequence
from helixserve.serving import charts
from helixserve.serving.registry import LoadedModel, Registry

PAGE_ISM_MAX = 2_000  # full ISM on the page: 6,001 sequences of 2,000 nt at most
METHODS = ("auto", "ism", "occlusion")


@dataclass(frozen=True)
class Asked:
    """What the form asks for: ``method`` (of :data:`METHODS`) and a region, if any."""

    method: str = "auto"
    region: tuple[int, int] | None = None


def asked(values: dict[str, str]) -> tuple[Asked, dict[str, str]]:
    """The explanation asked for by the predict form, and the errors per field."""
    method = values.get("explain", "auto") or "auto"
    errors: dict[str, str] = {}
    if method not in METHODS:
        errors["explain"] = f"explain with auto, ism or occlusion, got {method!r}."
        method = "auto"
    text = values.get("region", "").strip()
    if not text:
        return Asked(method), errors
    match = re.fullmatch(r"(\d+)\s*[-:.]+\s*(\d+)", text.replace(",", ""))
    if match is None:
        errors["region"] = (
            f"a region is two 1-based positions such as 1200-1400 (at most {MAX_REGION} nt); "
            f"got {text!r}."
        )
        return Asked(method), errors
    return Asked(method, (int(match.group(1)), int(match.group(2)))), errors


def computed_by(model: LoadedModel, choice: Choice) -> str:
    """Which version computed a page's effects, when not the one shown ("" then)."""
    if choice.version == model.version or choice.spearman is None:
        return ""
    return (
        f"Effects computed by {model.name}@{choice.version}, the int8 version of "
        f"{model.name}@{model.version} (it ranks substitutions like the original at a mean "
        f"Spearman of {choice.spearman:.4f} over {choice.sequences or 0:,} sequences)."
    )


def _too_long(length: int, method: str) -> str:
    cost = occlusion_cost(length, auto_block(length))
    told = "You asked for in-silico mutagenesis, but this" if method == "ism" else "This"
    return (
        f"{told} sequence is {length:,} nt, and in-silico mutagenesis of every base on this "
        f"page takes sequences up to {PAGE_ISM_MAX:,} nt (it would score {ism_cost(length):,} "
        f"sequences of {length:,} nt). Shown instead: block occlusion, which scores {cost:,}. "
        f"For per-base effects give a region of up to {MAX_REGION} nt (e.g. 1-{MAX_REGION})."
    )


def _ism_views(result: IsmResult, start: int) -> dict[str, str]:
    where = f" (positions {start:,}-{start + len(result.sequence) - 1:,})" if start > 1 else ""
    return {
        "logo": charts.ism_logo(result.sequence, result.effects),
        "strip": charts.importance_strip(result.sequence, result.importance),
        "region_words": where,
    }


def _blocks_view(result: Occlusion) -> dict[str, str]:
    length = len(result.sequence)
    return {
        "blocks": charts.block_strip(
            length, result.starts, result.block, result.effects, result.fill
        )
    }


async def explained(
    registry: Registry, model: LoadedModel, item: object, wanted: Asked
) -> dict[str, Any]:
    """The views of a DNA input's explanation (see the module contract)."""
    schema = model.manifest.input
    if not isinstance(schema, SequenceSchema) or not isinstance(item, str):
        return {}
    length = len(validate_sequence(item, schema))
    by, choice = registry.explainer(model)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    views: dict[str, Any] = {}
    if wanted.region is not None:
        try:
            check_region(length, *wanted.region)
        except InputError as err:
            return {"region_error": str(err)}
        work: Any = partial(ism_region, by.predictor, item, *wanted.region)
        scored = 3 * (wanted.region[1] - wanted.region[0] + 1) + 1
    elif wanted.method == "occlusion" or length > PAGE_ISM_MAX:
        if wanted.method != "occlusion":
            views["note"] = _too_long(length, wanted.method)
        work = partial(occlusion, by.predictor, item)
        scored = occlusion_cost(length, auto_block(length))
    else:
        work = partial(ism, by.predictor, item)
        scored = ism_cost(length)
    result = await loop.run_in_executor(by.batcher.executor, work)
    seconds = time.perf_counter() - started
    if isinstance(result, Occlusion):
        views.update(_blocks_view(result))
    else:
        views.update(_ism_views(result, wanted.region[0] if wanted.region else 1))
    target = result.target
    views["scored"] = f"P({target})" if model.manifest.task == "multilabel" else ""
    views["computed_by"] = computed_by(model, choice)
    views["cost"] = f"{scored:,} sequences of {length:,} nt scored in {seconds:.2f} s."
    return views
