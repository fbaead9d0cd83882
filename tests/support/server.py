"""A real helixserve server (uvicorn + gRPC) on free loopback ports, in a thread of the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from helixserve.inputs.sequence import SequenceSchema
from helixserve.serving.app import ASGIApp, create_app
from helixserve.settings import Settings
from helixserve.store import ModelStore, OutputSchema, make_manifest
from tests.support.onnx_models import gc_binary_model, token_regression_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Running:
    url: str
    grpc: str
    app: ASGIApp
    settings: Settings


@contextmanager
def running(store: str | Path, tmp: Path, **settings: Any) -> Iterator[Running]:
    """Serve ``store`` until the block ends; settings override the defaults (no polling)."""
    port, grpc_port = free_port(), free_port()
    values = {
        "store": str(store),
        "port": port,
        "grpc_port": grpc_port,
        "cache_dir": str(tmp / "cache"),
        "reload_interval_s": 0,
        "database_url": f"sqlite:///{tmp / 'workspace.db'}",
        "workspace_store": str(tmp / "workspace"),
        **settings,
    }
    chosen = Settings(**values)
    app = create_app(chosen)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", app, chosen)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def publish_gc(
    store: ModelStore,
    name: str = "gc",
    card: str = "# GC model\n",
    *,
    bias: float = 12.5,
    length: int = 50,
) -> int:
    """Publish the G+C binary test model (exactly ``length`` nt); returns its version."""
    files = {"model.onnx": gc_binary_model(length, bias=bias), "card.md": card.encode()}
    manifest = make_manifest(
        files,
        name=name,
        task="binary",
        input=SequenceSchema(length=length),
        output=OutputSchema(labels=["0", "1"]),
        metrics={"accuracy": 0.9},
    )
    return store.publish(manifest, files).version


def publish_tokensum(store: ModelStore) -> int:
    """Publish ``tokensum``: a regression on 1..64 nt of ACGTN, the sum of the base tokens (so
    an explanation can be checked by hand); returns its version."""
    files = {"model.onnx": token_regression_model(64), "card.md": b"# token sum\n"}
    schema = SequenceSchema(min_length=1, encoding="tokens", pad_to=64, alphabet="ACGTN")
    manifest = make_manifest(files, name="tokensum", task="regression", input=schema)
    return store.publish(manifest, files).version
