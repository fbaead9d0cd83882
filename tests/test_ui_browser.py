"""The web UI in a real browser: Debian's Chromium driven by Playwright, on a real server.

Set ``HELIXSERVE_SCREENSHOTS=docs/screenshots`` to refresh the README's screenshots.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect

from helixserve.inputs.images import ImageSchema
from helixserve.serving.auth import hash_key
from helixserve.store import Lineage, ModelStore, OutputSchema, make_manifest
from tests.support.chromium import (  # launch_browser: the browser fixture
    checked_page,
    launch_browser,  # noqa: F401
    shot,
)
from tests.support.onnx_models import image_multiclass_model
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
BINDS = "CGACCGAACTCC" + "A" * 38
CELLS = ["HEPG2", "HUVEC", "RPE", "U2OS"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("ui")
    shutil.copytree(ZOO, tmp / "store")
    store = ModelStore.open(str(tmp / "store"), cache_dir=tmp / "pub")
    if "cells-demo" not in store.list_models():
        files = {
            "model.onnx": image_multiclass_model(1, 32, 32, 4),
            "card.md": b"# cells demo\n\nA test model: brighter images score later classes.\n",
        }
        store.publish(
            make_manifest(
                files,
                name="cells-demo",
                task="multiclass",
                description="Which cell type is this?",
                input=ImageSchema(width=32, height=32, channels=1),
                output=OutputSchema(labels=CELLS),
            ),
            files,
        )
    if store.versions("yeast-utr") == [1, 2]:  # the zoo's @1 and its int8 @2; @3 refit from @1
        manifest, files = store.read_files("yeast-utr@1")
        lineage = Lineage(how="refit", parent="yeast-utr@1")
        store.publish(manifest.model_copy(update={"lineage": lineage}), files)
    with running(tmp / "store", tmp, access_log=False) as s:
        yield s


@pytest.fixture
def page(browser: Browser, server: Running) -> Iterator[Page]:
    with checked_page(browser, server.url) as tab:
        yield tab


def test_catalogue_lists_every_model(page: Page) -> None:
    page.goto("/")
    for name in ("primer-binding", "tumor-wisconsin", "cells-demo"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    shot(page, "home")


def test_classify_one_sequence(page: Page) -> None:
    page.goto("/dnasequence")  # the seed's URL
    expect(page).to_have_url(page.url.split("/models")[0] + "/models/primer-binding/predict")
    page.get_by_label("DNA sequence").fill(BINDS)
    expect(page.locator("#sequence-feedback")).to_have_text("Looks valid: 50 nt.")
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#result .answer")).to_contain_text("Answer: 1 with probability 0.99")
    expect(page.locator("#importance svg text")).not_to_have_count(0)  # the ISM logo
    shot(page, "predict-dna")


def test_bad_sequence_points_at_the_character(page: Page) -> None:
    page.goto("/models/primer-binding/predict")
    page.get_by_label("DNA sequence").fill(BINDS[:30] + "F" + BINDS[31:])
    feedback = page.locator("#sequence-feedback")
    expect(feedback).to_contain_text("DNA sequence is not valid DNA: position 31 is 'F'.")
    expect(feedback.locator("mark")).to_have_text("F")
    shot(page, "predict-dna-error")
    page.get_by_role("button", name="Classify").click()  # the server says the same
    expect(page.locator("#sequence-feedback")).to_have_text(
        "DNA sequence is not valid DNA: position 31 is 'F'. Only the letters A, C, G, T are "
        "allowed; remove it or correct the typo."
    )


def test_upload_csv_and_download_both_files(page: Page, tmp_path: Path) -> None:
    data = tmp_path / "primers.csv"
    data.write_text(
        f"id,sequence\ngood1,{BINDS}\nbad1,ACGT\n=cmd,{'ACGT' * 12}AF\ngood2,{'C' * 50}\n"
    )
    page.goto("/dnafile")
    page.locator("#file").set_input_files(str(data))
    page.get_by_role("button", name="Score file").click()
    expect(page.locator("#count-records")).to_have_text("4")
    expect(page.locator("#count-predicted")).to_have_text("2")
    expect(page.locator("#count-failed")).to_have_text("2")
    expect(page.locator("#error-report")).to_contain_text("DNA sequence length is 4 nt")
    shot(page, "upload-results")
    with page.expect_download() as results:
        page.locator("#download-results").click()
    rows = list(csv.reader(io.StringIO(Path(results.value.path()).read_text())))
    assert rows[0] == ["index", "id", "line", "label", "probability", "p_0", "p_1", "error"]
    assert [r[1] for r in rows[1:]] == ["good1", "bad1", "=cmd", "good2"]  # exact by default
    page.locator("#spreadsheet-safe").check()
    with page.expect_download() as errors:
        page.locator("#download-errors").click()
    bad = list(csv.reader(io.StringIO(Path(errors.value.path()).read_text())))
    assert [r[1] for r in bad[1:]] == ["bad1", "'=cmd"]  # formula neutralised when asked
    assert bad[2][5].startswith("record 3 (id =cmd), line 4: DNA sequence is not valid DNA")


def test_tumour_form(page: Page) -> None:
    page.goto("/models/tumor-wisconsin/predict")
    values = {
        "clump thickness": 5,
        "uniformity cell size": 1,
        "uniformity cell shape": 1,
        "marginal adhesion": 1,
        "single epithelial cell size": 2,
        "bare nuclei": 1,
        "bland chromatin": 3,
        "normal nucleoli": 1,
        "mitoses": 1,
    }
    for label, value in values.items():
        page.get_by_label(label, exact=True).fill(str(value))
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#result .answer")).to_contain_text("Answer: benign with probability")
    shot(page, "predict-tabular")
    page.get_by_label("mitoses", exact=True).fill("11")
    page.get_by_role("button", name="Classify").click()
    expect(page.get_by_role("alert")).to_have_text(
        "mitoses is 11, above the maximum 10; use a whole number from 1 to 10."
    )


def test_image_upload_shows_four_bars(page: Page, tmp_path: Path) -> None:
    path = tmp_path / "cell.png"
    Image.fromarray(np.full((32, 32), 200, dtype=np.uint8)).save(path)
    page.goto("/models/cells-demo/predict")
    page.get_by_label("Image file").set_input_files(str(path))
    expect(page.locator("#image-preview")).to_be_visible()
    page.get_by_role("button", name="Classify").click()
    bars = page.locator(".bars li")
    expect(bars).to_have_count(4)
    expect(bars.nth(0)).to_contain_text("HEPG2")
    expect(page.locator("#result .answer")).to_contain_text("Answer: U2OS")
    shot(page, "predict-image")


def test_model_page_shows_curves_and_card(page: Page) -> None:
    page.goto("/models/primer-binding")
    expect(page.locator("#loss-curves svg polyline")).to_have_count(2)  # train and validation
    expect(page.locator("#confusion table")).to_contain_text("253")
    expect(page.get_by_role("heading", name="Model card")).to_be_visible()
    shot(page, "model")


def test_compare_page_shows_only_the_chosen_models(page: Page) -> None:
    page.goto("/compare?m=primer-binding&m=amr-resistance")
    heads = page.locator("#compare-table thead th")
    expect(heads).to_have_text(["metric", "primer-binding@1", "amr-resistance@1"])
    expect(page.locator("#compare-table")).not_to_contain_text("yeast-utr")
    expect(page.locator("#compare-table")).not_to_contain_text("tumor-wisconsin")
    expect(page.locator("#m option:checked")).to_have_text(["amr-resistance@1", "primer-binding@1"])
    shot(page, "compare")


def test_compare_its_versions_compares_the_versions(page: Page) -> None:
    page.goto("/models/yeast-utr")
    expect(page.locator("#lineage li")).to_have_count(1)  # the zoo's version: no parent
    page.get_by_role("link", name="Compare its versions").click()
    expect(page.locator("#compare-table thead th")).to_have_text(
        ["metric", "yeast-utr@1", "yeast-utr@2", "yeast-utr@3"]
    )
    expect(page.locator("#compare-table")).not_to_contain_text("primer-binding")
    page.get_by_role("link", name="yeast-utr@3").click()
    expect(page.locator("#lineage li")).to_have_count(2)
    expect(page.locator("#lineage li").first).to_have_text("yeast-utr@3: refit from yeast-utr@1")
    page.locator("#lineage").get_by_role("link", name="yeast-utr@1").click()
    expect(page.locator("h1")).to_have_text("yeast-utr version 1")


def test_api_docs_render_with_the_network_off(page: Page) -> None:
    outside: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(
        page.locator(".opblock-summary-path", has_text="/api/v1/models/{name}/predict")
    ).not_to_have_count(0)
    shot(page, "api-docs")
    assert outside == []


def test_phone_width_has_no_horizontal_scroll(browser: Browser, server: Running) -> None:
    context = browser.new_context(base_url=server.url, viewport={"width": 390, "height": 844})
    tab = context.new_page()
    for path in (
        "/",
        "/models/primer-binding/predict",
        "/models/tumor-wisconsin/predict",
        "/models/primer-binding/variants",
        "/models/yeast-utr/design",
    ):
        tab.goto(path)
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
    context.close()


def test_png_only_plots_are_shown(page: Page, server: Running) -> None:
    """A plot the page cannot draw from JSON (e.g. rxrx1's saliency maps) is shown as its PNG."""
    import httpx

    page.goto("/models/rxrx1-celltype")
    image = page.locator("img.plot-image[alt='saliency plot']")
    expect(image).to_be_visible()
    source = image.get_attribute("src") or ""
    assert httpx.get(server.url + source).headers["content-type"] == "image/png"
    assert httpx.get(server.url + "/models/rxrx1-celltype/plots/../card.md").status_code == 404


UTR = "AAAAAAGGGAACCTCTGGTTACGATGATATACCTGCGTGAAAAAGGACAG"  # native, YAL002W (Cuperus 2017)


def test_design_form_draws_the_trajectory(page: Page) -> None:
    page.goto("/models/yeast-utr")
    page.get_by_role("link", name="Design", exact=True).click()
    expect(page).to_have_url(page.url.split("/models")[0] + "/models/yeast-utr/design?version=1")
    page.get_by_label("Start sequence").fill(UTR)
    expect(page.locator("#start-feedback")).to_have_text("Looks valid: 50 nt.")
    target = page.get_by_label("Target score")
    expect(target).to_be_disabled()  # app.js: a target only matters for a target goal
    page.get_by_label("Goal", exact=True).select_option("target")
    expect(target).to_be_enabled()
    page.get_by_label("Goal", exact=True).select_option("max")
    page.get_by_label("Rounds").fill("12")
    page.get_by_label("Forbidden motifs").fill("ATG")
    page.get_by_label("Fixed positions").fill("1-5")
    page.get_by_role("button", name="Design").click()
    rows = page.locator("#trajectory-table tbody tr")
    expect(rows).to_have_count(13)
    expect(page.locator("#trajectory-chart svg circle")).to_have_count(13)
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("start")
    sequences = page.locator("#trajectory-table tbody td.seq").all_inner_texts()
    assert all(s.startswith("AAAAA") and s.count("ATG") <= UTR.count("ATG") for s in sequences)
    scores = [
        float(s) for s in page.locator("#trajectory-table tbody td:nth-child(4)").all_inner_texts()
    ]
    assert scores == sorted(scores) and scores[-1] > scores[0]
    shot(page, "design")


def test_variant_form_shows_the_table(page: Page) -> None:
    page.goto("/models/primer-binding/variants")
    page.get_by_label("Reference DNA sequence").fill(BINDS)
    page.get_by_label("Variants, one per line").fill("3 A T\n1 C G\n5 C A\n20 A C\n40 G T\n")
    page.get_by_role("button", name="Score variants").click()
    rows = page.locator("#variant-table tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.nth(4)).to_contain_text(
        "variant 5: the sequence has 'A' at position 40, not 'G' as the variant says; check the "
        "position (1-based) and the reference base."
    )
    expect(page.locator("#variant-summary")).to_contain_text("5 variants: 4 scored, 1 refused")
    shot(page, "variants")


PREDICT_KEY = "hs_predict_browser_0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The zoo served with API keys on (a predict key only)."""
    keys = [f"predict:{hash_key(PREDICT_KEY)}"]
    tmp = tmp_path_factory.mktemp("keyed-ui")
    with running(ZOO, tmp, access_log=False, api_keys=keys) as s:
        yield s


def test_with_keys_on_a_person_enters_the_key_once_and_predicts(
    browser: Browser, keyed_server: Running
) -> None:
    context = browser.new_context(
        base_url=keyed_server.url, viewport={"width": 1100, "height": 900}
    )
    tab = context.new_page()
    tab.goto("/models/primer-binding/predict")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Enter your API key")
    expect(tab.get_by_role("alert")).to_have_text(
        "this server needs an API key: enter it once below and this browser keeps a session for "
        "12 hours (or until you choose Forget key)."
    )
    tab.get_by_label("API key").fill("not-the-key")
    tab.get_by_role("button", name="Use this key").click()
    expect(tab.get_by_role("alert")).to_have_text(
        "the API key is not valid; check it, or ask for a new one."
    )
    tab.get_by_label("API key").fill(PREDICT_KEY)
    shot(tab, "api-key")
    tab.get_by_role("button", name="Use this key").click()
    expect(tab).to_have_url(keyed_server.url + "/models/primer-binding/predict")
    cookie = next(c for c in context.cookies() if c["name"] == "hs_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
    assert PREDICT_KEY not in cookie["value"]
    tab.get_by_label("DNA sequence").fill(BINDS)
    tab.get_by_role("button", name="Classify").click()
    expect(tab.locator("#result .answer")).to_contain_text("Answer: 1 with probability 0.99")
    tab.get_by_role("link", name="Models").click()
    expect(tab.get_by_role("link", name="tumor-wisconsin", exact=True)).to_be_visible()
    tab.get_by_role("button", name="Forget key").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Enter your API key")
    tab.goto("/models/primer-binding/predict")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Enter your API key")
    context.close()
