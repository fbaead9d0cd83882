"""The HTTP server end to end: a real uvicorn server on loopback, real httpx clients.

Domain API (models, predict, predict-file, the seed route), errors as problem+json, operations
(health, readiness, metrics, access log, limits) on the shipped zoo models.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helixserve.serving.access_log import FLUSH_S
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
SERVED = ", ".join(sorted(p.name for p in ZOO.iterdir() if p.is_dir()))
BINDS = "CGACCGAACTCC" + "A" * 38  # carries the motif
NO_MOTIF = "ACGT" * 12 + "AC"
ROW = {
    "clump_thickness": 5,
    "uniformity_cell_size": 1,
    "uniformity_cell_shape": 1,
    "marginal_adhesion": 1,
    "single_epithelial_cell_size": 2,
    "bare_nuclei": 1,
    "bland_chromatin": 3,
    "normal_nucleoli": 1,
    "mitoses": 1,
}
BAD_F = (
    "DNA sequence is not valid DNA: position 4 is 'F'. Only the letters A, C, G, T are allowed; "
    "remove it or correct the typo."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("zoo"), max_request_bytes=100_000) as s:
        yield s


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_health_readiness_and_model_list(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["models"] == len(SERVED.split(", "))
    models = client.get("/api/v1/models").json()["models"]
    assert ", ".join(m["name"] for m in models) == SERVED
    primer = next(m for m in models if m["name"] == "primer-binding")
    assert (primer["task"], primer["default_version"], primer["aliases"]) == (
        "binary",
        1,
        {"production": 1},
    )


def test_model_detail_has_manifest_and_card(client: httpx.Client) -> None:
    detail = client.get("/api/v1/models/tumor-wisconsin").json()
    assert detail["manifest"]["input"]["kind"] == "tabular"
    assert detail["labels"] == ["benign", "malignant"]
    assert "Wolberg" in detail["card"]


def test_predict_mixed_batch_keeps_the_good_inputs(client: httpx.Client) -> None:
    reply = client.post(
        "/api/v1/models/primer-binding/predict", json={"inputs": [BINDS, "ACGF", NO_MOTIF]}
    )
    assert reply.status_code == 200
    body = reply.json()
    assert (body["model"], body["version"]) == ("primer-binding", 1)
    first, second, third = body["predictions"]
    assert (first["label"], second, third["label"]) == ("1", None, "0")
    assert first["probability"] == pytest.approx(first["probabilities"]["1"])
    assert body["errors"] == [{"index": 1, "field": "inputs[1]", "position": 4, "message": BAD_F}]


def test_predict_all_invalid_is_a_422_problem(client: httpx.Client) -> None:
    reply = client.post("/api/v1/models/primer-binding/predict", json={"inputs": ["ACGF"]})
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json() == {
        "type": "https://helixserve.dev/problems/invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": BAD_F,
        "errors": [{"index": 0, "field": "inputs[0]", "position": 4, "message": BAD_F}],
        "instance": "/api/v1/models/primer-binding/predict",
        "request_id": reply.headers["x-request-id"],
    }


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            b"{bad",
            400,
            "the request body is not valid JSON (unexpected character, expected a "
            'string key: line 1 column 2 (char 1)); send JSON like {"inputs": ["ACGT..."]}.',
        ),
        (
            b'{"input": []}',
            400,
            'the request body must be a JSON object with an "inputs" list, '
            'like {"inputs": ["ACGT..."]}.',
        ),
        (
            b'{"inputs": "ACGT"}',
            400,
            '"inputs" must be a list, got str; like {"inputs": ["ACGT..."]}.',
        ),
        (b'{"inputs": []}', 400, '"inputs" is empty; send at least one input.'),
        (
            b'{"inputs": ["A"], "x": 1}',
            400,
            "unknown field 'x' in the request body; only \"inputs\" is accepted.",
        ),
        (b"", 400, 'the request body is empty; send JSON like {"inputs": ["ACGT..."]}.'),
    ],
)
def test_malformed_requests_get_400(
    client: httpx.Client, body: bytes, status: int, detail: str
) -> None:
    reply = client.post(
        "/api/v1/models/primer-binding/predict", content=body, headers={"x-request-id": "req-42"}
    )
    assert reply.status_code == status
    assert reply.headers["x-request-id"] == "req-42"
    assert reply.json() == {
        "type": "https://helixserve.dev/problems/bad-request",
        "title": "Bad request",
        "status": status,
        "detail": detail,
        "instance": "/api/v1/models/primer-binding/predict",
        "request_id": "req-42",
    }


def test_unknown_model_and_version_are_404(client: httpx.Client) -> None:
    reply = client.post("/api/v1/models/nope/predict", json={"inputs": ["A"]})
    assert reply.status_code == 404
    assert reply.json()["detail"] == (f"no model named 'nope' is served; served models: {SERVED}.")
    reply = client.post("/api/v1/models/primer-binding/predict?version=7", json={"inputs": ["A"]})
    assert (
        reply.json()["detail"] == "model 'primer-binding' has no version or alias '7'; "
        "served: 1, production."
    )
    ok = client.post(
        "/api/v1/models/primer-binding/predict?version=production", json={"inputs": [BINDS]}
    )
    assert ok.json()["predictions"][0]["label"] == "1"


def test_tabular_rows_name_the_bad_field(client: httpx.Client) -> None:
    reply = client.post(
        "/api/v1/models/tumor-wisconsin/predict", json={"inputs": [ROW, {**ROW, "mitoses": 11}]}
    )
    body = reply.json()
    assert body["predictions"][0]["label"] == "benign"
    assert body["predictions"][1] is None
    assert body["errors"] == [
        {
            "index": 1,
            "field": "inputs[1].mitoses",
            "position": None,
            "message": "mitoses is 11, above the maximum 10; use a whole number from 1 to 10.",
        }
    ]


def test_seed_client_unchanged(server: Running) -> None:
    """The seed article's client: post {"dnasequence": ...}, print the plain-text answer."""
    import requests

    url = server.url + "/api/v1/getdnaclassapi"
    response = requests.post(url, json={"dnasequence": BINDS}, timeout=10)
    assert (response.status_code, response.text) == (200, "1")
    response = requests.post(url, json={"dnasequence": NO_MOTIF}, timeout=10)
    assert response.text == "0"
    response = requests.post(url, json={"dnasequence": NO_MOTIF + "F"}, timeout=10)
    assert response.status_code == 422
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == (
        "DNA sequence is not valid DNA: position 51 is 'F'. Only the letters A, C, G, T are "
        "allowed; remove it or correct the typo."
    )
    response = requests.post(url, json={"sequence": BINDS}, timeout=10)
    assert (response.status_code, response.text) == (
        400,
        'the request body must be JSON with a "dnasequence" field, like '
        '{"dnasequence": "ACGT..."}.',
    )


