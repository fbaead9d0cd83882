"""Security checks: headers on pages, key scopes on admin routes, no secrets in logs or bodies,
no pickle in the serving path, no escape from the store root, uploads leave no files behind."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape, unescape
from pathlib import Path

import httpx
import pytest

from helixserve.serving.api_docs import DOCS_CSP
from helixserve.serving.app import PAGE_CSP
from helixserve.serving.auth import KeyRing, hash_key
from helixserve.serving.sessions import SessionBook
from helixserve.store import ModelStore
from tests.conftest import s3_options
from tests.support.s3server import SECRET_HOLDER, S3Server
from tests.support.serve_process import serve_processes
from tests.support.server import free_port, publish_gc, running

SRC = Path(__file__).resolve().parents[1] / "src" / "helixserve"
ZOO = SRC / "zoo" / "store"
GC = "GC" * 25
PREDICT_KEY = "hs_predict_" + uuid.uuid4().hex
ADMIN_KEY = "hs_admin_" + uuid.uuid4().hex
WRONG_KEY = "hs_wrong_" + uuid.uuid4().hex
SERVING_PATH = ("serving", "batch", "explain", "runtime", "store", "inputs")
UNSAFE_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "joblib",
    "dill",
    "cloudpickle",
    "shelve",
    "marshal",
    "torch",
}


def test_pages_carry_security_headers(tmp_path: Path) -> None:
    with (
        running(ZOO, tmp_path, access_log=False) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        page = client.get("/models/primer-binding/predict")
        api = client.get("/api/v1/models")
        fast = client.post("/api/v1/models/primer-binding/predict", json={"inputs": [GC]})
        docs = client.get("/docs")
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "script-src 'self';" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert page.headers["x-frame-options"] == "DENY"
    for reply in (page, api, fast, docs):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
    assert "content-security-policy" not in api.headers
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert "script-src 'self' 'sha256-" in DOCS_CSP and "frame-ancestors 'none'" in DOCS_CSP
    assert docs.headers["x-frame-options"] == "DENY"
    assert "cdn." not in docs.text and "https://" not in docs.text


def test_ui_templates_have_no_inline_script_or_handlers() -> None:
    templates = list((SRC / "serving" / "templates").glob("*.html"))
    assert templates
    for template in templates:
        text = template.read_text(encoding="utf-8").lower()
        for tag_start in _find_all(text, "<script"):
            assert 'src="' in text[tag_start : text.index(">", tag_start)], template.name
        for handler in (" onclick=", " onload=", " onsubmit=", " onchange=", "javascript:"):
            assert handler not in text, f"{template.name}: {handler}"


def _find_all(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start >= 0:
        yield start
        start = text.find(needle, start + 1)


def _serving_modules() -> Iterator[Path]:
    for layer in SERVING_PATH:
        yield from (SRC / layer).rglob("*.py")
    yield from (SRC / name for name in ("settings.py", "errors.py"))


def test_no_pickle_or_torch_in_the_serving_path() -> None:
    checked = 0
    for module in _serving_modules():
        tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in UNSAFE_MODULES, f"{module}: imports {name}"
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, (
                    f"{module}:{node.value.lineno}: allow_pickle must be False"
                )
        checked += 1
    assert checked > 40


def test_names_cannot_escape_the_store_root(tmp_path: Path) -> None:
    tries = [
        "/api/v1/models/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/models/%2e%2e",
        "/models/primer-binding/plots/..%2F..%2Fmanifest.json",
        "/models/primer-binding/plots/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/v2/models/..%2Fprimer-binding",
    ]
    with (
        running(ZOO, tmp_path, access_log=False) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        replies = {path: client.get(path) for path in tries}
        predict = client.post("/api/v1/models/%2e%2e/predict", json={"inputs": [GC]})
    for path, reply in replies.items():
        assert reply.status_code in (400, 404, 422), path
        assert "root:" not in reply.text
    assert predict.status_code in (400, 404, 422)
    assert predict.json()["detail"] == (
        "no model named '..' is served; served models: amr-resistance, primer-binding, "
        "rxrx1-celltype, tumor-wisconsin, yeast-utr."
    )


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    tmp: Path


@pytest.fixture
def served_s3(s3_server: S3Server, tmp_path: Path) -> Iterator[Served]:
    """``helixserve serve`` in its own process on an S3 store, with keys, debug logs, TMPDIR."""
    uri = f"s3://models/{uuid.uuid4().hex}"
    publish_gc(ModelStore.open(uri, s3=s3_options(s3_server), cache_dir=tmp_path / "pub"))
    port, temp = free_port(), tmp_path / "tmpdir"
    temp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "HELIXSERVE_STORE": uri,
        "HELIXSERVE_S3_ENDPOINT_URL": s3_server.endpoint,
        "HELIXSERVE_S3_REGION": "us-east-1",
        "HELIXSERVE_S3_ACCESS_KEY_ID": SECRET_HOLDER[0],
        "HELIXSERVE_S3_SECRET_ACCESS_KEY": SECRET_HOLDER[1],
        "HELIXSERVE_API_KEYS": f"predict:{hash_key(PREDICT_KEY)},admin:{hash_key(ADMIN_KEY)}",
        "HELIXSERVE_LOG_LEVEL": "debug",
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "helixserve", "serve", "--port", str(port), "--grpc-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError((process.stdout.read() if process.stdout else b"").decode())
        time.sleep(0.2)
    try:
        yield Served(url, process, temp)
    finally:
        if process.poll() is None:
            process.kill()


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_admin_scope_and_no_secret_in_logs_or_bodies(served_s3: Served) -> None:
    bodies: list[str] = []
    with httpx.Client(base_url=served_s3.url) as client:
        reload = "/api/v1/admin/reload"
        refused = {
            "none": client.post(reload),
            "wrong": client.post(reload, headers=_bearer(WRONG_KEY)),
            "wrong x-api-key": client.post(reload, headers={"x-api-key": WRONG_KEY}),
            "predict scope": client.post(reload, headers=_bearer(PREDICT_KEY)),
        }
        assert {k: r.status_code for k, r in refused.items()} == {
            "none": 401,
            "wrong": 401,
            "wrong x-api-key": 401,
            "predict scope": 403,
        }
        assert client.post(reload, headers=_bearer(ADMIN_KEY)).json()["models"] == {"gc": [1]}
        predict = "/api/v1/models/gc/predict"
        assert client.post(predict, json={"inputs": [GC]}, headers=_bearer(PREDICT_KEY)).is_success
        others = [
            client.post(predict, json={"inputs": [GC]}, headers=_bearer(WRONG_KEY)),
            client.post(predict, content=b"{not json", headers=_bearer(PREDICT_KEY)),
            client.post(
                predict + "?api_key=" + WRONG_KEY,
                json={"inputs": ["ACGX"]},
                headers=_bearer(PREDICT_KEY),
            ),
            client.get("/readyz"),
            client.get("/api/v1/models/gc"),
            client.get("/metrics"),
        ]
        bodies = [r.text for r in [*refused.values(), *others]]
    served_s3.process.send_signal(signal.SIGTERM)
    output, _ = served_s3.process.communicate(timeout=30)
    log = output.decode("utf-8", errors="replace")
    assert '"status":401' in log.replace(" ", "")  # the access log did record the refusals
    for secret in (PREDICT_KEY, ADMIN_KEY, WRONG_KEY, SECRET_HOLDER[1]):
        assert secret not in log, f"a secret reached the log: {secret[:12]}..."
        for body in bodies:
            assert secret not in body


def test_uploads_leave_no_files_in_the_temp_area(served_s3: Served) -> None:
    rows = "".join(f"r{i},{GC}\n" for i in range(60_000))  # ~3 MB: spooled to disk
    data = ("id,sequence\n" + rows).encode()
    before = left_in(served_s3.tmp)  # e.g. ONNX Runtime's .ses file
    with httpx.Client(base_url=served_s3.url, timeout=60) as client:
        reply = client.post(
            "/api/v1/models/gc/predict-file",
            files={"file": ("a.csv", data)},
            headers=_bearer(PREDICT_KEY),
        )
    assert reply.status_code == 200, reply.text
    assert (reply.json()["records"], reply.json()["predicted"]) == (60_000, 60_000)
    assert left_in(served_s3.tmp) == before


def left_in(folder: Path) -> list[str]:
    """The files under ``folder``, less the metrics files each server process makes when it first
    counts something (``serve`` runs one process per CPU; which one answers first varies)."""
    metrics = re.compile(r"(counter|gauge|histogram|summary)_[0-9]+\.db")
    return sorted(p.name for p in folder.rglob("*") if not metrics.fullmatch(p.name))


# --- the web UI behind API keys: a key entered once, kept as a session cookie ------------------

FORM_TOKEN = "test-form-token-0123456789"
BINDS = "CGACCGAACTCC" + "A" * 38
KEY_NEEDED = (
    "this server needs an API key: enter it once below and this browser keeps a session for 12 "
    "hours (or until you choose Forget key)."
)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of the zoo with a predict key and an admin key configured."""
    keys = [f"predict:{hash_key(PREDICT_KEY)}", f"admin:{hash_key(ADMIN_KEY)}"]
    with running(ZOO, tmp_path_factory.mktemp("keyed"), access_log=False, api_keys=keys) as s:
        yield s.url


