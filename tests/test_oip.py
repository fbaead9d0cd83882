"""Open Inference Protocol v2 with the real clients: tritonclient over HTTP and gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.service_pb2 as triton_pb2
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from helixserve.serving.grpc_server import ENGINES, MESSAGES
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
SERVED = ", ".join(sorted(p.name for p in ZOO.iterdir() if p.is_dir()))
BINDS = "CGACCGAACTCC" + "A" * 38
NO_MOTIF = "ACGT" * 12 + "AC"
SEQS = np.array([BINDS.encode(), NO_MOTIF.encode()], dtype=object)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("oip")) as s:
        yield s


@pytest.fixture(scope="module", params=ENGINES)
def grpc_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """A server per gRPC engine (helixserve's HTTP/2 server, grpc.aio): same answers."""
    with running(ZOO, tmp_path_factory.mktemp("oip"), grpc_engine=request.param) as s:
        yield s


def domain_probabilities(server: Running) -> np.ndarray:
    body = httpx.post(
        server.url + "/api/v1/models/primer-binding/predict", json={"inputs": [BINDS, NO_MOTIF]}
    ).json()
    return np.array(
        [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in body["predictions"]],
        dtype=np.float32,
    )


def test_http_metadata_and_health(server: Running) -> None:
    client = thttp.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata() == {
        "name": "helixserve",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    assert client.is_model_ready("primer-binding")
    metadata = client.get_model_metadata("primer-binding")
    assert metadata["inputs"] == [
        {"name": "sequence", "datatype": "BYTES", "shape": [-1]},
        {"name": "input", "datatype": "FP32", "shape": [-1, 4, 50]},
    ]
    assert metadata["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    assert not client.is_model_ready("nope")


@pytest.mark.parametrize("binary", [True, False])
def test_http_infer_equals_domain_api(server: Running, binary: bool) -> None:
    client = thttp.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = thttp.InferInput("sequence", [2], "BYTES")
    tensor.set_data_from_numpy(SEQS, binary_data=binary)
    outputs = [
        thttp.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "label")
    ]
    result = client.infer("primer-binding", [tensor], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), domain_probabilities(server))
    labels = result.as_numpy("label").tolist()  # JSON BYTES come back as str, binary as bytes
    assert labels == ([b"1", b"0"] if binary else ["1", "0"])


def test_grpc_metadata_and_infer_equal_domain_api(grpc_server: Running) -> None:
    client = tgrpc.InferenceServerClient(grpc_server.grpc)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata(as_json=True) == {
        "name": "helixserve",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    metadata = client.get_model_metadata("primer-binding", as_json=True)
    assert [i["name"] for i in metadata["inputs"]] == ["sequence", "input"]
    tensor = tgrpc.InferInput("sequence", [2], "BYTES")
    tensor.set_data_from_numpy(SEQS)
    result = client.infer("primer-binding", [tensor])
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), domain_probabilities(grpc_server)
    )
    assert result.as_numpy("label").tolist() == [b"1", b"0"]


def test_grpc_pre_encoded_tensor(grpc_server: Running) -> None:
    onehot = np.zeros((2, 4, 50), dtype=np.float32)
    for row, seq in enumerate((BINDS, NO_MOTIF)):
        for col, base in enumerate(seq):
            onehot[row, "ACGT".index(base), col] = 1
    client = tgrpc.InferenceServerClient(grpc_server.grpc)
    tensor = tgrpc.InferInput("input", [2, 4, 50], "FP32")
    tensor.set_data_from_numpy(onehot)
    result = client.infer("primer-binding", [tensor], model_version="1")
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), domain_probabilities(grpc_server), atol=1e-6
    )


def test_invalid_sequence_message_over_both_transports(grpc_server: Running) -> None:
    bad = np.array([BINDS.encode(), b"ACGF"], dtype=object)
    expected = (
        "input 'sequence' item 1: DNA sequence is not valid DNA: position 4 is 'F'. Only the "
        "letters A, C, G, T are allowed; remove it or correct the typo."
    )
    http_input = thttp.InferInput("sequence", [2], "BYTES")
    http_input.set_data_from_numpy(bad)
    with pytest.raises(InferenceServerException) as caught:
        thttp.InferenceServerClient(grpc_server.url.removeprefix("http://")).infer(
            "primer-binding", [http_input]
        )
    assert caught.value.message() == expected
    grpc_input = tgrpc.InferInput("sequence", [2], "BYTES")
    grpc_input.set_data_from_numpy(bad)
    with pytest.raises(InferenceServerException) as caught:
        tgrpc.InferenceServerClient(grpc_server.grpc).infer("primer-binding", [grpc_input])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message() == expected


def test_grpc_unknown_model_is_not_found(grpc_server: Running) -> None:
    with pytest.raises(InferenceServerException) as caught:
        tgrpc.InferenceServerClient(grpc_server.grpc).get_model_metadata("nope")
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert caught.value.message() == (f"no model named 'nope' is served; served models: {SERVED}.")


def test_rest_json_errors_use_the_protocol_shape(server: Running) -> None:
    reply = httpx.post(
        server.url + "/v2/models/primer-binding/infer",
        json={"inputs": [{"name": "seq", "shape": [1], "datatype": "BYTES", "data": ["A"]}]},
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "model 'primer-binding' has no input named 'seq'; its inputs are sequence, input."
    }
    tabular = httpx.post(
        server.url + "/v2/models/tumor-wisconsin/versions/1/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 9],
                    "datatype": "FP32",
                    "data": [[5, 1, 1, 1, 2, 1, 3, 1, 1]],
                }
            ]
        },
    )
    outputs = {o["name"]: o for o in tabular.json()["outputs"]}
    assert outputs["label"]["data"] == ["benign"]


def _fields(descriptor: Any) -> dict[str, tuple[int, int, str]]:
    return {
        f.name: (f.number, f.type, f.message_type.full_name if f.message_type else "")
        for f in descriptor.fields
    }


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_our_proto_matches_the_standard_messages(name: str) -> None:
    """Field names, numbers and types equal those of tritonclient's copy of the protocol."""
    ours = MESSAGES[name].DESCRIPTOR
    theirs = getattr(triton_pb2, name).DESCRIPTOR
    assert ours.full_name == theirs.full_name == f"inference.{name}"
    mine, standard = _fields(ours), _fields(theirs)
    assert {k: v for k, v in standard.items() if k in mine} == mine
    for nested in ours.nested_types:
        other = theirs.nested_types_by_name[nested.name]
        assert {k: v for k, v in _fields(other).items() if k in _fields(nested)} == _fields(nested)


def test_grpc_calls_are_counted_in_metrics(grpc_server: Running) -> None:
    client = tgrpc.InferenceServerClient(grpc_server.grpc)
    tensor = tgrpc.InferInput("sequence", [1], "BYTES")
    tensor.set_data_from_numpy(SEQS[:1])
    client.infer("primer-binding", [tensor])
    with pytest.raises(InferenceServerException):
        client.infer("nope", [tensor])
    text = httpx.get(grpc_server.url + "/metrics").text
    assert (
        'helixserve_requests_total{code="OK",model="primer-binding",'
        'route="grpc:ModelInfer",version=""}'
    ) in text
    assert 'helixserve_requests_total{code="NOT_FOUND",model="nope",route="grpc:ModelInfer"' in text