FASTA = (f">good1\n{NO_MOTIF}\n>bad\nACGTX\n>good2\n{BINDS}\n").encode()


def test_predict_file_reports_bad_records_and_predicts_the_rest(client: httpx.Client) -> None:
    reply = client.post(
        "/api/v1/models/primer-binding/predict-file",
        files={"file": ("primers.fa.gz", gzip.compress(FASTA))},
    )
    body = reply.json()
    assert (body["records"], body["predicted"], body["failed"]) == (3, 2, 1)
    assert [(p["index"], p["id"], p["line"], p["label"]) for p in body["predictions"]] == [
        (1, "good1", 1, "0"),
        (3, "good2", 5, "1"),
    ]
    assert body["errors"] == [
        {
            "index": 2,
            "id": "bad",
            "line": 3,
            "field": "sequence",
            "position": 5,
            "message": "record 2 (id bad), line 3: DNA sequence is not valid DNA: position 5 is "
            "'X'. Only the letters A, C, G, T are allowed; remove it or correct the typo.",
        }
    ]


def test_predict_file_as_csv(client: httpx.Client) -> None:
    reply = client.post(
        "/api/v1/models/primer-binding/predict-file",
        files={"file": ("p.fasta", FASTA)},
        headers={"accept": "text/csv"},
    )
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    lines = reply.text.splitlines()
    assert lines[0] == "index,id,line,label,probability,p_0,p_1,error"
    assert lines[1].startswith("1,good1,1,0,") and lines[1].endswith(",")
    assert lines[2] == (
        '2,bad,3,,,,,"record 2 (id bad), line 3: DNA sequence is not valid DNA: '
        "position 5 is 'X'. Only the letters A, C, G, T are allowed; remove it "
        'or correct the typo."'
    )
    assert lines[3].startswith("3,good2,5,1,")


def test_predict_file_tabular_csv_with_ids(client: httpx.Client) -> None:
    header = "id," + ",".join(ROW)
    good = "7," + ",".join(str(v) for v in ROW.values())
    bad = "8," + ",".join(str(v) for v in ROW.values()).replace("5", "50", 1)
    data = "\n".join([header, good, bad]).encode()
    body = client.post(
        "/api/v1/models/tumor-wisconsin/predict-file", files={"file": ("t.csv", data)}
    ).json()
    assert [(p["id"], p["label"]) for p in body["predictions"]] == [("7", "benign")]
    assert body["errors"][0]["message"] == (
        "record 2 (id 8), line 3: clump_thickness is 50, above the maximum 10; use a whole "
        "number from 1 to 10."
    )


