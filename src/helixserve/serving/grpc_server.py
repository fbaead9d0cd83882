"""Open Inference Protocol v2 over gRPC: the standard ``inference.GRPCInferenceService``.

Contract:
- Message classes come from ``proto/grpc_predict_v2.pb`` (the compiled descriptor of
  ``proto/grpc_predict_v2.proto``, made by ``make proto``), loaded into a private descriptor
  pool, so another copy of the same standard messages in the process (``tritonclient``) never
  clashes with ours. No generated Python code is involved.
- :func:`build_server` makes the gRPC server on ``host:port`` (``SO_REUSEPORT``, so every
  worker process of ``helixserve serve --workers N`` listens on the same port) serving
  ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer with the same
  logic as REST (:mod:`helixserve.serving.oip`): engine ``h2`` (the default) is the HTTP/2 server
  of :mod:`helixserve.serving.grpc_h2` on the event loop, ``grpcio`` is ``grpc.aio``; both call
  the same :class:`Service` (message bytes and metadata in, status and message bytes out), so
  they answer alike. Inputs may come as typed ``contents`` or ``raw_input_contents``; outputs
  are always sent as ``raw_output_contents`` (what tritonclient reads). A message that does not
  parse as the method's request is INVALID_ARGUMENT naming the message type.
- Each call is counted and timed in the metrics as route ``grpc:<method>``, with its status.
- Errors map to status codes by :mod:`helixserve.error_table` (the same table as REST: invalid
  request or input -> INVALID_ARGUMENT, unknown model -> NOT_FOUND, store outage, overload or
  timeout -> UNAVAILABLE, missing/wrong key -> UNAUTHENTICATED / PERMISSION_DENIED, ...) with the
  error's message; anything that is not a ``HelixError`` -> INTERNAL with only a request id (the
  error is logged with its traceback).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from helixserve.error_table import answer_for
from helixserve.serving.access import Access
from helixserve.serving.auth import KeyRing
from helixserve.serving.grpc_h2 import H2Server
from helixserve.serving.grpc_wire import Answer
from helixserve.serving.metrics import Metrics
from helixserve.serving.oip import (
    NUMPY_TYPES,
    OipError,
    Tensor,
    check_datatype,
    fixed_array,
    infer,
    input_specs,
    output_specs,
    pack_bytes,
    server_metadata,
    unpack_bytes,
)
from helixserve.serving.registry import Registry

log = logging.getLogger("helixserve.grpc")
SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR = Path(__file__).parent / "proto" / "grpc_predict_v2.pb"
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
MAX_MESSAGE = 64 * 1024 * 1024


def load_messages() -> dict[str, Any]:
    """Message classes of the protocol by short name (``ModelInferRequest``, ...)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    service = pool.FindServiceByName(SERVICE)
    names = {m.input_type.name for m in service.methods} | {
        m.output_type.name for m in service.methods
    }
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{n}"))
        for n in names
    }


MESSAGES = load_messages()


