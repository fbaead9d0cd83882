"""VCF scoring end to end on real data: the S. aureus VCF made from the amr-resistance genes' own
variation (src/helixserve/examples, rebuilt by tests/support/amr_variants.py) scored by the
pretrained amr-resistance model from the command line, the API and the web page, with one record
whose REF does not match the reference: that one is reported, every other allele is scored or
refused with its own reason. Also the ``position,ref,alt`` variants API: ``-`` for no bases, and
the good variants kept when one does not match."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from helixserve.cli.app import app
from tests.support.amr_variants import (
    FASTA,
    MISMATCH,
    SCORED,
    VCF,
    WINDOW,
    with_mismatch,
    write,
)
from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"


@pytest.mark.shared_data
def test_the_shipped_vcf_is_made_from_the_amr_data(shared_data: Path, tmp_path: Path) -> None:
    fasta, vcf = write(shared_data, tmp_path)
    assert fasta.read_bytes() == FASTA.read_bytes()
    assert vcf.read_bytes() == VCF.read_bytes()


def test_the_command_line_reports_the_mismatch_and_scores_the_rest(tmp_path: Path) -> None:
    (tmp_path / "calls.vcf").write_text(with_mismatch())
    out = tmp_path / "scored.vcf"
    args = ["variants", "amr-resistance", str(tmp_path / "calls.vcf"), "--reference", str(FASTA)]
    result = CliRunner().invoke(app, [*args, "-o", str(out), "--store", str(ZOO)])
    assert result.exit_code == 0, result.output
    assert f"scored {SCORED} alleles, refused {WINDOW + 1} in " in result.output
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 410
    assert lines[0].endswith("AC=3;AN=150;HX_REF=.;HX_ALT=.;HX_EFFECT=.;HX_STATUS=ref_mismatch")
    statuses = [line.rsplit("HX_STATUS=", 1)[1] for line in lines]
    assert statuses.count("ok") == SCORED and statuses.count("window") == WINDOW
    with (tmp_path / "scored.errors.csv").open() as f:
        errors = list(csv.DictReader(f))
    assert errors[0]["reason"] == "ref_mismatch" and errors[0]["message"] == MISMATCH
    assert {e["reason"] for e in errors[1:]} == {"window"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("vcf")
    with running(ZOO, tmp, access_log=False, max_upload_records=500) as s:
        yield s


def post_vcf(
    server: Running, vcf: str, query: str = "", model: str = "amr-resistance"
) -> httpx.Response:
    files = {"vcf": ("calls.vcf", vcf.encode()), "reference": ("genes.fa", FASTA.read_bytes())}
    url = f"{server.url}/api/v1/models/{model}/variants/vcf{query}"
    return httpx.post(url, files=files, timeout=120)


def test_the_api_reports_the_mismatch_and_scores_the_rest(server: Running) -> None:
    body = post_vcf(server, with_mismatch()).json()
    counts = {k: body[k] for k in ("records", "scored", "refused", "window", "strands")}
    assert counts == {
        "records": 410,
        "scored": SCORED,
        "refused": WINDOW + 1,
        "window": "the whole contig",
        "strands": "forward",
    }
    assert body["errors"][0] == {
        "index": 1,
        "line": 13,
        "chrom": "dfrB",
        "pos": 62,
        "id": "dfrB:62:A:G",
        "ref": "C",
        "alt": "G",
        "reason": "ref_mismatch",
        "message": MISMATCH,
    }
    first = body["effects"][0]
    assert (first["index"], first["chrom"], first["pos"], first["window_end"]) == (
        2,
        "dfrB",
        71,
        480,
    )
    assert first["effect"] == pytest.approx(first["alt_score"] - first["ref_score"], abs=2e-6)
    table = post_vcf(server, with_mismatch(), "?format=tsv")
    assert table.headers["content-type"] == "text/tab-separated-values; charset=utf-8"
    assert len(table.text.splitlines()) == SCORED + 1
    vcf = post_vcf(server, with_mismatch(), "?format=vcf").text
    assert vcf.count("HX_STATUS=ok") == SCORED and "HX_STATUS=ref_mismatch" in vcf


@pytest.mark.parametrize(
    ("vcf", "query", "status", "detail"),
    [
        (
            "not a vcf\n",
            "",
            422,
            "line 1 of the VCF is a data line, but no '#CHROM POS ID REF ALT ...' header line "
            "came before it; a VCF starts with its ## meta lines and the #CHROM line.",
        ),
        (
            VCF.read_text(),
            "?window=100&model=primer-binding",
            422,
            "a window of 100 nt does not fit this model, which takes exactly 50 nt; choose a "
            "window in that range, or leave it out.",
        ),
        (
            VCF.read_text() + "dfrB\t70\t.\tA\tG\t.\t.\t.\n" * 100,
            "",
            413,
            "the VCF has more than 500 records, the limit for one upload "
            "(HELIXSERVE_MAX_UPLOAD_RECORDS); split it, or score it with `helixserve variants`.",
        ),
    ],
)
def test_the_api_refuses_what_it_cannot_read(
    server: Running, vcf: str, query: str, status: int, detail: str
) -> None:
    model = "primer-binding" if "model=primer-binding" in query else "amr-resistance"
    answer = post_vcf(server, vcf, query.replace("&model=primer-binding", ""), model)
    assert (answer.status_code, answer.json()["detail"]) == (status, detail)


def test_the_variant_list_api_takes_dashes_and_keeps_the_good_variants(server: Running) -> None:
    url = server.url + "/api/v1/models/yeast-utr/variants"
    sequence = "ACGT" * 12 + "AC"
    variants = [
        {"position": 1, "ref": "A", "alt": "-"},
        {"position": 2, "ref": "G", "alt": "T"},
        {"position": 3, "ref": "-", "alt": "T"},
    ]
    body = httpx.post(url, json={"sequence": sequence, "variants": variants}).json()
    assert body["effects"][0] is not None and body["effects"][1:] == [None, None]
    assert body["errors"] == [
        {
            "index": 1,
            "field": "variants[1]",
            "position": None,
            "message": "variant 2: the sequence has 'C' at position 2, not 'G' as the variant "
            "says; check the position (1-based) and the reference base.",
        },
        {
            "index": 2,
            "field": "variants[2]",
            "position": None,
            "message": "variant 3: the changed sequence does not fit the model: DNA sequence "
            "length is 51 nt, but this model needs between 1 and 50 nt; trim it.",
        },
    ]


def test_the_page_reports_the_mismatch_and_scores_the_rest(server: Running) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=True, timeout=120)
    page = client.get("/models/amr-resistance/variants")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None and 'id="vcf-form"' in page.text
    assert "the window the model reads (the whole contig)" in page.text
    files = {
        "vcf": ("calls.vcf", with_mismatch().encode()),
        "reference": ("g.fa", FASTA.read_bytes()),
    }
    answer = client.post(
        "/models/amr-resistance/variants/vcf",
        data={"csrf_token": token.group(1), "strands": "forward"},
        files=files,
    )
    assert answer.status_code == 200 and "/variants/vcf/" in str(answer.url)
    counts = dict(re.findall(r'id="count-(\w+)"[^>]*>(\d+)<', answer.text))
    assert counts == {"records": "410", "scored": str(SCORED), "refused": str(WINDOW + 1)}
    assert MISMATCH.replace("'", "&#39;") in answer.text
    download = client.get(str(answer.url).split("?")[0] + "/errors.csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert rows[0]["message"] == MISMATCH and len(rows) == WINDOW + 1
