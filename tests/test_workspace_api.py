"""The workspace REST API against a real server: the yeast tutorial end to end on SQLite and on a
real PostgreSQL (upload, profile, roles, subsets, recipes, an experiment with the Cuperus block
preset, a run trained by the real worker, clone-and-continue trained from its weights, compare,
stop and resume, deploy and predict at once), and the exact refusals (404 across projects, 422
naming the field, 413 before the body is read, 409)."""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from helixserve.serving.auth import new_key
from helixserve.serving.calls import model_calls
from helixserve.store import ModelStore
from tests.support.server import Running, publish_gc, running
from tests.support.training import worker_once

LIMIT = 1_000_000  # bytes an upload may have here (the tutorial file has 379 kB)
UTRS = "cuperus2017_yeast_utr/Native_UTRs.csv.gz"
SEQ = "ACGT" * 12 + "AC"
FAST = {"epochs": 1, "kmer_ridge": False}  # the CNN alone: the ridge blend costs ~20 s a run here


def call(client: httpx.Client, method: str, path: str, status: int, **kw: Any) -> Any:
    """``method path``, checking the status; the JSON answer."""
    answer = client.request(method, path, **kw)
    assert answer.status_code == status, answer.text
    return answer.json()


def problem(client: httpx.Client, method: str, path: str, status: int, **kw: Any) -> Any:
    """A refusal: problem+json with ``status``; its body."""
    answer = client.request(method, path, **kw)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Running]:
    store = ModelStore.open(str(tmp_path / "store"))
    with running(store.uri, tmp_path, database_url=database_url, max_upload_bytes=LIMIT) as live:
        yield live


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1", timeout=60) as c:
        yield c


def upload_tutorial(client: httpx.Client, path: Path) -> dict[str, Any]:
    call(client, "POST", "/projects", 201, json={"name": "lab", "title": "Yeast UTRs"})
    call(client, "POST", "/projects/lab/datasets", 201, json={"name": "utrs"})
    with path.open("rb") as stream:
        files = {"file": (path.name, stream, "application/gzip")}
        version: dict[str, Any] = call(
            client, "POST", "/projects/lab/datasets/utrs/versions", 201, files=files
        )
    assert (version["rows"], version["good_rows"], version["filename"]) == (
        11_856,
        11_856,
        "Native_UTRs.csv.gz",
    )
    return version


def define_subsets(client: httpx.Client) -> None:
    path = "/projects/lab/datasets/utrs/subsets"
    measured = {"kind": "where", "column": "t0", "op": ">", "value": 100}
    train = {"kind": "fraction", "of": "measured", "fraction": 0.8, "seed": 0}
    val = {"kind": "rest", "of": "measured", "minus": ["train"]}
    for name, spec in (("measured", measured), ("train", train), ("val", val)):
        made = call(client, "POST", path, 201, json={"name": name, "spec": spec})
        assert made["rows"] > 0 and made["error"] is None
    listed = call(client, "GET", path, 200)
    sizes = {s["name"]: s["rows"] for s in listed["subsets"]}
    assert sizes["train"] + sizes["val"] == sizes["measured"]
    assert sizes["train"] == round(0.8 * sizes["measured"])


def profile_and_roles(client: httpx.Client, version: str) -> None:
    path = f"/projects/lab/datasets/utrs/versions/{version[:8]}"
    found = call(client, "GET", path + "/profile", 200)
    assert found["id"] == version and found["roles"]["UTR"] == "sequence"
    assert [c["name"] for c in found["columns"]][1:] == [
        "UTR_name",
        "UTR",
        "t0",
        "t1",
        "growth_rate",
    ]
    assert len(found["preview"]) == 20
    roles = call(client, "PUT", path + "/roles", 200, json={"roles": {"UTR_name": "id"}})
    assert roles["roles"]["UTR_name"] == "id"
    refused = call(client, "GET", path + "/refused?limit=5", 200)
    assert (refused["total"], refused["rows"]) == (0, [])


def cuperus_experiment(client: httpx.Client) -> dict[str, Any]:
    recipes = {r["name"]: r for r in call(client, "GET", "/recipes", 200)["recipes"]}
    regression = recipes["dna-regression"]
    assert regression["reads"] == "sequence" and regression["input_shape"] == [4, 70]
    assert [b["type"] for b in regression["preset"]][:3] == ["conv1d", "activation", "dropout"]
    assert {p["name"] for p in regression["params"]} >= {"lr", "epochs", "filters"}
    assert recipes["tabular"]["preset"] is None
    body = {
        "name": "cuperus",
        "dataset": "utrs",
        "target": "growth_rate",
        "train_subset": "train",
        "val_subset": "val",
        "recipe": "dna-regression",
        "params": FAST,
        "blocks": regression["preset"],
    }
    made: dict[str, Any] = call(client, "POST", "/projects/lab/experiments", 201, json=body)
    assert made["inputs"] == {"sequence": "UTR"} and made["blocks"] == regression["preset"]
    return made


