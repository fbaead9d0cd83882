"""The UI's server-side rendering: the card Markdown subset (always escaped), SVG charts, and the
explain pages (variant table, design trajectory) rendered by a real server, read with httpx."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixserve.serving import charts
from helixserve.serving.markdown import to_html
from helixserve.store import ModelStore
from tests.support.server import Running, publish_gc, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
FORM_TOKEN = "test-form-token-0123456789"


def ui_post(url: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """Post a UI form as a browser on one of its pages would: CSRF cookie and field match."""
    form = {"csrf_token": FORM_TOKEN, **(data or {})}
    with httpx.Client(cookies={"hs_csrf": FORM_TOKEN}) as client:
        return client.post(url, data=form, **kwargs)


def test_card_subset() -> None:
    card = (
        "# tumour model\n\nPredicts **benign** or *malignant* from `9` scores.\n\n"
        "## Metrics\n\n| metric | value |\n|---|---|\n| accuracy | 0.96 |\n\n"
        "- one\n- two\n"
    )
    assert to_html(card) == (
        "<h2>tumour model</h2>\n"
        "<p>Predicts <strong>benign</strong> or <em>malignant</em> from <code>9</code> "
        "scores.</p>\n"
        "<h3>Metrics</h3>\n"
        "<table>\n<thead>\n<tr>\n<th>metric</th>\n<th>value</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>accuracy</td>\n<td>0.96</td>\n</tr>\n</tbody>\n</table>\n"
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"
    )


def test_card_links_are_http_or_relative_only() -> None:
    html = to_html(
        "[a](https://example.org/x) [b](docs/card.md) [c](javascript:alert(1)) "
        "[d](data:text/html,x) [e](JaVaScRiPt&#58;alert(1)) [f](file:///etc/passwd)"
    )
    assert re.findall(r'href="([^"]*)"', html) == ["https://example.org/x", "docs/card.md"]
    assert "[c](javascript:alert(1))" in html


def test_markup_in_a_card_is_escaped() -> None:
    html = to_html('<script>alert(1)</script>\n\n| <b> | x |\n|---|---|\n| "q" | <i> |\n')
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@given(st.text(max_size=300))
def test_no_raw_angle_bracket_survives(text: str) -> None:
    html = to_html(text)
    allowed = (
        r"</?(?:p|h[2-6]|ul|ol|li|table|thead|tbody|tr|th|td|code|pre|strong|em|blockquote)>"
        r'|<hr />|<br />|<ol start="\d+">|<code class="language-[^"<>]*">'
        r'|<t[hd] style="text-align:(?:left|right|center)">|<a href="[^"<>]*">|</a>'
    )
    stripped = re.sub(allowed, "", html)
    assert "<" not in stripped and ">" not in stripped
    for href in re.findall(r'<a href="([^"]*)"', html):
        assert re.match(r"^(?:https?://|[^:/?#]*(?:[/?#]|$))", href, re.IGNORECASE), href


def test_loss_chart_draws_both_curves_and_the_best_epoch() -> None:
    svg = charts.loss(
        [("", {"train_loss": [0.7, 0.4, 0.3], "val_loss": [0.8, 0.5, 0.6], "best_epoch": 2})]
    )
    assert svg.startswith('<svg viewBox="0 0 420 276"')  # one row of legend under the chart
    assert svg.count("<polyline") == 2
    assert 'class="marker"' in svg and "best epoch 2" in svg


def test_loss_chart_of_several_runs_keeps_its_legend_under_the_curves_and_starts_at_zero() -> None:
    runs = [
        (f"primer-binding@{v}", {"train_loss": [0.64, 0.1, 0.000937], "val_loss": [0.6, 0.2, 0.05]})
        for v in (1, 2)
    ]
    svg = charts.loss(runs)
    labels = re.findall(r'<text x="(\d+)" y="([\d.]+)" class="tick">(primer[^<]+)</text>', svg)
    assert [label for _, _, label in labels] == [
        "primer-binding@1 train",
        "primer-binding@1 validation",
        "primer-binding@2 train",
        "primer-binding@2 validation",
    ]
    assert all(int(x) + 6 * len(label) <= charts.W for x, _, label in labels)  # inside
    assert all(float(y) > charts.H for _, y, _ in labels)  # under the plot, clear of the curves
    assert svg.startswith(
        f'<svg viewBox="0 0 420 {charts.H + 4 * charts.LEGEND_ROW}"'
    )  # a row each
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert ticks == ["0", "0.16", "0.32", "0.48", "0.64"]


def test_confusion_rows_shade_by_count() -> None:
    labels, rows = charts.confusion_rows({"labels": ["a", "b"], "matrix": [[8, 2], [0, 4]]})
    assert labels == ["a", "b"]
    assert rows == [[(8, 1.0), (2, 0.25)], [(0, 0.0), (4, 0.5)]]


def test_malformed_plot_data_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no loss values"):
        charts.loss([("", {"train_loss": [], "val_loss": []})])


def test_trajectory_chart_has_a_point_per_round_and_the_target() -> None:
    svg = charts.trajectory([0, 1, 2, 3], [0.1, 0.4, 0.6, 0.7], "P(1)", target=0.8)
    assert svg.count("<circle") == 4
    assert "<title>round 3: 0.7</title>" in svg
    assert "target 0.8" in svg and svg.count("<polyline") == 2
    with pytest.raises(ValueError, match="one score per round"):
        charts.trajectory([0, 1], [0.5], "P(1)")


def test_importance_strip_shades_by_importance() -> None:
    svg = charts.importance_strip("ACGT", [0.0, 0.5, 1.0, 0.25])
    opacities = re.findall(r'fill-opacity="([\d.]+)"', svg)
    assert opacities == ["0.000", "0.500", "1.000", "0.250"]
    assert "<title>position 3 G: importance 1</title>" in svg
    assert svg.count(">A</text>") == 1  # the bases are written in wide cells


# --- explain pages on a real server -------------------------------------------------------------


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class Cells(HTMLParser):
    """The text of each cell of one table's body, by the table's id; and text by element id."""

    def __init__(self, html: str, table: str) -> None:
        super().__init__()
        self.table, self.inside = table, False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", self.table) in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def body_rows(html: str, table: str) -> list[list[str]]:
    return [r for r in Cells(html, table).rows if r]


def element_text(html: str, element_id: str) -> str:
    """The text of the element with this id (its tags removed, whitespace collapsed)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert found is not None, f"no element #{element_id}"
    return unescape(" ".join(re.sub(r"<[^>]+>", "", found.group(2)).split()))


