"""The workspace from the command line: the yeast tutorial end to end on SQLite and on a real
PostgreSQL (projects, datasets, subsets, an experiment with the Cuperus block preset, a run
trained by ``helixserve worker`` and followed with ``runs wait``, clone-and-continue from its
weights, compare, stop and resume, deploy), on the same workspace the server uses, and the
refusals as ``Error: ...`` with exit 1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helixserve.cli.app import app

runner = CliRunner()
UTRS = "cuperus2017_yeast_utr/Native_UTRs.csv.gz"
FAST = ("--param", "epochs=1", "--param", "kmer_ridge=false")  # the CNN alone: ~20 s less a run


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A workspace of the test's own (the variables the server reads too)."""
    return {
        "HELIXSERVE_DATABASE_URL": database_url,
        "HELIXSERVE_WORKSPACE_STORE": str(tmp_path / "workspace"),
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        "COLUMNS": "200",
    }


def cli(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def train(env: dict[str, str], run: str) -> str:
    """``helixserve worker --once`` (the real entry point, its own process) trains the oldest
    queued run while ``runs wait`` follows ``run``; what ``runs wait`` printed."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "helixserve", "worker", "--once", "--poll", "0.2"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        followed = cli(env, "runs", "wait", run, "-p", "yeast", "--poll", "0.2", "--timeout", "300")
    finally:
        _, errors = worker.communicate(timeout=60)
    assert worker.returncode == 0, errors.decode()
    assert re.match(r"epoch 1: train loss [\d.]+, validation loss [\d.]+\n", followed), followed
    found = re.search(rf"run {run} finished: best epoch 1; test .*r2 (-?[\d.]+)", followed)
    assert found is not None and float(found.group(1)) > 0, followed
    return followed


def upload_and_split(env: dict[str, str], path: Path) -> None:
    assert cli(env, "projects", "create", "yeast") == "created project yeast\n"
    cli(env, "datasets", "create", "utrs", "-p", "yeast")
    uploaded = cli(env, "datasets", "upload", "utrs", str(path), "-p", "yeast")
    assert re.match(
        r"version [0-9a-f]{12} \(Native_UTRs.csv.gz, csv\): 11,856 rows, 11,856 good, 0 refused",
        uploaded,
    )
    assert re.search(r"UTR\s+sequence", uploaded)
    assert re.search(
        r"UTR_name\s+id", cli(env, "datasets", "roles", "utrs", "UTR_name=id", "-p", "yeast")
    )
    p = ("-p", "yeast")
    cli(env, "datasets", "subset", "utrs", "measured", "--where", "t0>100", *p)
    cli(env, "datasets", "subset", "utrs", "train", "--fraction", "0.8", "--of", "measured", *p)
    val = cli(
        env,
        "datasets",
        "subset",
        "utrs",
        "val",
        "--rest",
        "--of",
        "measured",
        "--minus",
        "train",
        *p,
    )
    assert re.fullmatch(r"subset val of utrs: [\d,]+ rows\n", val)
    listed = cli(env, "datasets", "subsets", "utrs", *p)
    assert all(name in listed for name in ("measured", "train", "val"))


def test_the_tutorial_through_the_cli(
    env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    upload_and_split(env, shared_data / UTRS)
    p = ("-p", "yeast")
    made = cli(
        env,
        "experiments",
        "create",
        "cuperus",
        *p,
        "--dataset",
        "utrs",
        "--target",
        "growth_rate",
        "--train",
        "train",
        "--val",
        "val",
        "--recipe",
        "dna-regression",
        "--blocks",
        "preset",
        *FAST,
    )
    assert made.startswith("created experiment cuperus: dna-regression on utrs@")
    assert "14 blocks" in cli(env, "experiments", "show", "cuperus", *p)
    queued = cli(env, "runs", "start", "cuperus", *p)
    assert re.fullmatch(r"queued run cuperus:1 \(id \S+, engine local\)\n", queued)
    train(env, "cuperus:1")
    assert re.search(r"r2\s+0\.\d+", cli(env, "runs", "show", "cuperus:1", *p))
    cli(env, "experiments", "clone", "cuperus", "cuperus-slow", *p, "--param", "lr=0.0005")
    started = cli(env, "runs", "start", "cuperus-slow", *p, "--from", "cuperus:1")
    assert started.startswith("queued run cuperus-slow:1 (id ")
    train(env, "cuperus-slow:1")
    compared = cli(env, "runs", "compare", "cuperus:1", "cuperus-slow:1", *p)
    assert "≠ params.lr" in compared and "≠ init_from_run" in compared
    assert re.search(r"r2\s+0\.\d+\s+0\.\d+", compared), compared
    stop_and_resume(env)
    deployed = cli(env, "runs", "deploy", "cuperus-slow:1", "my-utr", *p, "--alias", "production")
    assert deployed.startswith("deployed run cuperus-slow:1 as my-utr@1 (production)\n")
    assert "curl -s 'http://127.0.0.1:8000/api/v1/models/my-utr/predict?version=1'" in deployed
    listed = cli(env, "projects", "list")
    assert re.search(r"yeast\s+1\s+2\s+2 finished, 1 queued", listed), listed
    utrs, scored = tmp_path / "utrs.txt", tmp_path / "scored.csv"
    utrs.write_text("ACGT" * 12 + "AC\n")
    cli(env, "predict", "my-utr@production", str(utrs), "-o", str(scored))
    row = scored.read_text().splitlines()[1]
    assert re.fullmatch(r"1,,-?\d+\.\d+(e-?\d+)?", row), row  # index, id (none), value


def stop_and_resume(env: dict[str, str]) -> None:
    """A second run of the first experiment: stopped while queued, then queued again; waiting
    on the stopped run is an error."""
    p = ("-p", "yeast")
    assert cli(env, "runs", "start", "cuperus", *p).startswith("queued run cuperus:2 ")
    assert cli(env, "runs", "stop", "cuperus:2", *p) == "run cuperus:2 is stopped\n"
    waited = runner.invoke(app, ["runs", "wait", "cuperus:2", *p], env=env)
    assert (waited.exit_code, str(waited.exception)) == (
        1,
        "run cuperus:2 ended stopped; see helixserve runs logs cuperus:2 -p yeast.",
    )
    assert cli(env, "runs", "resume", "cuperus:2", *p) == "run cuperus:2 is queued again\n"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point (``Error: ...`` and the exit status come from it)."""
    tree = {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "helixserve", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "PATH": "/usr/bin:/bin", "HELIXSERVE_PRETRAINED": "false", **tree},
    )