def train(server: Running) -> None:
    """The real worker (``helixserve worker --once``) trains the oldest queued run."""
    worker = worker_once(server)
    _, errors = worker.communicate(timeout=300)
    assert worker.returncode == 0, errors.decode()


def trained(client: httpx.Client, run_id: str) -> dict[str, Any]:
    """A finished run's detail: one epoch recorded, a bundle, test metrics that beat the mean."""
    detail: dict[str, Any] = call(client, "GET", f"/projects/lab/runs/{run_id}", 200)
    assert detail["status"] == "finished", detail
    assert [e["epoch"] for e in detail["epochs"]] == [1]
    assert detail["best_epoch"] == 1 and detail["bundle"].startswith("run-")
    assert detail["metrics"]["r2"] > 0, detail["metrics"]
    return detail


def test_the_tutorial_through_the_api(
    server: Running, client: httpx.Client, shared_data: Path
) -> None:
    version = upload_tutorial(client, shared_data / UTRS)
    profile_and_roles(client, version["id"])
    define_subsets(client)
    experiment = cuperus_experiment(client)
    path = f"/projects/lab/experiments/{experiment['name']}/runs"
    run = call(client, "POST", path, 201, json={"engine": "local"})
    assert (run["status"], run["number"], run["experiment"]) == ("queued", 1, "cuperus")
    listed = call(client, "GET", "/projects/lab/runs?status=queued", 200)["runs"]
    assert [r["id"] for r in listed] == [run["id"]]
    train(server)
    first = trained(client, run["id"])
    more = continue_with_a_clone(server, client, first)
    stop_and_resume(client)
    deploy_and_predict(client, more)
    counts = call(client, "GET", "/projects/lab", 200)["counts"]
    assert counts == {
        "datasets": 1,
        "experiments": 2,
        "deployments": 1,
        "runs": {"finished": 2, "queued": 1},
    }


def continue_with_a_clone(server: Running, client: httpx.Client, first: dict[str, Any]) -> str:
    """Clone the experiment with another learning rate and keep training the first run's weights
    under it; compare the two trained runs. The continued run's id."""
    run_id = first["id"]
    changes = {"params": {"lr": 0.0005}}
    clone = call(
        client,
        "POST",
        "/projects/lab/experiments/cuperus/clone",
        201,
        json={"name": "cuperus-slow", "changes": changes},
    )
    assert clone["params"] == {**FAST, "lr": 0.0005} and clone["cloned_from"] is not None
    more = call(
        client,
        "POST",
        f"/projects/lab/runs/{run_id}/continue",
        201,
        json={"experiment": "cuperus-slow"},
    )
    assert (more["init_from_run"], more["experiment"], more["status"]) == (
        run_id,
        "cuperus-slow",
        "queued",
    )
    train(server)
    trained(client, more["id"])
    compared = call(client, "GET", "/projects/lab/compare?run=cuperus:1&run=cuperus-slow:1", 200)
    assert [r["id"] for r in compared["runs"]] == [run_id, more["id"]]
    assert compared["differs"] == ["init_from_run", "params.lr"]
    assert compared["runs"][0]["metrics"] == first["metrics"]
    return str(more["id"])


def stop_and_resume(client: httpx.Client) -> None:
    """A second run of the first experiment: stopped while queued, then queued again."""
    queued = call(client, "POST", "/projects/lab/experiments/cuperus/runs", 201, json={})
    assert queued["number"] == 2
    stopped = call(client, "POST", f"/projects/lab/runs/{queued['id']}/stop", 200)
    assert stopped["status"] == "stopped"
    resumed = call(client, "POST", f"/projects/lab/runs/{queued['id']}/resume", 200)
    assert resumed["status"] == "queued"


def deploy_and_predict(client: httpx.Client, run_id: str) -> None:
    body = {"model": "my-utr", "alias": "production"}
    deployed = call(client, "POST", f"/projects/lab/runs/{run_id}/deploy", 201, json=body)
    assert (deployed["model"], deployed["version"], deployed["served"]) == ("my-utr", 1, True)
    predict = f"{str(client.base_url).rstrip('/')}/models/my-utr/predict?version=1"
    assert deployed["calls"]["curl"] == (
        f"curl -s '{predict}' \\\n  -H 'Content-Type: application/json' -d "
        f'\'{{"inputs":["{SEQ}"]}}\''
    )
    answer = call(client, "POST", "/models/my-utr/predict", 200, json={"inputs": [SEQ]})
    assert (answer["model"], answer["version"], answer["errors"]) == ("my-utr", 1, [])
    run_the_calls(deployed["calls"])


