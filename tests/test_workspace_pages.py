"""The workspace pages of a real server, read with httpx: every page renders, bad forms come back
with the exact message next to their field, a run of another project is 404, forms without the
CSRF token are refused, the live events replay and follow a run (two streams of it share one
feed), and block shapes are checked."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from helixserve.serving.app import HelixApp
from helixserve.serving.auth import hash_key
from helixserve.serving.routes import ui_workspace_runs
from helixserve.workspace import audit, runs
from helixserve.workspace.projects import get_project
from helixserve.workspace.space import Workspace
from tests.support.server import Running, running
from tests.support.training import (  # noqa: F401 (served_*: the server and space fixtures)
    served_server,
    served_space,
    served_workspace,
    train_simulated,
)

TOKEN = "workspace-pages-token-0123456789"
CSV = (
    "id,seq,label,score,part\n"
    + "".join(
        f"r{i},{'ACGT' * 5}{'ACGT'[i % 4] * 6},{'yes' if i % 3 else 'no'},{i / 10},"
        f"{'T' if i % 5 else 'V'}\n"
        for i in range(60)
    )
    + "bad,ACGTNNX,yes,1.0,T\n"
)


@pytest.fixture(scope="module")
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, cookies={"hs_csrf": TOKEN}, timeout=60) as c:
        yield c


def post(client: httpx.Client, url: str, **fields: Any) -> httpx.Response:
    return client.post(url, data={"csrf_token": TOKEN, **fields})


def text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def field_error(html: str, name: str) -> str:
    ident = re.escape(name.replace(".", "-"))
    found = re.search(rf'<p class="error" id="{ident}-error"[^>]*>(.*?)</p>', html, re.S)
    assert found, f"no error shown next to {name!r}"
    return unescape(found[1])


@pytest.fixture(scope="module")
def lab(client: httpx.Client) -> str:
    """Project ``lab`` with dataset ``small`` (one refused row), subsets train / val."""
    assert post(client, "/projects", name="lab", title="A lab").status_code == 303
    files = {"file": ("small.csv", CSV.encode())}
    made = client.post(
        "/projects/lab/datasets", data={"csrf_token": TOKEN, "name": "small"}, files=files
    )
    assert made.status_code == 303 and made.headers["location"] == "/projects/lab/datasets/small"
    for name, fields in (
        ("train", {"kind": "where", "column": "part", "op": "==", "value": "T"}),
        ("val", {"kind": "rest", "minus": "train"}),
    ):
        assert post(
            client, "/projects/lab/datasets/small/subsets", subset=name, **fields
        ).is_redirect
    return "lab"


def experiment_form(**changes: str) -> dict[str, str]:
    form = {
        "name": "first",
        "dataset": "small",
        "recipe": "dna-binary",
        "train_subset": "train",
        "val_subset": "val",
        "target": "label",
        "seed": "0",
        "params.length": "26",
        "params.epochs": "3",
        "network": "recipe",
    }
    return {**form, **changes}


@pytest.fixture(scope="module")
def finished(client: httpx.Client, space: Workspace, lab: str) -> str:
    """Experiment ``first`` with one finished run (a real bundle); its id."""
    made = post(client, "/projects/lab/experiments", **experiment_form())
    assert made.status_code == 303, text(made.text)
    queued = post(client, "/projects/lab/experiments/first/runs", engine="local")
    run_id = queued.headers["location"].rsplit("/", 1)[1]
    return train_simulated(space).id if run_id else ""


def test_every_page_renders(client: httpx.Client, finished: str) -> None:
    pages = {
        "/projects": ["lab", "A lab"],
        "/projects/lab": ["small", "first", "finished"],
        "/projects/lab/datasets/small": ["60 good rows", "1 refused", "part == 'T'", "train"],
        "/projects/lab/experiments/new": ["Hyper-parameters of dna-regression", "Block stack"],
        "/projects/lab/experiments/new?clone=first": ["first-2", "cloned settings"],
        "/projects/lab/experiments/first": ["#1", "dna-binary", "length=26"],
        f"/projects/lab/runs/{finished}": ["Evaluation on the test rows", "Deploy", "epoch 4"],
        f"/projects/lab/compare?run={finished}": ["Test metrics", "Loss curves", "params.length"],
    }
    for url, expected in pages.items():
        page = client.get(url)
        assert page.status_code == 200, (url, text(page.text)[:300])
        shown = text(page.text)
        for words in expected:
            assert words in shown or words in page.text, (url, words)
    dataset = client.get("/projects/lab/datasets/small").text
    assert 'data-subset="train">48<' in dataset and 'data-subset="val">12<' in dataset
    assert "Workspace</a>" in client.get("/").text


def test_the_refused_row_and_the_roles_are_shown_and_corrected(
    client: httpx.Client, lab: str
) -> None:
    page = client.get("/projects/lab/datasets/small").text
    report = re.search(r'<table class="report ws" id="refused-rows">.*?</table>', page, re.S)
    assert report and "61" in report[0] and "bad" in report[0]
    assert re.search(r'name="role.part" data-detected="split">', page)
    version = re.search(r'name="version" value="([0-9a-f]{64})"', page)
    assert version
    changed = post(
        client,
        "/projects/lab/datasets/small/roles",
        version=version[1],
        **{"role.part": "category"},
    )
    assert changed.status_code == 303
    again = client.get("/projects/lab/datasets/small").text
    assert re.search(r'<option value="category" selected>category</option>', again)
    post(client, "/projects/lab/datasets/small/roles", version=version[1], **{"role.part": "split"})


def test_bad_forms_show_the_exact_message_next_to_the_field(client: httpx.Client, lab: str) -> None:
    bad_name = post(client, "/projects", name="no spaces")
    assert bad_name.status_code == 400
    assert field_error(bad_name.text, "name").startswith("project name 'no spaces' is not allowed")
    taken = post(client, "/projects", name="lab")
    assert taken.status_code == 409
    assert (
        field_error(taken.text, "name")
        == "a project named 'lab' already exists; choose another name."
    )
    fraction = post(
        client,
        "/projects/lab/datasets/small/subsets",
        subset="most",
        kind="fraction",
        fraction="1.5",
    )
    assert fraction.status_code == 422
    assert field_error(fraction.text, "fraction") == (
        "subset 'most' is not valid: fraction: fraction must lie strictly between 0 and 1 (0.8 "
        "is 80% of the rows), got 1.5."
    )
    epochs = post(client, "/projects/lab/experiments", **experiment_form(**{"params.epochs": "0"}))
    assert epochs.status_code == 422
    assert field_error(epochs.text, "params.epochs") == (
        "The 'epochs' parameter of dna-binary must be an int in the range [1, 1000000]. "
        "Got 0 instead."
    )
    stack = '[{"type": "conv1d", "filters": 8, "kernel": 5}, {"type": "dense", "units": 1}]'
    blocks = post(
        client, "/projects/lab/experiments", **experiment_form(network="blocks", blocks=stack)
    )
    assert blocks.status_code == 422
    assert field_error(blocks.text, "blocks").startswith("block 2 (dense): needs a flat input")
    target = post(client, "/projects/lab/experiments", **experiment_form(name="t", target="nope"))
    assert target.status_code == 422
    assert field_error(target.text, "target") == (
        "the dataset has no column 'nope'; its columns are: id, seq, label, score, part."
    )
    form = experiment_form(name="p", positive="maybe")
    positive = post(client, "/projects/lab/experiments", **form)
    assert positive.status_code == 422
    assert field_error(positive.text, "positive") == (
        "positive=maybe names no class of the target; its two classes are 'no' and 'yes'. "
        "Name one of them."
    )


def test_a_subset_is_deleted_from_the_page_and_the_api(client: httpx.Client, lab: str) -> None:
    base = "/projects/lab/datasets/small"
    for name in ("doomed", "gone"):
        made = post(client, f"{base}/subsets", subset=name, kind="all")
        assert made.status_code == 303, made.text
    deleted = post(client, f"{base}/subsets/doomed/delete")
    assert (deleted.status_code, deleted.headers["location"]) == (303, f"{base}#subsets")
    page = client.get(base).text
    assert 'data-subset="doomed"' not in page and 'aria-label="Delete subset train"' in page
    refused = post(client, f"{base}/subsets/nope/delete")
    assert refused.status_code == 404
    shown = re.search(r'id="delete-error">([^<]*)<', refused.text)
    assert shown is not None and shown.group(1) == (
        "dataset &#39;small&#39; has no subset named &#39;nope&#39;; its subsets: gone, train, val."
    )
    api = client.delete(f"/api/v1{base}/subsets/gone")
    assert api.status_code == 200, api.text
    assert [s["name"] for s in api.json()["subsets"]] == ["train", "val"]
    assert client.delete(f"/api/v1{base}/subsets/gone").status_code == 404


def test_a_run_of_another_project_is_404(client: httpx.Client, finished: str) -> None:
    assert post(client, "/projects", name="other").status_code == 303
    for url in (
        f"/projects/other/runs/{finished}",
        f"/api/v1/projects/other/runs/{finished}/events",
        "/projects/other/runs/nope",
        "/projects/ghost",
    ):
        assert client.get(url).status_code == 404, url
    assert post(client, f"/projects/other/runs/{finished}/stop").status_code == 404
    refused = client.get(f"/api/v1/projects/other/runs/{finished}/events")
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == f"project 'other' has no run {finished!r}."


def test_forms_without_the_csrf_token_are_refused(client: httpx.Client, lab: str) -> None:
    for url in ("/projects", "/projects/lab/archive", "/projects/lab/experiments/first/runs"):
        refused = client.post(url, data={"name": "sneaky"})
        assert refused.status_code == 403, url
        assert "security token does not match" in text(refused.text)
    forged = client.post("/projects", data={"name": "sneaky", "csrf_token": "x" * 32})
    assert forged.status_code == 403


def test_a_queued_run_says_whether_a_worker_can_train(
    client: httpx.Client, finished: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = post(client, "/projects/lab/experiments/first/runs", engine="ray")
    url = queued.headers["location"]
    assert "Queued: waiting for a worker" in text(client.get(url).text)
    monkeypatch.setattr(ui_workspace_runs, "worker_can_train", lambda: False)
    shown = text(client.get(url).text)
    assert "No worker can train here: PyTorch is not installed" in shown
    assert "pip install 'helixserve[train]' then helixserve worker" in shown
    assert post(client, url + "/stop").status_code == 303
    assert "stopped" in text(client.get(url).text)


def events(lines: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, id, data) of each complete server-sent event in ``lines``."""
    out, kind, ident, data = [], "", "", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and kind:
            out.append((kind, ident, json.loads(data)))
            kind = ""
    return out


