"""A real ``helixserve serve`` process on free loopback ports, for the load scenarios.

Contract:
- :func:`serve` starts ``python -m helixserve serve`` on the zoo store (or ``store``) with
  store polling off, in a scratch working directory (no stray ``.env``), with ``HELIXSERVE_*``
  values from ``settings`` (e.g. ``{"BATCH_MAX_QUEUE": "512"}``), waits until ``/readyz``
  answers 200 (or raises :class:`RuntimeError` with the end of the server's log), yields a
  :class:`ServerProcess`, and on exit stops the process (SIGTERM, then SIGKILL after
  ``stop_timeout`` seconds) if it still runs. stderr goes to ``server.log`` in the scratch
  folder; stdout (the JSON access log) is discarded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    grpc: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(
    scratch: Path,
    settings: dict[str, str] | None = None,
    *,
    store: Path = ZOO_STORE,
    workers: int = 1,
    stop_timeout: float = 30.0,
) -> Iterator[ServerProcess]:
    """Run a server until the block ends; see the module contract."""
    scratch.mkdir(parents=True, exist_ok=True)
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIXSERVE_")}
    env.update({f"HELIXSERVE_{k}": v for k, v in (settings or {}).items()})
    env["HELIXSERVE_CACHE_DIR"] = str(scratch / "cache")
    command = [
        sys.executable,
        "-m",
        "helixserve",
        "serve",
        "--store",
        str(store),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--workers",
        str(workers),
        "--reload-interval",
        "0",
    ]
    log = scratch / "server.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", log)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(process, stop_timeout)


def _wait_ready(server: ServerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    tail = server.log_text()[-2000:]
    raise RuntimeError(f"the server at {server.url} did not get ready; its log ends:\n{tail}")


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