def run_the_calls(calls: dict[str, str]) -> None:
    """Each call as a person pastes it: curl in a shell, the Python snippets in Python."""
    for command in (calls["curl"], calls["oip_curl"]):
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
        assert '"my-utr"' in done.stdout, done.stdout
    for snippet in (calls["python"], calls["grpc_python"]):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(snippet, {})  # the snippet, exactly as the answer gives it
        assert printed.getvalue().strip(), snippet


# --- refusals -----------------------------------------------------------------------------------

SMALL = "id,seq,score,part\n" + "".join(
    f"r{i},{'ACGT' * 5}{'ACGT'[i % 4] * 6},{i / 10},{'T' if i % 5 else 'V'}\n" for i in range(40)
)


@pytest.fixture
def lab(client: httpx.Client) -> str:
    """Project ``lab`` with dataset ``small`` (one version, raw body upload), subsets and a
    queued run; the run's id."""
    call(client, "POST", "/projects", 201, json={"name": "lab"})
    call(client, "POST", "/projects/lab/datasets", 201, json={"name": "small"})
    call(
        client,
        "POST",
        "/projects/lab/datasets/small/versions?filename=small.csv.gz",
        201,
        content=gzip.compress(SMALL.encode()),
    )
    subsets = "/projects/lab/datasets/small/subsets"
    train = {"kind": "where", "column": "part", "op": "==", "value": "T"}
    call(client, "POST", subsets, 201, json={"name": "train", "spec": train})
    rest = {"kind": "rest", "minus": ["train"]}
    call(client, "POST", subsets, 201, json={"name": "val", "spec": rest})
    body = {
        "name": "first",
        "dataset": "small",
        "target": "score",
        "train_subset": "train",
        "val_subset": "val",
        "recipe": "dna-regression",
        "params": {"max_length": 26},
    }
    call(client, "POST", "/projects/lab/experiments", 201, json=body)
    run: str = call(client, "POST", "/projects/lab/experiments/first/runs", 201, json={})["id"]
    return run


def refusal(client: httpx.Client, method: str, path: str, status: int, **kw: Any) -> str:
    """The detail of a refusal; 422s also name a field (returned as ``detail @ field``)."""
    body = problem(client, method, path, status, **kw)
    if status == 422:
        return f"{body['detail']} @ {body['errors'][0]['field']}"
    detail: str = body["detail"]
    return detail


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_name_what_was_wrong(client: httpx.Client, lab: str) -> None:
    call(client, "POST", "/projects", 201, json={"name": "other"})
    cases: list[tuple[str, str, int, dict[str, Any], str]] = [
        ("GET", "/projects/nope", 404, {}, "no project named 'nope'; projects: lab, other."),
        (
            "GET",
            "/projects/lab/datasets/nope/versions",
            404,
            {},
            "project 'lab' has no dataset named 'nope'; its datasets: small.",
        ),
        ("GET", "/projects/lab/runs/nope", 404, {}, "project 'lab' has no run 'nope'."),
        ("GET", f"/projects/other/runs/{lab}", 404, {}, f"project 'other' has no run {lab!r}."),
        ("GET", "/projects/other/runs/first:1", 404, {}, "project 'other' has no run 'first:1'."),
        ("GET", "/projects/lab/runs/first:9", 404, {}, "project 'lab' has no run 'first:9'."),
        (
            "POST",
            f"/projects/other/runs/{lab}/stop",
            404,
            {},
            f"project 'other' has no run {lab!r}.",
        ),
        (
            "GET",
            "/projects/other/experiments/first",
            404,
            {},
            "project 'other' has no experiment named 'first'; it has no experiments yet.",
        ),
        (
            "POST",
            f"/projects/lab/runs/{lab}/deploy",
            409,
            {"json": {"model": "m"}},
            f"run {lab!r} is queued; only a finished run can be deployed.",
        ),
        (
            "POST",
            "/projects",
            409,
            {"json": {"name": "lab"}},
            "a project named 'lab' already exists; choose another name.",
        ),
        ("POST", "/projects", 400, {"json": {}}, "body.name: Field required"),
        (
            "POST",
            "/projects",
            400,
            {"content": b'{"name": "x"}', "headers": {"content-type": "text/plain"}},
            "body: Input should be a valid dictionary or object to extract fields from; send a "
            'JSON object with Content-Type: application/json (curl --json \'{"name": "..."}\')',
        ),
    ]
    for method, path, status, kw, message in cases:
        assert refusal(client, method, path, status, **kw) == message, path