class Servicer:
    """The six RPCs, over a :class:`Registry`. Each takes the request message and the call's
    metadata (header names lower case)."""

    def __init__(self, registry: Registry, keys: KeyRing, access: Access | None = None) -> None:
        self.registry = registry
        self.keys = keys
        self.access = access

    def _check(self, metadata: Mapping[str, str], name: str, *, infer: bool) -> None:
        """While accounts are on, the caller's access to model ``name`` (a project's model is its
        members'; :class:`~helixserve.serving.access.Access`); before, the key's ``predict``
        scope for an inference."""
        if self.access is not None and self.access.accounts_on:
            self.access.check_model(self.access.model_caller(_key(metadata)), name)
        elif infer:
            self.keys.check(_key(metadata), "predict")

    async def ServerLive(self, request: Any, metadata: Mapping[str, str]) -> Any:
        return MESSAGES["ServerLiveResponse"](live=True)

    async def ServerReady(self, request: Any, metadata: Mapping[str, str]) -> Any:
        return MESSAGES["ServerReadyResponse"](ready=self.registry.ready)

    async def ModelReady(self, request: Any, metadata: Mapping[str, str]) -> Any:
        self._check(metadata, request.name, infer=False)
        self.registry.resolve(request.name, request.version or None)
        return MESSAGES["ModelReadyResponse"](ready=True)

    async def ServerMetadata(self, request: Any, metadata: Mapping[str, str]) -> Any:
        return MESSAGES["ServerMetadataResponse"](**server_metadata())

    async def ModelMetadata(self, request: Any, metadata: Mapping[str, str]) -> Any:
        self._check(metadata, request.name, infer=False)
        model = self.registry.resolve(request.name, request.version or None)
        entry = self.registry.entry(request.name)
        response = MESSAGES["ModelMetadataResponse"](
            name=model.name,
            versions=[str(v) for v in sorted(entry.versions)],
            platform="onnxruntime_onnx",
        )
        for name, datatype, shape in input_specs(model):
            response.inputs.add(name=name, datatype=datatype, shape=shape)
        for name, datatype, shape in output_specs(model):
            response.outputs.add(name=name, datatype=datatype, shape=shape)
        return response

    async def ModelInfer(self, request: Any, metadata: Mapping[str, str]) -> Any:
        self._check(metadata, request.model_name, infer=True)
        model = self.registry.resolve(request.model_name, request.model_version or None)
        inputs = _inputs(request)
        wanted = [o.name for o in request.outputs]
        outputs = await infer(model, inputs, wanted)
        response = MESSAGES["ModelInferResponse"](
            model_name=model.name, model_version=str(model.version), id=request.id
        )
        for tensor in outputs:
            response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            response.raw_output_contents.append(_raw(tensor))
        return response


def _key(metadata: Mapping[str, str]) -> str | None:
    key = metadata.get("x-api-key")
    auth = metadata.get("authorization") or ""
    if not key and auth[:7].lower() == "bearer ":
        key = auth[7:]
    return str(key).strip() if key else None


def _inputs(request: Any) -> list[Tensor]:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise OipError(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; send "
            "one per input, or use contents."
        )
    tensors = []
    for i, spec in enumerate(request.inputs):
        check_datatype(spec.datatype, spec.name)
        shape = list(spec.shape)
        if raw:
            data = (
                unpack_bytes(raw[i], spec.name)
                if spec.datatype == "BYTES"
                else fixed_array(raw[i], spec.datatype, shape, spec.name)
            )
        else:
            values = list(getattr(spec.contents, _CONTENTS[spec.datatype]))
            if spec.datatype == "BYTES":
                data = np.empty(len(values), dtype=object)
                data[:] = values
            else:
                data = np.asarray(values, dtype=NUMPY_TYPES[spec.datatype])
        tensors.append(Tensor(spec.name, spec.datatype, shape, data))
    return tensors


