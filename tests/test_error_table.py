"""Every ``HelixError`` subclass through every edge: one error table, one answer everywhere.

The classes are discovered, never listed: every module of helixserve is imported and
``HelixError.__subclasses__()`` is walked recursively, so a new class is covered the day it is
written. Each one is sent through the domain API (the raw-ASGI fast path and a FastAPI route),
the Open Inference Protocol over REST and over gRPC, a web UI page and the CLI, and each edge
must give the table's status / problem type / title / gRPC code and the exception's message.

How the errors are provoked: most classes cannot be produced from outside on demand (a store
outage, a damaged bundle, a full queue, an expired session), so the walk uses a test-only hook:
it replaces the running server's ``Registry.resolve`` (REST, OIP, gRPC, UI) and
``ModelStore.list_models`` (CLI) with a function that raises an instance of the class.
Everything after that is the real edge code: a real server (uvicorn + gRPC on loopback ports),
real HTTP and gRPC clients, the CLI's real ``main``. The tests at the end provoke the common
errors from outside, with real inputs, and check their exact messages.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import grpc
import httpx
import pytest
from markupsafe import escape

import helixserve
from helixserve.cli.app import main
from helixserve.error_table import INTERNAL, TABLE, Row, row_for
from helixserve.errors import HelixError, InputError, ServiceUnavailable
from helixserve.serving.app import HelixApp
from helixserve.serving.auth import hash_key
from helixserve.serving.grpc_server import MESSAGES, SERVICE
from helixserve.store import ModelStore
from tests.support.server import Running, publish_gc, running

PROBLEM_TYPE = "https://helixserve.dev/problems/"
GOOD = "ACGT" * 12 + "AC"


def _import_everything() -> None:
    """Import every helixserve module, so that every ``HelixError`` subclass exists."""
    for module in pkgutil.walk_packages(helixserve.__path__, "helixserve."):
        if not module.name.endswith("__main__"):  # __main__ runs the CLI when imported
            importlib.import_module(module.name)


def _subclasses(cls: type[HelixError]) -> set[type[HelixError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


_import_everything()
CLASSES = sorted({HelixError} | _subclasses(HelixError), key=lambda c: c.__qualname__)


def instance_of(cls: type[HelixError]) -> HelixError:
    """An instance of ``cls`` with a message naming it (required keyword-only lists empty)."""
    required: dict[str, list[object]] = {
        p.name: []
        for p in inspect.signature(cls).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    }
    return cls(f"the {cls.__name__} of the error-table walk; nothing is really wrong", **required)


def raising(err: BaseException) -> Callable[..., NoReturn]:
    def fail(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise err

    return fail


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("walk")
    publish_gc(ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache"))
    with running(tmp / "store", tmp) as live:
        yield live


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def fail_resolve(monkeypatch: pytest.MonkeyPatch, server: Running, err: BaseException) -> None:
    app = server.app
    assert isinstance(app, HelixApp)
    monkeypatch.setattr(app.server.registry, "resolve", raising(err))


def check_headers(response: httpx.Response, err: BaseException, row: Row) -> None:
    assert ("www-authenticate" in response.headers) is (row.status == 401)
    if isinstance(err, ServiceUnavailable):
        assert response.headers["retry-after"] == str(err.retry_after)
    else:
        assert "retry-after" not in response.headers


def check_logged(
    caplog: pytest.LogCaptureFixture, err: BaseException, row: Row, times: int
) -> None:
    """The server's own faults (``logged`` rows) are logged once per answer; nothing else is."""
    logged = [r for r in caplog.records if str(err) in r.getMessage()]
    assert len(logged) == (times if row.logged else 0)


def test_the_walk_covers_every_class_and_every_class_has_a_row() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"OipError", "FormRefused", "LoginNeeded", "TrainingError", "BatchError"} <= names
    assert all(row_for(c) is not None for c in CLASSES)
    assert row_for(RuntimeError) is None
    assert set(TABLE) <= set(CLASSES)


