"""Open Inference Protocol v2 (KServe / Triton / Seldon): the transport-free part.

Contract:
- :class:`Tensor` is one named tensor: ``datatype`` (``BYTES``, ``FP32``, ``INT64``, ...),
  ``shape`` and ``data`` (a numpy array; ``BYTES`` as an object array of ``bytes``).
- Inputs a model accepts, listed by :func:`model_metadata` in this order: for DNA models a
  ``BYTES`` tensor ``sequence`` of shape ``[N]`` (validated by :mod:`helixserve.inputs`, the same
  messages as everywhere) and the pre-encoded ``FP32`` tensor the ONNX model takes (its ONNX input
  name); for tabular models the ``FP32`` ``[N, F]`` tensor (each row validated against the
  schema; NaN = missing); for image models a ``BYTES`` tensor ``image`` of encoded files and the
  pre-processed ``FP32`` ``[N, C, H, W]`` tensor.
- Outputs: classifiers give ``probabilities`` (``FP32 [N, K]``, label order as in the metadata's
  ``parameters.labels``) and ``label`` (``BYTES [N]``); multilabel models give ``probabilities``
  (``FP32 [N, L]``, label order likewise) and ``positive`` (``BOOL [N, L]``: the label's
  probability is at or above the threshold); regression gives ``value`` (``FP32 [N]``).
- :func:`infer` raises :class:`OipError` (status 400) for a request the model cannot take, naming
  the tensor, the item and the reason; the protocol has no partial results, so one bad item fails
  the request. Unknown models raise :class:`~helixserve.errors.ModelNotFound` (404).
- BYTES tensors on the wire (gRPC raw contents, REST binary extension) are each element as a
  4-byte little-endian length followed by its bytes: :func:`pack_bytes` / :func:`unpack_bytes`.
"""

from __future__ import annotations

import asyncio
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import helixserve
from helixserve.errors import RequestError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.runtime.predictor import BatchPrediction
from helixserve.runtime.signature import expected_input
from helixserve.serving.registry import LoadedModel, ModelEntry

NUMPY_TYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
EXTENSIONS = ["binary_tensor_data"]


