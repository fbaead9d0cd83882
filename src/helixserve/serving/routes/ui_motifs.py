"""The web UI's motif pages for DNA models: ``/models/{name}/motifs`` (GET the form, POST a file
of sequences) and ``/models/{name}/motifs/{id}`` (a discovery: its progress while it runs, then
every motif as a logo with its JASPAR CORE matches, each as a logo too).

Contract: the form takes a sequence file (FASTA, CSV/TSV or one per line, gzip or not; the
upload limits apply; at most :data:`~helixserve.serving.motif_jobs.MAX_SEQUENCES` sequences,
refused ones counted), a window width (4 to 30) and how many motifs (1 to 10), and whether to
match JASPAR. A discovery always runs in the background (:mod:`helixserve.serving.motif_jobs`):
the post redirects to its page, which reloads itself every 2 s (a ``<meta>`` refresh: no script)
and shows ``done`` of ``total`` sequences until the motifs are there. A form error is shown next
to its field (422); a discovery is its starter's (404 for anyone else, as for one no longer kept).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from helixserve.error_table import status_of
from helixserve.errors import InputError, NotFound
from helixserve.explain.motifs import jaspar_collection
from helixserve.inputs.readers import read_sequences
from helixserve.inputs.records import Record
from helixserve.serving import charts
from helixserve.serving.deps import (
    DnaPageModel,
    JobsDep,
    PageCaller,
    PagesDep,
    PostedForm,
    ServerDep,
    page_guard,
)
from helixserve.serving.files import UploadLimits
from helixserve.serving.motif_jobs import (
    MAX_SEQUENCES,
    MotifAsk,
    MotifJobs,
    check_work,
    read_sequences_for,
)
from helixserve.serving.responses import upload as takes_upload
from helixserve.serving.ui import owner_of

router = APIRouter(dependencies=[Depends(page_guard)], include_in_schema=False)


def _number(values: dict[str, str], field: str, default: int, low: int, high: int) -> int:
    text = (values.get(field) or str(default)).strip()
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InputError(
            f"{field} must be a whole number from {low} to {high}, got {text!r}.", field=field
        )
    return int(text)


def _read(upload: UploadFile, limits: UploadLimits) -> list[object]:
    """The sequences of an uploaded file (bad records are left for validation to count)."""
    items: list[object] = []
    for record in read_sequences(upload.file, max_decompressed=limits.max_decompressed):
        items.append(record.sequence if isinstance(record, Record) else None)
        if len(items) > MAX_SEQUENCES:
            break
    return items


def _ask(form: Any) -> tuple[MotifAsk, UploadFile | None]:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InputError(
            "choose a file of sequences (FASTA, CSV or one per line) first.", field="file"
        )
    width = _number(values, "width", 12, 4, 30)
    top = _number(values, "top", 3, 1, 10)
    return MotifAsk(width, top, values.get("jaspar") == "on"), upload


@router.get("/models/{name}/motifs", response_class=HTMLResponse)
async def motifs_page(request: Request, model: DnaPageModel, page: PagesDep) -> Response:
    return page(request, "motifs.html", model=model, values={"jaspar": "on"}, errors={})


@router.post("/models/{name}/motifs", response_class=HTMLResponse)
@takes_upload
async def motifs_post(
    request: Request,
    model: DnaPageModel,
    form: PostedForm,
    page: PagesDep,
    server: ServerDep,
    jobs: JobsDep,
    who: PageCaller,
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        ask, upload = _ask(form)
        assert upload is not None
        items = await asyncio.to_thread(_read, upload, server.upload_limits)
        sequences, refused = read_sequences_for(model, items)
        check_work(sequences, ask.width)
    except InputError as err:
        field = err.field if err.field in ("width", "top") else "file"
        errors = {field: str(err)}
        return page(
            request, "motifs.html", status_of(err), model=model, values=values, errors=errors
        )
    base = {
        "model": model.name,
        "version": model.version,
        "sequences": len(sequences),
        "refused": refused[:50],
        "refused_count": len(refused),
        "width": ask.width,
        "top": ask.top,
        "file": upload.filename,
    }
    job_id = MotifJobs(jobs).start(model, sequences, ask, owner_of(who), base)
    return RedirectResponse(f"/models/{model.name}/motifs/{job_id}?version={model.version}", 303)


def _logos(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Each motif with its logo and its JASPAR matches' logos (the match's strand)."""
    known = (
        {m[0]: m[2] for m in jaspar_collection()}
        if any(m["jaspar"] for m in state["motifs"])
        else {}
    )
    shown = []
    for k, motif in enumerate(state["motifs"], start=1):
        matches = []
        for match in motif["jaspar"]:
            matrix = known.get(match["matrix_id"])
            if matrix is not None and match["strand"] == "-":
                matrix = matrix[::-1, ::-1]
            title = f"{match['matrix_id']} {match['name']} ({match['strand']})"
            logo = charts.motif_logo(matrix.tolist(), title) if matrix is not None else ""
            matches.append({**match, "logo": logo})
        title = f"motif {k}: {motif['consensus']}"
        shown.append(
            {**motif, "logo": charts.motif_logo(motif["frequencies"], title), "matches": matches}
        )
    return shown


@router.get("/models/{name}/motifs/{job_id}", response_class=HTMLResponse)
async def motif_job_page(
    request: Request,
    job_id: str,
    model: DnaPageModel,
    page: PagesDep,
    jobs: JobsDep,
    who: PageCaller,
) -> Response:
    state = await asyncio.to_thread(MotifJobs(jobs).state, job_id, owner_of(who), model)
    if state is None:
        raise NotFound(
            "this motif discovery is no longer kept (the server keeps the last 16 results); "
            "start it again."
        )
    motifs = await asyncio.to_thread(_logos, state) if state["status"] == "done" else []
    return page(request, "motif_job.html", model=model, state=state, motifs=motifs, job_id=job_id)
