"""The UI's server-side rendering: the card Markdown subset (always escaped) and SVG charts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixserve.serving import charts
from helixserve.serving.markdown import to_html


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
        "<table><thead><tr><th>metric</th><th>value</th></tr></thead>"
        "<tbody><tr><td>accuracy</td><td>0.96</td></tr></tbody></table>\n"
        "<ul><li>one</li><li>two</li></ul>"
    )


def test_markup_in_a_card_is_escaped() -> None:
    html = to_html('<script>alert(1)</script>\n\n| <b> | x |\n|---|---|\n| "q" | <i> |\n')
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@given(st.text(max_size=300))
def test_no_raw_angle_bracket_survives(text: str) -> None:
    html = to_html(text)
    for tag in ("<p>", "</p>", "<h2>", "</h2>", "<h3>", "</h3>", "<h4>", "</h4>", "<ul>", "</ul>",
                "<li>", "</li>", "<table>", "</table>", "<thead>", "</thead>", "<tbody>",
                "</tbody>", "<tr>", "</tr>", "<th>", "</th>", "<td>", "</td>", "<code>",
                "</code>", "<strong>", "</strong>", "<em>", "</em>"):  # fmt: skip
        html = html.replace(tag, "")
    assert "<" not in html and ">" not in html


def test_loss_chart_draws_both_curves_and_the_best_epoch() -> None:
    svg = charts.loss([("", {"train_loss": [0.7, 0.4, 0.3], "val_loss": [0.8, 0.5, 0.6],
                             "best_epoch": 2})])  # fmt: skip
    assert svg.startswith('<svg viewBox="0 0 420 260"')
    assert svg.count("<polyline") == 2
    assert 'class="marker"' in svg and "best epoch 2" in svg


def test_confusion_rows_shade_by_count() -> None:
    labels, rows = charts.confusion_rows({"labels": ["a", "b"], "matrix": [[8, 2], [0, 4]]})
    assert labels == ["a", "b"]
    assert rows == [[(8, 1.0), (2, 0.25)], [(0, 0.0), (4, 0.5)]]


def test_malformed_plot_data_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no loss values"):
        charts.loss([("", {"train_loss": [], "val_loss": []})])