def _browser(url: str) -> httpx.Client:
    """A client that holds cookies like a browser, with the page's CSRF token already set."""
    client = httpx.Client(base_url=url, timeout=30)
    client.cookies.set("hs_csrf", FORM_TOKEN)
    return client


def _sign_in(client: httpx.Client, key: str, next_path: str = "/") -> httpx.Response:
    form = {"csrf_token": FORM_TOKEN, "key": key, "next": next_path}
    return client.post("/login", data=form)


def _message(html: str) -> str:
    found = re.search(r'<p class="error" role="alert" id="login-message">(.*?)</p>', html, re.S)
    return unescape(found.group(1)) if found else ""


def test_pages_behind_keys_show_the_key_form(keyed: str) -> None:
    with _browser(keyed) as client:
        for path in (
            "/",
            "/models/primer-binding",
            "/models/primer-binding/predict?version=1",
            "/compare?m=yeast-utr",
            "/models/primer-binding/variants",
            "/jobs/x",
        ):
            reply = client.get(path)
            assert reply.status_code == 401, path
            assert _message(reply.text) == KEY_NEEDED, path
            assert f'<input type="hidden" name="next" value="{escape(path)}">' in reply.text
        post = client.post(
            "/models/primer-binding/upload?version=1",
            data={"csrf_token": FORM_TOKEN},
            files={"file": ("a.csv", b"x")},
        )
        assert post.status_code == 401
        assert 'name="next" value="/models/primer-binding/predict?version=1"' in post.text
        assert client.get("/docs").status_code == 200  # the API's documentation stays open
        assert client.get("/static/app.css").status_code == 200


