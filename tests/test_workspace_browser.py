"""The yeast-UTR tutorial in the workspace, in a real browser (Debian's Chromium, Playwright) on a
real server: new project -> upload Native_UTRs.csv.gz -> check the roles -> subsets -> experiment
with the Cuperus block preset (shapes shown as edited) -> Run -> live curve points while it
trains -> a second run with other hyper-parameters -> compare -> clone and continue -> deploy ->
predict through the REST API (httpx, and the page's own curl command).

Training is :func:`tests.support.training.train_simulated` (the worker is built elsewhere): it
claims the queued run and records epochs through :mod:`helixserve.workspace.runs`, as a worker
does. Set ``HELIXSERVE_SCREENSHOTS=docs/images`` to refresh the ``workspace-*.png`` screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from helixserve.workspace import runs
from helixserve.workspace.space import Workspace
from tests.support.chromium import launch_browser  # noqa: F401 (the browser fixture)
from tests.support.server import Running
from tests.support.training import serving_workspace, train_simulated

P = "/projects/yeast"
LIVE_WITHIN_S = 1.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Workspace]]:
    with serving_workspace(tmp_path_factory.mktemp("workspace-browser")) as both:
        yield both


@pytest.fixture(scope="module")
def server(served: tuple[Running, Workspace]) -> Running:
    return served[0]


@pytest.fixture(scope="module")
def space(served: tuple[Running, Workspace]) -> Workspace:
    return served[1]


@pytest.fixture
def page(browser: Browser, server: Running) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    blocked: list[str] = []
    tab.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    yield tab
    context.close()
    assert blocked == [], f"a page broke its content security policy: {blocked}"


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("HELIXSERVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"workspace-{name}.png"), full_page=True)


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
    shot(page, "dataset")


def design_experiment(page: Page) -> None:
    page.goto(P + "/experiments/new")
    expect(page.get_by_label("Recipe", exact=True)).to_have_value("dna-regression")
    page.get_by_label("Experiment name").fill("cuperus")
    page.get_by_label("Target column").select_option("growth_rate")
    page.locator("#p-epochs").fill("5")
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
    shot(page, "experiment-new")
    page.get_by_role("button", name="Create experiment").click()
    expect(page.locator("h1")).to_contain_text("cuperus")
    expect(page.locator("#stack-table")).to_contain_text("128 x 58")


def run_and_watch(page: Page, space: Workspace) -> str:
    """Run the experiment and check each epoch's point appears within a second."""
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-status")).to_have_text("queued")
    expect(page.locator("#queued-notice")).to_contain_text("waiting for a worker")
    run_id = page.url.rsplit("/", 1)[1]
    recorded: dict[int, float] = {}
    trainer = threading.Thread(
        target=train_simulated,
        args=(space,),
        kwargs={"epochs": 5, "pause_s": 1.2, "recorded": recorded.__setitem__},
    )
    trainer.start()
    try:
        for epoch in range(1, 6):
            page.locator(f"#live-chart circle[data-epoch='{epoch}']").first.wait_for()
            seen = time.monotonic()
            assert seen - recorded[epoch] < LIVE_WITHIN_S, f"epoch {epoch} took too long"
            if epoch == 3:
                expect(page.locator("#run-status")).to_have_text("running")
                expect(page.locator("#best-epoch")).to_have_text("3")
                expect(page.locator("#eta")).to_contain_text("about")
                shot(page, "run-live")
    finally:
        trainer.join()
    expect(page.locator("#evaluation")).to_be_visible()  # the page reloads when it finishes
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.locator("#scatter svg")).to_be_visible()
    expect(page.locator("#log")).to_contain_text("finished: best epoch 3")
    shot(page, "run")
    return run_id


def second_run(page: Page, space: Workspace) -> str:
    page.goto(P + "/experiments/cuperus")
    page.get_by_role("link", name="Clone settings").click()
    expect(page.get_by_label("Experiment name")).to_have_value("cuperus-2")
    page.locator("#p-lr").fill("0.002")
    page.get_by_role("button", name="Create experiment").click()
    expect(page.locator("h1")).to_contain_text("cuperus-2")
    page.get_by_role("button", name="Run", exact=True).click()
    run_id = page.url.rsplit("/", 1)[1]
    train_simulated(space, epochs=5, scale=1.3)
    expect(page.locator("#run-status")).to_have_text("finished")
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
    shot(page, "compare")


def continue_and_deploy(page: Page, space: Workspace, first: str) -> str:
    page.goto(f"{P}/runs/{first}")
    page.get_by_role("button", name="Clone and continue training").click()
    expect(page.locator("#run-facts")).to_contain_text(f"the weights of run {first}")
    with space.db.session() as session:
        assert runs.get_run(session, page.url.rsplit("/", 1)[1]).init_from_run == first
    page.goto(f"{P}/runs/{first}")
    page.get_by_label("Model name").fill("yeast-utr-lab")
    page.get_by_label("Alias").select_option("production")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator("#deployments")).to_contain_text("Deployed as yeast-utr-lab@1")
    page.locator("#deployments").scroll_into_view_if_needed()
    shot(page, "deploy")
    return page.locator("#deployments pre code").first.inner_text()


def test_the_yeast_tutorial_in_the_browser(
    page: Page, server: Running, space: Workspace, shared_data: Path
) -> None:
    upload_and_subsets(page, shared_data / "cuperus2017_yeast_utr" / "Native_UTRs.csv.gz")
    design_experiment(page)
    first = run_and_watch(page, space)
    second = second_run(page, space)
    compare(page, first, second)
    curl = continue_and_deploy(page, space, first)
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
    shot(page, "project")
    page.goto("/projects")
    shot(page, "projects")