def list_items(html: str, element_id: str) -> list[str]:
    found = re.search(rf'<ul[^>]*\bid="{element_id}"[^>]*>(.*?)</ul>', html, re.S)
    assert found is not None, f"no list #{element_id}"
    return [unescape(item) for item in re.findall(r"<li>(.*?)</li>", found.group(1))]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("explain-ui")
    for name in ("primer-binding", "tumor-wisconsin"):
        shutil.copytree(ZOO / name, tmp / "store" / name)
    publish_gc(ModelStore.open(str(tmp / "store"), cache_dir=tmp / "pub"), bias=12.5)
    with running(tmp / "store", tmp, access_log=False) as s:
        yield s


GC_HALF = "G" * 25 + "A" * 25  # the gc model scores sigmoid(0.5 * (G+C count) - 12.5) = 0.5


def test_variant_table_sorted_by_change_with_refused_rows_kept(server: Running) -> None:
    variants = "1 G A\n26 AA CC\n# a comment\n\n1,GGG,AAA\n30 G T\n50 A -\n"
    reply = ui_post(
        server.url + "/models/gc/variants", data={"sequence": GC_HALF, "variants": variants}
    )
    assert reply.status_code == 200
    rows = body_rows(reply.text, "variant-table")
    assert [r[:2] for r in rows] == [
        ["3", "1 GGG>AAA"],
        ["2", "26 AA>CC"],
        ["1", "1 G>A"],
        ["4", "30 G>T"],
        ["5", "50 A>-"],
    ]
    for row, logit in zip(rows, (-1.5, 1.0, -0.5), strict=False):
        assert row[3:] == [
            "ref matches",
            f"0.5 → {sigmoid(logit):.4g}",
            f"{sigmoid(logit) - 0.5:+.4g}",
        ]
    assert rows[3][3] == (
        "variant 4: the sequence has 'A' at position 30, not 'G' as the variant says; check the "
        "position (1-based) and the reference base."
    )
    assert rows[4][3] == (
        "variant 5: the changed sequence does not fit the model: DNA sequence length is 49 nt, "
        "but this model needs exactly 50 nt; extend it to 50 nt."
    )
    assert element_text(reply.text, "variant-summary") == (
        "5 variants: 3 scored, 2 refused (listed last, with the reason). Reference score (P(1)): "
        "0.5."
    )