def test_live_events_replay_follow_and_end(
    client: httpx.Client, space: Workspace, finished: str
) -> None:
    queued = post(client, "/projects/lab/experiments/first/runs", engine="local")
    run_id = queued.headers["location"].rsplit("/", 1)[1]
    url = f"/api/v1/projects/lab/runs/{run_id}/events"
    trainer = threading.Thread(target=train_simulated, args=(space,), kwargs={"pause_s": 0.3})
    started = time.monotonic()
    trainer.start()
    with client.stream("GET", url) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        seen = events(list(stream.iter_lines()))
    trainer.join()
    assert time.monotonic() - started < 10
    kinds = [k for k, _, _ in seen]
    assert kinds.count("epoch") == 4 and kinds[-1] == "status"
    assert seen[-1][2]["status"] == "finished" and seen[-1][2]["best_epoch"] == 3
    epochs = [d for k, _, d in seen if k == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert set(epochs[0]) == {"epoch", "train_loss", "val_loss", "metrics", "at"}
    last_id = seen[-1][1]
    assert re.fullmatch(r"4-\d+", last_id)
    resumed = client.get(url, headers={"Last-Event-ID": "2-1"})
    again = events(resumed.text.splitlines())
    assert [d["epoch"] for k, _, d in again if k == "epoch"] == [3, 4]
    assert next(d["seq"] for k, _, d in again if k == "log") == 2
    assert again[-1][0] == "status"


def test_streams_of_one_run_share_its_feed_and_are_checked_one_by_one(
    client: httpx.Client, server: Running, space: Workspace, finished: str
) -> None:
    assert post(client, "/projects", name="watchers").status_code == 303
    queued = post(client, "/projects/lab/experiments/first/runs", engine="local")
    run_id = queued.headers["location"].rsplit("/", 1)[1]
    url = f"/api/v1/projects/lab/runs/{run_id}/events"
    seen: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}

    def watch(name: str) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as own, own.stream("GET", url) as got:
            seen[name] = events(list(got.iter_lines()))

    readers = [threading.Thread(target=watch, args=(name,)) for name in "ab"]
    for reader in readers:
        reader.start()
    feeds = cast(HelixApp, server.app).server.live.feeds
    while ("lab", run_id) not in feeds or len(feeds["lab", run_id].queues) < 2:
        time.sleep(0.01)
    other = client.get(f"/api/v1/projects/watchers/runs/{run_id}/events")
    assert other.status_code == 404
    assert other.json()["detail"] == f"project 'watchers' has no run {run_id!r}."
    train_simulated(space, pause_s=0.05)
    for reader in readers:
        reader.join()
    assert seen["a"] == seen["b"]
    assert [d["epoch"] for k, _, d in seen["a"] if k == "epoch"] == [1, 2, 3, 4]
    assert seen["a"][-1][2]["status"] == "finished"
    assert ("lab", run_id) not in feeds


