"""Explanations for real genomics work in a real browser (Debian's Chromium, Playwright): a VCF of
real S. aureus variants scored against its reference from the variant page, with a mismatching
record reported and the rest scored.

Set ``HELIXSERVE_SCREENSHOTS=docs/screenshots`` to refresh the docs' screenshots.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.amr_variants import FASTA, MISMATCH, SCORED, WINDOW, with_mismatch
from tests.support.chromium import launch_browser  # noqa: F401 (the browser fixture)
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("explain-ui"), access_log=False) as s:
        yield s


@pytest.fixture
def page(browser: Browser, server: Running) -> Iterator[Page]:
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1100, "height": 900}, accept_downloads=True
    )
    tab = context.new_page()
    blocked: list[str] = []
    tab.on(
        "console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None
    )
    yield tab
    context.close()
    assert blocked == [], f"the page broke its content security policy: {blocked}"


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("HELIXSERVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_a_real_vcf_is_scored_from_the_variant_page(page: Page, tmp_path: Path) -> None:
    calls = tmp_path / "saureus_calls.vcf"
    calls.write_text(with_mismatch())
    page.goto("/models/amr-resistance/variants")
    page.get_by_label("VCF file").set_input_files(str(calls))
    page.get_by_label("Reference FASTA").set_input_files(str(FASTA))
    page.get_by_role("button", name="Score the VCF").click()
    expect(page.locator("#count-records")).to_have_text("410")
    expect(page.locator("#count-scored")).to_have_text(str(SCORED))
    expect(page.locator("#count-refused")).to_have_text(str(WINDOW + 1))
    first = page.locator("#vcf-refused tbody tr").first
    expect(first).to_contain_text("ref_mismatch")
    expect(first).to_contain_text(MISMATCH)
    expect(page.locator("#vcf-effects tbody tr")).to_have_count(200)
    shot(page, "variants-vcf")
    with page.expect_download() as scored:
        page.locator("#download-vcf").click()
    lines = Path(scored.value.path()).read_text().splitlines()
    body = [line for line in lines if not line.startswith("#")]
    assert len(body) == 410 and body[0].endswith("HX_STATUS=ref_mismatch")
    with page.expect_download() as refused:
        page.locator("#download-errors").click()
    rows = list(csv.DictReader(io.StringIO(Path(refused.value.path()).read_text())))
    assert rows[0]["message"] == MISMATCH


def test_missing_files_are_named_next_to_their_field(page: Page) -> None:
    page.goto("/models/amr-resistance/variants")
    page.get_by_role("button", name="Score the VCF").click()
    expect(page.locator("#vcf-error")).to_have_text("choose a VCF file (.vcf or .vcf.gz) first.")
    expect(page.locator("#reference-error")).to_have_text(
        "choose the reference FASTA the VCF was called against."
    )
