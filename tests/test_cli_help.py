"""``--help`` of every command, found by walking the app's command tree (so a command added
later is checked too): it exits 0, flags show no value, value options name their value,
choices are listed and enforced, every argument and option has a sentence of help, and every
command ends with examples that parse and fit an 80-column terminal."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperArgument, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from helixserve.cli.app import app

runner = CliRunner()
BARE_TYPE = re.compile(r"<[a-z ]+>|\b(BOOLEAN|TEXT|INTEGER|FLOAT|PATH|FILENAME)\b")
METAVAR = re.compile(r"[A-Z][A-Z0-9_]*([:=][A-Z][A-Z0-9_]*)?")


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command below ``command`` (itself included), with its path of names."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(get_command(app)))
LEAVES = [(path, command) for path, command in COMMANDS if not hasattr(command, "commands")]


def label(path: tuple[str, ...]) -> str:
    return " ".join(path) or "helixserve"


def is_sentence(text: str) -> bool:
    """Sentence case (a first word such as "gRPC" or "1-based" is fine) and a full stop."""
    first = (text.split(maxsplit=1) or [""])[0]
    return bool(first) and (first[0].isdigit() or not first.islower()) and text.endswith(".")


def params(command: Any) -> list[Any]:
    """The command's arguments and options, ``--help`` included."""
    return list(command.get_params(typer.Context(command)))


def examples(command: Any) -> list[str]:
    """The command lines of a command's examples, continuation lines joined."""
    text = (command.epilog or "").replace("\\\n", " ")
    return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]


def test_the_walk_finds_the_whole_tree() -> None:
    found = {label(path) for path, _ in COMMANDS}
    assert {
        "helixserve",
        "predict",
        "serve",
        "quickstart",
        "models",
        "models quantize",
        "explain ism",
        "keys new",
        "zoo build",
    } <= found
    assert len(LEAVES) >= 17


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[label(p) for p, _ in COMMANDS])
def test_help_exits_0_and_shows_no_bare_types(path: tuple[str, ...], command: Any) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert f"Usage: helixserve {' '.join((*path, ''))}" in result.output
    assert "<bool>" not in result.output
    summary = (command.help or "").strip().split("\n\n")[0]
    assert is_sentence(summary), f"{label(path)}: {summary!r}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[label(p) for p, _ in COMMANDS])
def test_every_parameter_is_described(path: tuple[str, ...], command: Any) -> None:
    ctx = typer.Context(command)
    for param in params(command):
        where = f"{label(path)} {param.opts[0] if param.opts else param.name}"
        text = (param.help or "").strip()
        assert is_sentence(text), f"{where}: {text!r}"
        shown = param.display_type_rich(ctx) or ""
        if isinstance(param, TyperArgument):
            assert METAVAR.fullmatch(param.metavar or ""), f"{where}: argument {param.metavar!r}"
            assert shown == "", f"{where}: an argument shows the type {shown!r}"
        elif isinstance(param, TyperOption) and param.is_flag:
            assert shown == "", f"{where}: a flag shows {shown!r}"
        else:
            assert not BARE_TYPE.search(shown), f"{where}: shows the bare type {shown!r}"
            assert "|" in shown or METAVAR.fullmatch(shown), f"{where}: metavar {shown!r}"


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[label(p) for p, _ in LEAVES])
def test_every_command_has_examples_that_parse(path: tuple[str, ...], command: Any) -> None:
    epilog = (command.epilog or "").strip()
    assert epilog.startswith("Examples:\n"), f"{label(path)} has no examples"
    assert all(len(line) <= 78 for line in epilog.splitlines())
    assert examples(command)
    for example in examples(command):
        words = shlex.split(example)
        assert words[: len(path) + 1] == ["helixserve", *path], example
        command.make_context(path[-1], words[len(path) + 1 :])  # a usage error fails here


def test_examples_render_indented_under_their_heading() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "80"})
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert lines[lines.index(" Examples:") :] == [
        " Examples:",
        "",
        "   # A binary DNA classifier from a sequence file and a label file",
        "   $ helixserve train dna-binary --data sequences.txt --labels labels.txt \\",
        "       --name primer-binding",
        "",
        "   # A DNA classifier of three or more classes (lengths from the data)",
        "   $ helixserve train dna-classify --data promoters.csv --target class \\",
        "       --name promoter-class",
        "",
        "   # A multi-label DNA model: one 0/1 column per label",
        "   $ helixserve train dna-classify --data regions.csv \\",
        "       --target enhancer,promoter,insulator",
        "",
        "   # A regressor on the rows of a CSV that pass a filter",
        "   $ helixserve train dna-regression --data utrs.csv.gz --sequence-col UTR \\",
        "       --target growth_rate --filter 't0>100' --name yeast-utr",
        "",
        "   # A random forest on a table, with 10-fold cross-validation",
        "   $ helixserve train tabular --data tumours.csv --target class --cv 10",
        "",
        "   # An image classifier from a folder of class sub-folders",
        "   $ helixserve train image --data images/ --image-size 128 --name my-cells",
        "",
        "   # An LSTM classifier with a lower learning rate and more patience",
        "   $ helixserve train dna-binary --data sequences.txt --labels labels.txt \\",
        "       --param arch=lstm --param lr=0.0005 --param patience=12",
        "",
        "",
    ]


