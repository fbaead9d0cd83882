"""A small asyncio HTTP/1.1 load client for one server on loopback, bounded in time and count.

Contract:
- :func:`closed_loop` keeps ``concurrency`` requests in flight for ``seconds`` (each worker sends
  its next request when the last one is answered): it measures capacity.
- :func:`open_loop` starts requests on a fixed schedule of ``rate`` per second for ``seconds``,
  whatever the answers take (so an overloaded server cannot slow the offered load down), with at
  most ``concurrency`` in flight: a request due while that many are in flight is not sent and is
  counted in :attr:`LoadResult.skipped` (the client, not the server, was the limit then).
- Both stop after ``max_requests`` requests at most, and each request gives up after
  ``timeout`` seconds. Connections are kept alive and reused (one per request in flight).
- Every request is recorded (:class:`Record`): when it started (seconds from the run's start),
  its latency, the HTTP status (0 when there was no answer), whether a ``Retry-After`` header came
  back, and an outcome: ``ANSWERED``; ``REFUSED`` (the connection could not be opened);
  ``CLOSED`` (the server closed or reset the connection before any byte of an answer: it did
  not take the request); ``BROKEN`` (the connection failed mid-answer, or the answer was not
  HTTP/1.1 with a Content-Length); ``TIMEOUT``. A reused keep-alive connection that the server
  had closed while idle is retried once on a new connection, as HTTP clients do.
- With ``pid``, the resident memory (VmRSS from ``/proc/PID/status``) of that process and its
  child processes is sampled once a second into :attr:`LoadResult.rss_kib`.
- Only loopback targets are accepted (:class:`ValueError` otherwise). The client shares the
  machine's cores with the server it loads; read its figures with that in mind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

ANSWERED, REFUSED, CLOSED, BROKEN, TIMEOUT = "answered", "refused", "closed", "broken", "timeout"
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Where requests go and what they carry (``bodies`` are sent in turn)."""

    host: str
    port: int
    requests: tuple[bytes, ...]

    @classmethod
    def post(
        cls,
        url: str,
        bodies: Sequence[bytes],
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Target:
        """POST each body in turn to ``url`` (an ``http://`` loopback URL)."""
        host, port, path = _loopback(url)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"{extra}Content-Length: "
        )
        return cls(host, port, tuple(f"{head}{len(b)}\r\n\r\n".encode() + b for b in bodies))

    @classmethod
    def get(cls, url: str) -> Target:
        host, port, path = _loopback(url)
        return cls(host, port, (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode(),))