def test_empty_upload_is_a_422(client: httpx.Client) -> None:
    reply = client.post(
        "/api/v1/models/primer-binding/predict-file", files={"file": ("x.fasta", b"")}
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == (
        "file is empty: it has no records. Upload a FASTA, CSV/TSV or one-sequence-per-line "
        "text file (optionally gzip-compressed)."
    )


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    reply = client.post("/api/v1/models/primer-binding/predict", json={"inputs": [NO_MOTIF] * 3000})
    assert reply.status_code == 413
    assert reply.json()["detail"].startswith("the request body is 159,")
    assert reply.json()["detail"].endswith(
        " bytes; the limit is 100,000 (HELIXSERVE_MAX_REQUEST_BYTES)."
    )


def test_unknown_route_and_method_are_problems(client: httpx.Client) -> None:
    missing = client.get("/nothing")
    assert (missing.status_code, missing.headers["content-type"]) == (
        404,
        "application/problem+json",
    )
    wrong = client.delete("/api/v1/models")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"


def test_metrics_count_requests_per_model_and_version(client: httpx.Client) -> None:
    client.post("/api/v1/models/primer-binding/predict", json={"inputs": [BINDS, "ACGF"]})
    text = client.get("/metrics").text
    assert (
        'helixserve_requests_total{code="200",model="primer-binding",'
        'route="/api/v1/models/{name}/predict",version="1"}'
    ) in text
    assert 'helixserve_batch_size_count{model="primer-binding",version="1"}' in text
    failures = [
        line
        for line in text.splitlines()
        if line.startswith("helixserve_validation_failures_total{")
    ]
    assert failures and float(failures[0].split()[-1]) >= 1


def test_metrics_name_the_version_without_the_fast_path(tmp_path: Path) -> None:
    with (
        running(ZOO, tmp_path, fast_path=False) as plain,
        httpx.Client(base_url=plain.url, timeout=30) as c,
    ):
        c.post("/api/v1/models/primer-binding/predict", json={"inputs": [BINDS, "ACGF"]})
        text = c.get("/metrics").text
    assert (
        'helixserve_requests_total{code="200",model="primer-binding",'
        'route="/api/v1/models/{name}/predict",version="1"}'
    ) in text
    assert 'helixserve_validation_failures_total{model="primer-binding",version="1"} 1.0' in text


def test_access_log_is_json_with_request_id(
    client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    """One JSON line per request on standard output, written within the flush interval."""
    headers = {"x-request-id": "abc-1", "authorization": "Bearer secret-xyz"}
    client.post("/api/v1/models/primer-binding/predict", json={"inputs": [BINDS]}, headers=headers)
    out = ""
    deadline = time.monotonic() + 10 * FLUSH_S
    while '"abc-1"' not in out and time.monotonic() < deadline:
        time.sleep(FLUSH_S / 5)
        out += capfd.readouterr().out
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    mine = [r for r in records if r["request_id"] == "abc-1"]
    assert len(mine) == 1
    assert (mine[0]["status"], mine[0]["model"], mine[0]["version"]) == (200, "primer-binding", "1")
    assert set(mine[0]) == {
        "ts",
        "request_id",
        "method",
        "path",
        "route",
        "status",
        "ms",
        "model",
        "version",
        "client",
    }
    assert "secret-xyz" not in out


def test_gene_model_takes_variable_lengths(client: httpx.Client) -> None:
    genes = ["ATG" + "GCA" * 300 + "TAA", "ATGAAACCCGGGTTTTAA", "acgu" * 100]
    body = client.post("/api/v1/models/amr-resistance/predict", json={"inputs": genes}).json()
    assert body["errors"] == []
    for prediction in body["predictions"]:
        assert prediction["label"] in ("0", "1")
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)


def test_upload_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    with running(ZOO, tmp_path, max_upload_bytes=1000) as server:
        url = server.url + "/api/v1/models/primer-binding/predict-file"
        declared = httpx.post(url, files={"file": ("big.fasta", FASTA * 40)})
        assert declared.status_code == 413
        assert declared.json()["detail"].endswith(
            " bytes; the limit is 1,000 (HELIXSERVE_MAX_UPLOAD_BYTES)."
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: streamed, counted as it arrives
            yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.fa"\r\n\r\n'
            for _ in range(40):
                yield FASTA
            yield b"\r\n--x--\r\n"

        multipart = {"content-type": "multipart/form-data; boundary=x"}
        multipart = {"content-type": "multipart/form-data; boundary=x"}
        streamed = httpx.post(url, content=chunks(), headers=multipart)
        assert streamed.status_code == 413
        assert streamed.json()["detail"] == (
            "the upload is over the limit of 1,000 bytes (HELIXSERVE_MAX_UPLOAD_BYTES)."
        )