def test_top_level_help_names_the_two_ways_in() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[1:8] == [
        "Usage: helixserve [OPTIONS] COMMAND [ARGS]...",
        "",
        "Train, store and serve machine-learning models for life-science data: DNA/RNA "
        "sequences, lab",
        "measurements and microscopy images.",
        "",
        "Start with helixserve quickstart or helixserve serve: the pretrained models and yours, "
        "with a web",
        "page at http://127.0.0.1:8000. Every command has --help with examples.",
    ]
    assert "│ --version          Print the version and exit." in result.output


def test_predict_options_read_like_a_cli() -> None:
    result = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "80"})
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert lines[lines.index(" Usage: helixserve predict [OPTIONS] {MODEL} {INPUT}") :] == [
        " Usage: helixserve predict [OPTIONS] {MODEL} {INPUT}",
        "",
        " Score a big file, resumably, in constant memory; bad rows go to the errors",
        " file.",
        "",
        "╭─ Arguments ──────────────────────────────────────────────────────────────────╮",
        "│ *    MODEL        The model: NAME, NAME@VERSION or NAME@ALIAS. [required]    │",
        "│ *    INPUT        File to score: CSV, TSV, FASTA, text (.gz is fine) or      │",
        "│                   Parquet; path or S3 URI.                                   │",
        "│                   [required]                                                 │",
        "╰──────────────────────────────────────────────────────────────────────────────╯",
        "╭─ Options ────────────────────────────────────────────────────────────────────╮",
        "│ --output            -o      FILE         Output .csv/.tsv/.jsonl (.gz) or    │",
        "│                                          .parquet (default:                  │",
        "│                                          INPUT.predictions.csv).             │",
        "│ --errors                    FILE         Where refused rows go (default:     │",
        "│                                          OUTPUT.errors.csv).                 │",
        "│ --resume                                 Continue an interrupted run.        │",
        "│ --batch-size                N            Records per model call.             │",
        "│                                          [default: 4096]                     │",
        "│ --workers                   N            ONNX Runtime threads. [default: 1]  │",
        "│ --store                     URI          Model store: a folder, file:// or   │",
        "│                                          s3:// URI (default:                 │",
        "│                                          HELIXSERVE_STORE).                  │",
        "│ --engine                    <local|ray>  Score in this process, or on a Ray  │",
        "│                                          cluster (extra 'ray').              │",
        "│                                          [default: local]                    │",
        "│ --address                   ADDRESS      Ray cluster: auto or                │",
        "│                                          ray://HOST:PORT (default: a local   │",
        "│                                          Ray; engine ray).                   │",
        "│ --actors                    N            Ray actors (engine ray).            │",
        "│                                          [default: 2]                        │",
        "│ --spreadsheet-safe                       Prefix ' to CSV/TSV cells a         │",
        "│                                          spreadsheet would run as formulas   │",
        "│                                          (=, +, -, @).                       │",
        "│ --help                                   Show this message and exit.         │",
        "╰──────────────────────────────────────────────────────────────────────────────╯",
        "",
        " Examples:",
        "",
        "   # Score a FASTA file; refused rows go to scores.errors.csv",
        "   $ helixserve predict primer-binding seqs.fasta.gz -o scores.csv",
        "",
        "   # Continue after an interruption",
        "   $ helixserve predict primer-binding seqs.fasta.gz -o scores.csv --resume",
        "",
        "   # Parquet in and out",
        "   $ helixserve predict yeast-utr utrs.parquet -o scores.parquet",
        "",
        "   # Score on a Ray cluster",
        "   $ helixserve predict primer-binding s3://lab/seqs.fasta.gz --engine ray",
        "",
        "",
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in os.environ.items() if k == "PYTHONPATH"})  # the tree under test
    return subprocess.run(
        [sys.executable, "-m", "helixserve", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def panel(text: str) -> str:
    """The words of a rich error panel, borders and line breaks removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["predict", "m", "in.csv", "--engine", "lokal"],
            "Invalid value for '--engine': Value error, 'lokal' is not one of 'local', 'ray'.",
        ),
        (
            ["serve", "--engine", "k8s"],
            "Invalid value for '--engine': Value error, 'k8s' is not one of 'local', 'ray'.",
        ),
        (
            ["keys", "new", "--scope", "root"],
            "Invalid value for '--scope': Value error, 'root' is not one of 'predict', 'admin'.",
        ),
        (
            ["train", "dna-bin", "--data", "x.txt"],
            "Invalid value for 'RECIPE': Value error, 'dna-bin' is not one of 'dna-classify', "
            "'dna-binary', 'dna-regression', 'dna-variable', 'tabular', 'image'.",
        ),
        (
            ["explain", "motifs", "m", "in.fa", "--width", "3"],
            "Invalid value for '--width': Input should be greater than or equal to 4",
        ),
    ],
)
def test_a_wrong_choice_is_a_usage_error(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    command = " ".join(args[: 2 if args[0] in ("keys", "explain") else 1])
    assert (
        result.stderr.startswith(f"Usage: helixserve {command} [OPTIONS]")
        and f"Try 'helixserve {command} --help' for help." in result.stderr
    )
    assert panel(result.stderr.split("\n", 2)[2]) == f"Error {message}"
