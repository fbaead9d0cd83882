"""The yeast-UTR tutorial in the workspace, in a real browser (Debian's Chromium, Playwright) on a
real server: new project -> upload Native_UTRs.csv.gz -> check the roles -> subsets -> experiment
with the Cuperus block preset (shapes shown as edited) -> Run -> live curve points while it
trains -> a second run with other hyper-parameters -> compare -> clone and continue -> deploy ->
predict through the REST API (httpx, and the page's own curl command).

Training is the real worker (``helixserve worker --once`` in its own process, on the server's
workspace): the Cuperus CNN on the tutorial's 5,368 training UTRs, 3 epochs a run. Each epoch's
point must reach the browser within a second of the worker recording the epoch's end.
Set ``HELIXSERVE_SCREENSHOTS=docs/images`` to refresh the ``workspace-*.png`` screenshots.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from helixserve.workspace import runs
from helixserve.workspace.space import Workspace
from tests.support.chromium import (  # launch_browser: the browser fixture
    checked_page,
    launch_browser,  # noqa: F401
    shot,
)
from tests.support.server import Running
from tests.support.training import (  # noqa: F401 (served_*: the server and space fixtures)
    served_server,
    served_space,
    served_workspace,
    worker_once,
)

P = "/projects/yeast"
LIVE_WITHIN_S = 1.0
EPOCHS = 3


@pytest.fixture
def page(browser: Browser, server: Running) -> Iterator[Page]:
    with checked_page(browser, server.url, width=1280) as tab:
        tab.set_default_timeout(20_000)
        yield tab


def add_subset(page: Page, name: str, kind: str, **fields: str) -> None:
    form = page.locator("#subset-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Rows", exact=True).select_option(kind)
    for label, value in fields.items():
        control = form.locator(f"[name={label}]:not([disabled])")
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value.split(","))
        else:
            control.fill(value)
    expect(page.locator("#subset-size")).to_contain_text("Selects")
    form.get_by_role("button", name="Add subset").click()
    expect(page.locator(f"td[data-subset='{name}']")).to_be_visible()


def upload_and_subsets(page: Page, data: Path) -> None:
    page.goto("/")
    page.get_by_role("link", name="Workspace").click()
    expect(page).to_have_url(page.url.split("/projects")[0] + "/projects")
    page.get_by_label("Name").fill("yeast")
    page.get_by_label("Title").fill("Yeast 5' UTRs: protein expression (Cuperus et al. 2017)")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("h1")).to_have_text("yeast")
    page.get_by_label("Dataset name").fill("utrs")
    page.locator("#dataset-file").set_input_files(str(data))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("h1")).to_contain_text("utrs", timeout=60_000)
    expect(page.locator("#version-summary")).to_contain_text("11,856 good rows")
    for column, role in (("UTR", "sequence"), ("t0", "number"), ("growth_rate", "number")):
        expect(page.locator(f"select[name='role.{column}']")).to_have_value(role)
    add_subset(page, "measured", "where", column="t0", op=">", value="100")
    add_subset(page, "train", "fraction", fraction_of="measured", fraction="0.8", seed="0")
    add_subset(page, "val", "rest", rest_of="measured", minus="train")
    shot(page, "workspace-dataset")


def design_experiment(page: Page) -> None:
    page.goto(P + "/experiments/new")
    expect(page.get_by_label("Recipe", exact=True)).to_have_value("dna-regression")
    page.get_by_label("Experiment name").fill("cuperus")
    page.get_by_label("Target column").select_option("growth_rate")
    page.locator("#p-epochs").fill(str(EPOCHS))
    editor = page.locator("#block-list")
    outs = editor.locator(".out")
    expect(outs.first).to_have_text("→ 128 x 58 · 6,784 parameters")
    expect(editor).to_contain_text("→ 4352")
    expect(editor.locator("li[data-block='10'] select").first).to_have_value("flatten")
    page.get_by_role("button", name="remove block 10").click()
    expect(page.locator("#blocks-live-error")).to_contain_text("block 10 (dense): needs a flat")
    expect(editor.locator("li.bad")).to_have_attribute("data-block", "10")
    page.locator("#add-type").select_option("flatten")
    page.get_by_role("button", name="Add block").click()
    for place in (14, 13, 12, 11):  # the new flatten block is last: move it up to place 10
        page.get_by_role("button", name=f"move up: block {place}").click()
    expect(page.locator("#blocks-live-error")).to_have_text("")
    expect(editor).to_contain_text("→ 4352")
    expect(page.locator("#use-blocks")).to_be_checked()
    shot(page, "workspace-experiment-new")
    page.get_by_role("button", name="Create experiment").click()
    expect(page.locator("h1")).to_contain_text("cuperus")
    expect(page.locator("#stack-table")).to_contain_text("128 x 58")


def run_and_watch(page: Page, server: Running, space: Workspace) -> str:
    """Run the experiment with the real worker; each epoch's point appears within a second of
    the epoch's end (its row's ``at``, written by the worker)."""
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_have_text("queued")
    expect(page.locator("#queued-notice")).to_contain_text("waiting for a worker")
    run_id = page.url.rsplit("/", 1)[1]
    worker = worker_once(server)
    try:
        for epoch in range(1, EPOCHS + 1):
            point = page.locator(f"#live-chart circle[data-epoch='{epoch}']").first
            point.wait_for(timeout=240_000)
            seen = datetime.now(UTC)
            with space.db.session() as session:
                ended = runs.epochs_since(session, run_id, epoch - 1)[0].at
            late = (seen - ended).total_seconds()
            assert late < LIVE_WITHIN_S, f"epoch {epoch} reached the page {late:.2f} s late"
            if epoch == 2:
                expect(page.locator("#run-status")).to_have_text("running")
                expect(page.locator("#best-epoch")).to_have_text(re.compile(r"^[12]$"))
                expect(page.locator("#eta")).to_contain_text("about")
                shot(page, "workspace-run-live")
        _, errors = worker.communicate(timeout=300)
        assert worker.returncode == 0, errors.decode()
    finally:
        if worker.poll() is None:
            worker.kill()
    expect(page.locator("#evaluation")).to_be_visible(timeout=30_000)  # reloads when finished
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.locator("#scatter svg")).to_be_visible()
    expect(page.locator("#log")).to_contain_text("epoch 3")
    shot(page, "workspace-run")
    return run_id


def second_run(page: Page, server: Running) -> str:
    page.goto(P + "/experiments/cuperus")
    page.get_by_role("link", name="Clone settings").click()
    expect(page.get_by_label("Experiment name")).to_have_value("cuperus-2")
    page.locator("#p-lr").fill("0.002")
    page.get_by_role("button", name="Create experiment").click()
    expect(page.locator("h1")).to_contain_text("cuperus-2")
    page.get_by_role("button", name="Run", exact=True).click()
    run_id = page.url.rsplit("/", 1)[1]
    worker = worker_once(server)
    _, errors = worker.communicate(timeout=300)
    assert worker.returncode == 0, errors.decode()
    expect(page.locator("#run-status")).to_have_text("finished", timeout=30_000)
    return run_id


def compare(page: Page, first: str, second: str) -> None:
    page.goto(P)
    page.get_by_role("link", name="Compare runs").click()
    page.locator(f"input[value='{first}']").check()
    page.locator(f"input[value='{second}']").check()
    page.get_by_role("button", name="Compare").click()
    differs = page.locator("#compare-settings tr.differs th")
    expect(differs).to_have_count(1)
    expect(differs).to_contain_text("params.lr")
    expect(page.locator("#compare-curves polyline")).to_have_count(4)
    expect(page.locator("#compare-metrics")).to_contain_text("r2")
    shot(page, "workspace-compare")


def continue_and_deploy(page: Page, server: Running, space: Workspace, first: str) -> str:
    """Clone the trained run and keep training it (the worker starts from its weights), then
    deploy the continued run."""
    page.goto(f"{P}/runs/{first}")
    page.get_by_role("button", name="Clone and continue training").click()
    expect(page.locator("#run-facts")).to_contain_text(f"the weights of run {first}")
    continued = page.url.rsplit("/", 1)[1]
    with space.db.session() as session:
        assert runs.get_run(session, continued).init_from_run == first
    worker = worker_once(server)
    _, errors = worker.communicate(timeout=300)
    assert worker.returncode == 0, errors.decode()
    expect(page.locator("#run-status")).to_have_text("finished", timeout=30_000)
    page.goto(f"{P}/runs/{continued}")
    page.get_by_label("Model name").fill("yeast-utr-lab")
    page.get_by_label("Alias").select_option("production")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator("#deployments")).to_contain_text("Deployed as yeast-utr-lab@1")
    page.locator("#deployments").scroll_into_view_if_needed()
    shot(page, "workspace-deploy")
    return page.locator("#deployments pre code").first.inner_text()


def test_the_yeast_tutorial_in_the_browser(
    page: Page, server: Running, space: Workspace, shared_data: Path
) -> None:
    upload_and_subsets(page, shared_data / "cuperus2017_yeast_utr" / "Native_UTRs.csv.gz")
    design_experiment(page)
    first = run_and_watch(page, server, space)
    second = second_run(page, server)
    compare(page, first, second)
    curl = continue_and_deploy(page, server, space, first)
    utr = "AATAAGTGTAAAATATATATCTGCCGAGACCATTACTCATTACACCTAGA"
    answer = httpx.post(
        f"{server.url}/api/v1/models/yeast-utr-lab/predict?version=production",
        json={"inputs": [utr]},
    )
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["predictions"][0]["value"], float)
    if shutil.which("curl"):  # the page's own command, as a person would paste it
        shown = subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=False
        )
        assert '"model":"yeast-utr-lab"' in shown.stdout.replace(" ", ""), shown
    page.goto("/")
    expect(page.get_by_role("link", name="yeast-utr-lab", exact=True)).to_be_visible()
    page.goto(P)
    expect(page.locator("#deployments")).to_contain_text("yeast-utr-lab@1")
    shot(page, "workspace-project")
    page.goto("/projects")
    shot(page, "workspace-projects")
