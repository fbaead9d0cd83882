"""Signing in to the web UI with accounts on (issue 17), against a real server: every page asks
for a sign-in, one message for every failed one, a new session token at each sign-in (no
fixation) in an HttpOnly SameSite cookie, logout ends the session on the server, guessing is
slowed (429 with Retry-After), no password reaches an answer or the log, and each person sees
and changes only what their role in a project allows."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from helixserve.serving.access import RECHECK_S, needed_role
from helixserve.serving.access_log import FLUSH_S
from helixserve.serving.deps import workspace_page_guard
from helixserve.serving.routes import ROUTERS
from helixserve.store import ModelStore
from helixserve.workspace import accounts, throttle
from helixserve.workspace.members import share
from helixserve.workspace.models import Role
from helixserve.workspace.projects import create_project
from tests.support.server import Running, publish_gc, running
from tests.support.worker_runs import open_space

PASSWORD = "correct horse battery"
TOKEN = "t" * 32  # the CSRF double-submit value the tests' browser holds


def lab_and_people(tmp: Path) -> str:
    """Projects lab and mine; vic views lab, out owns mine (and has no role in lab). The
    workspace's URL."""
    url = f"sqlite:///{tmp / 'workspace.db'}"
    space = open_space(tmp, url)
    with space.db.session() as session:
        for name in ("lab", "mine"):
            create_project(session, name)
        for name, project, role in (("vic", "lab", Role.VIEWER), ("out", "mine", Role.OWNER)):
            accounts.add_user(session, name, PASSWORD)
            share(session, project, name, role)
    space.db.close()
    publish_gc(space.models, "gc")  # a model of no project: everyone signed in may use it
    return url


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    url = lab_and_people(tmp_path)
    with running(tmp_path / "store", tmp_path, database_url=url) as live:
        yield live


def browser(server: Running) -> httpx.Client:
    return httpx.Client(base_url=server.url, cookies={"hs_csrf": TOKEN}, timeout=30)


