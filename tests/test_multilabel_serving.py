"""A multi-label model served on every edge of a real server: the domain REST API, predict-file
(JSON and CSV), the Open Inference Protocol over REST (JSON and binary tensors) and gRPC with the
real tritonclient, the web pages, the seed route, explanations, the calls the workspace hands out,
and batch scoring to CSV and Parquet. Each edge gives the numbers of the bare ONNX Runtime call
(:func:`tests.support.multilabel.expected`) and the labels at or above the threshold."""

from __future__ import annotations

import contextlib
import gzip
import io
import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from helixserve.batch.predict import score
from helixserve.runtime.predictor import Predictor
from helixserve.serving.calls import model_calls
from helixserve.store import ModelStore
from tests.support.multilabel import (
    LABEL_SETS,
    LABELS,
    NAME,
    SEQUENCES,
    expected,
    onehot,
    publish_multilabel,
)
from tests.support.server import Running, running

FORM_TOKEN = "test-form-token-0123456789"
BAD = "ACGX" + "A" * 16
BAD_MESSAGE = (
    "DNA sequence is not valid DNA: position 4 is 'X'. Only the letters A, C, G, T are allowed; "
    "remove it or correct the typo."
)
FASTA = "".join(f">s{i}\n{s}\n" for i, s in enumerate([*SEQUENCES[:2], BAD, *SEQUENCES[2:]]))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    tmp = tmp_path_factory.mktemp("multilabel-store")
    store = ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache")
    publish_multilabel(store)
    return store


@pytest.fixture(scope="module")
def server(store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("multilabel")
    with running(store.uri, tmp, default_dna_model=NAME, access_log=False) as s:
        yield s


def probabilities_json(row: list[float]) -> dict[str, float]:
    return dict(zip(LABELS, row, strict=True))


WANT = expected(SEQUENCES)
WANT_POSITIVE = np.array([[label in s for label in LABELS] for s in LABEL_SETS])


# --- the domain API ------------------------------------------------------------------------------


def test_rest_predict_answers_labels_and_every_probability(server: Running) -> None:
    reply = httpx.post(
        f"{server.url}/api/v1/models/{NAME}/predict", json={"inputs": [*SEQUENCES, BAD]}
    )
    assert reply.status_code == 200
    assert reply.json() == {
        "model": NAME,
        "version": 1,
        "predictions": [
            *(
                {"labels": labels, "probabilities": probabilities_json(row)}
                for labels, row in zip(LABEL_SETS, WANT.tolist(), strict=True)
            ),
            None,
        ],
        "errors": [{"index": 4, "field": "inputs[4]", "position": 4, "message": BAD_MESSAGE}],
    }


def test_model_description_names_the_task_labels_and_headline(server: Running) -> None:
    detail = httpx.get(f"{server.url}/api/v1/models/{NAME}").json()
    assert (detail["task"], detail["labels"]) == ("multilabel", LABELS)
    assert detail["manifest"]["output"] == {
        "labels": LABELS,
        "units": None,
        "threshold": 0.5,
        "onnx_output": None,
    }
    assert detail["headline"]["text"] == "auroc 0.900"
    assert detail["metrics"]["auroc:promoter"] == 0.9


def test_seed_route_answers_the_labels_as_text(server: Running) -> None:
    url = f"{server.url}/api/v1/getdnaclassapi"
    answers = [httpx.post(url, json={"dnasequence": s}) for s in SEQUENCES]
    assert [(a.status_code, a.text) for a in answers] == [
        (200, "enhancer"),
        (200, "enhancer;promoter"),
        (200, "insulator"),
        (200, ""),
    ]


def test_predict_file_json(server: Running) -> None:
    reply = httpx.post(
        f"{server.url}/api/v1/models/{NAME}/predict-file",
        files={"file": ("regions.fa", FASTA, "text/plain")},
    )
    assert reply.status_code == 200
    body = reply.json()
    lines = [1, 3, 7, 9]
    assert body["predictions"] == [
        {
            "index": index,
            "id": f"s{index - 1}",
            "line": line,
            "labels": labels,
            "probabilities": probabilities_json(row),
        }
        for index, line, labels, row in zip(
            [1, 2, 4, 5], lines, LABEL_SETS, WANT.tolist(), strict=True
        )
    ]
    assert (body["records"], body["predicted"], body["failed"]) == (5, 4, 1)
    assert body["errors"][0]["index"] == 3


def csv_rows(labels: list[list[str]], probabilities: np.ndarray) -> list[str]:
    """``labels,p_enhancer,p_promoter,p_insulator`` cells as the CSV outputs write them."""
    return [
        ";".join(chosen) + "," + ",".join(f"{p:.6f}" for p in row)
        for chosen, row in zip(labels, probabilities.tolist(), strict=True)
    ]


def test_predict_file_csv(server: Running) -> None:
    reply = httpx.post(
        f"{server.url}/api/v1/models/{NAME}/predict-file",
        files={"file": ("regions.fa", FASTA, "text/plain")},
        headers={"accept": "text/csv"},
    )
    cells = csv_rows(LABEL_SETS, WANT)
    assert reply.text.splitlines() == [
        "index,id,line,labels,p_enhancer,p_promoter,p_insulator,error",
        f"1,s0,1,{cells[0]},",
        f"2,s1,3,{cells[1]},",
        f'3,s2,5,,,,,"record 3 (id s2), line 5: {BAD_MESSAGE}"',
        f"4,s3,7,{cells[2]},",
        f"5,s4,9,{cells[3]},",
    ]


# --- the Open Inference Protocol ------------------------------------------------------------------

OUTPUTS = [
    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    {"name": "positive", "datatype": "BOOL", "shape": [-1, 3]},
]


def test_oip_metadata_over_rest_and_grpc(server: Running) -> None:
    http = thttp.InferenceServerClient(server.url.removeprefix("http://"))
    metadata = http.get_model_metadata(NAME)
    assert metadata["outputs"] == OUTPUTS
    assert metadata["parameters"] == {
        "task": "multilabel",
        "version": "1",
        "labels": "enhancer,promoter,insulator",
    }
    grpc = tgrpc.InferenceServerClient(server.grpc).get_model_metadata(NAME, as_json=True)
    assert [
        {"name": o["name"], "datatype": o["datatype"], "shape": [int(d) for d in o["shape"]]}
        for o in grpc["outputs"]
    ] == OUTPUTS


SEQS = np.array([s.encode() for s in SEQUENCES], dtype=object)


def oip_http(server: Running, binary: bool, encoded: bool = False) -> Any:
    client = thttp.InferenceServerClient(server.url.removeprefix("http://"))
    if encoded:
        tensor = thttp.InferInput("input", [4, 4, 20], "FP32")
        tensor.set_data_from_numpy(np.concatenate([onehot(s) for s in SEQUENCES]), binary)
    else:
        tensor = thttp.InferInput("sequence", [4], "BYTES")
        tensor.set_data_from_numpy(SEQS, binary_data=binary)
    wanted = [
        thttp.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "positive")
    ]
    return client.infer(NAME, [tensor], outputs=wanted)


