"""The command line: help, version, commands that are not there yet, and ``validate``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from helixserve import __version__
from helixserve.cli.app import app
from tests.conftest import write

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "examples" / "primers.fasta"


def _tree_under_test() -> dict[str, str]:
    """``PYTHONPATH`` if set, so that the subprocess runs the source tree under test."""
    return {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a subprocess (as a user would), capturing both streams."""
    return subprocess.run(
        [sys.executable, "-m", "helixserve", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **_tree_under_test()},
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"helixserve {__version__}\n"


def test_help_lists_every_design_command() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in ("serve", "train", "predict", "models", "quickstart", "bench", "validate"):
        assert f" {command} " in result.output
    models = runner.invoke(app, ["models", "--help"], env={"COLUMNS": "200"})
    for command in ("list", "show", "push", "pull", "promote", "delete", "import"):
        assert f" {command} " in models.output


def test_validate_reports_bad_records() -> None:
    result = run_cli("validate", str(EXAMPLE), "--length", "50")
    assert result.returncode == 0, result.stderr
    assert "10 records checked against exactly 50 nt, letters A, C, G, T" in result.stdout
    assert "6 valid, 4 invalid" in result.stdout
    assert "typo_1" in result.stdout and "position 31 is 'F'" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_writes_every_error_with_formula_cells_neutralised(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", "id,sequence\n=cmd,ACGTZ\n+ok,ACGT\n@x,\n")
    out = tmp_path / "errors.csv"
    result = runner.invoke(app, ["validate", str(data), "--errors", str(out), "--strict"])
    assert result.exit_code == 1
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["record", "id", "line", "message"],
        [
            "1",
            "'=cmd",
            "2",
            "DNA sequence is not valid DNA: position 5 is 'Z'. Only the letters "
            "A, C, G, T are allowed; remove it or correct the typo.",
        ],
        [
            "3",
            "'@x",
            "4",
            "DNA sequence is empty: enter a sequence of any length using the letters A, C, G, T.",
        ],
    ]


def test_validate_unreadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("validate", str(write(tmp_path / "e.fa", "")))
    assert result.returncode == 1
    assert result.stderr == (
        "Error: file is empty: it has no records. Upload a FASTA, CSV/TSV or "
        "one-sequence-per-line text file (optionally gzip-compressed).\n"
    )


def test_validate_missing_column(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", "id,dna\na,ACGT\n")
    result = run_cli("validate", str(data), "--sequence-col", "seq")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "Error: column 'seq' is not in the file; its header has: id, dna."
    )


def test_usage_error_is_typers() -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2


def test_validate_prints_ids_with_brackets_literally(tmp_path: Path) -> None:
    data = write(tmp_path / "m.fa", ">[/]x [bold]\nACGF\n")
    result = run_cli("validate", str(data))
    assert result.returncode == 0, result.stderr
    assert "[/]x" in result.stdout
    assert "1 record checked against any length" in result.stdout


def test_validate_conflicting_length_options() -> None:
    result = run_cli("validate", str(EXAMPLE), "--length", "5", "--min-length", "2")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: the length options do not fit together: give either 'length' (exact) or "
        "'min_length'/'max_length', not both.\n"
    )


def test_validate_errors_file_that_cannot_be_written(tmp_path: Path) -> None:
    result = run_cli("validate", str(EXAMPLE), "--errors", str(tmp_path / "no" / "e.csv"))
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: cannot write the errors file {tmp_path / 'no' / 'e.csv'}: No such file or "
        "directory; choose a file in a folder you can write to.\n"
    )


def test_bench_measures_a_zoo_model(tmp_path: Path) -> None:
    zoo = EXAMPLE.parents[1] / "zoo" / "store"
    result = runner.invoke(
        app,
        ["bench", "primer-binding", "--store", str(zoo), "--batch", "1,16", "--seconds", "0.1"],
        env={"COLUMNS": "200", "HELIXSERVE_CACHE_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "16"]
    assert all(float(row.split("│")[2].replace(",", "")) > 0 for row in rows)


def test_bench_refuses_bad_batch_sizes() -> None:
    result = run_cli("bench", "primer-binding", "--batch", "0,8")
    assert result.returncode == 1
    assert result.stderr == "Error: --batch sizes must be 1 or more, got '0,8'.\n"