def _raw(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        return pack_bytes(tensor.data)
    data = np.ascontiguousarray(tensor.data)
    return data.astype(data.dtype.newbyteorder("<")).tobytes()


RPCS = (
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
)
Method = Callable[[Any, Mapping[str, str]], Awaitable[Any]]
MAX_CACHED_LABELS = 1024


class Service:
    """The calls of the service by path (``/inference.GRPCInferenceService/ModelInfer``, ...),
    for either server: message bytes in, :class:`~helixserve.serving.grpc_h2.Answer` out.
    Domain errors become status codes (see the module contract); each call is counted and timed
    in the metrics (route ``grpc:<method>``)."""

    def __init__(self, servicer: Servicer, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.methods: dict[str, tuple[str, Any, Method]] = {
            f"/{SERVICE}/{rpc}": (rpc, MESSAGES[rpc + "Request"], getattr(servicer, rpc))
            for rpc in RPCS
        }

    async def __call__(self, path: str, metadata: Mapping[str, str], message: bytes) -> Answer:
        found = self.methods.get(path)
        if found is None:
            return Answer(grpc.StatusCode.UNIMPLEMENTED.value[0], f"no method {path} here.")
        rpc, request_type, method = found
        route = f"grpc:{rpc}"
        started = time.perf_counter()
        code, name = "CANCELLED", ""
        try:
            request = _parse(request_type, message)
            name = getattr(request, "model_name", "") or getattr(request, "name", "")
            response = await method(request, metadata)
            code = "OK"
            return Answer(0, "", response.SerializeToString())
        except Exception as err:
            status, text = _status_for(err, route)
            code = status.name
            return Answer(status.value[0], text)
        finally:
            if self.metrics is not None:
                self._count(route, name, code, time.perf_counter() - started)

    def _count(self, route: str, name: str, code: str, elapsed: float) -> None:
        """Time and count a call (the metric children are looked up once per label set)."""
        key = (route, name, code)
        children = self._children.get(key)
        if children is None:
            assert self.metrics is not None
            children = (
                self.metrics.request_seconds.labels(route, name, ""),
                self.metrics.requests.labels(route, name, "", code),
            )
            if len(self._children) < MAX_CACHED_LABELS:  # model names come from callers
                self._children[key] = children
        children[0].observe(elapsed)
        children[1].inc()


def _parse(request_type: Any, message: bytes) -> Any:
    try:
        return request_type.FromString(message)
    except DecodeError:
        raise OipError(
            f"the request is not a valid {request_type.DESCRIPTOR.full_name} message."
        ) from None


def _status_for(err: Exception, route: str) -> tuple[grpc.StatusCode, str]:
    """The gRPC code of :mod:`helixserve.error_table` and the message; see the module contract."""
    row, message = answer_for(err)
    if message is not None:
        if row.logged:
            log.error("%s in %s [%s]: %s", row.title, route, type(err).__name__, message)
        return grpc.StatusCode[row.grpc], message
    request_id = uuid.uuid4().hex[:16]
    log.error("internal error in %s [request %s]", route, request_id, exc_info=err)
    return (
        grpc.StatusCode.INTERNAL,
        f"internal error (request id {request_id}); it has been logged.",
    )


class GrpcServer(Protocol):
    """What :class:`~helixserve.serving.server.Server` needs of a gRPC server."""

    async def start(self) -> None: ...

    async def stop(self, grace: float | None) -> None: ...


ENGINES = ("h2", "grpcio")


def build_server(
    registry: Registry,
    keys: KeyRing,
    host: str,
    port: int,
    metrics: Metrics | None = None,
    access: Access | None = None,
    engine: str = "h2",
) -> GrpcServer:
    """A gRPC server with the inference service bound to ``host:port`` (not started): the
    event-loop HTTP/2 server of :mod:`~helixserve.serving.grpc_h2` (``h2``) or ``grpc.aio``
    (``grpcio``)."""
    service = Service(Servicer(registry, keys, access), metrics)
    if engine == "h2":
        return H2Server(service, host, port, MAX_MESSAGE)
    if engine != "grpcio":
        raise ValueError(f"unknown gRPC engine {engine!r}; use one of {', '.join(ENGINES)}")
    server: GrpcServer = _grpcio_server(service, host, port)
    return server


_STATUS = {code.value[0]: code for code in grpc.StatusCode}


def _grpcio_server(service: Service, host: str, port: int) -> grpc.aio.Server:
    def handler(rpc: str) -> grpc.RpcMethodHandler:
        path = f"/{SERVICE}/{rpc}"

        async def call(message: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            metadata = dict(context.invocation_metadata() or ())
            answer = await service(path, metadata, message)
            if answer.status:
                await context.abort(_STATUS[answer.status], answer.message)
            return answer.payload or b""

        return grpc.unary_unary_rpc_method_handler(call)

    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
    )
    handlers = {rpc: handler(rpc) for rpc in RPCS}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"{host}:{port}")
    return server