def test_refusals_are_errors_with_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    cli(env, "projects", "create", "yeast")
    result = run_cli(env, "runs", "show", "nope", "-p", "yeast")
    assert (result.returncode, result.stderr) == (1, "Error: project 'yeast' has no run 'nope'.\n")
    small = tmp_path / "x.csv"
    small.write_text("id,seq\nr1,ACGT\n")
    cases = [
        (
            ("datasets", "upload", "utrs", "nope.csv", "-p", "yeast"),
            "cannot read nope.csv: No such file or directory.",
        ),
        (
            ("datasets", "upload", "utrs", str(small), "-p", "other"),
            "no project named 'other'; projects: yeast.",
        ),
        (
            ("datasets", "subset", "utrs", "x", "-p", "yeast"),
            "give one of --where, --fraction, --rest, --all or --spec.",
        ),
        (
            (
                "experiments",
                "create",
                "e",
                "-p",
                "yeast",
                "--dataset",
                "utrs",
                "--target",
                "t",
                "--train",
                "a",
                "--val",
                "b",
                "--recipe",
                "tabular",
                "--param",
                "model=svm",
            ),
            "The 'model' parameter of tabular must be one of 'rf', 'gb'. Got 'svm' instead.",
        ),
    ]
    for args, message in cases:  # the HelixError that main() prints as "Error: ..."
        refused = runner.invoke(app, list(args), env=env)
        assert (refused.exit_code, str(refused.exception)) == (1, message), args
