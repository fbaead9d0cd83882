"""The long fuzzing run: hypothesis on every parser, schemathesis on the whole API, hostile files.

``python -m reliability.fuzz [--examples N] [--out PATH]`` runs ``tests/test_fuzz.py``,
``tests/test_api_schema.py`` and ``tests/test_hostile.py`` under pytest with
``HELIXSERVE_FUZZ_EXAMPLES=N`` (default 5,000 examples per hypothesis target; schemathesis gets a
tenth of that per API operation) and writes a JSON summary (default
``reliability/results/fuzz.json``): per target the inputs tried and the outcome, the totals, the
failures found and the time taken. The exit status is pytest's (0: nothing found).

Inputs tried are read from hypothesis's own statistics for each test (passing + failing +
invalid examples over every phase); a test without hypothesis (one hostile file) counts one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["tests/test_fuzz.py", "tests/test_api_schema.py", "tests/test_hostile.py"]
DEFAULT_OUT = ROOT / "reliability" / "results" / "fuzz.json"
_EXAMPLES = re.compile(r"(\d+) passing examples?, (\d+) failing examples?, (\d+) invalid")


class Tally:
    """A pytest plugin that notes, per test, its outcome and how many inputs it tried."""

    def __init__(self) -> None:
        self.targets: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.targets.setdefault(report.nodeid, {"inputs": 1, "outcome": "passed"})
        if report.failed or (report.when == "call" and report.skipped):
            entry["outcome"] = "failed" if report.failed else "skipped"
        for name, text in report.sections:
            if name == "Hypothesis statistics":
                entry["inputs"] = inputs_tried(text)

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report = outcome.get_result()
        stats = getattr(item, "hypothesis_statistics", None)
        if report.when == "teardown" and isinstance(stats, str):
            report.sections.append(("Hypothesis statistics", stats))


def inputs_tried(statistics: str) -> int:
    """Examples hypothesis ran for one test, from its statistics text (every phase)."""
    return sum(sum(int(n) for n in match) for match in _EXAMPLES.findall(statistics)) or 1


def summary(tally: Tally, examples: int, seconds: float, exit_code: int) -> dict[str, Any]:
    failed = sorted(n for n, t in tally.targets.items() if t["outcome"] == "failed")
    return {
        "run": "fuzz", "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "examples_per_target": examples, "seconds": round(seconds, 1),
        "targets": len(tally.targets),
        "inputs_tried": sum(t["inputs"] for t in tally.targets.values()),
        "failures": len(failed), "failed": failed, "pytest_exit_code": exit_code,
        "per_target": dict(sorted(tally.targets.items())),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.fuzz", description=__doc__)
    parser.add_argument("--examples", type=int, default=5000, help="examples per target")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON summary path")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    args = parser.parse_args(argv)
    os.environ["HELIXSERVE_FUZZ_EXAMPLES"] = str(args.examples)
    os.chdir(ROOT)
    tally = Tally()
    started = time.monotonic()
    code = int(pytest.main(["-q", "-p", "no:cacheprovider", "--timeout=3600", *TARGETS,
                            *args.pytest_args], plugins=[tally]))  # fmt: skip
    result = summary(tally, args.examples, time.monotonic() - started, code)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(f"{result['inputs_tried']:,} inputs over {result['targets']} targets in "
                     f"{result['seconds']} s; {result['failures']} failure(s). "
                     f"Summary: {args.out}\n")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