def oip_grpc(server: Running, encoded: bool = False) -> Any:
    client = tgrpc.InferenceServerClient(server.grpc)
    if encoded:
        tensor = tgrpc.InferInput("input", [4, 4, 20], "FP32")
        tensor.set_data_from_numpy(np.concatenate([onehot(s) for s in SEQUENCES]))
    else:
        tensor = tgrpc.InferInput("sequence", [4], "BYTES")
        tensor.set_data_from_numpy(SEQS)
    return client.infer(NAME, [tensor], model_version="1")


def rest_as_tensors(server: Running) -> tuple[np.ndarray, np.ndarray]:
    body = httpx.post(
        f"{server.url}/api/v1/models/{NAME}/predict", json={"inputs": SEQUENCES}
    ).json()
    rows = [[p["probabilities"][label] for label in LABELS] for p in body["predictions"]]
    on = [[label in p["labels"] for label in LABELS] for p in body["predictions"]]
    return np.array(rows, dtype=np.float32), np.array(on)


def from_result(result: Any) -> tuple[np.ndarray, np.ndarray]:
    return result.as_numpy("probabilities"), result.as_numpy("positive")


EDGES: dict[str, Callable[[Running], tuple[np.ndarray, np.ndarray]]] = {
    "rest": rest_as_tensors,
    "oip-rest-json": lambda s: from_result(oip_http(s, binary=False)),
    "oip-rest-binary": lambda s: from_result(oip_http(s, binary=True)),
    "oip-rest-encoded": lambda s: from_result(oip_http(s, binary=True, encoded=True)),
    "grpc": lambda s: from_result(oip_grpc(s)),
    "grpc-encoded": lambda s: from_result(oip_grpc(s, encoded=True)),
}


