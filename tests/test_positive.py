"""The positive class of a binary target: named with --positive, or obvious; never alphabetical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helixserve.errors import HelixError
from helixserve.params.positive import CONVENTIONAL, binary_classes
from helixserve.store import ModelStore


@pytest.mark.parametrize(("negative", "positive"), CONVENTIONAL)
def test_every_conventional_pair_names_its_positive_class(negative: str, positive: str) -> None:
    assert binary_classes({negative, positive}, None) == [negative, positive]
    upper = {negative.upper(), f" {positive.title()} "}
    assert binary_classes(upper, None) == [negative.upper(), f" {positive.title()} "]


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ({"0", "1"}, ["0", "1"]),
        ({"1", "0.0"}, ["0.0", "1"]),
        ({"-1", "+1"}, ["-1", "+1"]),
        ({"1", "-1"}, ["-1", "1"]),
        ({"+", "-"}, ["-", "+"]),  # sorted as text, '+' comes first: it was the negative class
    ],
)
def test_numbers_and_signs(classes: set[str], expected: list[str]) -> None:
    assert binary_classes(classes, None) == expected


def test_a_named_class_wins_over_the_convention() -> None:
    assert binary_classes({"0", "1"}, "0") == ["1", "0"]
    assert binary_classes({"B", "M"}, "M") == ["B", "M"]
    assert binary_classes({"B", "M"}, "B") == ["M", "B"]


@pytest.mark.parametrize("classes", [{"B", "M"}, {"2", "4"}, {"1", "2"}, {"yes", "oui"}])
def test_other_pairs_are_refused_with_both_classes_named(classes: set[str]) -> None:
    first, second = sorted(classes)
    with pytest.raises(HelixError) as caught:
        binary_classes(classes, None)
    assert str(caught.value) == (
        f"which class is the positive one? The target's two classes are {first!r} and "
        f"{second!r}, and neither is positive by convention (as 1, true, yes, positive or + "
        f"are). Name it with --positive {second} or --positive {first}: the model's "
        "probability is that of the positive class."
    )


def test_a_class_with_spaces_is_quoted_for_the_shell() -> None:
    with pytest.raises(HelixError) as caught:
        binary_classes({"no motif", "motif"}, None, how="positive={}")
    assert str(caught.value).endswith(
        "Name it with positive='no motif' or positive=motif: the model's probability is that "
        "of the positive class."
    )


def test_a_named_class_must_be_one_of_the_two() -> None:
    with pytest.raises(HelixError) as caught:
        binary_classes({"B", "M"}, "malignant")
    assert str(caught.value) == (
        "--positive malignant names no class of the target; its two classes are 'B' and 'M'. "
        "Name one of them."
    )


def _train(tmp_path: Path, labels: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``helixserve train tabular`` (the fastest recipe) on rows whose class is ``labels[1]``
    when ``a + b > 11``."""
    rows = [(a, b) for a in range(1, 11) for b in range(1, 11)]
    lines = [f"{a},{b},{labels[1] if a + b > 11 else labels[0]}" for a, b in rows]
    if len(labels) > 2:
        lines += [f"{a},{b},{labels[2]}" for a, b in rows[:30]]
    path = tmp_path / "rows.csv"
    path.write_text("a,b,class\n" + "\n".join(lines) + "\n", encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "COLUMNS": "200",
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    command = ["train", "tabular", "--data", str(path), "--target", "class", "--name", "m"]
    return subprocess.run(
        [sys.executable, "-m", "helixserve", *command, "--param", "n_estimators=20", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _labels(tmp_path: Path) -> list[str] | None:
    return ModelStore.open(str(tmp_path / "store")).manifest("m").output.labels


def test_plus_is_the_positive_class_of_plus_and_minus(tmp_path: Path) -> None:
    result = _train(tmp_path, ["-", "+"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert _labels(tmp_path) == ["-", "+"]  # alphabetically '+' < '-' made '-' positive


def test_train_refuses_an_unclear_pair_and_takes_positive(tmp_path: Path) -> None:
    refused = _train(tmp_path, ["wild", "edited"])
    assert refused.returncode == 1
    assert refused.stderr == (
        "Error: which class is the positive one? The target's two classes are 'edited' and "
        "'wild', and neither is positive by convention (as 1, true, yes, positive or + are). "
        "Name it with --positive wild or --positive edited: the model's probability is that of "
        "the positive class.\n"
    )
    assert not (tmp_path / "store" / "m").exists()
    chosen = _train(tmp_path, ["wild", "edited"], "--positive", "edited")
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    assert _labels(tmp_path) == ["wild", "edited"]


def test_train_refuses_positive_for_more_than_two_classes(tmp_path: Path) -> None:
    result = _train(tmp_path, ["a", "b", "c"], "--positive", "b")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: --positive names the positive class of a binary target, but these targets hold "
        "3 classes; leave it out.\n"
    )