def _loopback(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not _is_loopback(host):
        raise ValueError(f"the load client only sends to http:// loopback addresses; got {url!r}.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, parts.port or 80, path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class Record:
    """One request: start (s from the run's start), latency (s), status, Retry-After, outcome."""

    start: float
    latency: float
    status: int
    retry_after: bool
    outcome: str


@dataclass
class LoadResult:
    """Everything one run recorded; :meth:`summary` condenses it."""

    mode: str
    concurrency: int
    rate: float | None
    t0: float = 0.0
    seconds: float = 0.0
    records: list[Record] = field(default_factory=list)
    skipped: int = 0
    rss_kib: list[tuple[float, int]] = field(default_factory=list)

    def ok(self) -> list[Record]:
        return [r for r in self.records if r.status == 200]

    def summary(self) -> dict[str, Any]:
        """Counts per status and outcome, latency of the 200s (ms), throughput, memory."""
        ok = np.array([r.latency for r in self.ok()]) * 1000
        statuses = Counter(str(r.status) for r in self.records if r.outcome == ANSWERED)
        pct = {
            f"p{q}_ms": round(float(np.percentile(ok, q)), 2) if ok.size else None
            for q in (50, 90, 99)
        }
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "offered_rps": self.rate,
            "seconds": round(self.seconds, 2),
            "sent": len(self.records),
            "skipped": self.skipped,
            "statuses": dict(sorted(statuses.items())),
            "outcomes": dict(Counter(r.outcome for r in self.records)),
            "ok_rps": round(len(ok) / self.seconds, 1) if self.seconds else 0.0,
            **pct,
            "max_ms": round(float(ok.max()), 2) if ok.size else None,
            "503_with_retry_after": sum(
                1 for r in self.records if r.status == 503 and r.retry_after
            ),
            "rss_mib_first": _mib(self.rss_kib[0][1]) if self.rss_kib else None,
            "rss_mib_last": _mib(self.rss_kib[-1][1]) if self.rss_kib else None,
            "rss_mib_max": _mib(max(k for _, k in self.rss_kib)) if self.rss_kib else None,
        }


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


# --- one connection, one exchange ----------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def close(self) -> None:
        self.writer.close()


async def _connect(target: Target) -> _Conn:
    try:
        reader, writer = await asyncio.open_connection(target.host, target.port)
    except OSError:
        raise _Failed(REFUSED) from None
    return _Conn(reader, writer)


async def _exchange(conn: _Conn, request: bytes) -> tuple[int, bool, bool]:
    """Send one request; (status, Retry-After present, keep-alive) of its answer."""
    try:
        conn.writer.write(request)
        head = await conn.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        raise _Failed(CLOSED if not err.partial else BROKEN) from None
    except (ConnectionError, asyncio.LimitOverrunError):
        raise _Failed(CLOSED) from None
    lines = head.split(b"\r\n")
    try:
        version, code = lines[0].split(b" ", 2)[:2]
        headers = dict(_header(line) for line in lines[1:] if line)
        length = int(headers[b"content-length"])
        status = int(code)
    except (ValueError, KeyError):
        raise _Failed(BROKEN) from None
    try:
        await conn.reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise _Failed(BROKEN) from None
    keep = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
    return status, b"retry-after" in headers, keep


def _header(line: bytes) -> tuple[bytes, bytes]:
    name, value = line.split(b":", 1)
    return name.strip().lower(), value.strip()


class _Client:
    """Connection pool + recorder shared by the request tasks of one run."""

    def __init__(self, target: Target, result: LoadResult, timeout: float) -> None:
        self.target = target
        self.result = result
        self.timeout = timeout
        self.idle: deque[_Conn] = deque()
        self.bodies = itertools.cycle(target.requests)
        self.in_flight = 0
        self.t0 = 0.0

    async def request(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.in_flight += 1
        status, retry_after, outcome = 0, False, ANSWERED
        try:
            status, retry_after = await asyncio.wait_for(
                self._send(next(self.bodies)), self.timeout
            )
        except TimeoutError:
            outcome = TIMEOUT
        except _Failed as err:
            outcome = err.outcome
        finally:
            self.in_flight -= 1
        latency = loop.time() - started
        self.result.records.append(Record(started - self.t0, latency, status, retry_after, outcome))

    async def _send(self, request: bytes) -> tuple[int, bool]:
        conn = self._idle_conn() or await _connect(self.target)
        try:
            try:
                status, retry_after, keep = await _exchange(conn, request)
            except _Failed as err:
                if not (conn.reused and err.outcome == CLOSED):
                    raise
                conn.close()  # closed by the server while idle: once more on a new connection
                conn = await _connect(self.target)
                status, retry_after, keep = await _exchange(conn, request)
        except BaseException:
            conn.close()
            raise
        if keep:
            conn.reused = True
            self.idle.append(conn)
        else:
            conn.close()
        return status, retry_after

    def _idle_conn(self) -> _Conn | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        return None

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


# --- runs ----------------------------------------------------------------------------------------


async def closed_loop(
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int = 10_000_000,
    timeout: float = 30.0,
    pid: int | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """``concurrency`` workers, each sending its next request once the last is answered (until
    ``seconds`` have passed, ``max_requests`` were sent, or ``stop`` is set)."""
    result = LoadResult("closed", concurrency, None)
    budget = itertools.count()
    stopped = stop or asyncio.Event()

    async def worker(client: _Client, end: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < end and not stopped.is_set() and next(budget) < max_requests:
            await client.request()

    async def drive(client: _Client) -> None:
        end = client.t0 + seconds
        await asyncio.gather(*(worker(client, end) for _ in range(concurrency)))

    return await _run(target, result, timeout, pid, drive)


async def open_loop(
    target: Target,
    *,
    rate: float,
    seconds: float,
    concurrency: int,
    max_requests: int = 10_000_000,
    timeout: float = 30.0,
    pid: int | None = None,
) -> LoadResult:
    """Requests started at ``rate`` per second on a fixed schedule; see the module contract."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}.")
    result = LoadResult("open", concurrency, rate)

    async def drive(client: _Client) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        for i in range(min(int(rate * seconds), max_requests)):
            delay = client.t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if client.in_flight >= concurrency:
                result.skipped += 1
                continue
            task = loop.create_task(client.request())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks))

    return await _run(target, result, timeout, pid, drive)


async def _run(
    target: Target,
    result: LoadResult,
    timeout: float,
    pid: int | None,
    drive: Callable[[_Client], Awaitable[None]],
) -> LoadResult:
    client = _Client(target, result, timeout)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    sampler = loop.create_task(sample_rss(pid, result.rss_kib, stop)) if pid else None
    client.t0 = result.t0 = loop.time()
    try:
        await drive(client)
    finally:
        result.seconds = loop.time() - client.t0
        client.close()
        stop.set()
        if sampler is not None:
            await sampler
    result.records.sort(key=lambda r: r.start)
    return result


# --- memory --------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """VmRSS (KiB) of ``pid`` plus its child processes; ``None`` once the process is gone."""
    total = _vmrss(pid)
    if total is None:
        return None
    for child in _children(pid):
        total += _vmrss(child) or 0
    return total


def _vmrss(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        for task in tasks.iterdir():
            with contextlib.suppress(OSError):
                kids = [int(p) for p in (task / "children").read_text().split()]
                found += [k for kid in kids for k in (kid, *_children(kid))]
    return found


async def sample_rss(
    pid: int, into: list[tuple[float, int]], stop: asyncio.Event, every: float = 1.0
) -> None:
    """Append (seconds since start, RSS KiB) every ``every`` s until ``stop`` or the pid ends."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not stop.is_set():
        kib = rss_kib(pid)
        if kib is None:
            return
        into.append((round(loop.time() - t0, 2), kib))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed: a cheaper client)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
