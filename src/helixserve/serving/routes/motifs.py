"""Motif discovery over the domain API (DNA models).

Contract: ``POST /api/v1/models/{name}/motifs`` (:class:`~helixserve.serving.explain_schemas.
MotifsRequest`: up to 2,000 sequences, each bad one refused and listed) answers at once (200) for
at most :data:`~helixserve.serving.motif_jobs.INLINE` sequences; a larger input runs in the
background and answers 202 with the discovery's ``id``, its ``url`` and ``done`` / ``total``;
``GET .../motifs/{id}`` then gives its progress and, when done, the motifs with their JASPAR
matches (:mod:`helixserve.serving.motif_jobs`). A discovery is read with the key that started it
(404 otherwise, as for one that is no longer kept).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from helixserve.errors import NotFound
from helixserve.explain.ism import dna_schema
from helixserve.serving.deps import JobsDep, KeyDep, ModelDep
from helixserve.serving.explain_schemas import MotifsRequest, MotifsResponse
from helixserve.serving.motif_jobs import (
    INLINE,
    MotifAsk,
    MotifJobs,
    check_work,
    read_sequences_for,
)
from helixserve.serving.problems import json_reply
from helixserve.serving.responses import respond
from helixserve.serving.schemas import ERRORS

router = APIRouter(prefix="/api/v1/models/{name}", tags=["explain and design"], responses=ERRORS)


def key_owner(key: str | None) -> str:
    """Whose a discovery is over the API: the key's digest (not the key), or anyone's."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24] if key else "anyone"


@router.post("/motifs", response_model=MotifsResponse, responses={202: {"model": MotifsResponse}})
async def motifs(model: ModelDep, body: MotifsRequest, key: KeyDep, jobs: JobsDep) -> Response:
    """Motifs the model learned, from the most important window of each sequence (ISM),
    grouped, with their JASPAR CORE matches; large inputs run in the background."""
    dna_schema(model.predictor)
    sequences, refused = await asyncio.to_thread(read_sequences_for, model, list(body.sequences))
    check_work(sequences, body.width)
    ask = MotifAsk(body.width, body.top, body.jaspar, body.target)
    base: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "sequences": len(sequences),
        "refused": refused,
        "width": body.width,
        "top": body.top,
    }
    total = len(sequences)
    if total <= INLINE:
        found = await MotifJobs.run(model, sequences, ask)
        answer = {"id": None, **base, "status": "done", "done": total, "total": total}
        return respond(json_reply({**answer, "motifs": found}))
    job_id = MotifJobs(jobs).start(model, sequences, ask, key_owner(key), base)
    url = f"/api/v1/models/{model.name}/motifs/{job_id}?version={model.version}"
    answer = {"id": job_id, **base, "status": "running", "done": 0, "total": total}
    return respond(json_reply({**answer, "url": url}, status=202))


@router.get("/motifs/{job_id}", response_model=MotifsResponse)
async def motif_job(model: ModelDep, job_id: str, key: KeyDep, jobs: JobsDep) -> Response:
    """A background discovery's progress, and its motifs once done."""
    state = await asyncio.to_thread(MotifJobs(jobs).state, job_id, key_owner(key), model)
    if state is None:
        raise NotFound(
            f"no motif discovery {job_id!r} of {model.name}@{model.version} for this key (the "
            "server keeps the last 16 results); start it again."
        )
    return respond(json_reply({"id": job_id, **state}))