def test_the_most_specific_row_wins() -> None:
    from helixserve.errors import (
        FileTooLarge,
        InvalidFile,
        ModelNotFound,
        StoreError,
        StoreUnavailable,
    )

    assert row_for(FileTooLarge) == TABLE[FileTooLarge] != row_for(InvalidFile)
    assert row_for(InvalidFile) == TABLE[InputError]
    assert row_for(ModelNotFound) == Row(404, "model-not-found", "Model not found", "NOT_FOUND")
    assert row_for(StoreUnavailable) == TABLE[StoreError]


def test_the_settled_disagreements() -> None:
    """The issue's examples: a store outage and a bad input were answered differently per edge."""
    from helixserve.errors import StoreUnavailable

    assert (TABLE[InputError].status, TABLE[InputError].oip, TABLE[InputError].grpc) == (
        422,
        400,
        "INVALID_ARGUMENT",
    )
    store = row_for(StoreUnavailable)
    assert store is not None
    assert (store.status, store.oip, store.grpc) == (503, 503, "UNAVAILABLE")
    assert all(row.oip == row.status for cls, row in TABLE.items() if cls is not InputError)


def test_the_docs_table_is_the_table() -> None:
    """docs/serving.md's "what error Y becomes" rows give each class's row (none left out)."""
    doc = (Path(__file__).parents[1] / "docs" / "serving.md").read_text(encoding="utf-8")
    section = doc.split("### Errors: what error Y becomes", 1)[1].split("\n## ", 1)[0]
    by_name = {c.__name__: c for c in CLASSES}
    documented = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not line.startswith("| ") or len(cells) != 5 or not cells[1].isdigit():
            continue
        named = re.search(r"`(\w+)`", cells[0])
        row = row_for(by_name[named.group(1)]) if named else INTERNAL
        assert row is not None
        expected = [str(row.status), str(row.oip), f"`{row.kind}`", f"`{row.grpc}`"]
        assert cells[1:] == expected, line
        documented.add(by_name[named.group(1)] if named else None)
    assert set(TABLE) <= documented


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_domain_api(
    cls: type[HelixError],
    server: Running,
    client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    err = instance_of(cls)
    row = row_for(err)
    assert row is not None
    fail_resolve(monkeypatch, server, err)
    with caplog.at_level(logging.ERROR):
        fast = client.post("/api/v1/models/gc/predict", json={"inputs": [GOOD]})
        routed = client.get("/api/v1/models/gc")
    check_logged(caplog, err, row, times=2)
    for response, path in ((fast, "/api/v1/models/gc/predict"), (routed, "/api/v1/models/gc")):
        assert response.status_code == row.status
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["type"] == PROBLEM_TYPE + row.kind
        assert (body["title"], body["status"], body["detail"]) == (row.title, row.status, str(err))
        assert body["instance"] == path
        assert ("errors" in body) is (row is TABLE[InputError])
        check_headers(response, err, row)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_oip_rest(
    cls: type[HelixError], server: Running, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = instance_of(cls)
    row = row_for(err)
    assert row is not None
    fail_resolve(monkeypatch, server, err)
    tensor = {"name": "sequence", "shape": [1], "datatype": "BYTES", "data": [GOOD]}
    fast = client.post("/v2/models/gc/infer", json={"inputs": [tensor]})
    routed = client.get("/v2/models/gc")
    for response in (fast, routed):
        assert response.status_code == row.oip
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": str(err)}
        check_headers(response, err, row)


def _grpc_call(server: Running, rpc: str, **fields: Any) -> grpc.RpcError:
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary(
            f"/{SERVICE}/{rpc}",
            request_serializer=MESSAGES[rpc + "Request"].SerializeToString,
            response_deserializer=MESSAGES[rpc + "Response"].FromString,
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(MESSAGES[rpc + "Request"](**fields), timeout=30)
    return caught.value


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_grpc(
    cls: type[HelixError],
    server: Running,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    err = instance_of(cls)
    row = row_for(err)
    assert row is not None
    fail_resolve(monkeypatch, server, err)
    for rpc, fields in (("ModelMetadata", {"name": "gc"}), ("ModelInfer", {"model_name": "gc"})):
        with caplog.at_level(logging.ERROR):
            failed = _grpc_call(server, rpc, **fields)
        assert failed.code().name == row.grpc
        assert failed.details() == str(err)
    check_logged(caplog, err, row, times=2)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_ui_page(
    cls: type[HelixError], server: Running, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page answers with HTML (the error page; for ``LoginNeeded`` the key form)."""
    err = instance_of(cls)
    row = row_for(err)
    assert row is not None
    fail_resolve(monkeypatch, server, err)
    for path in ("/models/gc", "/models/gc/predict", "/models/gc/variants"):
        response = client.get(path)
        assert response.status_code == row.status, path
        assert response.headers["content-type"].startswith("text/html")
        assert str(escape(str(err))) in response.text


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_cli(
    cls: type[HelixError],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = instance_of(cls)
    monkeypatch.setattr(ModelStore, "list_models", raising(err))
    monkeypatch.setattr(sys, "argv", ["helixserve", "models", "list", "--store", str(tmp_path)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"Error: {err}\n"


# --- anything that is not a HelixError: opaque everywhere, logged --------------------------------


def test_an_unexpected_error_is_opaque_and_logged_at_every_edge(
    server: Running,
    client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "a bug's own words, never shown"
    fail_resolve(monkeypatch, server, RuntimeError(secret))
    with caplog.at_level(logging.ERROR):
        api = client.get("/api/v1/models/gc")
        oip = client.get("/v2/models/gc")
        page = client.get("/models/gc")
        rpc = _grpc_call(server, "ModelMetadata", name="gc")
    body = api.json()
    assert (api.status_code, body["type"], body["title"]) == (
        INTERNAL.status,
        PROBLEM_TYPE + INTERNAL.kind,
        INTERNAL.title,
    )
    assert body["detail"].startswith("The server failed while handling this request (request id ")
    assert oip.status_code == 500
    assert oip.json()["error"].startswith("The server failed while handling this request")
    assert page.status_code == 500
    assert "The server failed while handling this request" in page.text
    assert rpc.code() is grpc.StatusCode.INTERNAL
    assert rpc.details().startswith("internal error (request id ")
    for shown in (api.text, oip.text, page.text, rpc.details()):
        assert secret not in shown
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is not None]
    assert len(logged) >= 4
    assert all(secret in str(r.exc_info[1]) for r in logged if r.exc_info)


def test_an_unexpected_error_in_the_cli_is_not_dressed_as_a_domain_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ModelStore, "list_models", raising(RuntimeError("a bug")))
    monkeypatch.setattr(sys, "argv", ["helixserve", "models", "list", "--store", str(tmp_path)])
    with pytest.raises(RuntimeError, match="a bug"):
        main()
    assert "Error:" not in capsys.readouterr().err


# --- the common errors from outside, with real inputs: exact messages, every edge ----------------

BAD = GOOD[:3] + "F" + GOOD[4:]
BAD_MESSAGE = (
    "DNA sequence is not valid DNA: position 4 is 'F'. Only the letters A, C, G, T are allowed; "
    "remove it or correct the typo."
)
NOT_SERVED = "no model named 'nope' is served; served models: gc."


def test_a_bad_sequence_is_invalid_input_at_every_edge(
    server: Running, client: httpx.Client
) -> None:
    api = client.post("/api/v1/models/gc/predict", json={"inputs": [BAD]})
    assert (api.status_code, api.json()["type"], api.json()["detail"]) == (
        422,
        PROBLEM_TYPE + "invalid-input",
        BAD_MESSAGE,
    )
    tensor = {"name": "sequence", "shape": [1], "datatype": "BYTES", "data": [BAD]}
    oip = client.post("/v2/models/gc/infer", json={"inputs": [tensor]})
    assert (oip.status_code, oip.json()) == (
        400,
        {"error": f"input 'sequence' item 0: {BAD_MESSAGE}"},
    )
    token = "walk-form-token-0123"
    with httpx.Client(base_url=server.url, cookies={"hs_csrf": token}) as browser:
        page = browser.post("/models/gc/predict", data={"csrf_token": token, "sequence": BAD})
    assert page.status_code == 422
    assert str(escape(BAD_MESSAGE)) in page.text


def test_an_unknown_model_is_not_found_at_every_edge(server: Running, client: httpx.Client) -> None:
    api = client.get("/api/v1/models/nope")
    assert (api.status_code, api.json()["type"], api.json()["detail"]) == (
        404,
        PROBLEM_TYPE + "model-not-found",
        NOT_SERVED,
    )
    oip = client.get("/v2/models/nope")
    assert (oip.status_code, oip.json()) == (404, {"error": NOT_SERVED})
    failed = _grpc_call(server, "ModelMetadata", name="nope")
    assert (failed.code(), failed.details()) == (grpc.StatusCode.NOT_FOUND, NOT_SERVED)
    page = client.get("/models/nope")
    assert page.status_code == 404
    assert str(escape(NOT_SERVED)) in page.text


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("limited")
    publish_gc(ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache"))
    with running(tmp / "store", tmp, max_request_bytes=1000, max_upload_records=2) as live:
        yield live


def test_every_size_limit_is_too_large_at_every_edge(limited: Running) -> None:
    body = b'{"inputs": [' + b",".join([b'"' + GOOD.encode() + b'"'] * 30) + b"]}"
    over = (
        f"the request body is {len(body):,} bytes; the limit is 1,000 "
        "(HELIXSERVE_MAX_REQUEST_BYTES)."
    )
    records = (
        "the file has more than 2 records, the limit for one upload "
        "(HELIXSERVE_MAX_UPLOAD_RECORDS); split it, or score it with `helixserve predict`."
    )
    file = ("three.txt", ("sequence\n" + (GOOD + "\n") * 3).encode())
    token = "walk-form-token-0123"
    with httpx.Client(base_url=limited.url, cookies={"hs_csrf": token}, timeout=30) as c:
        api = c.post("/api/v1/models/gc/predict", content=body)
        oip = c.post("/v2/models/gc/infer", content=body)
        upload = c.post("/api/v1/models/gc/predict-file", files={"file": file})
        page = c.post("/models/gc/upload", files={"file": file}, data={"csrf_token": token})
    for reply, detail in ((api, over), (upload, records)):
        assert (reply.status_code, reply.json()["type"], reply.json()["detail"]) == (
            413,
            PROBLEM_TYPE + "too-large",
            detail,
        )
    assert (oip.status_code, oip.json()) == (413, {"error": over})
    assert page.status_code == 413  # the page said 422 before the one table
    assert str(escape(records)) in page.text


PREDICT_KEY = "hs_predict_walk_0123456789abcdef"
ADMIN_KEY = "hs_admin_walk_0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("keyed")
    publish_gc(ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache"))
    keys = [f"predict:{hash_key(PREDICT_KEY)}", f"admin:{hash_key(ADMIN_KEY)}"]
    with running(tmp / "store", tmp, api_keys=keys) as live:
        yield live


def test_a_missing_key_is_unauthorized_and_a_weak_key_forbidden(keyed: Running) -> None:
    missing = (
        "this route needs an API key with the 'predict' scope: send it as "
        "'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
    )
    weak = "this route needs an API key with the 'admin' scope; this key has only 'predict'."
    tensor = {"name": "sequence", "shape": [1], "datatype": "BYTES", "data": [GOOD]}
    with httpx.Client(base_url=keyed.url, timeout=30) as c:
        api = c.post("/api/v1/models/gc/predict", json={"inputs": [GOOD]})
        oip = c.post("/v2/models/gc/infer", json={"inputs": [tensor]})
        admin = c.post("/api/v1/admin/reload", headers={"x-api-key": PREDICT_KEY})
    assert (api.status_code, api.json()["type"], api.json()["detail"]) == (
        401,
        PROBLEM_TYPE + "unauthorized",
        missing,
    )
    assert api.headers["www-authenticate"] == 'Bearer realm="helixserve"'
    assert (oip.status_code, oip.json()) == (401, {"error": missing})
    assert (admin.status_code, admin.json()["type"], admin.json()["detail"]) == (
        403,
        PROBLEM_TYPE + "forbidden",
        weak,
    )
    failed = _grpc_call(keyed, "ModelInfer", model_name="gc")
    assert (failed.code(), failed.details()) == (grpc.StatusCode.UNAUTHENTICATED, missing)
