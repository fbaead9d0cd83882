"""Scoring big files on a Ray cluster (``helixserve predict ... --engine ray``; extra ``ray``).

Contract:
- The driver reads the file in chunks exactly as the local engine does
  (:func:`~helixserve.batch.predict.record_chunks`) and hands each chunk to a pool of Ray actors.
  Each actor opens the model store itself (so the actors may run on other machines), pulls and
  verifies the bundle into its own cache, and validates, encodes, predicts and formats the chunk
  (:func:`~helixserve.batch.predict.score_chunk`). At most two chunks per actor are in flight.
- Results come back in submission order and are committed through the same journal as the local
  engine: the output, the errors file and ``--resume`` behave identically, and the output is byte
  for byte the local engine's.
- ``address``: ``None`` starts (or joins) a Ray instance on this machine; ``auto`` or
  ``ray://host:port`` joins an existing cluster. Ray is imported only here.
"""

from __future__ import annotations

from typing import Any

from helixserve.batch.predict import (
    BatchError,
    Progress,
    Run,
    Summary,
    begin,
    end,
    record_chunks,
    report,
    score_chunk,
)
from helixserve.runtime.predictor import Predictor
from helixserve.store.fs import S3Options
from helixserve.store.store import ModelStore


class ChunkScorer:
    """Ray actor body: one Predictor, loaded from the store on the actor's machine."""

    def __init__(self, store_uri: str, ref: str, s3: S3Options | None, threads: int) -> None:
        store = ModelStore.open(store_uri, s3=s3)
        self.predictor = Predictor.from_store(store, ref, intra_op_threads=threads)

    def score(self, number: int, records: list[Any], delimiter: str) -> tuple[Any, ...]:
        scored, refused, counts = score_chunk(self.predictor, number, records, delimiter)
        return number, scored, refused, len(records), counts


def _ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - optional extra
    except ImportError:
        raise BatchError(
            "--engine ray needs the ray extra: pip install 'helixserve[ray]'."
        ) from None
    return ray


def score_ray(
    predictor: Predictor,
    store_uri: str,
    ref: str,
    input_uri: str,
    output: str,
    *,
    errors: str | None = None,
    batch_size: int = 4096,
    resume: bool = False,
    s3: S3Options | None = None,
    address: str | None = None,
    actors: int = 2,
    threads: int = 1,
    progress: Progress | None = None,
    spreadsheet_safe: bool = False,
) -> Summary:
    """Score a file with a pool of Ray actors; see the module contract."""
    ray = _ray()
    if actors < 1:
        raise BatchError(f"--actors must be 1 or more, got {actors}.")
    if not ray.is_initialized():
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    run = begin(
        predictor,
        input_uri,
        output,
        errors=errors,
        batch_size=batch_size,
        resume=resume,
        s3=s3,
        spreadsheet_safe=spreadsheet_safe,
    )
    remote = ray.remote(num_cpus=threads)(ChunkScorer)
    pool = [remote.remote(store_uri, ref, s3, threads) for _ in range(actors)]
    try:
        _drive(ray, pool, predictor, run, batch_size, progress)
    finally:
        for actor in pool:
            ray.kill(actor)
    return end(predictor, run)


def _drive(
    ray: Any,
    pool: list[Any],
    predictor: Predictor,
    run: Run,
    batch_size: int,
    progress: Progress | None,
) -> None:
    """Keep two chunks per actor in flight; commit results in chunk order."""
    pending: list[Any] = []
    chunks = record_chunks(
        predictor, run.source.raw, batch_size, run.resumed_from, run.parts.state["chunks"]
    )
    for i, (number, records) in enumerate(chunks):
        pending.append(pool[i % len(pool)].score.remote(number, records, run.delimiter))
        if len(pending) >= 2 * len(pool):
            _commit(ray.get(pending.pop(0)), run)
            report(progress, run.source, run.parts)
    for ref in pending:
        _commit(ray.get(ref), run)
        report(progress, run.source, run.parts)


def _commit(result: tuple[Any, ...], run: Run) -> None:
    number, scored, refused, records, counts = result
    run.parts.commit(number, scored, refused, records, counts)
