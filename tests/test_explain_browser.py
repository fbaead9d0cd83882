"""Explanations for real genomics work in a real browser (Debian's Chromium, Playwright): a VCF of
real S. aureus variants scored against its reference from the variant page, with a mismatching
record reported and the rest scored; a 3.5-kb gene explained on the predict page, which says how;
motifs found in the background from the model page, shown as logos with their JASPAR matches.

Set ``HELIXSERVE_SCREENSHOTS=docs/screenshots`` to refresh the docs' screenshots.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.amr_variants import FASTA, MISMATCH, SCORED, WINDOW, with_mismatch
from tests.support.chromium import (  # launch_browser: the browser fixture
    checked_page,
    launch_browser,  # noqa: F401
    shot,
)
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
MOTIF = "CGACCGAACTCC"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("explain-ui"), access_log=False) as s:
        yield s


@pytest.fixture
def page(browser: Browser, server: Running) -> Iterator[Page]:
    with checked_page(browser, server.url) as tab:
        yield tab


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


def test_a_3_kb_gene_is_explained_and_the_page_says_how(page: Page) -> None:
    gene = FASTA.read_text().split(">rpoB\n")[1].replace("\n", "")  # 3,552 nt
    page.goto("/models/amr-resistance/predict")
    page.get_by_label("DNA sequence").fill(gene)
    page.get_by_label("Explain with").select_option("ism")
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#explain-note")).to_contain_text(
        "You asked for in-silico mutagenesis, but this sequence is 3,552 nt"
    )
    expect(page.locator("#block-strip svg rect")).to_have_count(198)
    expect(page.locator("#explain-cost")).to_contain_text("199 sequences of 3,552 nt scored in")
    shot(page, "explain-long")
    page.get_by_label("Region for per-base effects").fill("1001-1100")
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#importance figcaption")).to_contain_text("(positions 1,001-1,100)")


def test_motifs_are_found_in_the_background_and_shown_as_logos(page: Page, tmp_path: Path) -> None:
    rng = random.Random(5)
    lines = []
    for _ in range(240):
        bases = "".join(rng.choice("ACGT") for _ in range(50))
        at = rng.randrange(38)
        lines.append(bases[:at] + MOTIF + bases[at + 12 :])
    data = tmp_path / "bound.txt"
    data.write_text("\n".join(lines) + "\n")
    page.goto("/models/primer-binding")
    page.get_by_label("Sequences: FASTA").set_input_files(str(data))
    page.get_by_label("Motifs to show").fill("1")
    page.get_by_role("button", name="Find motifs").click()
    expect(page.locator("#motif-done")).to_have_text(
        "Done: 240 of 240 sequences explained.", timeout=120_000
    )
    expect(page.locator("h2", has_text="Motif 1")).to_contain_text(MOTIF)
    expect(page.locator("svg.motif")).to_have_count(4)  # the motif and its 3 JASPAR matches
    expect(page.locator("table.jaspar tbody tr")).to_have_count(3)
    shot(page, "motifs")