def test_variant_csv_upload_keeps_ids(server: Running) -> None:
    csv_text = "ID,Pos,Ref,Alt\nrs1,1,G,C\nrs2,2,G,A\nrs3,40,C,G\n"
    reply = ui_post(
        server.url + "/models/gc/variants",
        data={"sequence": GC_HALF},
        files={"file": ("variants.csv", csv_text, "text/csv")},
    )
    rows = body_rows(reply.text, "variant-table")
    assert [(r[0], r[2]) for r in rows] == [("2", "rs2"), ("1", "rs1"), ("3", "rs3")]
    assert rows[1][5] == "+0" and rows[2][3].startswith("variant 3: the sequence has 'A' at")
    bad = ui_post(
        server.url + "/models/gc/variants",
        data={"sequence": GC_HALF},
        files={"file": ("v.csv", "pos,base\n1,G\n", "text/csv")},
    )
    assert bad.status_code == 422
    assert element_text(bad.text, "file-error") == (
        "v.csv needs a header row with columns position, ref, alt (and optionally id); it has: "
        "pos, base."
    )


def test_variant_form_errors_are_next_to_their_fields(server: Running) -> None:
    reply = ui_post(
        server.url + "/models/gc/variants", data={"sequence": GC_HALF, "variants": "1 G A\n2 G\n"}
    )
    assert reply.status_code == 422
    assert element_text(reply.text, "variants-error") == (
        "line 2: expected 'position ref alt' (e.g. '12 A G'; '-' for no bases), got '2 G'."
    )
    assert "variant-table" not in reply.text
    short = ui_post(
        server.url + "/models/gc/variants", data={"sequence": "ACGT", "variants": "1 A G"}
    )
    assert element_text(short.text, "sequence-feedback") == (
        "DNA sequence length is 4 nt, but this model needs exactly 50 nt; extend it to 50 nt."
    )


def test_design_trajectory_respects_and_shows_constraints(server: Running) -> None:
    form = {
        "start": "AT" * 25,
        "goal": "max",
        "rounds": "8",
        "fixed": "1, 3",
        "forbid": "ggg",
        "gc_min": "0",
        "gc_max": "0.1",
    }
    reply = ui_post(server.url + "/models/gc/design", data=form)
    assert reply.status_code == 200
    rows = body_rows(reply.text, "trajectory-table")
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "4", "5"]  # 5 G/C fit the GC range
    assert rows[0][1] == "start" and rows[0][2] == "AT" * 25
    scores = [float(r[3]) for r in rows]
    assert scores == sorted(scores) and scores[0] < scores[-1]
    for row in rows:
        sequence = row[2]
        assert sequence[0] == "A" and sequence[2] == "A" and "GGG" not in sequence
        assert sum(c in "GC" for c in sequence) <= 5
    assert reply.text.count("<mark>") == 5
    chart = re.search(r'<figure id="trajectory-chart">(.*?)</figure>', reply.text, re.S)
    assert chart is not None and chart.group(1).count("<circle") == 6
    assert list_items(reply.text, "design-constraints") == [
        "Goal: max",
        "Fixed positions: 1, 3",
        "Forbidden motifs: GGG",
        "GC range: 0.00 to 0.10 (final sequence: 0.10)",
    ]
    assert "stopped early" in element_text(reply.text, "design-summary")


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"rounds": "61"}, "rounds-error", "rounds must be a whole number from 1 to 60, got '61'."),
        (
            {"goal": "target"},
            "target_value-error",
            "enter the score to aim for (a number) when the goal is a target.",
        ),
        ({"fixed": "51"}, "fixed-error", "fixed position 51 is outside the sequence (1 to 50)."),
        (
            {"fixed": "9-3"},
            "fixed-error",
            "fixed positions are 1-based numbers or ranges like "
            "5-10, separated by commas; '9-3' is neither.",
        ),
        (
            {"gc_min": "0.2"},
            "gc-error",
            "the start sequence's GC fraction 0.00 is outside the "
            "gc range [0.2, 1.0]; widen the range or change the start.",
        ),
        (
            {"start": "AT" * 75, "rounds": "21"},
            "rounds-error",
            "21 rounds of a 150-nt sequence "
            "is more than this page runs (rounds x length up to 3,000); use at most 20 rounds, or "
            "the design API.",
        ),
        ({"gc_max": "lots"}, "gc-error", "the highest GC fraction must be a number, got 'lots'."),
    ],
)
def test_design_field_errors(
    server: Running, fields: dict[str, str], where: str, message: str
) -> None:
    reply = ui_post(server.url + "/models/gc/design", data={"start": "AT" * 25, **fields})
    assert reply.status_code == 422
    assert element_text(reply.text, where) == message
    assert "trajectory-table" not in reply.text