def test_a_key_entered_once_opens_every_page_until_forgotten(keyed: str) -> None:
    with _browser(keyed) as client:
        signed = _sign_in(client, PREDICT_KEY, "/models/primer-binding/predict")
        assert signed.status_code == 303
        assert signed.headers["location"] == "/models/primer-binding/predict"
        cookie = signed.headers["set-cookie"]
        session = client.cookies["hs_session"]
        assert PREDICT_KEY not in cookie and hash_key(PREDICT_KEY) not in cookie
        assert cookie == (f"hs_session={session}; HttpOnly; Max-Age=43200; Path=/; SameSite=strict")
        assert client.get("/").status_code == 200
        again = _sign_in(client, PREDICT_KEY)  # a second sign-in replaces the first session
        assert again.status_code == 303 and client.cookies["hs_session"] != session
        with _browser(keyed) as old:
            old.cookies.set("hs_session", session)
            assert old.get("/").status_code == 401
        session = client.cookies["hs_session"]
        reply = client.post(
            "/models/primer-binding/predict", data={"csrf_token": FORM_TOKEN, "sequence": BINDS}
        )
        assert reply.status_code == 200
        api = client.post(
            "/api/v1/models/primer-binding/predict",
            json={"inputs": [BINDS]},
            headers=_bearer(PREDICT_KEY),
        ).json()["predictions"][0]
        answer = re.search(r'<p class="answer">(.*?)</p>', reply.text)
        assert answer is not None
        assert re.sub(r"<[^>]+>", "", answer.group(1)) == (
            f"Answer: {api['label']} with probability {api['probability']:.4f}"
        )
        assert '<button class="link-button" type="submit" id="forget-key">Forget key</button>' in (
            reply.text
        )
        forgot = client.post("/logout", data={"csrf_token": FORM_TOKEN})
        assert (forgot.status_code, forgot.headers["location"]) == (303, "/login")
        assert forgot.headers["set-cookie"].startswith('hs_session=""; expires=')
        assert client.get("/").status_code == 401
    with _browser(keyed) as replay:  # the old cookie is dead on the server, not only deleted
        replay.cookies.set("hs_session", session)
        assert replay.get("/").status_code == 401


def test_the_session_cookie_does_not_open_the_api(keyed: str) -> None:
    with _browser(keyed) as client:
        _sign_in(client, ADMIN_KEY)
        assert client.get("/").status_code == 200
        predict = client.post("/api/v1/models/primer-binding/predict", json={"inputs": [BINDS]})
        assert predict.status_code == 401
        assert predict.json()["detail"] == (
            "this route needs an API key with the 'predict' scope: send it as "
            "'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        )
        assert client.post("/api/v1/admin/reload").status_code == 401
        assert (
            client.post("/v2/models/primer-binding/infer", json={"inputs": []}).status_code == 401
        )
        headed = client.post(
            "/api/v1/models/primer-binding/predict",
            json={"inputs": [BINDS]},
            headers=_bearer(PREDICT_KEY),
        )
        assert headed.status_code == 200


def test_wrong_keys_forged_forms_and_foreign_redirects_are_refused(keyed: str) -> None:
    with _browser(keyed) as client:
        wrong = _sign_in(client, WRONG_KEY)
        assert wrong.status_code == 401
        assert _message(wrong.text) == "the API key is not valid; check it, or ask for a new one."
        assert WRONG_KEY not in wrong.text and "hs_session" not in client.cookies
        empty = _sign_in(client, "  ")
        assert (empty.status_code, _message(empty.text)) == (401, "enter an API key first.")
        forged = client.post(
            "/login", data={"csrf_token": "another-token-0123456789", "key": PREDICT_KEY}
        )
        assert forged.status_code == 403 and "hs_session" not in client.cookies
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "x"):
            away = _sign_in(client, PREDICT_KEY, target)
            assert (away.status_code, away.headers["location"]) == (303, "/"), target


