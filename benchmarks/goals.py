"""Issue 19's goals beside the figures ``make bench`` measured, written into docs/benchmarks.md.

Each benchmark that measures one of the goals calls :func:`record` with what it measured (a
short text, whether the goal is met — ``None`` where the goal is a figure to report, not a bar —
and the configuration). The figures are kept in ``benchmarks/results-goals.json`` (one entry per
goal, the latest run's), so a benchmark run on its own updates its rows only.
``python -m benchmarks.goals`` (the last step of ``make bench``) writes the table between the
``bench-goals`` markers of docs/benchmarks.md, each row dated and with the load average its
benchmark saw.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results-goals.json"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench-goals:start -->", "<!-- bench-goals:end -->"

# key: the goal as issue 19 states it (the table's order)
GOALS: dict[str, str] = {
    "serving": "domain API, README defaults: >= 4x Flask (gunicorn, 2 sync workers), p99 <= 10 ms",
    "access-log": "access log on (default) against off, one run: measured, both written",
    "heavy": "heavy model (Cuperus CNN) at c=64: served >= 0.85 of model-only, p99 reported",
    "heavy-profile": "heavy model below the goal: what bounds it (py-spy profile, CPU split)",
    "grpc-p50": "gRPC p50 <= REST p50 at c=1, 8, 32 (single sequence)",
    "grpc-rps": "gRPC requests/s >= REST at c=32 (single sequence)",
    "grpc-big": "1,000-sequence request: gRPC faster than REST JSON",
    "ism": "one 50-nt yeast-utr ISM over the API: p50 <= 20 ms",
    "ism-rank": "int8 vs fp32 ISM effects over the test UTRs: rank correlation >= 0.99",
    "watchers": "100 browsers watching one run: server CPU and event latency measured",
    "upload": "1 GB upload: RSS flat; throughput against the disk's write speed",
}


def record(
    key: str,
    measured: str,
    met: bool | None,
    config: str,
    *,
    when: str | None = None,
    load: float | None = None,
) -> None:
    """Keep this run's figure for goal ``key`` (see :data:`GOALS`); ``when`` and ``load`` are
    now's unless given (a run recorded afterwards from its results file)."""
    if key not in GOALS:
        raise KeyError(f"unknown goal {key!r}; known: {', '.join(GOALS)}")
    found = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    found[key] = {
        "measured": measured,
        "met": met,
        "config": config,
        "when": when or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": round(os.getloadavg()[0] if load is None else load, 1),
    }
    RESULTS.write_text(json.dumps(found, indent=2) + "\n")


def table(found: dict[str, dict[str, object]]) -> str:
    lines = [
        "| goal (issue 19) | measured | met | configuration | when (load average) |",
        "|---|---|---|---|---|",
    ]
    for key, goal in GOALS.items():
        row = found.get(key)
        if row is None:
            lines.append(f"| {goal} | not measured yet | - | - | - |")
            continue
        met = {True: "**yes**", False: "**no**", None: "(a figure)"}[row["met"]]  # type: ignore[index]
        lines.append(
            f"| {goal} | {row['measured']} | {met} | {row['config']} | "
            f"{row['when']} ({row['load']}) |"
        )
    return "\n".join(lines)


def render() -> None:
    """Write the table into docs/benchmarks.md between the markers."""
    found = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"Error: {DOC} has no {START} ... {END} markers to write between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{table(found)}\n{END}{tail}")
    print(f"wrote {len(found)} of {len(GOALS)} goals into {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    render()
