"""Load, overload, soak and graceful shutdown (short versions of ``python -m reliability.load``).

A real ``helixserve serve`` process on loopback serves the zoo; the load client shares the
machine's 2 cores with it. Assertions are on status codes, counts, memory and exit codes; speed
only enters as the measured capacity the load is scaled by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from reliability import loadgen
from reliability.load import (
    SETTINGS,
    measure_capacity,
    overload,
    shutdown_under_load,
    soak,
)
from reliability.loadgen import BROKEN, CLOSED, REFUSED, TIMEOUT, Target
from reliability.server import ServerProcess, free_port, serve

from helixserve.serving.app import HelixApp, create_app
from helixserve.settings import Settings
from helixserve.store import ModelStore
from tests.support.server import publish_gc

GC = "GC" * 25


@pytest.fixture(scope="module")
def zoo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serve(tmp_path_factory.mktemp("load"), SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def capacity(zoo_server: ServerProcess) -> float:
    measured = measure_capacity(zoo_server, seconds=5)
    assert measured["problems"] == []
    assert measured["rps"] > 0
    return float(measured["rps"])


def test_overload_past_capacity_sheds_with_503_and_bounded_latency(
    zoo_server: ServerProcess, capacity: float
) -> None:
    for factor in (2.0, 4.0, 8.0):
        report = overload(zoo_server, capacity, seconds=15, factor=factor)
        if report["shed"]:
            break
        # everything was answered: the capacity was measured while something else held the
        # cores, so this was no overload; offer more
    assert report["problems"] == []
    assert set(report["load"]["statuses"]) == {"200", "503"}
    assert report["load"]["outcomes"] == {"answered": report["load"]["sent"]}
    assert report["shed"] == report["load"]["503_with_retry_after"] > 0
    assert report["admitted"] > 0
    assert report["p99_admitted_ms"] <= report["p99_bound_ms"]
    assert report["rss_growth_pct"] < 25
    assert zoo_server.process.poll() is None


def test_soak_at_80_percent_of_capacity_has_no_errors_and_flat_memory(
    zoo_server: ServerProcess,
) -> None:
    report = soak(zoo_server, seconds=60, warmup=10)
    assert report["problems"] == []
    assert report["errors"] == 0
    assert report["requests"] >= 0.5 * report["rate_rps"] * 60
    assert report["rss_growth_pct"] < 10


def test_sigterm_under_load_finishes_in_flight_and_exits_0(tmp_path: Path) -> None:
    report = shutdown_under_load(tmp_path, before_s=2.0, bound_s=20.0)
    assert report["problems"] == []
    assert report["exit_code"] == 0
    assert report["in_flight_finished_200"] >= 1
    assert (
        report["in_flight_finished_200"] + report["in_flight_503"] == report["in_flight_at_sigterm"]
    )
    assert set(report["after_sigterm"]) <= {"200", "503", REFUSED, CLOSED}
    assert report["after_sigterm"].get("503", 0) > 0
    assert any(run.startswith("503") for run in report["readyz_after_sigterm"])
    assert report["drain_s"] < 20.0
    grpc = report["grpc"]
    assert grpc["calls_before"] > 0
    assert set(grpc["after_sigterm"]) <= {"OK", "UNAVAILABLE"}


# --- draining, in process --------------------------------------------------------------------


def drain_scenario(
    tmp_path: Path,
    body: Callable[[HelixApp, httpx.AsyncClient], Awaitable[None]],
    **settings: object,
) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "pub-cache")
    publish_gc(store)
    chosen = Settings(
        store=store.uri,
        grpc_port=0,
        reload_interval_s=0,
        access_log=False,
        cache_dir=str(tmp_path / "cache"),
        **settings,  # type: ignore[arg-type]
    )
    app = create_app(chosen)
    assert isinstance(app, HelixApp)

    async def main() -> None:
        await app.server.start()
        try:
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await body(app, client)
        finally:
            await app.server.stop()

    asyncio.run(main())


def test_draining_answers_503_with_retry_after_and_closes_connections(tmp_path: Path) -> None:
    async def body(app: HelixApp, client: httpx.AsyncClient) -> None:
        stopped: list[bool] = []
        app.server.drain.start(lambda: stopped.append(True))
        reply = await client.post("/api/v1/models/gc/predict", json={"inputs": [GC]})
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert reply.headers["connection"] == "close"
        assert reply.json()["detail"] == (
            "the server is shutting down; retry the request (another instance, or this one "
            "once restarted, will answer)."
        )
        infer = await client.post("/v2/models/gc/infer", json={"inputs": []})
        assert infer.status_code == 503
        assert infer.json() == {"error": reply.json()["detail"]}
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"
        assert (await client.get("/v2/health/ready")).json() == {"ready": False}
        assert (await client.get("/healthz")).status_code == 200
        await asyncio.sleep(0.3)
        assert stopped == [True]

    drain_scenario(tmp_path, body, shutdown_drain_s=0.1)


def test_drain_waits_for_admitted_requests(tmp_path: Path) -> None:
    async def body(app: HelixApp, client: httpx.AsyncClient) -> None:
        stopped: list[float] = []
        loop = asyncio.get_running_loop()
        slow = loop.create_task(client.post("/api/v1/models/gc/predict", json={"inputs": [GC]}))
        await asyncio.sleep(0.05)  # admitted: the batch waits max_wait_ms for more items
        assert app.server.drain.in_flight == 1
        app.server.drain.start(lambda: stopped.append(loop.time()))
        answered = await slow
        done = loop.time()
        assert answered.status_code == 200
        await asyncio.sleep(0.1)
        assert len(stopped) == 1
        assert stopped[0] >= done - 0.03

    drain_scenario(tmp_path, body, shutdown_drain_s=0, batch_policies={"gc": {"max_wait_ms": 400}})


# --- the load client ------------------------------------------------------------------------


def test_client_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError) as err:
        Target.post("http://example.org/api", [b"{}"])
    assert str(err.value) == (
        "the load client only sends to http:// loopback addresses; got 'http://example.org/api'."
    )


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _tcp_server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


def _outcomes(handler: Handler, **run: float) -> loadgen.LoadResult:
    async def main() -> loadgen.LoadResult:
        server, port = await _tcp_server(handler)
        async with server:
            target = Target.post(f"http://127.0.0.1:{port}/x", [b"{}"])
            return await loadgen.open_loop(
                target,
                concurrency=int(run.get("concurrency", 4)),
                rate=run.get("rate", 20),
                seconds=run.get("seconds", 0.1),
                timeout=run.get("timeout", 2),
            )

    return loadgen.run(main())


def test_client_tells_closed_broken_and_timed_out_requests_apart() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    assert {r.outcome for r in _outcomes(close_at_once).records} == {CLOSED}
    assert {r.outcome for r in _outcomes(half_answer).records} == {BROKEN}
    slow = _outcomes(never, rate=100, seconds=0.2, concurrency=2, timeout=0.5)
    assert [r.outcome for r in slow.records] == [TIMEOUT, TIMEOUT]
    assert slow.skipped == 18


def test_client_counts_statuses_and_retry_after_on_kept_alive_connections() -> None:
    connections: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for status in (200, 503, 200):
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            extra = b"Retry-After: 1\r\n" if status == 503 else b""
            writer.write(b"HTTP/1.1 %d X\r\n%sContent-Length: 2\r\n\r\nok" % (status, extra))
        writer.close()

    result = _outcomes(answer, rate=10, seconds=0.3, concurrency=1)
    assert [(r.status, r.retry_after) for r in result.records] == [
        (200, False),
        (503, True),
        (200, False),
    ]
    assert len(connections) == 1
    assert result.summary()["503_with_retry_after"] == 1


def test_client_counts_refused_connections() -> None:
    target = Target.post(f"http://127.0.0.1:{free_port()}/x", [b"{}"])
    result = loadgen.run(loadgen.closed_loop(target, concurrency=1, seconds=1, max_requests=3))
    assert [r.outcome for r in result.records] == [REFUSED] * 3
