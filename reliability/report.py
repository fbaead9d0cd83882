"""Write docs/reliability.md from the long suite's results (``reliability/results/*.json``).

Run with ``python -m reliability.report`` (the last step of ``make reliability``). The page
starts with ``reliability/intro.md`` (what ``make test`` checks); then each run's
JSON (``fuzz.json``, ``load.json``, ``faults.json``) becomes a section: its headline figures,
then every measured value as written by the run. A run whose file is missing is reported as
not run; nothing is invented.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reliability" / "results"
DOC = ROOT / "docs" / "reliability.md"

INTRO = Path(__file__).with_name("intro.md")  # the fixed part of the page


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows += _flat(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and len(value) > 12:
        return [(prefix, f"{len(value)} items")]
    return [(prefix, json.dumps(value) if not isinstance(value, str) else value)]


def _section(title: str, name: str, skip: tuple[str, ...] = ()) -> str:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return f"## {title}\n\nNot run (no `{path.relative_to(ROOT)}`).\n"
    data = json.loads(path.read_text())
    rows = [(k, v) for k, v in _flat(data) if not k.startswith(skip)]
    table = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)
    source = path.relative_to(ROOT)
    return f"## {title}\n\nFrom `{source}`.\n\n| measure | value |\n|---|---|\n{table}\n"


def main() -> None:
    parts = [
        INTRO.read_text(encoding="utf-8"),
        _section("Long fuzzing run (`python -m reliability.fuzz`)", "fuzz", ("per_target",)),
        _section("Load, overload, soak, shutdown (`python -m reliability.load`)", "load"),
        _section("Faults (`python -m reliability.faults`)", "faults"),
    ]
    DOC.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
