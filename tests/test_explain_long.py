"""Explanations that scale: block occlusion and ISM of a region against hand computations, the
stated limits, the predict page on a real 3.5-kb gene, rows of a scored file, and motif discovery
over the API and on the model page, in the background with its progress."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from helixserve.cli.app import app
from helixserve.errors import HelixError, InputError
from helixserve.explain.ism import ism
from helixserve.explain.scan import check_ism, ism_region, occlusion
from helixserve.runtime.predictor import Predictor
from helixserve.serving import charts
from helixserve.store import ModelStore
from tests.support.amr_variants import FASTA
from tests.support.server import Running, publish_gc, publish_tokensum, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
MOTIF = "CGACCGAACTCC"
TOKENS = {"A": 1, "C": 2, "G": 3, "T": 4, "N": 5}
GENES = dict(
    (chunk.split("\n", 1)[0], chunk.split("\n", 1)[1].replace("\n", ""))
    for chunk in FASTA.read_text().split(">")
    if chunk
)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    publish_tokensum(store)
    return store


def test_occlusion_against_a_hand_computation(store: ModelStore) -> None:
    """tokensum takes N: a block becomes N (token 5), so its effect is the sum of 5 - token."""
    sequence = "ACGTTGCA" * 5 + "AAAA"  # 44 nt
    result = occlusion(Predictor.from_store(store, "tokensum"), sequence, block=10)
    assert (result.block, result.fill, result.starts, result.sequences) == (
        10,
        "N",
        [0, 10, 20, 30, 40],
        6,
    )
    expected = [sum(5 - TOKENS[b] for b in sequence[s : s + 10]) for s in result.starts]
    assert result.effects == pytest.approx(expected)
    assert result.importance[:10] == [abs(expected[0])] * 10 and len(result.importance) == 44


def test_occlusion_without_n_uses_the_complement(store: ModelStore) -> None:
    """gc takes only A/C/G/T: a block becomes its complement, which keeps the G+C count, and
    the model scores G+C: every effect is 0."""
    result = occlusion(Predictor.from_store(store, "gc"), "ACGGT" * 10)
    assert (result.fill, result.block, len(result.starts)) == ("complement", 1, 50)
    assert result.effects == pytest.approx([0.0] * 50, abs=1e-7)


def test_ism_of_a_region_is_that_part_of_full_ism(store: ModelStore) -> None:
    predictor = Predictor.from_store(store, "tokensum")
    rng = random.Random(4)
    sequence = "".join(rng.choice("ACGT") for _ in range(60))
    whole = ism(predictor, sequence)
    part = ism_region(predictor, sequence, 11, 20)
    assert part.sequence == sequence[10:20]
    assert part.effects == whole.effects[10:20]  # sums of small integers: exact
    assert part.importance == whole.importance[10:20]
    assert len({tuple(row) for row in part.effects}) > 1


def test_limits_are_stated(store: ModelStore) -> None:
    predictor = Predictor.from_store(store, "tokensum")
    with pytest.raises(InputError) as caught:
        check_ism(8_000)
    assert str(caught.value) == (
        "the sequence is 8,000 nt: in-silico mutagenesis of every position would score 24,001 "
        "sequences of 8,000 nt, over the limit of 5,000 nt. Explain it by block occlusion (201 "
        "sequences), or give a region of up to 500 nt for per-base effects."
    )
    with pytest.raises(InputError) as caught:
        ism_region(predictor, "ACGT" * 15, 50, 70)
    assert str(caught.value) == (
        "the region 50-70 is not inside the sequence (positions 1 to 60, 1-based, start before "
        "end)."
    )
    with pytest.raises(InputError) as caught:
        occlusion(predictor, "ACGT" * 15, block=61)
    assert str(caught.value) == "block must be from 1 to the sequence's length (60 nt), got 61."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("long"), access_log=False) as s:
        yield s


def test_the_api_explains_a_real_gene_by_blocks_and_by_region(server: Running) -> None:
    url = server.url + "/api/v1/models/amr-resistance/explain"
    gene = GENES["rpoB"]  # 3,552 nt
    blocks = httpx.post(url + "/occlusion", json={"sequence": gene}, timeout=60).json()
    assert (blocks["block"], blocks["fill"], blocks["sequences"]) == (18, "N", 199)
    assert len(blocks["effects"]) == 198 and len(blocks["importance"]) == 3552
    region = httpx.post(url, json={"sequence": gene, "region": [101, 150]}, timeout=60).json()
    assert (len(region["effects"]), region["region"], region["sequence"]) == (
        50,
        [101, 150],
        gene[100:150],
    )
    too_long = httpx.post(url, json={"sequence": gene * 2}, timeout=60)
    assert too_long.status_code == 422
    assert too_long.json()["detail"].startswith(
        "the sequence is 7,104 nt: in-silico mutagenesis of every position would score 21,313 "
        "sequences of 7,104 nt, over the limit of 5,000 nt."
    )


def form_token(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def test_the_predict_page_explains_a_3_kb_gene_and_says_how(server: Running) -> None:
    client = httpx.Client(base_url=server.url, timeout=60)
    token = form_token(client, "/models/amr-resistance/predict")
    gene = GENES["rpoB"]
    for explain, told in (
        ("auto", "This"),
        ("ism", "You asked for in-silico mutagenesis, but this"),
    ):
        data = {"csrf_token": token, "sequence": gene, "explain": explain}
        page = client.post("/models/amr-resistance/predict", data=data).text
        note = (
            f"{told} sequence is 3,552 nt, and in-silico mutagenesis of every base on this page "
            "takes sequences up to 2,000 nt (it would score 10,657 sequences of 3,552 nt). Shown "
            "instead: block occlusion, which scores 199. For per-base effects give a region of "
            "up to 500 nt (e.g. 1-500)."
        )
        assert note in page
        assert 'id="block-strip"' in page and 'id="importance"' not in page
        assert re.search(r"199 sequences of 3,552 nt scored in \d+\.\d\d s\.", page)
    data = {"csrf_token": token, "sequence": gene, "region": "1,001-1,100"}
    page = client.post("/models/amr-resistance/predict", data=data).text
    assert 'id="importance"' in page and "(positions 1,001-1,100)" in page
    assert "301 sequences of 3,552 nt scored in" in page


def test_a_row_of_a_scored_file_is_explained(server: Running) -> None:
    client = httpx.Client(base_url=server.url, timeout=60, follow_redirects=True)
    token = form_token(client, "/models/primer-binding/predict")
    text = f">one\n{MOTIF}{'A' * 38}\n>two\n{'C' * 50}\n"
    job = client.post(
        "/models/primer-binding/upload",
        data={"csrf_token": token},
        files={"file": ("two.fasta", text.encode())},
    )
    links = re.findall(r'class="explain-row" href="([^"]+)"', job.text)
    assert len(links) == 2
    page = client.get(links[0].replace("&amp;", "&")).text
    assert MOTIF in page and 'id="importance"' in page
    assert "151 sequences of 50 nt scored in" in page


def implanted(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        bases = "".join(rng.choice("ACGT") for _ in range(50))
        at = rng.randrange(38)
        out.append(bases[:at] + MOTIF + bases[at + 12 :])
    return out


def test_motifs_over_the_api_at_once_and_in_the_background(server: Running) -> None:
    url = server.url + "/api/v1/models/primer-binding/motifs"
    small = httpx.post(url, json={"sequences": [*implanted(40, 1), "ACGU"], "jaspar": False})
    body = small.json()
    assert (small.status_code, body["id"], body["status"], body["sequences"]) == (
        200,
        None,
        "done",
        40,
    )
    assert body["refused"][0]["index"] == 40
    assert body["motifs"][0]["consensus"] == MOTIF and body["motifs"][0]["support"] >= 36
    started = httpx.post(url, json={"sequences": implanted(260, 2), "jaspar": False, "top": 1})
    assert started.status_code == 202 and started.json()["status"] == "running"
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = httpx.get(server.url + started.json()["url"]).json()
        seen.add(state["done"])
        if state["status"] != "running":
            break
        time.sleep(0.05)
    assert state["status"] == "done" and state["total"] == 260
    assert state["motifs"][0]["consensus"] == MOTIF
    assert len(seen) >= 2  # the progress was seen moving
    other_key = httpx.get(server.url + started.json()["url"], headers={"X-API-Key": "someone"})
    assert other_key.status_code == 404


def test_motifs_on_the_model_page_with_their_jaspar_logos(server: Running) -> None:
    client = httpx.Client(base_url=server.url, timeout=60)
    token = form_token(client, "/models/primer-binding")
    answer = client.post(
        "/models/primer-binding/motifs",
        data={"csrf_token": token, "width": "12", "top": "1", "jaspar": "on"},
        files={"file": ("motif.txt", "\n".join(implanted(30, 3)).encode())},
    )
    assert answer.status_code == 303
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page = client.get(answer.headers["location"]).text
        if 'id="motif-done"' in page:
            break
        assert '<meta http-equiv="refresh" content="2">' in page
        time.sleep(0.2)
    assert f'<span class="mono">{MOTIF}</span>' in page
    assert page.count('class="chart logo motif"') == 4  # the motif and its 3 JASPAR matches
    refused = client.post(
        "/models/primer-binding/motifs",
        data={"csrf_token": token, "width": "3"},
        files={"file": ("m.txt", b"ACGT\n")},
    )
    assert refused.status_code == 422
    assert "width must be a whole number from 4 to 30, got &#39;3&#39;." in refused.text


def test_the_command_line_explains_by_blocks_and_by_region(store: ModelStore) -> None:
    sequence = "ACGTTGCA" * 5 + "AAAA"
    runner = CliRunner()
    common = ["tokensum", sequence, "--store", store.uri]
    blocks = runner.invoke(app, ["explain", "occlusion", *common, "--block", "10", "--json"])
    assert blocks.exit_code == 0, blocks.output
    found = json.loads(blocks.output)
    expected = [sum(5 - TOKENS[b] for b in sequence[s : s + 10]) for s in found["starts"]]
    assert found["effects"] == expected
    region = runner.invoke(app, ["explain", "ism", *common, "--region", "3-4", "--json"])
    assert json.loads(region.output)["sequence"] == "GT"
    bad = runner.invoke(app, ["explain", "ism", *common, "--region", "3"])
    assert isinstance(bad.exception, HelixError)
    assert str(bad.exception) == "--region takes START:END, 1-based, such as 1200:1400; got '3'."


def test_block_strip_and_motif_logo_draw_what_they_are_given() -> None:
    strip = charts.block_strip(25, [0, 10, 20], 10, [-0.5, 0.25, 0.0], "N")
    assert strip.count("<rect") == 3
    assert "<title>positions 11-20 replaced by N: score change +0.25</title>" in strip
    assert "<title>positions 21-25 replaced by N: score change +0</title>" in strip
    assert 'fill="#b3261e" fill-opacity="1.000"' in strip  # the largest drop: full red
    logo = charts.motif_logo([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]], "m")
    assert re.findall(r">([ACGT])</text>", logo) == ["A"]  # the flat column: no letter
    assert "scale(1 6.000)" in logo  # 2 bits: the whole 90 px, a 15-px glyph scaled 6 times
