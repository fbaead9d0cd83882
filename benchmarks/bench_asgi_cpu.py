"""CPU time per request through the whole ASGI app, in-process: no sockets, no HTTP parsing.

Contract: builds the app as ``helixserve serve`` does (``create_app()`` with the default
settings a user gets: pretrained models on, the access log on), starts its lifespan, then sends
``POST /api/v1/models/primer-binding/predict`` with one sequence ``--requests`` times per round,
one request at a time, and reports the process CPU time (every thread: the event loop and the
model's batch thread) per request, best of ``--rounds``. It runs against whichever helixserve
``PYTHONPATH`` selects, so two commits can be compared on the same machine back to back; being
CPU time, it is far less sensitive to other jobs on a shared machine than requests per second.
``--no-fast-path`` sets ``HELIXSERVE_FAST_PATH=false`` first (the plain FastAPI route).
``--access-log on|off`` configures logging as ``helixserve serve`` does (one JSON line per request
on standard output, here redirected to a file on disk) with the access log on or off, so the two
can be compared: run both, alternated, and compare the CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import os
import sys
import tempfile
import time
from typing import Any

from helixserve.cli.serve import log_config
from helixserve.serving.app import create_app

BODY = b'{"inputs": ["ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTAC"]}'
PATH = "/api/v1/models/primer-binding/predict"


def _scope(path: str = PATH, headers: tuple[tuple[bytes, bytes], ...] = ()) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _one(app: Any, path: str = PATH, headers: tuple[tuple[bytes, bytes], ...] = ()) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, headers), receive, send)
    return status


async def _lifespan(app: Any) -> tuple[Any, Any]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise SystemExit(f"the app did not start: {started}")
    return inbox.put, outbox.get


async def cpu_per_request(
    app: Any,
    requests: int,
    rounds: int,
    path: str = PATH,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> list[float]:
    """CPU µs per request of ``app`` (its lifespan started), one list entry per round."""
    for _ in range(200):  # warm up
        status = await _one(app, path, headers)
        if status != 200:
            raise SystemExit(f"POST {path} answered {status}")
    found: list[float] = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(requests):
            await _one(app, path, headers)
        found.append((time.process_time() - start) / requests * 1e6)
    return found


async def _measure(requests: int, rounds: int) -> list[float]:
    app = create_app()
    tell, hear = await _lifespan(app)
    best = await cpu_per_request(app, requests, rounds)
    await tell({"type": "lifespan.shutdown"})
    await hear()
    return best


def as_served(access_log: bool) -> None:
    """Logging as ``helixserve serve`` sets it up, standard output going to a scratch file."""
    os.environ["HELIXSERVE_ACCESS_LOG"] = "true" if access_log else "false"
    with tempfile.NamedTemporaryFile(prefix="hs-bench-access-", suffix=".log") as out:
        os.dup2(out.fileno(), sys.stdout.fileno())  # stdout now writes to the (unlinked) file
    logging.config.dictConfig(log_config("info"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-fast-path", action="store_true")
    parser.add_argument("--access-log", choices=["on", "off"])
    args = parser.parse_args()
    if args.access_log:
        as_served(args.access_log == "on")
    os.environ.setdefault("HELIXSERVE_STORE", tempfile.mkdtemp(prefix="hs-bench-store-"))
    os.environ["HELIXSERVE_RELOAD_INTERVAL_S"] = "0"
    if args.no_fast_path:
        os.environ["HELIXSERVE_FAST_PATH"] = "false"
    rounds = asyncio.run(_measure(args.requests, args.rounds))
    print(
        f"access log: {args.access_log or 'as the settings say'}; "
        f"fast path: {'off' if args.no_fast_path else 'on'}",
        file=sys.stderr,
    )
    print(
        f"CPU time per predict request (us), best of {args.rounds} x {args.requests}: "
        f"{min(rounds):.1f} (median {sorted(rounds)[len(rounds) // 2]:.1f})",
        file=sys.stderr if args.access_log else sys.stdout,  # stdout is the access log then
    )


if __name__ == "__main__":
    main()
