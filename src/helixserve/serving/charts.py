"""Charts for the web UI as inline SVG, drawn on the server from a bundle's plot JSON.

Contract: each function takes the JSON a training run saved under ``plots/`` (see
``helixserve.training.plots``) and returns an SVG string (``<svg ...>``) that needs no script and
no network: ``loss`` (train / validation loss per epoch, best epoch marked; several runs may be
overlaid), ``roc``, ``scatter`` (predicted vs measured, at most 1,500 points drawn), ``errors``
(histogram). The confusion matrix is a table (:func:`confusion_rows`). Text is escaped; malformed
plot data raises ``ValueError`` (the page then shows the plot as missing).
Explanations: :func:`ism_logo` (per-base contribution logo), :func:`importance_strip` (one cell
per position, darker = more important), :func:`block_strip` (block occlusion of a long sequence,
one cell per block, signed), :func:`motif_logo` (a frequency matrix as a sequence logo) and
:func:`trajectory` (a design's score per round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

W, H, PAD = 420, 260, 42
LEGEND_ROW = 16  # the height of a row of the legend under a chart
COLOURS = ("#1f6fb2", "#d9730d", "#2e7d32", "#8e24aa", "#c62828", "#00838f")


def _scale(
    values: Sequence[float], low: float, high: float, out_low: float, out_high: float
) -> list[float]:
    span = (high - low) or 1.0
    return [out_low + (v - low) / span * (out_high - out_low) for v in values]


def _frame(
    title: str,
    x_label: str,
    y_label: str,
    body: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    legend: Sequence[tuple[str, str, str]] = (),
) -> str:
    ticks = []
    for i in range(5):
        fx = x_range[0] + (x_range[1] - x_range[0]) * i / 4
        fy = y_range[0] + (y_range[1] - y_range[0]) * i / 4
        x = PAD + (W - 2 * PAD) * i / 4
        y = H - PAD - (H - 2 * PAD) * i / 4
        ticks.append(
            f'<text x="{x:.1f}" y="{H - PAD + 14}" class="tick" '
            f'text-anchor="middle">{fx:.3g}</text>'
        )
        ticks.append(
            f'<text x="{PAD - 4}" y="{y + 3:.1f}" class="tick" text-anchor="end">{fy:.3g}</text>'
        )
    key, rows = _legend(legend)
    return (
        f'<svg viewBox="0 0 {W} {H + LEGEND_ROW * rows}" class="chart" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" class="plot"/>'
        f"{''.join(ticks)}{body}{key}"
        f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" class="axis">{escape(x_label)}</text>'
        f'<text x="4" y="{PAD - 8}" text-anchor="start" class="axis">{escape(y_label)}</text>'
        f'<text x="{W / 2}" y="18" text-anchor="middle" class="title">{escape(title)}</text></svg>'
    )


def _polyline(xs: list[float], ys: list[float], colour: str, dash: str = "") -> str:
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{extra}/>'


def _legend(entries: Sequence[tuple[str, str, str]]) -> tuple[str, int]:
    """Line samples and labels in rows under the chart, where they cover no data; the SVG and
    the number of rows."""
    parts, row, x = [], 0, float(PAD)
    for label, colour, dash in entries:
        width = 30 + 6 * len(label) + 14
        if x > PAD and x + width > W - 4:
            row, x = row + 1, float(PAD)
        y = H + 6 + LEGEND_ROW * row
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{x:.0f}" x2="{x + 20:.0f}" y1="{y}" y2="{y}" '
            f'stroke="{colour}" stroke-width="2"{extra}/><text x="{x + 24:.0f}" '
            f'y="{y + 4}" class="tick">{escape(label)}</text>'
        )
        x += width
    return "".join(parts), (row + 1 if entries else 0)


def loss(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Train (solid) and validation (dashed) loss per epoch for one or more labelled runs."""
    curves = [
        (
            label,
            [float(v) for v in data["train_loss"]],
            [float(v) for v in data.get("val_loss") or []],
            int(data.get("best_epoch") or 0),
        )
        for label, data in runs
    ]
    values = [v for _, t, val, _ in curves for v in (*t, *val)]
    if not values:
        raise ValueError("no loss values")
    epochs = max(len(t) for _, t, _, _ in curves)
    low, high = min(values), max(values)
    if 0 <= low < high / 3:  # a loss falling towards 0: the axis starts at 0 (no 0.000937 tick)
        low = 0.0
    body, legend = [], []
    for i, (label, train, val, best) in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        for series, dash, name in ((train, "", "train"), (val, "5,4", "validation")):
            if series:
                xs = _scale(range(1, len(series) + 1), 1, max(epochs, 2), PAD, W - PAD)
                ys = _scale(series, low, high, H - PAD, PAD)
                body.append(_polyline(xs, ys, colour, dash))
                legend.append((f"{label} {name}".strip(), colour, dash))
        if best and len(runs) == 1:
            (x,) = _scale([best], 1, max(epochs, 2), PAD, W - PAD)
            body.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD}" y2="{H - PAD}" class="marker"/>'
            )
            legend.append((f"best epoch {best}", "#777", "2,3"))
    return _frame(
        "Training curves", "epoch", "loss", "".join(body), (1, max(epochs, 2)), (low, high), legend
    )