@pytest.mark.parametrize("edge", EDGES)
def test_every_edge_serves_the_same_probabilities_and_labels(server: Running, edge: str) -> None:
    probabilities, positive = EDGES[edge](server)
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 3)
    np.testing.assert_array_equal(probabilities, WANT.astype(np.float32))
    assert positive.dtype == np.bool_
    np.testing.assert_array_equal(positive, WANT_POSITIVE)


def test_oip_names_its_outputs_when_asked_for_label(server: Running) -> None:
    client = thttp.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = thttp.InferInput("sequence", [1], "BYTES")
    tensor.set_data_from_numpy(SEQS[:1])
    with pytest.raises(InferenceServerException) as caught:
        client.infer(NAME, [tensor], outputs=[thttp.InferRequestedOutput("label")])
    assert caught.value.message() == (
        f"model '{NAME}' has no output named 'label'; its outputs are probabilities, positive."
    )


# --- the web pages -------------------------------------------------------------------------------


def ui_post(url: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """Post a UI form as a browser on one of its pages would: CSRF cookie and field match."""
    form = {"csrf_token": FORM_TOKEN, **(data or {})}
    with httpx.Client(cookies={"hs_csrf": FORM_TOKEN}, follow_redirects=True) as client:
        return client.post(url, data=form, **kwargs)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def test_predict_page_shows_every_label_s_probability(server: Running) -> None:
    page = ui_post(f"{server.url}/models/{NAME}/predict", {"sequence": SEQUENCES[1]})
    assert page.status_code == 200
    answer = re.search(r'<p class="answer" id="labels-answer">(.*?)</p>', page.text)
    assert answer is not None
    assert text_of(answer.group(1)) == "Labels at or above 0.5: enhancer, promoter"
    bars = re.search(r'<ul class="bars labels"[^>]*>(.*?)</ul>', page.text, re.S)
    assert bars is not None
    rows = [text_of(li) for li in re.findall(r"<li>(.*?)</li>", bars.group(1), re.S)]
    p = WANT[1].tolist()
    assert rows == [
        f"enhancer {p[0]:.4f} yes",
        f"promoter {p[1]:.4f} yes",
        f"insulator {p[2]:.4f} no",
    ]
    assert "Scored on P(enhancer), the most probable label." in text_of(page.text)


def test_predict_page_with_no_label_on(server: Running) -> None:
    page = ui_post(f"{server.url}/models/{NAME}/predict", {"sequence": SEQUENCES[3]})
    answer = re.search(r'<p class="answer" id="labels-answer">(.*?)</p>', page.text)
    assert answer is not None and text_of(answer.group(1)) == "Labels at or above 0.5: none"


def test_model_page_shows_metrics_per_label(server: Running) -> None:
    page = httpx.get(f"{server.url}/models/{NAME}").text
    table = re.search(r'<table class="metrics" id="per-label-metrics">(.*?)</table>', page, re.S)
    assert table is not None
    rows = [text_of(r) for r in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]
    assert rows == [  # metric names in the manifest's (sorted) order, labels in the model's
        "label auprc auroc",
        "enhancer 0.8500 0.9500",
        "promoter 0.8000 0.9000",
        "insulator 0.7500 0.8500",
    ]
    overall = re.search(r'<table class="metrics">(.*?)</table>', page, re.S)
    assert overall is not None
    assert [text_of(r) for r in re.findall(r"<tr>(.*?)</tr>", overall.group(1), re.S)] == [
        "auprc 0.8000",
        "auroc 0.9000",
        "loss 0.2500",
    ]


def test_uploaded_file_results_have_a_column_per_label(server: Running) -> None:
    job = ui_post(
        f"{server.url}/models/{NAME}/upload", files={"file": ("regions.fa", FASTA, "text/plain")}
    )
    assert job.status_code == 200
    table = re.search(r'<table class="report" id="results">(.*?)</table>', job.text, re.S)
    assert table is not None
    rows = [text_of(r) for r in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]
    p = WANT.tolist()
    assert rows == [
        "record id line labels (at or above 0.5) P(enhancer) P(promoter) P(insulator) why",
        f"1 s0 1 enhancer {p[0][0]:.4f} {p[0][1]:.4f} {p[0][2]:.4f} explain",
        f"2 s1 3 enhancer, promoter {p[1][0]:.4f} {p[1][1]:.4f} {p[1][2]:.4f} explain",
        f"4 s3 7 insulator {p[2][0]:.4f} {p[2][1]:.4f} {p[2][2]:.4f} explain",
        f"5 s4 9 none {p[3][0]:.4f} {p[3][1]:.4f} {p[3][2]:.4f} explain",
    ]  # each row of a DNA model's file links to its explanation
    download = re.search(r'action="(/jobs/[^"]+/results\.csv)"', job.text)
    assert download is not None
    with httpx.Client(cookies={"hs_csrf": FORM_TOKEN}) as client:
        results = client.get(server.url + download.group(1)).text.splitlines()
    cells = csv_rows(LABEL_SETS, WANT)
    assert results[0] == "index,id,line,labels,p_enhancer,p_promoter,p_insulator,error"
    assert results[1:3] == [f"1,s0,1,{cells[0]},", f"2,s1,3,{cells[1]},"]


def test_variant_page_says_which_label_it_scores(server: Running) -> None:
    page = httpx.get(f"{server.url}/models/{NAME}/variants").text
    assert "probability of the label most probable for the unchanged sequence" in page


# --- explanations and the calls handed out --------------------------------------------------------


def test_explain_api_scores_the_chosen_label(server: Running) -> None:
    sequence = "A" * 12 + "C" * 8
    url = f"{server.url}/api/v1/models/{NAME}/explain"
    default = httpx.post(url, json={"sequence": sequence}).json()
    assert (default["target"], default["score"]) == ("enhancer", expected([sequence])[0, 0])
    chosen = httpx.post(url, json={"sequence": sequence, "target": "promoter"}).json()
    assert (chosen["target"], chosen["score"]) == ("promoter", expected([sequence])[0, 1])
    refused = httpx.post(url, json={"sequence": sequence, "target": "silencer"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "target label 'silencer' is not one of enhancer, promoter, insulator."
    )


def test_the_python_and_grpc_calls_run_as_handed_out(server: Running, store: ModelStore) -> None:
    calls = model_calls(store.manifest(NAME), server.url, server.grpc, keyed=False)
    assert calls.grpc_python is not None
    assert calls.grpc_python.endswith("print(result.as_numpy('probabilities'))")
    for snippet in (calls.python, calls.grpc_python):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(snippet, {})  # the snippet, exactly as the answer gives it
        assert printed.getvalue().strip(), snippet


# --- batch scoring -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv"])
def test_batch_text_outputs(store: ModelStore, tmp_path: Path, suffix: str) -> None:
    data = tmp_path / "in.fa"
    data.write_text(FASTA)
    out = tmp_path / f"out{suffix}"
    summary = score(Predictor.from_store(store, NAME), str(data), str(out))
    assert (summary.scored, summary.refused) == (4, 1)
    raw = out.read_bytes()
    text = (gzip.decompress(raw) if suffix.endswith(".gz") else raw).decode()
    sep = "\t" if suffix == ".tsv" else ","
    cells = [c.replace(",", sep) for c in csv_rows(LABEL_SETS, WANT)]
    assert text.splitlines() == [
        sep.join(["index", "id", "labels", "p_enhancer", "p_promoter", "p_insulator"]),
        *(f"{i}{sep}s{i - 1}{sep}{c}" for i, c in zip([1, 2, 4, 5], cells, strict=True)),
    ]


def test_batch_parquet_has_a_list_of_labels(store: ModelStore, tmp_path: Path) -> None:
    data = tmp_path / "in.fa"
    data.write_text(FASTA)
    out = tmp_path / "out.parquet"
    score(Predictor.from_store(store, NAME), str(data), str(out))
    table = pq.read_table(out)
    assert [f"{f.name}: {f.type}" for f in table.schema] == [
        "index: int64",
        "id: string",
        "labels: list<element: string>",
        "p_enhancer: double",
        "p_promoter: double",
        "p_insulator: double",
    ]
    assert table.to_pydict() == {
        "index": [1, 2, 4, 5],
        "id": ["s0", "s1", "s3", "s4"],
        "labels": LABEL_SETS,
        **{
            f"p_{label}": [round(p, 6) for p in WANT[:, k].tolist()]
            for k, label in enumerate(LABELS)
        },
    }
