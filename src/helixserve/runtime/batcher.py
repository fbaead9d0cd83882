"""Adaptive micro-batching: requests that arrive together share one ONNX Runtime call.

Contract:
- :class:`MicroBatcher` wraps one :class:`~helixserve.runtime.predictor.Predictor`. Callers on an
  asyncio event loop ``await batcher.submit(items)`` and get back that request's
  :class:`~helixserve.runtime.predictor.BatchPrediction` (positions relative to ``items``).
- One worker task per batcher takes every waiting request (up to ``max_batch_size`` items in all;
  a single request larger than that runs alone), optionally waits up to ``max_wait_ms`` for more
  when the batch is not full, and runs validation + encoding + the model in one executor thread,
  off the event loop. Requests arriving while a batch runs form the next batch, so under load
  batches grow by themselves and when idle a request runs at once (``max_wait_ms=0``).
- Where batches run: in the executor thread, except when the recent batches of this model took
  less than ``inline_below_ms`` (a moving average): then the batch runs on the event loop itself,
  because handing a sub-millisecond call to a thread and back costs more than the call (and makes
  the event loop and the thread fight over the GIL). Batches grow under load, so a model moves to
  the thread as soon as its calls get long enough to matter. ``inline_below_ms=0`` always uses
  the thread.
- Variable-length DNA models are bucketed by length (powers of two) so padding stays small.
- Back-pressure: at most ``max_queue_items`` items may wait, and the items waiting may need at
  most half of ``timeout_s`` to run at the model's recent speed (a moving average of seconds per
  item); beyond either limit :meth:`submit` raises :class:`~helixserve.errors.Overloaded` at once
  (serving answers 503 with Retry-After). The second limit keeps a slow model from admitting
  requests that would only time out: without it, a queue holding more work than the timeout lets
  through under overload makes almost every admitted request time out (goodput collapses). A
  request that waits longer than ``timeout_s`` anyway raises
  :class:`~helixserve.errors.RequestTimeout`.
- ``observer(batch_items, queue_seconds, run_seconds)`` is called after each batch (metrics).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from helixserve.errors import Overloaded, RequestTimeout
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime.predictor import BatchPrediction, Decoded, ItemError, Predictor

Observer = Callable[[int, float, float], None]


@dataclass(frozen=True)
class BatchPolicy:
    """How one model batches (all configurable per model)."""

    max_batch_size: int = 64
    max_wait_ms: float = 0.0
    max_queue_items: int = 2048
    timeout_s: float = 30.0
    inline_below_ms: float = 2.0


@dataclass
class _Request:
    items: Sequence[object]
    future: asyncio.Future[BatchPrediction]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Merges concurrent requests for one model; see the module contract."""

    def __init__(
        self,
        predictor: Predictor,
        policy: BatchPolicy | None = None,
        *,
        observer: Observer | None = None,
    ) -> None:
        self.predictor = predictor
        self.policy = policy or BatchPolicy()
        self.observer = observer
        self._queue: deque[_Request] = deque()
        self._waiting_items = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{predictor.label}")
        self._bucketed = _is_variable_length(predictor)
        self._recent_ms = math.inf  # moving average of batch run time; unknown at first
        self._item_s = 0.0  # moving average of run seconds per item; 0: not measured yet

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The model's thread (for other long calls on this model, e.g. explanations)."""
        return self._executor

    @property
    def waiting_items(self) -> int:
        """Items queued and not yet taken into a batch."""
        return self._waiting_items

    async def submit(self, items: Sequence[object]) -> BatchPrediction:
        """Queue ``items`` as one request and wait for their results."""
        policy = self.policy
        waiting = self._waiting_items
        if waiting and waiting + len(items) > policy.max_queue_items:
            raise Overloaded(
                f"{self.predictor.label} is overloaded: {waiting} items are already "
                f"waiting (limit {policy.max_queue_items}). Retry in a moment.",
                retry_after=1,
            )
        if waiting and (waiting + len(items)) * self._item_s > policy.timeout_s / 2:
            raise Overloaded(
                f"{self.predictor.label} is overloaded: the {waiting} items already waiting need "
                f"about {waiting * self._item_s:.1f} s, over half the request timeout "
                f"({policy.timeout_s:g} s). Retry in a moment.",
                retry_after=1,
            )
        loop = asyncio.get_running_loop()
        request = _Request(items, loop.create_future())
        self._queue.append(request)
        self._waiting_items += len(items)
        self._ensure_worker()
        assert self._wakeup is not None
        self._wakeup.set()
        timer = loop.call_later(policy.timeout_s, self._expire, request.future)
        try:
            return await request.future
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[BatchPrediction]) -> None:
        if not future.done():
            future.set_exception(
                RequestTimeout(
                    f"{self.predictor.label} did not answer within {self.policy.timeout_s:g} s; "
                    "the server is busy. Retry later or send smaller batches."
                )
            )

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run_forever())

    async def _run_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.policy.max_wait_ms > 0 and self._waiting_items < self.policy.max_batch_size:
                await asyncio.sleep(self.policy.max_wait_ms / 1000)
            batch = self._take()
            if batch:
                await self._run(batch)

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        while self._queue:
            nxt = self._queue[0]
            if batch and size + len(nxt.items) > self.policy.max_batch_size:
                break
            self._queue.popleft()
            self._waiting_items -= len(nxt.items)
            if not nxt.future.done():
                batch.append(nxt)
                size += len(nxt.items)
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        items: list[object] = [item for request in batch for item in request.items]
        started = time.perf_counter()
        try:
            if self._recent_ms < self.policy.inline_below_ms:
                result = self._predict(items)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._executor, self._predict, items)
        except Exception as err:  # delivered to every waiting caller; the edge translates it
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(err)
            return
        ran = time.perf_counter() - started
        ms = ran * 1000
        self._recent_ms = ms if math.isinf(self._recent_ms) else 0.8 * self._recent_ms + 0.2 * ms
        per_item = ran / max(1, len(items))
        self._item_s = per_item if not self._item_s else 0.8 * self._item_s + 0.2 * per_item
        offset = 0
        for request in batch:
            if not request.future.done():
                request.future.set_result(_slice(result, offset, len(request.items)))
            offset += len(request.items)
        if self.observer is not None:
            queued = max(started - request.enqueued for request in batch)
            self.observer(len(items), queued, ran)

    def _predict(self, items: list[object]) -> BatchPrediction:
        if not self._bucketed or len(items) < 2:
            return self.predictor.predict_batch(items)
        return _bucketed_predict(self.predictor, items)

    def close(self) -> None:
        """Stop the worker and the executor thread (pending requests are cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
        for request in self._queue:
            request.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _is_variable_length(predictor: Predictor) -> bool:
    schema = predictor.manifest.input
    return isinstance(schema, SequenceSchema) and schema.length is None and schema.pad_to is None


def _bucketed_predict(predictor: Predictor, items: list[object]) -> BatchPrediction:
    """Predict items grouped by length bucket, then put the results back in input order."""
    buckets: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        size = len(item) if isinstance(item, str) else 0
        buckets.setdefault(max(size, 1).bit_length(), []).append(i)
    parts = [(idx, predictor.predict_batch([items[i] for i in idx])) for idx in buckets.values()]
    return _merge(len(items), parts)


def _merge(size: int, parts: list[tuple[list[int], BatchPrediction]]) -> BatchPrediction:
    mapped = [np.asarray(idx, dtype=np.intp) for idx, _ in parts]
    positions = np.concatenate([m[p.positions] for m, (_, p) in zip(mapped, parts, strict=True)])
    errors = [
        ItemError(int(m[e.index]), e.error)
        for m, (_, p) in zip(mapped, parts, strict=True)
        for e in p.errors
    ]
    decoded = [p.decoded for _, p in parts]
    order = np.argsort(positions, kind="stable")
    return BatchPrediction(
        size,
        positions[order],
        sorted(errors, key=lambda e: e.index),
        parts[0][1].label_names,
        _concat(decoded, order),
    )


def _concat(parts: list[Decoded], order: np.ndarray) -> Decoded:
    def join(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        if any(a is None for a in arrays):
            return None
        joined: np.ndarray = np.concatenate(arrays)[order]
        return joined

    return Decoded(join("label_index"), join("probabilities"), join("values"), join("positive"))


def _slice(result: BatchPrediction, offset: int, count: int) -> BatchPrediction:
    """The part of a merged batch that belongs to one request (positions made relative)."""
    if offset == 0 and count == result.size:
        return result
    positions = result.positions
    lo, hi = np.searchsorted(positions, [offset, offset + count])
    d = result.decoded

    def cut(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[lo:hi]

    errors = [
        ItemError(e.index - offset, e.error)
        for e in result.errors
        if offset <= e.index < offset + count
    ]
    decoded = Decoded(cut(d.label_index), cut(d.probabilities), cut(d.values), cut(d.positive))
    return BatchPrediction(count, positions[lo:hi] - offset, errors, result.label_names, decoded)
