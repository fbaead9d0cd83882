"""Nobody reaches a project they are not a member of (issue 17), on every workspace route of the
route table (parametrised from :data:`helixserve.serving.routes.ROUTERS`, never hand-listed),
against a real server with accounts on: an anonymous caller and a revoked key get 401, a
``predict`` service key 403, a non-member 404 worded as for a project that does not exist, a
member below the route's role 403 naming both roles; none of those answers carries project data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from fastapi.routing import APIRoute
from tritonclient.utils import InferenceServerException

from helixserve.inputs.sequence import SequenceSchema
from helixserve.serving import route_roles
from helixserve.serving.access import SIGN_IN, needed_role
from helixserve.serving.auth import new_key
from helixserve.serving.deps import caller, project_caller
from helixserve.serving.routes import ROUTERS
from helixserve.serving.routes.live import live_access
from helixserve.store import OutputSchema
from helixserve.store.bundle import make_manifest
from helixserve.store.manifest import Lineage
from helixserve.workspace import accounts
from helixserve.workspace.keys import create_key, revoke_key
from helixserve.workspace.members import share
from helixserve.workspace.models import Deployment, Role
from helixserve.workspace.projects import create_project, get_project
from tests.support.onnx_models import gc_binary_model
from tests.support.server import publish_gc, running
from tests.support.worker_runs import add_dataset, open_space, queue

PASSWORD = "correct horse battery"
GUARDS = (caller, project_caller, live_access)
PARAMS = {
    "dataset": "d",
    "subset": "s",
    "version": "v",
    "experiment": "e",
    "run": "r",
    "run_id": "r",
    "user": "u",
    "key_id": "k",
}
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def workspace_routes() -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every route behind a workspace guard."""
    found = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            calls = {d.call for d in route.dependant.dependencies}
            calls |= {d.call for sub in route.dependant.dependencies for d in sub.dependencies}
            if calls & set(GUARDS):
                found += [(method, route.path, route) for method in sorted(route.methods or ())]
    return found


ROUTES = workspace_routes()
IDS = [f"{method} {path}" for method, path, _ in ROUTES]


