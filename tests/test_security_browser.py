"""Two people in two real browsers (Debian's Chromium, Playwright) on one server with accounts
on (issue 17): the owner signs in and shares project ``lab`` with a colleague as viewer from the
project page; the viewer then sees the project, predicts with its deployed model, and is refused
(403, naming the role) when running the experiment or deploying; a third project stays invisible.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from helixserve.workspace import accounts, runs
from helixserve.workspace.members import share
from helixserve.workspace.models import Deployment, Role
from helixserve.workspace.projects import create_project, get_project
from tests.support.chromium import launch_browser  # noqa: F401 (the browser fixture)
from tests.support.server import Running, publish_gc, running
from tests.support.worker_runs import add_dataset, open_space, queue

PASSWORD = "correct horse battery"
SEQ = "ACGT" * 12 + "AC"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Project ``lab`` (a dataset, experiment ``e1`` with a queued run, model ``labmodel``
    deployed from it) owned by olga; vic has no role in it; ``secret`` is olga's other project."""
    tmp = tmp_path_factory.mktemp("two-people")
    url = f"sqlite:///{tmp / 'workspace.db'}"
    space = open_space(tmp, url)
    add_dataset(space)
    run_id = queue(space)
    publish_gc(space.models, "labmodel")
    with space.db.session() as session:
        lab = get_project(session, "lab")
        session.add(Deployment(run_id=run_id, project_id=lab.id, model="labmodel", version=1))
        create_project(session, "secret")
        accounts.add_user(session, "olga", PASSWORD)
        accounts.add_user(session, "vic", PASSWORD)
        for project in ("lab", "secret"):
            share(session, project, "olga", Role.OWNER)
        assert runs.get_run(session, run_id).status.value == "queued"
    space.db.close()
    with running(tmp / "store", tmp, database_url=url) as live:
        yield live


def signed_in(browser: Browser, server: Running, user: str) -> Page:
    page = browser.new_context(base_url=server.url).new_page()
    page.goto("/projects")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in-as")).to_have_text(user)
    return page


def test_an_owner_shares_with_a_viewer_who_may_predict_but_not_run_or_deploy(
    browser: Browser, server: Running, tmp_path: Path
) -> None:
    olga = signed_in(browser, server, "olga")
    vic = signed_in(browser, server, "vic")
    expect(vic.locator("main")).not_to_contain_text("lab")
    hidden = vic.goto("/projects/lab")
    assert hidden is not None and hidden.status == 404
    unseen = vic.goto("/compare?m=labmodel@1")  # another project's model: not served, to vic
    assert unseen is not None and unseen.status == 404
    expect(vic.locator("main")).to_contain_text("no model named 'labmodel' is served.")

    olga.goto("/projects/lab")
    olga.get_by_label("User", exact=True).fill("vic")
    olga.get_by_label("Role").select_option("viewer")
    olga.get_by_role("button", name="Share").click()
    expect(olga.locator("#member-list")).to_contain_text("vic")
    olga.screenshot(path=str(tmp_path / "shared.png"))

    vic.goto("/projects")
    expect(vic.locator("main")).to_contain_text("lab")
    expect(vic.locator("main")).not_to_contain_text("secret")
    vic.goto("/compare")
    expect(vic.locator("main")).to_contain_text("labmodel")
    vic.goto("/models/labmodel/predict")
    vic.locator("#sequence").fill(SEQ)
    vic.get_by_role("button", name="Classify").click()
    expect(vic.locator("#result")).to_contain_text("with probability")

    vic.goto("/projects/lab/experiments/e1")
    with vic.expect_response(lambda r: r.request.method == "POST") as posted:
        vic.get_by_role("button", name="Run", exact=True).click()
    assert posted.value.status == 403
    expect(vic.locator("main")).to_contain_text(
        "vic is a viewer of project 'lab'; this needs editor"
    )
    token = next(c["value"] for c in vic.context.cookies() if c["name"] == "hs_csrf")
    refused = vic.request.post(  # the deploy form's post, with this browser's own CSRF token
        f"{server.url}/projects/lab/runs/x/deploy",
        form={"model": "mine", "alias": "staging", "csrf_token": token},
    )
    assert refused.status == 403
    assert "vic is a viewer of project &#39;lab&#39;; this needs editor" in refused.text()