def test_explain_pages_are_for_dna_models_only(server: Running) -> None:
    for path in ("variants", "design"):
        reply = httpx.get(f"{server.url}/models/tumor-wisconsin/{path}")
        assert reply.status_code == 404
        assert (
            "tumor-wisconsin@1 takes tabular inputs; explanations are for DNA models." in reply.text
        )
    tumour = httpx.get(server.url + "/models/tumor-wisconsin").text
    assert "/variants" not in tumour and "/design" not in tumour
    primer = httpx.get(server.url + "/models/primer-binding").text
    assert 'href="/models/primer-binding/variants?version=1"' in primer
    assert 'href="/models/primer-binding/design?version=1"' in primer


def test_every_dna_prediction_shows_the_logo_and_heat_strip(server: Running) -> None:
    binds = "CGACCGAACTCC" + "A" * 38
    reply = ui_post(server.url + "/models/primer-binding/predict", data={"sequence": binds})
    assert 'id="importance"' in reply.text
    strip = re.search(r'<figure id="heat-strip">(.*?)</figure>', reply.text, re.S)
    assert strip is not None and strip.group(1).count("<rect") == 50
    names = (
        "clump_thickness",
        "uniformity_cell_size",
        "uniformity_cell_shape",
        "marginal_adhesion",
        "single_epithelial_cell_size",
        "bare_nuclei",
        "bland_chromatin",
        "normal_nucleoli",
        "mitoses",
    )
    tumour = ui_post(server.url + "/models/tumor-wisconsin/predict", data=dict.fromkeys(names, "1"))
    assert 'id="result"' in tumour.text  # predicted, but no DNA explanation for a tabular model
    assert "heat-strip" not in tumour.text and 'id="importance"' not in tumour.text
    assert 'id="filled"' not in tumour.text
    empty = dict.fromkeys(names, "1") | {"uniformity_cell_shape": "", "mitoses": " "}
    gaps = ui_post(server.url + "/models/tumor-wisconsin/predict", data=empty)
    assert 'id="result"' in gaps.text
    note = re.search(r'<p class="note" id="filled">([^<]*)</p>', gaps.text)
    assert note is not None and note.group(1) == (
        "Left empty: uniformity cell shape, mitoses. The model filled them in as it learned to "
        "in training (imputed), so this answer rests on fewer measurements; enter them for a "
        "firmer one."
    )


def test_form_posts_need_the_page_token(server: Running) -> None:
    page = httpx.get(server.url + "/models/primer-binding/predict")
    token = page.cookies["hs_csrf"]
    assert f'name="csrf_token" value="{token}"' in page.text
    assert "samesite=strict" in page.headers["set-cookie"].lower()
    assert "httponly" in page.headers["set-cookie"].lower()
    url = server.url + "/models/primer-binding/predict"
    refused = {
        "no token": httpx.post(url, data={"sequence": GC_HALF * 2}),
        "no cookie": httpx.post(url, data={"sequence": GC_HALF * 2, "csrf_token": token}),
        "mismatch": ui_post(
            url,
            {"sequence": GC_HALF * 2, "csrf_token": "x" * 20},
            headers={"sec-fetch-site": "same-origin"},
        ),
        "cross-site": ui_post(
            url, {"sequence": GC_HALF * 2}, headers={"sec-fetch-site": "cross-site"}
        ),
    }
    for why, reply in refused.items():
        assert reply.status_code == 403, why
        assert "did not come from a page of this server" in reply.text, why
    with httpx.Client(cookies={"hs_csrf": token}) as client:
        ok = client.post(url, data={"sequence": "CGACCGAACTCC" + "A" * 38, "csrf_token": token})
    assert ok.status_code == 200
    assert "set-cookie" not in ok.headers  # the browser's token is kept