def roc(data: dict[str, Any]) -> str:
    fpr, tpr = [float(v) for v in data["fpr"]], [float(v) for v in data["tpr"]]
    xs, ys = _scale(fpr, 0, 1, PAD, W - PAD), _scale(tpr, 0, 1, H - PAD, PAD)
    diagonal = _polyline([PAD, W - PAD], [H - PAD, PAD], "#999", "3,3")
    body = diagonal + _polyline(xs, ys, COLOURS[0])
    legend = [(f"AUC {float(data['auc']):.3f}", COLOURS[0], "")]
    return _frame(
        "ROC (test)", "false positive rate", "true positive rate", body, (0, 1), (0, 1), legend
    )


def scatter(data: dict[str, Any]) -> str:
    true, pred = [float(v) for v in data["true"]], [float(v) for v in data["predicted"]]
    step = max(1, len(true) // 1500)
    true, pred = true[::step], pred[::step]
    low, high = min(true + pred), max(true + pred)
    xs, ys = _scale(true, low, high, PAD, W - PAD), _scale(pred, low, high, H - PAD, PAD)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" class="dot"/>'
        for x, y in zip(xs, ys, strict=True)
    )
    body = _polyline([PAD, W - PAD], [H - PAD, PAD], "#999", "3,3") + dots
    return _frame(
        "Predicted vs measured (test)", "measured", "predicted", body, (low, high), (low, high)
    )


def errors(data: dict[str, Any]) -> str:
    """A histogram of the test errors; the count axis is whole numbers."""
    edges, counts = [float(v) for v in data["bin_edges"]], [int(v) for v in data["counts"]]
    top = 4 * math.ceil((max(counts) or 1) / 4)  # four tick steps of whole counts
    xs = _scale(edges, edges[0], edges[-1], PAD, W - PAD)
    bars = "".join(
        f'<rect x="{xs[i]:.1f}" y="{H - PAD - (H - 2 * PAD) * c / top:.1f}" '
        f'width="{max(xs[i + 1] - xs[i] - 1, 1):.1f}" height="{(H - 2 * PAD) * c / top:.1f}" '
        f'class="hist"><title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
        if c > 0
    )
    return _frame(
        "Error distribution (test)",
        "predicted - measured",
        "count",
        bars,
        (edges[0], edges[-1]),
        (0, top),
    )


def confusion_rows(data: dict[str, Any]) -> tuple[list[str], list[list[tuple[int, float]]]]:
    """Labels and, per true label, (count, shade 0..1) per predicted label."""
    labels = [str(v) for v in data["labels"]]
    matrix = [[int(v) for v in row] for row in data["matrix"]]
    top = max((v for row in matrix for v in row), default=0) or 1
    return labels, [[(v, v / top) for v in row] for row in matrix]


BASE_COLOURS = {"A": "#2e7d32", "C": "#1f6fb2", "G": "#e8a317", "T": "#c62828"}