class OipError(RequestError):
    """A request the protocol layer refuses (a :class:`~helixserve.errors.RequestError`: 400,
    gRPC INVALID_ARGUMENT, per :mod:`helixserve.error_table`)."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: npt.NDArray[Any]


def server_metadata() -> dict[str, Any]:
    return {"name": "helixserve", "version": helixserve.__version__, "extensions": EXTENSIONS}


def input_specs(model: LoadedModel) -> list[tuple[str, str, list[int]]]:
    """``(name, datatype, shape)`` of each input the model accepts, preferred first."""
    manifest = model.manifest
    _dtype, dims = expected_input(manifest)
    encoded = (manifest.onnx_input, "FP32", [-1 if d is None else d for d in dims])
    if isinstance(manifest.input, SequenceSchema):
        if manifest.input.encoding == "tokens":
            return [("sequence", "BYTES", [-1]), (manifest.onnx_input, "INT64", encoded[2])]
        return [("sequence", "BYTES", [-1]), encoded]
    if isinstance(manifest.input, ImageSchema):
        return [("image", "BYTES", [-1]), encoded]
    return [encoded]


def output_specs(model: LoadedModel) -> list[tuple[str, str, list[int]]]:
    if model.manifest.task == "regression":
        return [("value", "FP32", [-1])]
    k = len(model.manifest.output.labels or [])
    if model.manifest.task == "multilabel":
        return [("probabilities", "FP32", [-1, k]), ("positive", "BOOL", [-1, k])]
    return [("probabilities", "FP32", [-1, k]), ("label", "BYTES", [-1])]


def model_metadata(entry: ModelEntry, model: LoadedModel) -> dict[str, Any]:
    """The OIP model metadata response body."""

    def spec(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
        return {"name": name, "datatype": datatype, "shape": shape}

    labels = model.manifest.output.labels
    return {
        "name": model.name,
        "versions": [str(v) for v in sorted(entry.versions)],
        "platform": "onnxruntime_onnx",
        "inputs": [spec(*s) for s in input_specs(model)],
        "outputs": [spec(*s) for s in output_specs(model)],
        "parameters": {
            "task": model.manifest.task,
            "version": str(model.version),
            **({"labels": ",".join(labels)} if labels else {}),
        },
    }


async def infer(model: LoadedModel, inputs: list[Tensor], wanted: list[str]) -> list[Tensor]:
    """Run one inference request; see the module contract."""
    if len(inputs) != 1:
        names = ", ".join(s[0] for s in input_specs(model))
        raise OipError(
            f"model '{model.name}' takes exactly one input tensor (one of: {names}); "
            f"got {len(inputs)}."
        )
    tensor = inputs[0]
    specs = {s[0]: s for s in input_specs(model)}
    spec = specs.get(tensor.name)
    if spec is None:
        raise OipError(
            f"model '{model.name}' has no input named '{tensor.name}'; its inputs "
            f"are {', '.join(specs)}."
        )
    if tensor.datatype != spec[1]:
        raise OipError(
            f"input '{tensor.name}' must have datatype {spec[1]}, got {tensor.datatype}."
        )
    if spec[1] == "BYTES":
        result = await _infer_items(model, tensor)
    else:
        result = await _infer_tensor(model, tensor, spec[2])
    return _outputs(model, result, wanted)


async def _infer_items(model: LoadedModel, tensor: Tensor) -> BatchPrediction:
    if len(tensor.shape) != 1:
        raise OipError(
            f"input '{tensor.name}' must have shape [N] (one element per item), got {tensor.shape}."
        )
    raw = tensor.data.reshape(-1).tolist()
    items: list[object] = raw
    if tensor.name == "sequence":
        items = [_text(v, i, tensor.name) for i, v in enumerate(raw)]
    result = await model.batcher.submit(items)
    _raise_first(result, tensor.name)
    return result


def _text(value: object, index: int, name: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(bytes(value).decode("utf-8"))  # type: ignore[call-overload]
    except (UnicodeDecodeError, TypeError):
        raise OipError(f"input '{name}' item {index}: not UTF-8 text.") from None


def _raise_first(result: BatchPrediction, name: str) -> None:
    if result.errors:
        first = result.errors[0]
        more = len(result.errors) - 1
        tail = f" ({more} more invalid item{'s' if more != 1 else ''})" if more else ""
        raise OipError(f"input '{name}' item {first.index}: {first.error}{tail}")


async def _infer_tensor(model: LoadedModel, tensor: Tensor, dims: list[int]) -> BatchPrediction:
    shape = tensor.shape
    if len(shape) != len(dims) or any(d not in (-1, s) for d, s in zip(dims, shape, strict=True)):
        raise OipError(f"input '{tensor.name}' must have shape {dims} (-1 = any), got {shape}.")
    check_shape(shape, tensor.name)
    if math.prod(shape) != tensor.data.size:
        raise OipError(
            f"input '{tensor.name}': shape {shape} needs {math.prod(shape)} elements, "
            f"data has {tensor.data.size}."
        )
    array = tensor.data.reshape(shape)
    schema = model.manifest.input
    if isinstance(schema, TabularSchema):
        rows = [
            dict(zip(schema.names(), (None if np.isnan(v) else v for v in row), strict=True))
            for row in array.tolist()
        ]
        result = await model.batcher.submit(rows)
        _raise_first(result, tensor.name)
        return result
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise OipError(f"input '{tensor.name}' holds NaN or infinite values.")
    predictor = model.predictor
    output = await asyncio.to_thread(predictor.run, array)
    decoded = predictor.decode(output)
    positions = np.arange(len(array), dtype=np.intp)
    return BatchPrediction(len(array), positions, [], model.manifest.output.labels, decoded)


def _outputs(model: LoadedModel, result: BatchPrediction, wanted: list[str]) -> list[Tensor]:
    available = _available(result)
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise OipError(
            f"model '{model.name}' has no output named '{unknown[0]}'; its outputs "
            f"are {', '.join(available)}."
        )
    return [available[w] for w in wanted] if wanted else list(available.values())


def _available(result: BatchPrediction) -> dict[str, Tensor]:
    """Every output tensor of a batch, by name (see the module contract)."""
    n, d = result.size, result.decoded
    if d.values is not None:
        return {"value": Tensor("value", "FP32", [n], d.values.astype(np.float32))}
    assert d.probabilities is not None
    probabilities = d.probabilities.astype(np.float32)
    shape = list(probabilities.shape)
    available = {"probabilities": Tensor("probabilities", "FP32", shape, probabilities)}
    if d.positive is not None:
        available["positive"] = Tensor("positive", "BOOL", shape, d.positive)
    else:
        labels = np.array([s.encode() for s in result.labels()], dtype=object)
        available["label"] = Tensor("label", "BYTES", [n], labels)
    return available


def pack_bytes(values: npt.NDArray[Any]) -> bytes:
    """BYTES elements as 4-byte little-endian length + bytes, concatenated."""
    parts = []
    for value in values.reshape(-1).tolist():
        raw = value.encode() if isinstance(value, str) else bytes(value)
        parts.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(parts)


def unpack_bytes(raw: bytes, name: str) -> npt.NDArray[Any]:
    """The inverse of :func:`pack_bytes`; a truncated buffer raises :class:`OipError`."""
    out: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise OipError(f"input '{name}': BYTES data is truncated at byte {offset}.")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise OipError(
                f"input '{name}': BYTES element at byte {offset - 4} claims {size} "
                "bytes but the data ends first."
            )
        out.append(raw[offset : offset + size])
        offset += size
    array = np.empty(len(out), dtype=object)
    array[:] = out
    return array


MAX_DIMENSION = 2**31 - 1


def check_shape(shape: list[int], name: str) -> None:
    """Refuse a shape with a negative or absurd dimension (numpy cannot even describe some)."""
    if any(d < 0 or d > MAX_DIMENSION for d in shape):
        raise OipError(
            f"input '{name}': shape {shape} has a dimension outside 0..{MAX_DIMENSION:,}."
        )


def fixed_array(raw: bytes, datatype: str, shape: list[int], name: str) -> npt.NDArray[Any]:
    """A fixed-size tensor from raw little-endian bytes, checking the byte count."""
    check_shape(shape, name)
    dtype = np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")
    count = math.prod(shape)  # Python ints: a huge shape cannot wrap around to a small count
    if len(raw) != count * dtype.itemsize:
        raise OipError(
            f"input '{name}': {len(raw)} bytes of data, but {datatype} {shape} needs "
            f"{count * dtype.itemsize}."
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def check_datatype(datatype: str, name: str) -> None:
    if datatype != "BYTES" and datatype not in NUMPY_TYPES:
        raise OipError(
            f"input '{name}' has unknown datatype '{datatype}'; use one of BYTES, "
            f"{', '.join(NUMPY_TYPES)}."
        )