def test_block_shapes_are_checked(client: httpx.Client) -> None:
    from helixserve.serving.workspace_pages import preset_blocks

    blocks = preset_blocks("dna-regression", {})
    answer = client.post(
        "/api/v1/blocks/shapes", json={"recipe": "dna-regression", "blocks": blocks}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["input"] == "4 x 70"
    shapes = [b["shape"] for b in body["blocks"]]
    assert shapes[0] == "128 x 58" and "4352" in shapes and shapes[-1] == "1"
    assert body["total_parameters"] == sum(b["parameters"] for b in body["blocks"])
    broken = client.post(
        "/api/v1/blocks/shapes",
        json={"recipe": "dna-regression", "blocks": [blocks[0], {"type": "dense", "units": 1}]},
    )
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("block 2 (dense): needs a flat input")
    params = client.post(
        "/api/v1/blocks/shapes",
        json={"recipe": "dna-regression", "params": {"flank": -1}, "blocks": blocks},
    )
    assert (
        params.status_code == 422
        and "'flank' parameter of dna-regression" in params.json()["detail"]
    )


def test_compare_clone_continue_and_deploy(
    client: httpx.Client, space: Workspace, finished: str
) -> None:
    second = post(
        client,
        "/projects/lab/experiments",
        **experiment_form(name="second", **{"params.filters": "32"}),
    )
    assert second.status_code == 303
    post(client, "/projects/lab/experiments/second/runs", engine="local")
    other = train_simulated(space, scale=2.0).id
    compared = client.get(f"/projects/lab/compare?run={finished}&run={other}").text
    rows = re.findall(r'<tr class="differs"><th scope="row">([^<]+)', compared)
    assert [r.strip() for r in rows] == ["params.filters"]
    assert compared.count("<polyline") >= 4  # both runs' train and validation curves
    continued = post(client, f"/projects/lab/runs/{finished}/continue")
    new_id = continued.headers["location"].rsplit("/", 1)[1]
    with space.db.session() as session:
        assert runs.get_run(session, new_id).init_from_run == finished
    assert f"the weights of run {finished}" in text(client.get(continued.headers["location"]).text)
    bad = post(client, f"/projects/lab/runs/{finished}/deploy", model="no spaces", alias="")
    assert bad.status_code == 400 and "model name 'no spaces' is not allowed" in field_error(
        bad.text, "model"
    )
    deployed = post(
        client, f"/projects/lab/runs/{finished}/deploy", model="lab-utr", alias="production"
    )
    assert deployed.status_code == 303
    page = text(client.get(f"/projects/lab/runs/{finished}").text)
    assert "Deployed as lab-utr@1" in page
    assert "/api/v1/models/lab-utr/predict?version=1" in page
    assert "/v2/models/lab-utr/versions/1/infer" in page and "tritonclient.grpc" in page
    served = client.post("/api/v1/models/lab-utr/predict", json={"inputs": ["ACGT" * 12 + "AC"]})
    assert served.status_code == 200 and "value" in served.json()["predictions"][0]
    assert "lab-utr@1" in text(client.get("/projects/lab").text)
    with space.db.session() as session:  # what the pages did, in the audit log, newest first
        project = get_project(session, "lab")
        done = [(e.actor, e.action) for e in audit.events(session, project.id)][:4]
    assert done == [
        ("local", "run.deploy"),
        ("local", "run.start"),  # the clone that continues
        ("local", "run.start"),
        ("local", "experiment.create"),
    ]


def test_projects_are_archived_and_restored(client: httpx.Client) -> None:
    assert post(client, "/projects", name="old").status_code == 303
    assert post(client, "/projects/old/archive", archived="true").status_code == 303
    assert '/projects/old"' not in client.get("/projects").text
    assert 'href="/projects/old"' in client.get("/projects?archived=1").text
    assert post(client, "/projects/old/archive", archived="false").status_code == 303
    renamed = post(client, "/projects/old/rename", name="older")
    assert renamed.headers["location"] == "/projects/older"


def test_a_block_stack_without_javascript(client: httpx.Client, lab: str) -> None:
    """The wizard's textarea holds the preset; posted as it is, it makes a block experiment."""
    query = "dataset=small&recipe=dna-binary&params.length=26"
    wizard = client.get(f"/projects/lab/experiments/new?{query}").text
    area = re.search(r'<textarea id="blocks"[^>]*>(.*?)</textarea>', wizard, re.S)
    assert area
    preset = unescape(area[1])
    assert json.loads(preset)[0] == {
        "type": "conv1d",
        "filters": 64,
        "kernel": 12,
        "stride": 1,
        "padding": 0,
    }
    assert re.search(r'<td class="shape">64 x 15</td>', wizard)  # 26 nt, kernel 12
    form = experiment_form(name="blocky", network="blocks", blocks=preset)
    made = post(client, "/projects/lab/experiments", **form)
    assert made.status_code == 303, field_error(made.text, "blocks")
    shown = client.get("/projects/lab/experiments/blocky").text
    assert re.search(r'<td class="shape">64 x 15</td>', shown)


def test_with_api_keys_the_pages_and_events_need_one(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    keys = [
        f"predict:{hash_key('predict-key-0123456789')}",
        f"admin:{hash_key('workspace-key-0123456789')}",
    ]
    with (
        running(tmp_path / "store", tmp_path, access_log=False, api_keys=keys) as keyed,
        httpx.Client(base_url=keyed.url, timeout=30) as c,
    ):
        assert c.get("/projects").status_code == 401
        events_reply = c.get("/api/v1/projects/lab/runs/x/events")
        assert events_reply.status_code == 401
        assert events_reply.headers["content-type"].startswith("application/problem+json")
        predict_only = {"X-API-Key": "predict-key-0123456789"}
        refused = c.get("/api/v1/projects/lab/runs/x/events", headers=predict_only)
        assert refused.status_code == 403  # the workspace needs the admin scope, as its REST API
        headers = {"X-API-Key": "workspace-key-0123456789"}
        assert c.get("/api/v1/projects/lab/runs/x/events", headers=headers).status_code == 404