def bad_experiment(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "second",
        "dataset": "small",
        "target": "score",
        "train_subset": "train",
        "val_subset": "val",
        "recipe": "dna-regression",
        "params": {"max_length": 26},
    }
    return {"json": {**body, **changes}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_settings_are_422_naming_the_field(client: httpx.Client, lab: str) -> None:
    subsets = "/projects/lab/datasets/small/subsets"
    colour = {"kind": "where", "column": "colour", "op": "==", "value": "x"}
    experiments = "/projects/lab/experiments"
    cases = [
        (
            subsets,
            {"json": {"name": "odd", "spec": colour}},
            "subset 'odd' reads column 'colour', which the dataset does not have; its columns "
            "are: id, seq, score, part. @ column",
        ),
        (
            subsets,
            {"json": {"name": "odd", "spec": {"kind": "fraction", "fraction": 2}}},
            "subset 'odd' is not valid: fraction: fraction must lie strictly between 0 and 1 "
            "(0.8 is 80% of the rows), got 2. @ fraction",
        ),
        (
            experiments,
            bad_experiment(params={"lr": -1}),
            "The 'lr' parameter of dna-regression must be a float in the range (0, 10]. Got -1 "
            "instead. @ params.lr",
        ),
        (
            experiments,
            bad_experiment(target="colour"),
            "the dataset has no column 'colour'; its columns are: id, seq, score, part. @ target",
        ),
        (
            experiments,
            bad_experiment(val_subset="test"),
            "dataset 'small' has no subset named 'test'; its subsets: train, val. @ val_subset",
        ),
        (
            "/projects/lab/datasets/small/versions/latest/roles",
            {"json": {"roles": {"score": "colour"}}},
            "'colour' is not a column role; choose one of sequence, number, category, split, id, "
            "image, text. @ roles.score",
        ),
    ]
    for path, kw, message in cases:
        method = "PUT" if path.endswith("roles") else "POST"
        assert refusal(client, method, path, 422, **kw) == message


def raw_request(url: str, head: str) -> bytes:
    """Send only the request head (no body) and read what the server answers."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(head.encode())
        return sock.recv(65536)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_upload_over_the_limit_is_refused_before_its_body(
    server: Running, client: httpx.Client, lab: str
) -> None:
    path = "/api/v1/projects/lab/datasets/small/versions?filename=big.csv"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {LIMIT + 1}\r\n\r\n"
    )
    answer = raw_request(server.url, head).decode()
    assert answer.startswith("HTTP/1.1 413 ")
    assert f"the upload is {LIMIT + 1:,} bytes; the limit is {LIMIT:,}" in answer

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off once past the limit
        yield b"id,seq\n"
        for _ in range(LIMIT // 50_000 + 2):
            yield b"x" * 50_000

    big = client.post(path.removeprefix("/api/v1"), content=chunks())
    assert big.status_code == 413, big.text
    assert big.json()["detail"] == (
        f"the upload is over the limit of {LIMIT:,} bytes (HELIXSERVE_MAX_UPLOAD_BYTES)."
    )
    versions = call(client, "GET", "/projects/lab/datasets/small/versions", 200)["versions"]
    assert len(versions) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_with_api_keys_the_workspace_needs_an_admin_key(tmp_path: Path, database_url: str) -> None:
    admin, admin_entry = new_key("admin")
    user, user_entry = new_key("predict")
    store = ModelStore.open(str(tmp_path / "store"))
    keys = [admin_entry, user_entry]
    with (
        running(store.uri, tmp_path, database_url=database_url, api_keys=keys) as live,
        httpx.Client(base_url=live.url + "/api/v1", timeout=30) as client,
    ):
        assert problem(client, "GET", "/projects", 401)["detail"].startswith(
            "this route needs an API key with the 'admin' scope"
        )
        as_user = {"Authorization": f"Bearer {user}"}
        assert problem(client, "POST", "/projects", 403, headers=as_user, json={"name": "x"})
        as_admin = {"X-API-Key": admin}
        call(client, "POST", "/projects", 201, headers=as_admin, json={"name": "x"})
        assert call(client, "GET", "/recipes", 200, headers=as_admin)["recipes"]


def test_the_calls_send_the_key_when_keys_are_on(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"))
    publish_gc(store, "gc")
    calls = model_calls(store.manifest("gc"), "http://lab:8000/", "lab:8001", keyed=True)
    assert calls.curl == (
        "curl -s 'http://lab:8000/api/v1/models/gc/predict?version=1' \\\n"
        '  -H "Authorization: Bearer $HELIXSERVE_API_KEY" \\\n'
        f"  -H 'Content-Type: application/json' -d '{{\"inputs\":[\"{SEQ}\"]}}'"
    )
    assert 'headers={"Authorization": "Bearer " + os.environ["HELIXSERVE_API_KEY"]}' in calls.python
    assert calls.oip_curl.startswith("curl -s http://lab:8000/v2/models/gc/versions/1/infer \\\n")
    assert '"datatype":"BYTES"' in calls.oip_curl
    assert calls.grpc_python is not None
    assert "InferenceServerClient('lab:8001')" in calls.grpc_python
    assert "model_version='1', headers=" in calls.grpc_python
