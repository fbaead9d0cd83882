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
import pytest
from typer.testing import CliRunner

from helixserve.cli.app import app
from helixserve.errors import HelixError
from helixserve.runtime import Prediction, Predictor
from helixserve.store import ModelStore
from helixserve.store.manifest import Lineage
from helixserve.training.checkpoint import read_meta
from helixserve.training.cli_support import TrainOptions, run
from helixserve.training.data import file_sha256
from helixserve.training.loop import History
from helixserve.training.publish import encode_inputs
from helixserve.training.recipes import DnaVariable
from tests.test_training import motif_data

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


class Interrupt(Exception):
    """Raised from ``on_epoch`` to stop a run in the middle, as a crash would."""


def fit_bag_model(work: Path, *, resume: bool = False, stop_after: int = 0) -> np.ndarray:
    """A multiple-instance model (dna-variable with --pool max) on tiny bags; its scores."""
    data = motif_data(160, length=24)
    recipe = DnaVariable(
        pad_to=24, arch="cnn", pool="max", filters=8, kernel=6, epochs=5, patience=5
    )
    x = encode_inputs(recipe, data.inputs)
    y = np.array([int(t) for t in data.targets])
    bags = [f"bag{i % 2}-{i // 8}" for i in range(len(x))]  # 4 genes of one label per isolate
    recipe.use_bags(bags[:120], bags[120:])
    recipe.checkpoint, recipe.resume = work / "checkpoint.npz", resume

    def crash(history: History) -> None:
        if len(history.train_loss) == stop_after:
            raise Interrupt

    recipe.fit(x[:120], y[:120], x[120:], y[120:], labels=["0", "1"], seed=2, on_epoch=crash)
    return recipe.predict_proba(x)[:, 1]


def test_a_bag_model_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    whole = fit_bag_model(tmp_path / "whole")
    with pytest.raises(Interrupt):
        fit_bag_model(tmp_path / "cut", stop_after=2)
    assert read_meta(tmp_path / "cut" / "checkpoint.npz")["epoch"] == 2
    resumed = fit_bag_model(tmp_path / "cut", resume=True)
    assert np.abs(resumed - whole).max() <= TOLERANCE
    assert (
        read_meta(tmp_path / "cut" / "checkpoint.npz")["history"]
        == read_meta(tmp_path / "whole" / "checkpoint.npz")["history"]
    )


def sequences_file(tmp_path: Path, n: int = 60) -> Path:
    data = motif_data(n)
    path = tmp_path / "t.csv"
    path.write_text(
        "sequence,label\n"
        + "".join(f"{s},{t}\n" for s, t in zip(data.inputs, data.targets, strict=True))
    )
    return path


def test_resume_refuses_other_data_other_options_and_no_checkpoint(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    work = tmp_path / "work"
    base = TrainOptions(
        recipe="dna-binary",
        data=sequences_file(tmp_path),
        name="m",
        target="label",
        params={"length": 20, "epochs": 1},
        work_dir=work,
    )
    path = work / "checkpoint.npz"
    restart = "or train from the start without --resume."
    with pytest.raises(HelixError) as info:
        run(TrainOptions(**{**base.__dict__, "resume": True}), store)
    assert str(info.value) == (
        f"--resume: there is no checkpoint at {path}, so there is nothing to resume; give "
        f"--work-dir the folder of the interrupted run, {restart}"
    )
    run(base, store)
    changed = {"resume": True, "params": {**base.params, "epochs": 3}, "seed": 4}
    with pytest.raises(HelixError) as info:
        run(TrainOptions(**{**base.__dict__, **changed}), store)
    assert str(info.value) == (
        f"--resume: the run in {path} was started with other options (--param epochs 1 then, "
        f"3 now; --seed 0 then, 4 now); resume with the same options, {restart}"
    )
    then = read_meta(path)["fingerprint"]["data_sha256"]
    other = TrainOptions(**{**base.__dict__, "resume": True, "data": sequences_file(tmp_path, 62)})
    with pytest.raises(HelixError) as info:
        run(other, store)
    now = file_sha256(other.data)
    assert str(info.value) == (
        f"--resume: the run in {path} was started on other data (sha256 {then[:12]}... then, "
        f"{now[:12]}... now); resume with the same data file, {restart}"
    )
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(HelixError) as info:
        run(TrainOptions(**{**base.__dict__, "resume": True}), store)
    assert str(info.value) == (
        f"--resume: {path} is not a checkpoint this version can resume (written by an older "
        f"helixserve, or damaged); {restart}"
    )
    assert store.versions("m") == [1]


def test_resume_says_a_tabular_run_has_no_epochs_to_continue(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b,class\n" + "".join(f"{i % 9 + 1},{i % 5},{i % 2}\n" for i in range(30)))
    options = TrainOptions(recipe="tabular", data=path, name="rows", target="class", resume=True)
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    with pytest.raises(HelixError) as info:
        run(options, store)
    assert str(info.value) == (
        "--resume continues the epochs of a neural recipe; the tabular recipe trains in one "
        "step, so run it again without --resume."
    )
