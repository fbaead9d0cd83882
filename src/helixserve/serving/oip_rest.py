"""Open Inference Protocol v2 over HTTP/JSON, with the binary tensor data extension.

Contract:
- :func:`parse_infer_request` reads ``POST /v2/models/{name}[/versions/{v}]/infer`` bodies: JSON
  (``inputs: [{name, shape, datatype, data}]``, ``data`` flat or nested, ``BYTES`` as strings; an
  ``image`` tensor's strings are base64) or, when the ``Inference-Header-Content-Length`` header is
  present, that many bytes of JSON followed by the binary data of every input whose
  ``parameters.binary_data_size`` says so (Triton's binary extension, as ``tritonclient`` sends).
  Malformed requests raise :class:`~helixserve.serving.oip.OipError` naming the field.
- :func:`render_infer_response` writes the response, putting an output in binary form when the
  request asked for it (``outputs[].parameters.binary_data`` or request parameter
  ``binary_data_output``) and returning the JSON header length to send as
  ``Inference-Header-Content-Length``.
- Errors answer ``{"error": "<message>"}`` as the protocol specifies.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from helixserve.serving.oip import (
    NUMPY_TYPES,
    OipError,
    Tensor,
    check_datatype,
    check_shape,
    fixed_array,
    pack_bytes,
    unpack_bytes,
)


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[str] = field(default_factory=list)
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer request body; see the module contract."""
    json_part, binary = body, b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise OipError(
                f"Inference-Header-Content-Length must be an integer, got {header_length!r}."
            ) from None
        if not 0 < n <= len(body):
            raise OipError(
                f"Inference-Header-Content-Length is {n}, but the body has {len(body)} bytes."
            )
        json_part, binary = body[:n], body[n:]
    try:
        data = orjson.loads(json_part)
    except orjson.JSONDecodeError as err:
        raise OipError(f"the request body is not valid JSON ({err}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise OipError('the request body must be a JSON object with an "inputs" list.')
    inputs, offset = [], 0
    for i, spec in enumerate(data["inputs"]):
        tensor, offset = _input(spec, i, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise OipError(f"{len(binary) - offset} bytes of binary data follow the inputs unused.")
    return _with_outputs(data, inputs)


def _with_outputs(data: dict[str, Any], inputs: list[Tensor]) -> InferRequest:
    request_id = data.get("id")
    params = data.get("parameters") or {}
    request = InferRequest(None if request_id is None else str(request_id), inputs)
    request.binary_all = bool(isinstance(params, dict) and params.get("binary_data_output"))
    outputs = data.get("outputs") or []
    if not isinstance(outputs, list):
        raise OipError('"outputs" must be a list of {"name": ...} objects.')
    for spec in outputs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise OipError('each of "outputs" must be an object with a "name".')
        request.outputs.append(spec["name"])
        if _parameters(spec, f"output '{spec['name']}'").get("binary_data"):
            request.binary_outputs.add(spec["name"])
    return request


def _input(spec: object, i: int, binary: bytes, offset: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict):
        raise OipError(f"inputs[{i}] must be an object with name, shape, datatype and data.")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise OipError(f"inputs[{i}] needs a string 'name' and 'datatype'.")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise OipError(f"input '{name}': 'shape' must be a list of non-negative integers.")
    check_datatype(datatype, name)
    check_shape(shape, name)
    size = _parameters(spec, f"input '{name}'").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise OipError(
                f"input '{name}': binary_data_size {size!r} does not fit the "
                f"{len(binary) - offset} bytes of binary data left."
            )
        raw = binary[offset : offset + size]
        array = (
            unpack_bytes(raw, name)
            if datatype == "BYTES"
            else (fixed_array(raw, datatype, shape, name))
        )
        return Tensor(name, datatype, shape, array), offset + size
    if "data" not in spec:
        raise OipError(f"input '{name}' has no 'data' (and no binary_data_size).")
    return Tensor(name, datatype, shape, _json_data(spec["data"], datatype, shape, name)), offset


def _parameters(spec: dict[str, Any], what: str) -> dict[str, Any]:
    """A tensor's ``parameters`` object (``{}`` when absent)."""
    params = spec.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise OipError(f"{what}: 'parameters' must be an object, got {type(params).__name__}.")
    return params


def _json_data(data: object, datatype: str, shape: list[int], name: str) -> Any:
    count = math.prod(shape)  # Python ints: a huge shape cannot wrap around to a small count
    if datatype == "BYTES":
        flat = _flatten(data)
        if not all(isinstance(v, str) for v in flat):
            raise OipError(f"input '{name}': BYTES data must be strings.")
        if name == "image":
            flat = [_b64(str(v), name, k) for k, v in enumerate(flat)]
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        try:
            with np.errstate(over="ignore"):  # 1e300 as FP32 is inf, refused before the model
                array = np.asarray(data, dtype=NUMPY_TYPES[datatype]).reshape(-1)
        except (ValueError, TypeError, OverflowError):  # OverflowError: out of the type's range
            raise OipError(f"input '{name}': data must be numbers of type {datatype}.") from None
    if array.size != count:
        raise OipError(
            f"input '{name}': shape {shape} needs {count} elements, data has {array.size}."
        )
    return array


def _flatten(data: object) -> list[object]:
    """The leaves of nested lists, in order (iteratively: any depth JSON allows is fine)."""
    flat: list[object] = []
    pending: list[Iterator[object]] = [iter([data])]
    while pending:
        for item in pending[-1]:
            if isinstance(item, list):
                pending.append(iter(item))
                break
            flat.append(item)
        else:
            pending.pop()
    return flat


def _b64(text: str, name: str, k: int) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise OipError(f"input '{name}' item {k}: not valid base64.") from None


def render_infer_response(
    model_name: str, version: int, request: InferRequest, outputs: list[Tensor]
) -> tuple[bytes, int | None]:
    """Response bytes and the JSON header length (``None`` when nothing is binary)."""
    listed, blobs = [], []
    for tensor in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if request.binary_all or tensor.name in request.binary_outputs:
            blob = (
                pack_bytes(tensor.data)
                if tensor.datatype == "BYTES"
                else (
                    np.ascontiguousarray(tensor.data)
                    .astype(tensor.data.dtype.newbyteorder("<"))
                    .tobytes()
                )
            )
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif tensor.datatype == "BYTES":
            entry["data"] = [v.decode("utf-8", "replace") for v in tensor.data.tolist()]
        else:
            entry["data"] = tensor.data.reshape(-1).tolist()
        listed.append(entry)
    head: dict[str, Any] = {
        "model_name": model_name,
        "model_version": str(version),
        "outputs": listed,
    }
    if request.id is not None:
        head["id"] = request.id
    header = orjson.dumps(head)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
