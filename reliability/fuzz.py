"""The long fuzzing run: hypothesis on every parser, schemathesis on the whole API, hostile files.

``python -m reliability.fuzz [--examples N] [--out PATH]`` runs ``tests/test_fuzz.py``,
``tests/test_api_schema.py`` and ``tests/test_hostile.py`` under pytest with
``HELIXSERVE_FUZZ_EXAMPLES=N`` (default 5,000 examples per hypothesis target; schemathesis gets a
tenth of that per API operation) and writes a JSON summary (default
``reliability/results/fuzz.json``): per target the inputs tried and the outcome, the totals, the
failures found and the time taken. The exit status is pytest's (0: nothing found).

Inputs tried are read from hypothesis's own statistics for each test (passing + failing +
invalid test cases over every phase, summed over a schemathesis test's API operations); a test
without hypothesis (one hostile file, one request) counts one.
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
_CASES = re.compile(r"(\d+) passing[a-z ]*, (\d+) failing[a-z ]*, (?:and )?(\d+) invalid")


class Tally:
    """A pytest plugin that notes, per test, its outcome and how many inputs it tried.

    Hypothesis reports statistics once per run of a ``@given`` test; a schemathesis test runs
    one such test per API operation (as subtests), so the counts of every run are added up."""

    def __init__(self) -> None:
        self.targets: dict[str, dict[str, Any]] = {}

    def _entry(self, nodeid: str) -> dict[str, Any]:
        return self.targets.setdefault(nodeid, {"inputs": 0, "outcome": "passed"})

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        # imported here, once pytest runs: imported earlier, pytest could not rewrite its asserts
        from hypothesis.statistics import collector, describe_statistics  # noqa: PLC0415

        entry = self._entry(item.nodeid)
        variable: Any = collector  # typed for its default (None), not for the callbacks it holds
        outer = variable.value

        def note(stats: Any) -> None:
            entry["inputs"] += inputs_tried(describe_statistics(stats))
            if outer is not None:
                outer(stats)

        with variable.with_value(note):
            yield

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self._entry(report.nodeid)
        if report.failed:
            entry["outcome"] = "failed"
        elif report.when == "call" and report.skipped:
            entry["outcome"] = "skipped"
        if report.when == "teardown" and entry["inputs"] == 0:
            entry["inputs"] = 1  # a plain test: one input (a file, a request)


def inputs_tried(statistics: str) -> int:
    """Test cases hypothesis ran, from its statistics text (every phase)."""
    return sum(sum(int(n) for n in match) for match in _CASES.findall(statistics))


def summary(tally: Tally, examples: int, seconds: float, exit_code: int) -> dict[str, Any]:
    # a schemathesis operation's subtest report carries no count of its own (its test has it)
    targets = {n: t for n, t in tally.targets.items() if t["inputs"] or t["outcome"] != "passed"}
    failed = sorted(n for n, t in targets.items() if t["outcome"] == "failed")
    return {
        "run": "fuzz",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "examples_per_target": examples,
        "seconds": round(seconds, 1),
        "targets": len(targets),
        "inputs_tried": sum(t["inputs"] for t in targets.values()),
        "failures": len(failed),
        "failed": failed,
        "pytest_exit_code": exit_code,
        "per_target": dict(sorted(targets.items())),
    }


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
    code = int(
        pytest.main(
            ["-q", "-p", "no:cacheprovider", "--timeout=3600", *TARGETS, *args.pytest_args],
            plugins=[tally],
        )
    )
    result = summary(tally, args.examples, time.monotonic() - started, code)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(
        f"{result['inputs_tried']:,} inputs over {result['targets']} targets in "
        f"{result['seconds']} s; {result['failures']} failure(s). "
        f"Summary: {args.out}\n"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