def test_the_session_cookie_is_secure_over_https(keyed: str) -> None:
    """Behind a TLS proxy on loopback (uvicorn trusts its X-Forwarded-Proto), the cookie is
    marked Secure."""
    with _browser(keyed) as client:
        reply = client.post(
            "/login",
            data={"csrf_token": FORM_TOKEN, "key": PREDICT_KEY},
            headers={"x-forwarded-proto": "https"},
        )
        assert reply.status_code == 303
        assert "; Secure" in reply.headers["set-cookie"]
    https = {"x-forwarded-proto": "https"}
    fresh = httpx.get(keyed + "/login", headers=https).headers["set-cookie"]
    plain = httpx.get(keyed + "/login").headers["set-cookie"]
    assert fresh.startswith("hs_csrf=") and "; Secure" in fresh  # the form token's cookie too
    assert plain.startswith("hs_csrf=") and "Secure" not in plain


def test_session_tokens_are_signed_expire_and_are_shared_by_workers() -> None:
    now = [1000.0]
    keys = KeyRing([f"predict:{hash_key(PREDICT_KEY)}", f"admin:{hash_key(ADMIN_KEY)}"])
    book = SessionBook(keys, b"s" * 32, ttl_s=60, clock=lambda: now[0])
    token = book.open(PREDICT_KEY)
    assert book.scope(token) == "predict"
    other_worker = SessionBook(keys, b"s" * 32, clock=lambda: now[0])
    assert other_worker.scope(token) == "predict"  # the same secret: one server's workers
    assert SessionBook(keys, b"t" * 32, clock=lambda: now[0]).scope(token) is None
    admin = book.open(ADMIN_KEY)
    holder = admin.split(".")[0]
    forged = token.replace(token.split(".")[0], holder, 1)
    assert book.scope(forged) is None  # the key's fingerprint is signed
    now[0] += 61
    assert book.scope(token) is None  # expired
    admin = book.open(ADMIN_KEY)
    book.close(admin)
    assert book.scope(admin) is None  # revoked in this process
    assert [book.scope(t) for t in ("", "made-up", "a.b.c.d", "é.1.2.3")] == [None] * 4


def test_sessions_follow_the_keys_configured_now() -> None:
    """A removed key's sessions end; a key moved from admin to predict has predict."""
    before = KeyRing([f"admin:{hash_key(ADMIN_KEY)}", f"predict:{hash_key(PREDICT_KEY)}"])
    token = SessionBook(before, b"s" * 32).open(ADMIN_KEY)
    assert SessionBook(before, b"s" * 32).scope(token) == "admin"
    removed = KeyRing([f"predict:{hash_key(PREDICT_KEY)}"])
    assert SessionBook(removed, b"s" * 32).scope(token) is None
    demoted = KeyRing([f"predict:{hash_key(ADMIN_KEY)}"])
    assert SessionBook(demoted, b"s" * 32).scope(token) == "predict"


def test_a_non_ascii_session_cookie_is_no_session(keyed: str) -> None:
    for cookie in (b"hs_session=\xc3\xa9t\xc3\xa9", b"hs_session=%C3%A9t%C3%A9"):
        assert httpx.get(keyed + "/", headers={b"cookie": cookie}).status_code == 401  # not 500
        assert httpx.get(keyed + "/login", headers={b"cookie": cookie}).status_code == 200


def test_two_workers_honour_one_sign_in(tmp_path: Path) -> None:
    """``serve --workers 2`` with no session secret configured: both workers accept the session
    (before, each worker kept its own and about half the pages asked for the key again)."""
    keys = {"HELIXSERVE_API_KEYS": f"predict:{hash_key(PREDICT_KEY)}"}
    with serve_processes(tmp_path, env=keys) as served:
        url = served.url
        with _browser(url) as client:
            assert _sign_in(client, PREDICT_KEY).status_code == 303
            cookie = client.cookies["hs_session"]
        statuses = [
            httpx.get(url + "/", cookies={"hs_session": cookie}, timeout=10).status_code
            for _ in range(40)  # a new connection each: the kernel spreads them over the workers
        ]
        assert statuses == [200] * 40