@dataclass
class Lab:
    url: str
    keys: dict[str, str]  # who -> their key
    grpc: str = ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A server with accounts on: project ``lab`` with an owner, an editor and a viewer, an
    outsider with a project of their own, a revoked key and a predict service key."""
    tmp = tmp_path_factory.mktemp("security")
    url = f"sqlite:///{tmp / 'workspace.db'}"
    space = open_space(tmp, url)
    add_dataset(space)  # project lab, dataset dna
    run_id = queue(space)
    publish_gc(space.models, "labmodel")
    publish_gc(space.models, "shared")  # of no project: every caller may use it
    database = space.db
    keys: dict[str, str] = {}
    with database.session() as session:
        lab = get_project(session, "lab")
        session.add(Deployment(run_id=run_id, project_id=lab.id, model="labmodel", version=1))
        create_project(session, "mine")
        for name, role in (("olga", Role.OWNER), ("ed", Role.EDITOR), ("vic", Role.VIEWER)):
            user = accounts.add_user(session, name, PASSWORD)
            share(session, "lab", name, role)
            keys[name] = create_key(session, user, "admin")[0]  # capped by the role only
        outsider = accounts.add_user(session, "out", PASSWORD)
        share(session, "mine", "out", Role.OWNER)
        keys["out"] = create_key(session, outsider, "admin")[0]
        keys["revoked"], row = create_key(session, outsider, "write")
        revoke_key(session, outsider, row.id)
    database.close()
    keys["service"], entry = new_key("predict")
    with running(tmp / "store", tmp, database_url=url, api_keys=[entry]) as server:
        yield Lab(server.url, keys, server.grpc)


def path_of(route_path: str, project: str = "lab") -> str:
    return route_path.format(project=project, **PARAMS)


def ask(lab: Lab, method: str, path: str, who: str | None) -> httpx.Response:
    headers = {} if who is None else {"Authorization": f"Bearer {lab.keys[who]}"}
    return httpx.request(method, lab.url + path, headers=headers, timeout=30)


def refusal(answer: httpx.Response, status: int) -> str:
    """A refusal with ``status``: problem+json with nothing but the problem; its detail."""
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) <= PROBLEM_KEYS, body
    detail: str = body["detail"]
    return detail


@pytest.mark.parametrize(("method", "path", "route"), ROUTES, ids=IDS)
def test_anonymous_and_revoked_keys_get_401(lab: Lab, method: str, path: str, route: Any) -> None:
    for who in (None, "revoked"):
        detail = refusal(ask(lab, method, path_of(path), who), 401)
        assert detail == (
            "this route needs you to sign in, or an API key: send it as 'Authorization: Bearer "
            "<key>' or 'X-API-Key: <key>'."
            if who is None
            else "the API key is not valid; check it, or ask for a new one."
        )


@pytest.mark.parametrize(("method", "path", "route"), ROUTES, ids=IDS)
def test_a_predict_service_key_gets_403(lab: Lab, method: str, path: str, route: Any) -> None:
    detail = refusal(ask(lab, method, path_of(path), "service"), 403)
    assert detail == (
        "this route needs an API key with the 'admin' scope; this key has only 'predict'."
    )


PROJECT_ROUTES = [(m, p, r) for m, p, r in ROUTES if "{project}" in p]
PROJECT_IDS = [f"{m} {p}" for m, p, _ in PROJECT_ROUTES]


@pytest.mark.parametrize(("method", "path", "route"), PROJECT_ROUTES, ids=PROJECT_IDS)
def test_a_non_member_cannot_tell_the_project_exists(
    lab: Lab, method: str, path: str, route: Any
) -> None:
    here = refusal(ask(lab, method, path_of(path), "out"), 404)
    nowhere = refusal(ask(lab, method, path_of(path, "no-such-project"), "out"), 404)
    assert (here, nowhere) == ("no project named 'lab'.", "no project named 'no-such-project'.")


@pytest.mark.parametrize(("method", "path", "route"), PROJECT_ROUTES, ids=PROJECT_IDS)
def test_a_member_below_the_routes_role_gets_403(
    lab: Lab, method: str, path: str, route: APIRoute
) -> None:
    needed = needed_role(route)
    below = {Role.VIEWER: [], Role.EDITOR: ["vic"], Role.OWNER: ["vic", "ed"]}[needed]
    roles = {"vic": "a viewer", "ed": "an editor"}
    for who in below:
        assert refusal(ask(lab, method, path_of(path), who), 403) == (
            f"{who} (key) is {roles[who]} of project 'lab'; this needs {needed.value} (a "
            "project owner can change your role)."
        )
    allowed = ask(lab, method, path_of(path), "olga")
    assert allowed.status_code not in (401, 403), allowed.text


def test_project_lists_show_only_the_callers_projects(lab: Lab) -> None:
    listed = {
        who: [p["name"] for p in ask(lab, "GET", "/api/v1/projects", who).json()["projects"]]
        for who in ("olga", "vic", "out")
    }
    assert listed == {"olga": ["lab"], "vic": ["lab"], "out": ["mine"]}


def test_a_user_who_creates_a_project_owns_it(lab: Lab) -> None:
    made = httpx.post(
        lab.url + "/api/v1/projects",
        json={"name": "eds"},
        headers={"Authorization": f"Bearer {lab.keys['ed']}"},
    )
    assert made.status_code == 201, made.text
    renamed = httpx.patch(
        lab.url + "/api/v1/projects/eds",
        json={"archived": False},
        headers={"Authorization": f"Bearer {lab.keys['ed']}"},
    )
    assert renamed.status_code == 200, renamed.text
    assert refusal(ask(lab, "GET", "/api/v1/projects/eds", "vic"), 404) == (
        "no project named 'eds'."
    )


def test_the_route_table_declares_owner_routes(tmp_path: Path) -> None:
    """Renaming or archiving a project needs its owner; reading a viewer; changing an editor."""
    roles = {f"{m} {p}": needed_role(r).value for m, p, r in PROJECT_ROUTES}
    assert roles["PATCH /api/v1/projects/{project}"] == "owner"
    assert roles["GET /api/v1/projects/{project}"] == "viewer"
    assert roles["POST /api/v1/projects/{project}/datasets"] == "editor"


def as_user(lab: Lab, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {lab.keys[who]}"}


def test_an_owner_shares_and_a_member_manages_their_keys(lab: Lab) -> None:
    base = lab.url + "/api/v1"
    shared = httpx.put(
        f"{base}/projects/lab/members/out", json={"role": "viewer"}, headers=as_user(lab, "olga")
    )
    assert shared.status_code == 200, shared.text
    assert {"user": "out", "role": "viewer"} in shared.json()["members"]
    assert httpx.get(f"{base}/projects/lab", headers=as_user(lab, "out")).status_code == 200
    me = httpx.get(f"{base}/me", headers=as_user(lab, "out")).json()
    assert me == {
        "name": "out",
        "admin": False,
        "kind": "user",
        "projects": {"lab": "viewer", "mine": "owner"},
    }
    made = httpx.post(
        f"{base}/me/keys",
        json={"scope": "predict", "label": "nb", "project": "lab"},
        headers=as_user(lab, "out"),
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    listed = httpx.get(f"{base}/me/keys", headers=as_user(lab, "out")).json()["keys"]
    assert key not in str(listed) and made.json()["id"] in {k["id"] for k in listed}
    by_key = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{base}/projects/lab", headers=by_key).status_code == 200
    assert (
        httpx.get(f"{base}/projects/mine", headers=by_key).status_code == 404
    )  # key's project only
    weaker = httpx.post(f"{base}/me/keys", json={"scope": "admin"}, headers=by_key)
    assert refusal(weaker, 403) == "a key with the 'predict' scope cannot manage keys or passwords."
    gone = httpx.delete(f"{base}/me/keys/{made.json()['id']}", headers=as_user(lab, "out"))
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    assert refusal(httpx.get(f"{base}/projects/lab", headers=by_key), 401) == (
        "the API key is not valid; check it, or ask for a new one."
    )
    left = httpx.delete(f"{base}/projects/lab/members/out", headers=as_user(lab, "olga"))
    assert [m["user"] for m in left.json()["members"]] == ["olga", "ed", "vic"]
    events = httpx.get(f"{base}/projects/lab/audit?format=csv", headers=as_user(lab, "olga"))
    assert events.headers["content-type"].startswith("text/csv")
    lines = events.text.splitlines()
    assert lines[0] == "id,at,actor,action,project_id,target,details,address"
    actions = [line.split(",")[2:4] for line in lines[1:4]]
    assert actions == [
        ["olga (key)", "member.unshare"],
        ["out (key)", "key.revoke"],
        ["out (key)", "key.create"],
    ]
    assert key not in events.text


SEQ = "ACGT" * 12 + "AC"


def test_a_projects_model_is_for_its_members(lab: Lab) -> None:
    """Members and service keys predict with the project's model; to anyone else it does not
    exist (the listing leaves it out, the answer names no other model); a model of no project is
    every caller's."""
    base = lab.url + "/api/v1/models"
    body = {"inputs": [SEQ]}
    for who in ("vic", "service"):
        answer = httpx.post(f"{base}/labmodel/predict", json=body, headers=as_user(lab, who))
        assert answer.status_code == 200, (who, answer.text)
    for path in ("/labmodel/predict", "/labmodel"):
        method = "POST" if path.endswith("predict") else "GET"
        hidden = httpx.request(method, base + path, json=body, headers=as_user(lab, "out"))
        assert refusal(hidden, 404) == "no model named 'labmodel' is served."
    assert (
        httpx.post(f"{base}/shared/predict", json=body, headers=as_user(lab, "out")).status_code
        == 200
    )
    names = {
        who: sorted(m["name"] for m in httpx.get(base, headers=as_user(lab, who)).json()["models"])
        for who in ("vic", "out")
    }
    assert names == {"vic": ["labmodel", "shared"], "out": ["shared"]}
    assert refusal(httpx.post(f"{base}/shared/predict", json=body), 401).startswith(
        "this route needs you to sign in, or an API key"
    )


