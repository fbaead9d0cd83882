"""The adaptive micro-batcher: merging, splitting back, limits, bucketing, errors."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from pathlib import Path

import pytest

from helixserve.errors import ModelRunError, Overloaded, RequestTimeout
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime.batcher import BatchPolicy, MicroBatcher
from helixserve.runtime.predictor import ItemError, Prediction, Predictor
from helixserve.store import OutputSchema
from tests.support.onnx_models import gc_binary_model
from tests.test_predictor import local_bundle

GC_50, AT_50 = "GC" * 25, "AT" * 25


def predictor(tmp_path: Path, variable: bool = False) -> Predictor:
    schema = SequenceSchema(min_length=1, max_length=500) if variable else SequenceSchema(length=50)
    bundle = local_bundle(
        tmp_path,
        gc_binary_model("L" if variable else 50),
        task="binary",
        input=schema,
        output=OutputSchema(labels=["0", "1"]),
    )
    return Predictor(bundle)


def p_of(sequence: str) -> float:
    gc = sum(c in "GC" for c in sequence)
    return 1 / (1 + math.exp(-(0.5 * gc - 12.5)))


async def submit_all(batcher: MicroBatcher, requests: list[list[object]]) -> list[object]:
    return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)


def test_concurrent_requests_share_one_model_call(tmp_path: Path) -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(predictor(tmp_path), observer=lambda n, q, r: sizes.append(n))
    requests: list[list[object]] = [[GC_50], [AT_50, "ACGF"], ["GC" * 10 + "A" * 30]] * 3
    results = asyncio.run(submit_all(batcher, requests))
    assert sizes == [12]
    for request, result in zip(requests, results, strict=True):
        items = result.results()  # type: ignore[attr-defined]
        assert len(items) == len(request)
        for item, got in zip(request, items, strict=True):
            if item == "ACGF":
                assert got.index == 1  # relative to its own request
                assert str(got.error).startswith("DNA sequence is not valid DNA: position 4")
            else:
                assert isinstance(got, Prediction)
                assert got.probabilities is not None
                assert got.probabilities["1"] == pytest.approx(p_of(str(item)), abs=1e-6)
    batcher.close()


def test_max_batch_size_splits_batches(tmp_path: Path) -> None:
    sizes: list[int] = []
    policy = BatchPolicy(max_batch_size=4)
    batcher = MicroBatcher(predictor(tmp_path), policy, observer=lambda n, q, r: sizes.append(n))
    asyncio.run(submit_all(batcher, [[GC_50]] * 10))
    assert sizes == [4, 4, 2]
    one_big = asyncio.run(submit_all(batcher, [[GC_50] * 9]))
    assert one_big[0].size == 9  # type: ignore[attr-defined]  # larger than the limit: alone
    assert sizes[-1] == 9


def test_full_queue_is_overloaded(tmp_path: Path) -> None:
    policy = BatchPolicy(max_queue_items=2, max_wait_ms=50)
    batcher = MicroBatcher(predictor(tmp_path), policy)
    results = asyncio.run(submit_all(batcher, [[GC_50]] * 4))
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 2 and all(isinstance(e, Overloaded) for e in errors)
    assert str(errors[0]) == (
        "m@1 is overloaded: 2 items are already waiting (limit 2). Retry in a moment."
    )


def test_queue_of_more_work_than_the_timeout_allows_is_overloaded(tmp_path: Path) -> None:
    model = predictor(tmp_path)
    real = model.predict_batch

    def slow(items: list[object]) -> object:  # a model that takes 40 ms per item
        time.sleep(0.04 * len(items))
        return real(items)

    model.predict_batch = slow  # type: ignore[method-assign,assignment]
    batcher = MicroBatcher(model, BatchPolicy(max_batch_size=1, timeout_s=1.0))

    async def warm_then_burst() -> list[object]:
        await batcher.submit([GC_50])  # measures the speed: about 0.04 s per item
        return await submit_all(batcher, [[GC_50]] * 20)

    results = asyncio.run(warm_then_burst())
    batcher.close()
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, Overloaded) for r in refused)
    admitted = 20 - len(refused)
    assert 6 <= admitted <= 13  # 0.5 s of work at about 0.04 s per item, on a noisy machine
    assert results[admitted:] == refused  # the first ones in got in, the rest were refused
    pattern = (
        r"m@1 is overloaded: the (\d+) items already waiting need about ([\d.]+) s, over "
        r"half the request timeout \(1 s\)\. Retry in a moment\."
    )
    match = re.fullmatch(pattern, str(refused[0]))
    assert match is not None, str(refused[0])
    assert int(match.group(1)) == admitted
    assert 0.4 <= float(match.group(2)) <= 0.6


def test_timeout(tmp_path: Path) -> None:
    policy = BatchPolicy(max_wait_ms=500, timeout_s=0.05)
    batcher = MicroBatcher(predictor(tmp_path), policy)
    (result,) = asyncio.run(submit_all(batcher, [[GC_50]]))
    assert isinstance(result, RequestTimeout)
    assert str(result) == (
        "m@1 did not answer within 0.05 s; the server is busy. Retry later or send smaller batches."
    )


def test_variable_length_is_bucketed_and_order_kept(tmp_path: Path) -> None:
    model = predictor(tmp_path, variable=True)
    batcher = MicroBatcher(model)
    items: list[object] = ["G" * 3, "GC" * 200, "", "A" * 40 + "G" * 9, "C" * 130, "GCN"]
    (result,) = asyncio.run(submit_all(batcher, [items]))
    merged = result.results()  # type: ignore[attr-defined]
    alone = [model.predict([item])[0] for item in items]
    for i, (got, want) in enumerate(zip(merged, alone, strict=True)):
        if isinstance(want, Prediction):
            assert isinstance(got, Prediction)
            assert got.probabilities == pytest.approx(want.probabilities)
        else:
            assert isinstance(got, ItemError)
            assert (got.index, str(got.error)) == (i, str(want.error))
    assert [type(r).__name__ for r in merged].count("ItemError") == 2


def test_model_failure_reaches_every_waiting_request(tmp_path: Path) -> None:
    model = predictor(tmp_path)

    def broken(tensor: object) -> object:
        raise ModelRunError("m@1 failed while running on a batch of 2: boom")

    model.run = broken  # type: ignore[method-assign,assignment]
    results = asyncio.run(submit_all(MicroBatcher(model), [[GC_50], [AT_50]]))
    assert [str(r) for r in results] == ["m@1 failed while running on a batch of 2: boom"] * 2


@pytest.mark.parametrize(("inline_below_ms", "inline"), [(0.0, False), (1000.0, True)])
def test_fast_batches_run_on_the_event_loop(
    tmp_path: Path, inline_below_ms: float, inline: bool
) -> None:
    model = predictor(tmp_path)
    threads: list[str] = []
    real = model.predict_batch

    def spy(items: list[object]) -> object:
        threads.append(threading.current_thread().name)
        return real(items)

    model.predict_batch = spy  # type: ignore[method-assign,assignment]
    batcher = MicroBatcher(model, BatchPolicy(inline_below_ms=inline_below_ms))

    async def three_rounds() -> None:
        for _ in range(3):
            await batcher.submit([GC_50])

    asyncio.run(three_rounds())
    # the first batch always goes to the thread (its cost is unknown until measured)
    assert threads[0].startswith("batch-m@1")
    assert all((name == "MainThread") == inline for name in threads[1:])