def sign_in(client: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    form = {"csrf_token": TOKEN, "user": user, "password": password, "next": "/projects"}
    return client.post("/login", data=form)


def test_pages_ask_for_a_sign_in_and_failures_all_read_the_same(server: Running) -> None:
    with browser(server) as client:
        for path in ("/", "/projects", "/projects/lab"):
            page = client.get(path)
            assert page.status_code == 401 and 'id="signin-form"' in page.text, path
        for user, password in (("vic", "wrong password!"), ("nobody", PASSWORD)):
            failed = sign_in(client, user, password)
            assert failed.status_code == 401
            assert (
                '<p class="error" role="alert" id="login-message">wrong user name or password.'
                in failed.text
            )
            assert password not in failed.text
        forged = client.post("/login", data={"user": "vic", "password": PASSWORD})
        assert forged.status_code == 403  # no CSRF token


def test_a_sign_in_gets_a_fresh_session_that_logout_ends(
    server: Running, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with browser(server) as client:
        client.cookies.set("hs_user", "planted-by-an-attacker")
        signed = sign_in(client, "vic")
        assert (signed.status_code, signed.headers["location"]) == (303, "/projects")
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        token = signed.cookies["hs_user"]
        assert token != "planted-by-an-attacker" and len(token) >= 43
        listing = client.get("/projects")
        assert listing.status_code == 200 and 'id="signed-in-as">vic<' in listing.text
        assert "/projects/lab" in listing.text and "/projects/mine" not in listing.text
        assert client.get("/projects/mine").status_code == 404
        out = client.post("/logout", data={"csrf_token": TOKEN})
        assert out.status_code == 303
    with httpx.Client(base_url=server.url, cookies={"hs_user": token}, timeout=30) as stolen:
        assert stolen.get("/projects").status_code == 401  # the session is gone on the server
    time.sleep(3 * FLUSH_S)  # the access log's lines are written at least every FLUSH_S
    captured = capfd.readouterr()
    served = "\n".join(  # the server's logs (the test's own HTTP client logs what it sends)
        [r.getMessage() for r in caplog.records if r.name.startswith(("helixserve", "uvicorn"))]
        + [captured.out, captured.err]
    )
    assert "/login" in served and PASSWORD not in served and token not in served


def test_a_viewer_cannot_change_the_project(server: Running) -> None:
    with browser(server) as client:
        sign_in(client, "vic")
        refused = client.post("/projects/lab/datasets", data={"csrf_token": TOKEN, "name": "x"})
        assert refused.status_code == 403
        assert "vic is a viewer of project &#39;lab&#39;; this needs editor" in refused.text


def test_guessing_is_slowed(server: Running) -> None:
    with browser(server) as client:
        for _ in range(throttle.FREE_FAILURES - 1):
            assert sign_in(client, "vic", "not it at all").status_code == 401
        blocked = sign_in(client, "vic", "not it at all")
        assert blocked.status_code == 401  # the fifth failure is answered, then blocks
        now = sign_in(client, "vic")  # even the right password waits
        assert now.status_code == 429
        assert "too many failed sign-ins; wait 2 s and try again." in now.text


def page_routes() -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every workspace page with a ``{project}``."""
    found = []
    for router in ROUTERS:
        for route in router.routes:
            guarded = any(
                d.dependency is workspace_page_guard for d in getattr(route, "dependencies", [])
            )
            if isinstance(route, APIRoute) and guarded and "{project}" in route.path:
                found += [(m, route.path, route) for m in sorted(route.methods or ())]
    return found


PAGES = page_routes()
FILL = {"name": "n", "run_id": "r", "dataset": "d", "subset": "s"}


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, dict[str, str]]]:
    """A server with accounts on and the session cookies of vic (viewer of lab) and out (no role
    in lab)."""
    tmp = tmp_path_factory.mktemp("pages")
    url = lab_and_people(tmp)
    with running(tmp / "store", tmp, database_url=url) as live:
        cookies = {}
        for name in ("vic", "out"):
            with browser(live) as client:
                cookies[name] = sign_in(client, name).cookies["hs_user"]
        yield live, cookies


@pytest.mark.parametrize(("method", "path", "route"), PAGES, ids=[f"{m} {p}" for m, p, _ in PAGES])
def test_every_project_page_keeps_out_whoever_has_no_role(
    people: tuple[Running, dict[str, str]], method: str, path: str, route: APIRoute
) -> None:
    live, cookies = people
    url = path.format(project="lab", **FILL)
    form = {"csrf_token": TOKEN} if method == "POST" else None
    jar = {"hs_csrf": TOKEN}
    with httpx.Client(base_url=live.url, cookies=jar, timeout=30) as anonymous:
        nobody = anonymous.request(method, url, data=form)
        assert nobody.status_code == 401 and 'id="signin-form"' in nobody.text
    with httpx.Client(base_url=live.url, cookies={**jar, "hs_user": cookies["out"]}) as out:
        hidden = out.request(method, url, data=form)
        assert hidden.status_code == 404 and "no project named &#39;lab&#39;." in hidden.text
    needed = needed_role(route)
    if needed is not Role.VIEWER:
        with httpx.Client(base_url=live.url, cookies={**jar, "hs_user": cookies["vic"]}) as vic:
            low = vic.request(method, url, data=form)
            assert low.status_code == 403
            assert (
                f"vic is a viewer of project &#39;lab&#39;; this needs {needed.value}" in low.text
            )


def test_the_first_admin_from_the_browser_then_keys_and_password(tmp_path: Path) -> None:
    """A one-person server: its local owner adds the first admin on /admin/users, and from then
    on everyone signs in; the admin makes a key on /account (shown once), revokes it, changes
    the password (every session ends); a user who is not an admin may not manage users."""
    url = f"sqlite:///{tmp_path / 'workspace.db'}"
    with running(tmp_path / "store", tmp_path, database_url=url) as live, browser(live) as client:
        assert "Nobody has an account yet" in client.get("/admin/users").text
        added = client.post(
            "/admin/users",
            data={"csrf_token": TOKEN, "name": "ana", "password": PASSWORD, "admin": "true"},
        )
        assert added.status_code == 303
        assert client.get("/admin/users").status_code == 401  # accounts are on now
        sign_in(client, "ana")
        made = client.post(
            "/admin/users", data={"csrf_token": TOKEN, "name": "bo", "password": PASSWORD}
        )
        assert made.status_code == 303
        page = client.post(
            "/account/keys", data={"csrf_token": TOKEN, "scope": "predict", "label": "nb"}
        )
        assert page.status_code == 201
        key = re.search(r'id="new-key-value">(hsu_[\w-]+)<', page.text)
        assert key is not None
        listed = client.get("/account").text
        assert "nb" in listed and key.group(1) not in listed
        models = httpx.get(f"{live.url}/api/v1/models", headers={"X-API-Key": key.group(1)})
        assert models.status_code == 200
        key_id = re.search(r'action="/account/keys/([\w-]+)/revoke"', listed)
        assert key_id is not None
        client.post(f"/account/keys/{key_id.group(1)}/revoke", data={"csrf_token": TOKEN})
        gone = httpx.get(f"{live.url}/api/v1/models", headers={"X-API-Key": key.group(1)})
        assert gone.status_code == 401
        changed = client.post(
            "/account/password",
            data={"csrf_token": TOKEN, "old": PASSWORD, "new": "another good one"},
        )
        assert (changed.status_code, changed.headers["location"]) == (303, "/login")
        assert client.get("/account").status_code == 401
        sign_in(client, "bo")
        refused = client.get("/admin/users")
        assert refused.status_code == 403 and "only an admin manages users" in refused.text


def test_an_uploaded_files_result_is_its_uploaders(server: Running) -> None:
    """A scored file's result page and downloads answer only the person who uploaded it."""
    with browser(server) as vic, browser(server) as out:
        sign_in(vic, "vic")
        sign_in(out, "out")
        files = {"file": ("seqs.txt", ("ACGT" * 12 + "AC\n").encode())}
        done = vic.post("/models/gc/upload", data={"csrf_token": TOKEN}, files=files)
        assert done.status_code == 303
        job = done.headers["location"]
        assert vic.get(job).status_code == 200
        assert vic.get(job + "/results.csv").status_code == 200
        assert out.get(job).status_code == 404
        assert out.get(job + "/results.csv").status_code == 404


def test_a_user_added_by_another_process_closes_the_open_server_within_a_second(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'workspace.db'}"
    with running(tmp_path / "store", tmp_path, database_url=url) as live, browser(live) as client:
        assert client.get("/projects").status_code == 200  # the one-person workspace
        space = open_space(tmp_path, url)  # as `helixserve users add` would, from outside
        with space.db.session() as session:
            accounts.add_user(session, "ana", PASSWORD, admin=True)
        space.db.close()
        time.sleep(RECHECK_S + 0.2)
        assert client.get("/projects").status_code == 401
        api = httpx.get(f"{live.url}/api/v1/projects")
        assert api.status_code == 401


def test_a_server_process_that_has_not_swept_yet_still_closes_prediction(tmp_path: Path) -> None:
    """The first user made through another server process (``serve`` runs several): this one's
    predict route, the first route a script calls, asks for a key within a second too."""
    url = f"sqlite:///{tmp_path / 'workspace.db'}"
    publish_gc(ModelStore.open(str(tmp_path / "store")), "gc")
    with running(tmp_path / "store", tmp_path, database_url=url) as live:
        predict = f"{live.url}/api/v1/models/gc/predict"
        assert httpx.post(predict, json={"inputs": ["ACGT" * 12 + "AC"]}).status_code == 200
        space = open_space(tmp_path, url)
        with space.db.session() as session:
            accounts.add_user(session, "ana", PASSWORD, admin=True)
        space.db.close()
        time.sleep(RECHECK_S + 0.2)
        closed = httpx.post(predict, json={"inputs": ["ACGT" * 12 + "AC"]})
    assert closed.status_code == 401, closed.text
