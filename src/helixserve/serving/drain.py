"""Graceful shutdown: on SIGTERM a server drains before it stops.

Contract:
- :class:`Drain` counts the HTTP requests a server has admitted and not yet answered
  (:meth:`Drain.admit` / :meth:`Drain.done`) and knows whether the server is draining.
- :meth:`Drain.hook_sigterm` (called on the event loop's thread, after the HTTP server installed
  its own SIGTERM handler — uvicorn does so before the app starts) wraps that handler. The first
  SIGTERM starts draining instead of stopping: :attr:`Drain.draining` turns true (the app then
  answers new requests with 503 + ``Retry-After`` + ``Connection: close`` and ``/readyz`` with
  503), the ``on_start`` callbacks run (e.g. the gRPC server stops taking new calls), and once no
  admitted request is left — but not before ``min_s`` seconds, so that load balancers see the
  503s, and not after ``max_s`` — the wrapped handler runs and the HTTP server shuts down as it
  would have (stop listening, finish open responses, run the app's shutdown). A second SIGTERM
  skips the rest of the drain. Outside the main thread (e.g. a server in a test thread) or when
  no handler was installed, nothing is hooked and :meth:`hook_sigterm` returns ``False``.
- :func:`end_with_parent` (Linux): the calling process gets SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), and so drains and stops. ``serve`` uses it for the worker it starts and
  :func:`helixserve.serving.app.create_app` for each of ``--workers`` server processes, so a
  supervisor that is killed leaves no process behind holding the port with a stale state.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("helixserve.server")
Handler = Callable[[int, FrameType | None], object]


class Drain:
    """Admitted-request count and the draining state of one server process."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self.draining = False
        self.in_flight = 0
        self.on_start: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def admit(self) -> None:
        self.in_flight += 1

    def done(self) -> None:
        self.in_flight -= 1

    def hook_sigterm(self) -> bool:
        """Wrap the current SIGTERM handler; see the module contract."""
        if threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return False
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: stop now
                previous(signum, frame)
                return
            loop.call_soon_threadsafe(self.start, lambda: previous(signum, None))

        signal.signal(signal.SIGTERM, on_sigterm)
        return True

    def start(self, then: Callable[[], object]) -> None:
        """Begin draining (on the event loop); call ``then`` once drained."""
        if self.draining:
            return
        self.draining = True
        log.info("SIGTERM: draining, %d request(s) in flight; new requests get 503", self.in_flight)
        for callback in self.on_start:
            callback()
        self._task = asyncio.get_running_loop().create_task(self._wait(then))

    async def _wait(self, then: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            waited = loop.time() - started
            if waited >= self.max_s or (waited >= self.min_s and not self.in_flight):
                break
            await asyncio.sleep(0.02)
        log.info(
            "drained in %.2f s (%d request(s) still in flight); stopping",
            loop.time() - started,
            self.in_flight,
        )
        then()


def end_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux; elsewhere nothing), see the contract."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid != os.getppid():  # it died before the call
        os.kill(os.getpid(), signal.SIGTERM)