def grpc_user(lab: Lab, who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {lab.keys[who]}"}  # gRPC metadata names are lower case


def test_grpc_takes_users_keys_and_the_same_rule(lab: Lab) -> None:
    """gRPC (tritonclient): a member's key infers with the project's model; to an outsider the
    model does not exist; no key is UNAUTHENTICATED."""
    client = tgrpc.InferenceServerClient(lab.grpc)
    tensor = tgrpc.InferInput("sequence", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([SEQ.encode()], dtype=object))
    answer = client.infer("labmodel", [tensor], headers=grpc_user(lab, "vic"))
    assert answer.as_numpy("probabilities").shape == (1, 2)
    cases = [
        (grpc_user(lab, "out"), "StatusCode.NOT_FOUND", "no model named 'labmodel' is served."),
        ({}, "StatusCode.UNAUTHENTICATED", SIGN_IN),
    ]
    for headers, status, message in cases:
        for call in (
            lambda h=headers: client.infer("labmodel", [tensor], headers=h),
            lambda h=headers: client.get_model_metadata("labmodel", headers=h),
        ):
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert (caught.value.status(), caught.value.message()) == (status, message)


def test_the_docs_route_table_is_the_route_table() -> None:
    """docs/security.md's "Every route and who may call it" is what the routes declare now."""
    doc = (Path(__file__).parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    section = doc.split("## Every route and who may call it", 1)[1].split("\n## ", 1)[0]
    assert route_roles.markdown() in section
    every = {(m, p) for m, p, _ in route_roles.rows()}
    assert {(m, p) for m, p, _ in ROUTES} <= every and len(every) == len(route_roles.rows())


def test_changes_are_in_the_audit_log_with_who_made_them(lab: Lab) -> None:
    base = lab.url + "/api/v1/projects/lab"
    ed = as_user(lab, "ed")
    assert httpx.post(f"{base}/datasets", json={"name": "tiny"}, headers=ed).status_code == 201
    csv_text = "id,sequence,label\n" + "".join(f"s{i},{'ACGT' * 5},{i % 2}\n" for i in range(8))
    uploaded = httpx.post(
        f"{base}/datasets/tiny/versions?filename=tiny.csv", content=csv_text, headers=ed
    )
    assert uploaded.status_code == 201, uploaded.text
    spec = {"kind": "fraction", "fraction": 0.5, "seed": 0}
    made = httpx.post(
        f"{base}/datasets/tiny/subsets", json={"name": "half", "spec": spec}, headers=ed
    )
    assert made.status_code == 201, made.text
    events = httpx.get(f"{base}/audit", headers=as_user(lab, "olga")).json()["events"]
    mine = [(e["actor"], e["action"], e["target"], e["details"]) for e in events[:2]]
    assert mine == [
        ("ed (key)", "subset.create", "subset tiny/half", {}),
        ("ed (key)", "dataset.upload", f"dataset tiny@{uploaded.json()['id'][:12]}", {"rows": 8}),
    ]


def test_a_model_is_its_projects_before_the_deployment_is_read(tmp_path: Path) -> None:
    """Another process deployed it: the bundle is in the store, this server has not read the
    deployment row (there is none here), yet the lineage's project keeps it for the members."""
    space = open_space(tmp_path, f"sqlite:///{tmp_path / 'workspace.db'}")
    keys: dict[str, str] = {}
    with space.db.session() as session:
        lab = create_project(session, "lab")
        for name in ("vic", "out"):
            keys[name] = create_key(session, accounts.add_user(session, name, PASSWORD), "predict")[
                0
            ]
        share(session, "lab", "vic", Role.VIEWER)
    files = {"model.onnx": gc_binary_model(50), "card.md": b"# deployed elsewhere\n"}
    lineage = Lineage(how="trained", source="workspace run r1", details={"project_id": lab.id})
    manifest = make_manifest(
        files,
        name="fresh",
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
        lineage=lineage,
    )
    space.models.publish(manifest, files)
    space.db.close()
    with running(tmp_path / "store", tmp_path) as server:
        url = server.url + "/api/v1/models/fresh/predict"
        answers = {
            who: httpx.post(url, json={"inputs": [SEQ]}, headers={"Authorization": f"Bearer {key}"})
            for who, key in keys.items()
        }
    assert answers["vic"].status_code == 200, answers["vic"].text
    assert refusal(answers["out"], 404) == "no model named 'fresh' is served."
