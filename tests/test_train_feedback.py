"""What ``helixserve train`` says while and after it trains: a line per epoch without a terminal,
a line for each long step after the epochs, a summary naming the rows behind the metrics, the
version and the store, and nothing from third-party libraries on stderr."""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helixserve.store import ModelStore
from helixserve.training.cli_support import TrainOptions, run
from helixserve.training.export import NoTorchvisionNotice
from helixserve.training.loop import EpochLines, History, progress_bar

MOTIF = "CGACCGAACTCC"
LOSS, FIGURE, SECONDS = r"\d+\.\d{4}", r"-?\d+\.\d{3}", r"\d+\.\d"


def _primers(path: Path, n: int = 200) -> None:
    """``n`` 50-nt sequences, labelled ``+`` when they carry the motif, else ``-``."""
    rng = random.Random(3)
    rows = []
    for i in range(n):
        seq = "".join(rng.choice("ACGT") for _ in range(50))
        if i % 2 == 0:
            at = rng.randrange(50 - len(MOTIF))
            seq = seq[:at] + MOTIF + seq[at + len(MOTIF) :]
        rows.append(f"{seq},{'+' if i % 2 == 0 else '-'}")
    path.write_text("sequence,label\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_a_run_without_a_terminal_prints_its_epochs_and_a_summary(tmp_path: Path) -> None:
    _primers(tmp_path / "primers.csv")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "COLUMNS": "80",  # a log's width: the summary lines must not be cut
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
    }
    command = ["train", "dna-binary", "--data", "primers.csv", "--target", "label"]
    result = subprocess.run(
        [sys.executable, "-m", "helixserve", *command, "--name", "pm", "--epochs", "2"],
        capture_output=True,  # stdout is a pipe, as under nohup or CI
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""  # no warning of torch, torchvision or anything else
    lines = result.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2
    for k, line in enumerate(epochs, start=1):
        figures = f"loss {LOSS}  val_loss {LOSS}  val_auroc {FIGURE}"
        assert re.fullmatch(rf"epoch {k}/2  {figures}  {SECONDS} s", line), line
    export = "exporting to ONNX and checking it against the trained model"
    assert f"{export} ..." in lines
    assert any(re.fullmatch(rf"{export}: done in {SECONDS} s", line) for line in lines)
    assert (
        "metrics on the internal test split: 40 of the 200 rows (20%, drawn at random with "
        "seed 0, stratified by class), never used to train the model or to stop its training"
    ) in lines
    assert lines[-1] == f"published pm@1 to the store {(tmp_path / 'store').as_uri()}"
    store = ModelStore.open(str(tmp_path / "store"))
    assert store.manifest("pm").output.labels == ["-", "+"]  # '+' is the positive class


def test_the_k_mer_blend_says_when_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(4)
    utrs = ["".join(rng.choice("ACGT") for _ in range(50)) for _ in range(120)]
    rows = [f"{u},{u.count('G') / 10 - u.count('ATG'):.3f}" for u in utrs]
    (tmp_path / "utrs.csv").write_text("UTR,growth_rate\n" + "\n".join(rows) + "\n")
    options = TrainOptions(
        recipe="dna-regression",
        data=tmp_path / "utrs.csv",
        name="utr",
        sequence_col="UTR",
        target="growth_rate",
        params={"epochs": 1, "filters": 8, "dense": 8},
        threads=1,
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    run(options, store, progress=True)
    lines = capsys.readouterr().out.splitlines()
    figures = f"loss {LOSS}  val_loss {LOSS}  val_r2 {FIGURE}"
    assert re.fullmatch(rf"epoch 1/1  {figures}  {SECONDS} s", lines[0]), lines[0]
    blend = "blending the CNN with a k-mer (k = 1..6) ridge regression"
    assert lines[1] == f"{blend} ..."
    assert re.fullmatch(rf"{re.escape(blend)}: done in {SECONDS} s", lines[2]), lines[2]


def test_a_terminal_gets_the_bar_and_no_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    assert EpochLines(True, 3).on  # pytest's captured stdout is no terminal
    assert progress_bar(True, 3).disable
    assert not EpochLines(False, 3).on and progress_bar(False, 3).disable
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's way to say: this is a terminal
    assert not EpochLines(True, 3).on
    assert not progress_bar(True, 3).disable


def test_epoch_lines_name_the_figures_given(capsys: pytest.CaptureFixture[str]) -> None:
    lines = EpochLines(True, 60)
    lines.since -= 4.2
    lines.epoch_done(3, History([0.5, 0.45, 0.41234], [0.5, 0.42, 0.39765]), {"val_auroc": 0.91})
    printed = capsys.readouterr().out
    assert re.fullmatch(
        r"epoch 3/60  loss 0\.4123  val_loss 0\.3977  val_auroc 0\.910  4\.[23] s\n", printed
    ), printed


def test_only_the_exporters_torchvision_notices_are_dropped() -> None:
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    assert any(isinstance(f, NoTorchvisionNotice) for f in registry.filters)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(registry.name, logging.WARNING, "", 0, message, (), None)

    notice = record("torchvision is not installed. Skipping torchvision::nms")
    other = record("'aten::foo' does not have a 'default' overload.")
    assert not registry.filter(notice)
    assert registry.filter(other)
