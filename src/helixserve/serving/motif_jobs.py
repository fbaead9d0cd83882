"""Motif discovery in the server, in the background for large inputs, with its progress.

Contract:
- :func:`read_sequences_for` checks a list of sequences against the model (each bad one refused
  with its 0-based ``index`` and message, the good ones kept), at most :data:`MAX_SEQUENCES`, and
  :func:`check_work` bounds the cost: in-silico mutagenesis of every sequence scores ``3L + 1``
  sequences of ``L`` nt each, and the sum of those nucleotides may not pass :data:`MAX_WORK_NT`
  (2,000 UTRs of 50 nt use 15.1 million); more raises :class:`~helixserve.errors.InputError`
  naming the figures and what to do.
- :class:`MotifJobs` runs one discovery: ISM of the sequences in chunks of :data:`CHUNK` in the
  model's batch thread (other requests get their turn between chunks), then the motifs
  (:func:`~helixserve.explain.motifs.motifs_from`) and, unless told not to, their JASPAR CORE
  matches (pyjaspar, the ``explain`` extra) in a worker thread. Its state — ``status``
  (``running``, ``done``, ``failed``), ``done`` and ``total`` sequences, the ``motifs`` when done
  (:func:`~helixserve.explain.motifs.describe`) or the ``error`` — is written to the job store
  after every chunk (``<id>.result.json``), so any server process answers for it and a page
  can show the progress; it is its starter's (``owner``) only. :data:`INLINE` sequences or fewer
  are answered at once by the caller awaiting :meth:`MotifJobs.run`.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

from helixserve.errors import HelixError, InputError
from helixserve.explain.ism import IsmResult, dna_schema, ism
from helixserve.explain.motifs import describe, jaspar_matches, motifs_from
from helixserve.explain.scan import ism_cost
from helixserve.inputs.sequence import validate_sequence
from helixserve.serving.jobs import JobStore
from helixserve.serving.registry import LoadedModel

MAX_SEQUENCES = 2_000
MAX_WORK_NT = 60_000_000
INLINE = 200
CHUNK = 25
_RUNNING: set[asyncio.Task[None]] = set()  # strong references while they run


@dataclass(frozen=True)
class MotifAsk:
    """What to discover: ``width``-nt windows, the ``top`` motifs, JASPAR matches or not."""

    width: int = 12
    top: int = 3
    jaspar: bool = True
    target: str | None = None


def read_sequences_for(
    model: LoadedModel, items: list[object]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The sequences the model takes, and each refused one (``index``: 0-based, ``message``)."""
    if len(items) > MAX_SEQUENCES:
        raise InputError(
            f"motif discovery takes at most {MAX_SEQUENCES:,} sequences, got {len(items):,}; "
            f"use a sample, or `helixserve explain motifs` for more.",
            field="sequences",
        )
    schema = dna_schema(model.predictor)
    good: list[str] = []
    refused: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            good.append(validate_sequence(item, schema, field=f"sequences[{index}]"))
        except InputError as err:
            refused.append({"index": index, "message": f"sequences[{index}]: {err}"})
    return good, refused


def check_work(sequences: list[str], width: int) -> None:
    """Refuse an input that costs more than :data:`MAX_WORK_NT` or has nothing to find."""
    if not any(len(s) >= width for s in sequences):
        raise InputError(
            f"no sequence the model takes is {width} nt or longer, so no {width}-nt motif can "
            "be found; send sequences the model takes, or a smaller width.",
            field="sequences",
        )
    work = sum(ism_cost(len(s)) * len(s) for s in sequences)
    if work > MAX_WORK_NT:
        raise InputError(
            f"in-silico mutagenesis of these {len(sequences):,} sequences would score "
            f"{work:,} nt, over the limit of {MAX_WORK_NT:,} for one discovery; send fewer or "
            "shorter sequences, or run `helixserve explain motifs` on this machine.",
            field="sequences",
        )


def _matched(results: list[IsmResult], ask: MotifAsk) -> list[dict[str, Any]]:
    """The motifs of the ISM results, each with its JASPAR matches (CPU work: a thread)."""
    found = motifs_from(results, width=ask.width, top=ask.top)
    if ask.jaspar:
        for motif in found:
            motif.matches = jaspar_matches(motif.frequencies, top=3)
    return [describe(m) for m in found]


class MotifJobs:
    """Discoveries kept in the job store (see the module contract)."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def _save(self, job_id: str, owner: str, model: LoadedModel, state: dict[str, Any]) -> None:
        self.jobs.add_result(job_id, owner, model, {"kind": "motifs", **state})

    def start(
        self,
        model: LoadedModel,
        sequences: list[str],
        ask: MotifAsk,
        owner: str,
        base: dict[str, Any],
    ) -> str:
        """Start a discovery in the background; its id (``base``: what its state repeats)."""
        job_id = secrets.token_urlsafe(12)
        state = {**base, "status": "running", "done": 0, "total": len(sequences)}
        self._save(job_id, owner, model, state)
        task = asyncio.get_running_loop().create_task(
            self._background(job_id, owner, model, sequences, ask, state)
        )
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
        return job_id

    async def _background(
        self,
        job_id: str,
        owner: str,
        model: LoadedModel,
        sequences: list[str],
        ask: MotifAsk,
        state: dict[str, Any],
    ) -> None:
        def progress(done: int) -> None:
            self._save(job_id, owner, model, {**state, "done": done})

        try:
            motifs = await self.run(model, sequences, ask, progress)
        except HelixError as err:
            self._save(job_id, owner, model, {**state, "status": "failed", "error": str(err)})
            return
        final = {**state, "status": "done", "done": len(sequences), "motifs": motifs}
        await asyncio.to_thread(self._save, job_id, owner, model, final)

    @staticmethod
    async def run(
        model: LoadedModel, sequences: list[str], ask: MotifAsk, progress: Any = None
    ) -> list[dict[str, Any]]:
        """The motifs of ``sequences`` (``progress(done)`` after every chunk)."""
        loop = asyncio.get_running_loop()
        results: list[IsmResult] = []
        for start in range(0, len(sequences), CHUNK):
            chunk = sequences[start : start + CHUNK]
            work = partial(_ism_all, model, chunk, ask.target)
            results += await loop.run_in_executor(model.batcher.executor, work)
            if progress is not None:
                await asyncio.to_thread(progress, len(results))
        return await asyncio.to_thread(_matched, results, ask)

    def state(self, job_id: str, owner: str, model: LoadedModel) -> dict[str, Any] | None:
        """A discovery's state for its owner, or ``None`` (unknown, another's, another model)."""
        record = self.jobs.result_record(job_id, owner)
        if record is None or (record["model"], record["version"]) != (model.name, model.version):
            return None
        content: dict[str, Any] = record["content"]
        if content.get("kind") != "motifs":
            return None
        return {k: v for k, v in content.items() if k != "kind"}


def _ism_all(model: LoadedModel, chunk: list[str], target: str | None) -> list[IsmResult]:
    return [ism(model.predictor, s, target) for s in chunk]
