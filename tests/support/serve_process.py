"""``helixserve serve --workers N`` as a real process for tests: started on a free port with a
store holding the G+C test model, waited for until ready, stopped with SIGTERM.

Contract: :func:`serve_processes` yields a :class:`Served` (base URL, store, the supervisor's
process); ``env`` adds ``HELIXSERVE_*``
settings to a clean environment (none of the caller's ``HELIXSERVE_*``, ``HOME`` in ``tmp``, no
pretrained models, no worker). A server that is not ready within 60 s fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from helixserve.store import ModelStore
from tests.support.server import free_port, publish_gc


@dataclass(frozen=True)
class Served:
    url: str
    store: ModelStore  # to publish more models into
    process: subprocess.Popen[bytes]  # the supervisor (uvicorn's), parent of the workers


@contextmanager
def serve_processes(
    tmp: Path, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """A ``serve --workers`` process over a store with model ``gc``."""
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HELIXSERVE_")},
        "HOME": str(tmp),
        "HELIXSERVE_PRETRAINED": "false",
        "HELIXSERVE_WORKER": "false",
        **(env or {}),
    }
    store = ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache")
    publish_gc(store)
    command = [sys.executable, "-m", "helixserve", "serve", "--store", store.uri]
    command += ["--port", str(port), "--grpc-port", "0", "--workers", str(workers)]
    server = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        yield Served(url, store, server)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"helixserve serve at {url} was not ready within 60 s")
