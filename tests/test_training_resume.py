"""``helixserve train --resume``: a run killed with SIGKILL mid-training, resumed from its
checkpoint, ends where an uninterrupted run with the same seed ends; checkpoints started with
other data or options are refused. Small real data (the primer tutorial's sequences) and tiny
data made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from helixserve.cli.app import app
from helixserve.runtime import Prediction, Predictor
from helixserve.store import ModelStore
from helixserve.store.manifest import Lineage
from helixserve.training.checkpoint import read_meta

runner = CliRunner()
EPOCHS = 5
# Both runs do the same float32 operations in the same order on the same thread count, so they
# are expected to agree bit for bit (measured: 0.0). The tolerance only leaves room for rounding
# (~1e-7) should a kernel sum in another order in another process; losing, repeating or
# reseeding one epoch changes these figures by 1e-3 or more.
TOLERANCE = 1e-6


def primer_subset(shared_data: Path, folder: Path, n: int) -> tuple[Path, Path]:
    """The first ``n`` sequences and labels of the primer tutorial's data."""
    source = shared_data / "zou2019_primer_tf_binding"
    paths = []
    for name in ("sequences.txt", "labels.txt"):
        lines = (source / name).read_text().splitlines()[:n]
        (folder / name).write_text("\n".join(lines) + "\n")
        paths.append(folder / name)
    return paths[0], paths[1]


def wait_for_checkpoint(path: Path, process: subprocess.Popen[bytes], epochs: int) -> int:
    """Poll until the checkpoint holds at least ``epochs`` epochs (the run still going)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if path.is_file() and read_meta(path)["epoch"] >= epochs:
            return int(read_meta(path)["epoch"])
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of {epochs} epochs while the run went on")


def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(
    tmp_path: Path, shared_data: Path
) -> None:
    sequences, labels = primer_subset(shared_data, tmp_path, 300)
    common = [
        "train",
        "dna-binary",
        "--data",
        str(sequences),
        "--labels",
        str(labels),
        "--epochs",
        str(EPOCHS),
        "--seed",
        "1",
        "--store",
        str(tmp_path / "store"),
    ]
    killed = [*common, "--name", "r", "--work-dir", str(tmp_path / "run")]
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "helixserve", *killed],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_checkpoint(tmp_path / "run" / "checkpoint.npz", process, 2)
    finally:
        process.kill()  # SIGKILL: no clean-up runs
        process.wait()
    epoch = int(read_meta(tmp_path / "run" / "checkpoint.npz")["epoch"])
    assert 2 <= epoch < EPOCHS  # killed mid-training, after at least two checkpoints

    env = {"HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    resumed = runner.invoke(app, [*killed, "--resume"], env=env)
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed after epoch {epoch} of the interrupted run" in resumed.output
    whole = runner.invoke(app, [*common, "--name", "u", "--work-dir", str(tmp_path / "u")], env=env)
    assert whole.exit_code == 0, whole.output

    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    first, second = store.manifest("r"), store.manifest("u")
    assert first.lineage == Lineage(how="resume", details={"resumed_from_epoch": epoch})
    assert second.lineage == Lineage(how="trained")
    assert first.metrics.keys() == second.metrics.keys()
    for key, value in second.metrics.items():
        assert abs(first.metrics[key] - value) <= TOLERANCE, key
    curves = [json.loads((store.pull(n).path / "history.json").read_text()) for n in "ru"]
    assert curves[0]["epochs"] == curves[1]["epochs"] == EPOCHS
    for key in ("train_loss", "val_loss"):
        assert np.allclose(curves[0][key], curves[1][key], rtol=0, atol=TOLERANCE)
    inputs = sequences.read_text().split()[:200]
    scores = [positive_scores(store, name, inputs) for name in "ru"]
    assert len(scores[0]) == len(scores[1]) == 200
    assert np.abs(scores[0] - scores[1]).max() <= TOLERANCE


def positive_scores(store: ModelStore, name: str, inputs: list[str]) -> np.ndarray:
    results = Predictor.from_store(store, name).predict(list(inputs))
    return np.array(
        [r.probabilities["1"] for r in results if isinstance(r, Prediction) and r.probabilities]
    )