def ism_logo(sequence: str, effects: Sequence[Sequence[float]]) -> str:
    """A logo of what each base contributes: the reference letter at each position, scaled by
    minus the mean score change of replacing it (up: the base supports the prediction; down: it
    works against it)."""
    contributions = [-(sum(row) / 3) for row in effects]
    top = max((abs(c) for c in contributions), default=0.0) or 1.0
    width = max(420, 12 * len(sequence) + 2 * PAD)
    mid, half = 90, 70
    step = (width - 2 * PAD) / max(len(sequence), 1)
    parts = [f'<line x1="{PAD}" x2="{width - PAD}" y1="{mid}" y2="{mid}" stroke="#999"/>']
    for i, (base, value) in enumerate(zip(sequence, contributions, strict=True)):
        height = abs(value) / top * half
        x = PAD + step * i
        colour = BASE_COLOURS.get(base, "#777")
        if height >= 0.5:
            scale = height / 11  # the glyph is about 11 px tall at font-size 14
            y = mid if value > 0 else mid + height
            parts.append(
                f'<text x="{x:.1f}" y="0" font-size="14" font-family="monospace" '
                f'font-weight="700" fill="{colour}" transform="translate(0 {y:.1f}) '
                f'scale(1 {scale:.3f})">{escape(base)}</text>'
            )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{mid + half + 16}" class="tick" '
            f'text-anchor="middle" fill="{colour}">{escape(base)}</text>'
        )
    title = "Per-base contribution (in-silico mutagenesis): up supports the prediction"
    parts.append(f'<text x="{PAD}" y="14" class="title">{title}</text>')
    return (
        f'<svg viewBox="0 0 {width} {mid + half + 24}" class="chart logo" role="img" '
        f'aria-label="per-base importance">{"".join(parts)}</svg>'
    )


def importance_strip(sequence: str, importance: Sequence[float]) -> str:
    """A heat strip: one cell per position shaded by its importance (mean absolute score change
    of the three substitutions), the base written in it while cells are wide enough."""
    top = max(importance, default=0.0) or 1.0
    cell = 12.0 if len(sequence) <= 200 else max(600 / max(len(sequence), 1), 0.5)
    width = max(420.0, cell * len(sequence) + 2 * PAD)
    cells = []
    for i, (base, value) in enumerate(zip(sequence, importance, strict=True)):
        shade = min(max(value / top, 0.0), 1.0)
        x = PAD + cell * i
        tip = f"position {i + 1} {escape(base)}: importance {value:.4g}"
        cells.append(
            f'<rect x="{x:.1f}" y="22" width="{cell:.2f}" height="22" '
            f'fill="#b3261e" fill-opacity="{shade:.3f}" stroke="#d6dde6" '
            f'stroke-width="0.3"><title>{tip}</title></rect>'
        )
        if cell >= 10:
            ink = "#fff" if shade > 0.55 else "#1b2430"
            cells.append(
                f'<text x="{x + cell / 2:.1f}" y="37" font-size="10" text-anchor="middle" '
                f'font-family="monospace" fill="{ink}">{escape(base)}</text>'
            )
    for position in range(10, len(sequence) + 1, 10 if cell >= 10 else 100):
        x = PAD + cell * (position - 0.5)
        cells.append(
            f'<text x="{x:.1f}" y="58" class="tick" text-anchor="middle">{position}</text>'
        )
    title = "Per-base importance (mean |score change| of the 3 substitutions): darker = more"
    return (
        f'<svg viewBox="0 0 {width:.0f} 64" class="chart strip" role="img" '
        f'aria-label="per-base importance heat strip"><text x="{PAD}" y="14" class="title">'
        f"{title}</text>{''.join(cells)}</svg>"
    )


