"""Servers the serving benchmark compares helixserve with (benchmark code only, never shipped).

- ``flask_app``: the seed-style baseline — a Flask app that validates the sequence, one-hot
  encodes it with numpy and calls the same ONNX model once per request (run under gunicorn with
  2 sync workers by the benchmark). The model path comes from ``HELIX_BENCH_MODEL``.
- ``null_app``: an ASGI app that answers a constant JSON body to anything — the ceiling of
  Python HTTP on this machine (run under uvicorn with 2 workers).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import onnxruntime as ort
from flask import Flask, Response, request

_LOOKUP = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"ACGT"):
    _LOOKUP[_c] = _i
    _LOOKUP[_c + 32] = _i


def _session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        os.environ["HELIX_BENCH_MODEL"], options, providers=["CPUExecutionProvider"]
    )


flask_app = Flask(__name__)
_SESSION: ort.InferenceSession | None = None


@flask_app.post("/api/v1/models/<name>/predict")
def predict(name: str) -> Any:
    global _SESSION  # noqa: PLW0603 - one session per worker process, made on first use
    if _SESSION is None:
        _SESSION = _session()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return Response("send {'inputs': [...]}", status=400)
    sequence = body["inputs"][0]
    if not isinstance(sequence, str) or len(sequence) != 50:
        return Response("need a 50-nt sequence", status=422)
    codes = _LOOKUP[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]
    if (codes == 255).any():
        return Response("only A, C, G, T", status=422)
    onehot = np.zeros((1, 4, 50), dtype=np.float32)
    onehot[0, codes, np.arange(50)] = 1.0
    name_in = _SESSION.get_inputs()[0].name
    output = np.asarray(_SESSION.run(None, {name_in: onehot})[0]).reshape(-1)
    positive = float(output[-1])
    label = "1" if positive >= 0.5 else "0"
    return {"predictions": [{"label": label, "probability": max(positive, 1 - positive)}]}


_NULL_BODY = b'{"predictions":[{"label":"1","probability":0.99}],"errors":[]}'
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def null_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_NULL_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _NULL_BODY})