def motif_logo(frequencies: Sequence[Sequence[float]], title: str) -> str:
    """A sequence logo of a position frequency matrix (``width x 4``, columns A C G T): each
    column a stack of letters, the likeliest on top, heights = frequency x information (bits,
    2 at most)."""
    column, tall = 22, 90
    width = max(160, column * len(frequencies) + 2 * PAD)
    parts = [
        f'<line x1="{PAD}" x2="{PAD + column * len(frequencies)}" y1="{tall + 20}" '
        f'y2="{tall + 20}" stroke="#999"/>'
    ]
    for i, row in enumerate(frequencies):
        total = sum(row) or 1.0
        p = [v / total for v in row]
        bits = 2 + sum(v * math.log2(v) for v in p if v > 0)
        y = tall + 20.0
        for base, share in sorted(zip("ACGT", p, strict=True), key=lambda item: item[1]):
            height = share * bits / 2 * tall
            if height >= 0.5:
                y -= height
                parts.append(
                    f'<text x="{PAD + column * i:.1f}" y="0" font-size="20" '
                    f'font-family="monospace" font-weight="700" fill="{BASE_COLOURS[base]}" '
                    f'transform="translate(0 {y + height:.1f}) scale(1 {height / 15:.3f})">'
                    f"{base}</text>"
                )
        parts.append(
            f'<text x="{PAD + column * (i + 0.5):.1f}" y="{tall + 34}" class="tick" '
            f'text-anchor="middle">{i + 1}</text>'
        )
    parts.append(f'<text x="{PAD}" y="14" class="title">{escape(title)}</text>')
    return (
        f'<svg viewBox="0 0 {width} {tall + 40}" class="chart logo motif" role="img" '
        f'aria-label="{escape(title)}">{"".join(parts)}</svg>'
    )


def block_strip(
    length: int, starts: Sequence[int], block: int, effects: Sequence[float], fill: str
) -> str:
    """Block occlusion as a strip, one cell per block: red where replacing the block lowers the
    score (the block supports the prediction), blue where it raises it; darker = larger."""
    top = max((abs(e) for e in effects), default=0.0) or 1.0
    cell = max(600 / max(len(starts), 1), 2.0)
    width = max(420.0, cell * len(starts) + 2 * PAD)
    how = "N" if fill == "N" else "its complement"
    cells = []
    for k, (start, effect) in enumerate(zip(starts, effects, strict=True)):
        end = min(start + block, length)
        colour = "#b3261e" if effect < 0 else "#1f6fb2"
        tip = f"positions {start + 1:,}-{end:,} replaced by {how}: score change {effect:+.4g}"
        cells.append(
            f'<rect x="{PAD + cell * k:.1f}" y="22" width="{cell:.2f}" height="22" '
            f'fill="{colour}" fill-opacity="{min(abs(effect) / top, 1.0):.3f}" stroke="#d6dde6" '
            f'stroke-width="0.3"><title>{tip}</title></rect>'
        )
    step = max(1, len(starts) // 6)
    for k in range(0, len(starts), step):
        x = PAD + cell * k
        cells.append(f'<text x="{x:.1f}" y="58" class="tick">{starts[k] + 1:,}</text>')
    title = (
        f"Block occlusion: each {block}-nt block replaced by {escape(how)} in turn; "
        "red lowers the score, blue raises it"
    )
    return (
        f'<svg viewBox="0 0 {width:.0f} 64" class="chart strip" role="img" '
        f'aria-label="block occlusion strip"><text x="{PAD}" y="14" class="title">{title}</text>'
        f"{''.join(cells)}</svg>"
    )


def trajectory(
    rounds: Sequence[int], scores: Sequence[float], label: str, target: float | None = None
) -> str:
    """A design's predicted score per round (round 0 is the start), with the target if any."""
    if not scores or len(rounds) != len(scores):
        raise ValueError("a trajectory needs one score per round")
    values = [*scores, *([] if target is None else [target])]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    last = max(*rounds, 1)
    xs, ys = _scale(rounds, 0, last, PAD, W - PAD), _scale(scores, low, high, H - PAD, PAD)
    body = [_polyline(xs, ys, COLOURS[0])]
    body += [
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS[0]}"><title>round {r}: '
        f"{s:.4g}</title></circle>"
        for x, y, r, s in zip(xs, ys, rounds, scores, strict=True)
    ]
    legend = [("predicted score", COLOURS[0], "")]
    if target is not None:
        (y,) = _scale([target], low, high, H - PAD, PAD)
        body.append(_polyline([PAD, W - PAD], [y, y], COLOURS[1], "5,4"))
        legend.append((f"target {target:.4g}", COLOURS[1], "5,4"))
    return _frame(
        "Design: predicted score per round",
        "round",
        label,
        "".join(body),
        (0, last),
        (low, high),
        legend,
    )
