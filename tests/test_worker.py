"""The worker (issue 16): queued runs of a tiny DNA workspace trained by ``helixserve worker``,
with live epochs, logs, a bundle that serves, block stacks, clone-and-continue, stop and resume,
divergence, ``normalise_on``, the tabular recipe on a split column, and the device and Ray
resource choices. Processes killed with SIGKILL, two workers on one queue and ``serve``'s worker
are in tests/test_worker_processes.py; Ray in tests/test_worker_ray.py."""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from helixserve.cli.app import app
from helixserve.errors import InputError
from helixserve.runtime import Prediction, Predictor
from helixserve.store.manifest import Lineage
from helixserve.training.loop import History
from helixserve.worker import ray_engine
from helixserve.worker import run as worker_run
from helixserve.worker.local import LocalWorker
from helixserve.worker.prepare import prepare
from helixserve.worker.progress import Checkpoints, EpochReporter, Heartbeat, TrainingDiverged
from helixserve.workspace import runs
from helixserve.workspace.datasets import get_version
from helixserve.workspace.models import RunStatus
from helixserve.workspace.space import Workspace
from tests.support.worker_runs import (
    MOTIF,
    add_dataset,
    dna_csv,
    epochs,
    get,
    log_lines,
    open_space,
    queue,
    wait_until,
    worker_env,
)

cli = CliRunner()
SMALL_CNN = {"epochs": 3, "filters": 8, "kernel": 7, "hidden": 8}


@pytest.fixture
def space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    opened = open_space(tmp_path, f"sqlite:///{tmp_path / 'workspace.db'}")
    add_dataset(opened)
    yield opened
    opened.db.close()


def train_one(space: Workspace) -> str:
    ended = LocalWorker(space, "test-worker", poll_s=0.1).run(once=True)
    assert sum(ended.values()) == 1, ended
    return next(iter(ended))


def test_worker_once_trains_a_run_into_a_bundle_that_predicts(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    space = open_space(tmp_path, database_url)
    add_dataset(space)
    run_id = queue(space, params=SMALL_CNN)
    env = {
        k: v
        for k, v in worker_env(tmp_path, database_url).items()
        if k.startswith(("HELIX", "XDG"))
    }
    result = cli.invoke(app, ["worker", "--once", "--name", "w1"], env=env)
    assert result.exit_code == 0, result.output
    assert "helixserve worker w1: 1 finished" in result.output
    run = get(space, run_id)
    assert (run.status, run.error, run.worker, run.epochs_planned) == (
        RunStatus.FINISHED,
        None,
        "w1",
        3,
    )
    assert run.bundle == f"run-{run_id.lower()}@1"
    assert epochs(space, run_id) == [1, 2, 3]
    assert run.best_epoch in (1, 2, 3)
    assert run.headline is not None and run.headline["metric"] == "accuracy"
    assert run.metrics is not None and 0 <= run.metrics["accuracy"] <= 1
    lines = log_lines(space, run_id)
    assert lines[:3] == [
        "claimed by worker w1",
        "data: 120 training rows, 40 validation rows, 40 test rows; 0 good rows in none of the "
        "experiment's subsets left out; recipe dna-binary",
        "training on cpu",
    ]
    assert [line.split(":")[0] for line in lines[3:6]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    export = "exporting to ONNX and checking it against the trained model"
    for at, step in ((6, "scoring the 40 test rows"), (8, export)):  # each step after the epochs
        assert lines[at] == f"{step} ..."
        assert re.fullmatch(rf"{step}: done in \d+\.\d s", lines[at + 1]), lines[at + 1]
    assert lines[10].startswith("exported to ONNX; parity with the trained model ")
    assert lines[11].startswith(f"published {run.bundle} in ")
    predictor = Predictor.from_store(space.runs, run.bundle)
    with space.db.session() as session:
        version = get_version(session, "lab", "dna").id[:12]
    assert predictor.manifest.description == (
        "dna-binary model trained in the workspace: project lab, experiment e1, run 1; dataset "
        f"dna version {version} (dna.csv), subsets training 't', validation 'v', test 'test'."
    )
    answer = predictor.predict(["ACGT" * 10 + MOTIF + "ACG"])[0]
    assert isinstance(answer, Prediction) and answer.probabilities is not None
    assert set(answer.probabilities) == {"0", "1"}
    assert not Checkpoints(space.blobs.location, run_id).download(tmp_path / "gone.npz")
    space.db.close()


def test_an_empty_queue_ends_worker_once_at_once(space: Workspace) -> None:
    assert LocalWorker(space, poll_s=0.1).run(once=True) == {}


def test_a_block_stack_experiment_trains_its_own_network(space: Workspace) -> None:
    blocks: list[dict[str, object]] = [
        {"type": "conv1d", "filters": 6, "kernel": 7},
        {"type": "activation", "function": "relu"},
        {"type": "globalpool", "op": "max"},
        {"type": "dense", "units": 1},
    ]
    run_id = queue(space, "blocks", params={"epochs": 2}, blocks=blocks)
    assert train_one(space) == "finished"
    run = get(space, run_id)
    assert run.bundle is not None and epochs(space, run_id) == [1, 2]
    recipe = json.loads((space.runs.pull(run.bundle).path / "recipe.json").read_text())
    assert recipe["blocks"] == blocks


def test_clone_and_continue_starts_from_the_parent_weights(space: Workspace) -> None:
    parent = queue(space, params={**SMALL_CNN, "epochs": 6, "patience": 6, "lr": 0.01})
    assert train_one(space) == "finished"
    parent_bundle = get(space, parent).bundle
    child = queue(space, init_from_run=parent)
    assert train_one(space) == "finished"
    run = get(space, child)
    assert run.bundle is not None
    lineage = space.runs.manifest(run.bundle).lineage
    assert lineage == Lineage(how="init-from", parent=parent_bundle)
    assert f"recipe dna-binary, from the weights of {parent_bundle}" in log_lines(space, child)[1]
    with space.db.session() as session:
        first = [runs.epochs_since(session, r)[0].train_loss for r in (parent, child)]
        last_parent = runs.epochs_since(session, parent)[-1].train_loss
    assert first[1] is not None and first[0] is not None and last_parent is not None
    assert first[1] < first[0]  # the child's first epoch starts where the parent ended
    assert first[1] <= last_parent * 1.2


def test_clone_and_continue_from_an_unfinished_run_fails_clearly(space: Workspace) -> None:
    parent = queue(space)
    with space.db.session() as session:
        runs.request_stop(session, parent)
    child = queue(space, init_from_run=parent)
    assert train_one(space) == "failed"
    assert get(space, child).error == (
        f"this run continues from the weights of run {parent!r}, which has no trained model (it "
        "is stopped); continue from a finished run, or train from scratch."
    )


def run_in_thread(space: Workspace) -> tuple[LocalWorker, threading.Thread]:
    worker = LocalWorker(space, "threaded", poll_s=0.1)
    thread = threading.Thread(target=worker.run, kwargs={"once": True})
    thread.start()
    return worker, thread


def test_a_stopped_run_resumes_from_its_checkpoint_and_finishes(space: Workspace) -> None:
    planned = 25
    run_id = queue(space, params={**SMALL_CNN, "epochs": planned, "patience": planned})
    _, thread = run_in_thread(space)
    assert wait_until(lambda: len(epochs(space, run_id)) >= 2, 120)
    with space.db.session() as session:
        runs.request_stop(session, run_id)
    thread.join(120)
    stopped = get(space, run_id)
    assert stopped.status is RunStatus.STOPPED and stopped.error is None
    assert stopped.checkpoint == f"{space.blobs.location.uri}/checkpoints/{run_id}/checkpoint.npz"
    done = epochs(space, run_id)
    assert done == list(range(1, len(done) + 1)) and len(done) < planned
    assert (
        f"stopped as asked after epoch {done[-1]}; resume the run to go on from its checkpoint"
        in (log_lines(space, run_id))
    )
    with space.db.session() as session:
        runs.resume(session, run_id)
    assert train_one(space) == "finished"
    run = get(space, run_id)
    assert run.bundle is not None
    assert epochs(space, run_id) == list(range(1, planned + 1))
    lines = log_lines(space, run_id)
    resumed = lines.index(f"training on cpu; resuming from the checkpoint of epoch {done[-1]}")
    assert lines[resumed + 1].startswith(f"epoch {done[-1] + 1}/{planned}: ")
    lineage = space.runs.manifest(run.bundle).lineage
    assert lineage == Lineage(how="resume", details={"resumed_from_epoch": done[-1]})


def test_a_worker_shut_down_mid_run_marks_it_stopped(space: Workspace) -> None:
    run_id = queue(space, params={**SMALL_CNN, "epochs": 40, "patience": 40})
    worker, thread = run_in_thread(space)
    assert wait_until(lambda: len(epochs(space, run_id)) >= 1, 120)
    worker.shut_down()
    thread.join(120)
    run = get(space, run_id)
    assert run.status is RunStatus.STOPPED and run.checkpoint is not None
    assert any(
        line.startswith("the worker was shut down; stopped after epoch ")
        for line in log_lines(space, run_id)
    )


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_diverging_run_fails_with_the_epoch_and_the_fix(space: Workspace) -> None:
    huge = dna_csv(value=lambda i: f"{3e38 * (0.9 + (i % 7) / 70):.6e}")
    add_dataset(space, "huge", huge)
    run_id = queue(
        space,
        "diverges",
        dataset="huge",
        recipe="dna-regression",
        target="value",
        params={"epochs": 3, "filters": 4, "dense": 4, "kmer_ridge": False},
    )
    assert train_one(space) == "failed"
    run = get(space, run_id)
    assert run.error == (
        "training diverged at epoch 1 (loss nan); lower lr (the learning rate), e.g. by 10 "
        "times, and run it again."
    )
    assert log_lines(space, run_id)[-1] == f"failed: {run.error}"
    assert epochs(space, run_id) == []


def test_the_reporter_refuses_an_infinite_loss(space: Workspace, tmp_path: Path) -> None:
    run_id = queue(space)
    assert runs.claim(space.db, "w") is not None
    reporter = EpochReporter(
        space.db,
        run_id,
        "w",
        beat=Heartbeat(space.db, run_id, "w", 5.0),
        checkpoints=Checkpoints(space.blobs.location, run_id),
        local_checkpoint=tmp_path / "none.npz",
        planned=3,
        shutdown=threading.Event(),
    )
    reporter(History([0.7], [0.69], 1))
    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch 2 \(loss inf\);"):
        reporter(History([0.7, 0.6], [0.69, float("inf")], 1))
    assert epochs(space, run_id) == [1]


def test_normalise_on_is_refused_where_no_number_is_read(space: Workspace) -> None:
    run_id = queue(space, normalise_on="t")
    assert train_one(space) == "failed"
    assert get(space, run_id).error == (
        "normalise_on 't': the dna-binary recipe reads sequences, no number columns, so there is "
        "nothing to standardise; leave normalise_on empty."
    )


def tumour_csv(n: int = 90) -> bytes:
    rng = np.random.default_rng(3)
    rows = ["id,a,b,c,class,split"]
    for i in range(n):
        sick = i % 3 == 0
        a, b, c = (rng.integers(5, 11) if sick else rng.integers(1, 6) for _ in range(3))
        rows.append(
            f"p{i},{a},{b},{c},{'malignant' if sick else 'benign'},{('T', 'T', 'V', 'test')[i % 4]}"
        )
    return ("\n".join(rows) + "\n").encode()


def test_the_tabular_recipe_trains_on_the_subsets_with_normalise_on(space: Workspace) -> None:
    add_dataset(space, "tumours", tumour_csv())
    run_id = queue(
        space,
        "forest",
        dataset="tumours",
        recipe="tabular",
        target="class",
        params={"n_estimators": 20},
        normalise_on="t",
    )
    assert train_one(space) == "finished"
    run = get(space, run_id)
    assert run.metrics is not None and run.metrics["accuracy"] > 0.8
    assert epochs(space, run_id) == [] and run.best_epoch is None
    lines = log_lines(space, run_id)
    assert lines[1].startswith("data: 46 training rows, 22 validation rows, 22 test rows;")
    assert lines[2].startswith("normalise_on 't': feature mean ± std on its rows: a ")
    manifest = space.runs.manifest(run.bundle or "")
    assert [f.name for f in manifest.input.features] == ["a", "b", "c"]  # type: ignore[union-attr]


def cells_zip(n: int = 48) -> bytes:
    """``n`` 16x16 grey images, bright (``hi``) or dark (``lo``), named in a labels table that
    also names an image the zip lacks and one outside it (both refused rows)."""
    rng = np.random.default_rng(5)
    rows = ["image,cell,split", "img/missing.png,hi,T", "../../etc/passwd.png,lo,T"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            bright = i % 2 == 0
            pixels = rng.integers(150, 255, (16, 16)) if bright else rng.integers(0, 100, (16, 16))
            png = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8), "L").save(png, "PNG")
            archive.writestr(f"set/img/{i}.png", png.getvalue())
            rows.append(f"img/{i}.png,{'hi' if bright else 'lo'},{SPLIT_OF[i // 2 % 4]}")
        archive.writestr("set/labels.csv", "\n".join(rows) + "\n")
    return buffer.getvalue()


SPLIT_OF = ("T", "T", "V", "test")


def test_an_image_zip_is_extracted_under_names_of_its_own_and_trains(
    space: Workspace, tmp_path: Path
) -> None:
    add_dataset(space, "cells", cells_zip())
    params = {"epochs": 2, "size": 16, "augment": False}
    run_id = queue(
        space,
        "images",
        dataset="cells",
        recipe="image",
        target="cell",
        params=params,
        positive="hi",  # hi/lo: no convention says which
    )
    with space.db.session() as session:
        prepared = prepare(session, space, runs.get_run(session, run_id), tmp_path / "work")
    assert prepared.sizes == {"T": 24, "V": 12, "test": 12, "left out": 0}
    labels = (tmp_path / "work" / "labels.csv").read_text().splitlines()
    assert labels[:2] == ["image,cell,split,__subset", "images/00000000.png,hi,T,T"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["images", "labels.csv"]
    assert len(list((tmp_path / "work" / "images").iterdir())) == 48
    assert (prepared.options.path_col, prepared.options.split_col) == ("image", "__subset")
    assert train_one(space) == "finished"
    run = get(space, run_id)
    assert run.metrics is not None and 0 <= run.metrics["accuracy"] <= 1
    assert epochs(space, run_id) == [1, 2]
    assert run.headline is not None and run.headline["meaning"].endswith("12 held-out test rows")


def test_without_a_test_subset_the_validation_subset_is_held_out(space: Workspace) -> None:
    run_id = queue(space, params={**SMALL_CNN, "epochs": 1}, test_subset=None)
    assert train_one(space) == "finished"
    lines = log_lines(space, run_id)
    assert lines[2].startswith("no test subset: the validation subset 'v' is the held-out set")
    assert get(space, run_id).headline == {
        "metric": "accuracy",
        "meaning": "accuracy on the 40 held-out test rows",
        "ood_metric": None,
        "ood_meaning": None,
    }


def test_each_engine_claims_its_own_runs(space: Workspace) -> None:
    local = queue(space)
    assert runs.claim(space.db, "ray-driver", engine="ray") is None
    claimed = runs.claim(space.db, "local-worker", engine="local")
    assert claimed is not None and claimed.id == local


def test_a_neural_run_takes_the_gpu_unless_the_person_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert worker_run._device("dna-binary", {"epochs": 3}) == "cuda"
    assert worker_run._device("dna-binary", {"device": "cpu"}) is None
    assert worker_run._device("tabular", {}) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert worker_run._device("dna-regression", {}) == "cpu"


def test_ray_tasks_ask_for_a_gpu_when_the_run_wants_or_can_use_one() -> None:
    assert ray_engine.resources("dna-binary", {}, 0) == (1.0, 0.0)
    assert ray_engine.resources("dna-binary", {}, 2) == (1.0, 1.0)
    assert ray_engine.resources("dna-binary", {"device": "cpu"}, 2) == (1.0, 0.0)
    assert ray_engine.resources("dna-binary", {"device": "cuda"}, 0) == (1.0, 1.0)
    assert ray_engine.resources("tabular", {}, 2) == (1.0, 0.0)


def tags_csv(n: int = 200) -> bytes:
    """Two 0/1 label columns: ``gattaca`` (the motif somewhere) and ``gc_start`` (a GC-rich
    start), as for ``helixserve train dna-classify --target gattaca,gc_start``."""
    rng = np.random.default_rng(3)
    lines = ["id,sequence,gattaca,gc_start,score,split"]
    for i in range(n):
        letters = list(rng.choice(list("ACGT"), 50))
        motif, gc = i % 2, (i // 2) % 2
        if motif:
            at = int(rng.integers(10, 50 - len(MOTIF)))
            letters[at : at + len(MOTIF)] = list(MOTIF)
        if gc:
            letters[:8] = list("GCGCGGCC")
        lines.append(f"t{i},{''.join(letters)},{motif},{gc},{i / 7:.3f},{'TTTV'[i % 4]}")
    return ("\n".join(lines) + "\n").encode()


def test_a_multilabel_experiment_trains_one_output_per_label_column(space: Workspace) -> None:
    add_dataset(space, "tags", tags_csv())
    run_id = queue(
        space,
        "tags",
        dataset="tags",
        recipe="dna-classify",
        target="gattaca,gc_start",
        params={"epochs": 2},
        test_subset=None,
    )
    assert train_one(space) == "finished", log_lines(space, run_id)
    run = get(space, run_id)
    assert run.bundle is not None
    bundle = space.runs.pull(run.bundle)
    assert bundle.manifest.task == "multilabel"
    assert list(bundle.manifest.output.labels or []) == ["gattaca", "gc_start"]
    answer = Predictor.from_store(space.runs, run.bundle).predict(["GCGCGGCC" + "A" * 42])[0]
    assert isinstance(answer, Prediction) and answer.probabilities is not None
    assert set(answer.probabilities) == {"gattaca", "gc_start"}


@pytest.mark.parametrize(
    ("recipe", "target", "message"),
    [
        (
            "dna-binary",
            "gattaca,gc_start",
            "the dna-binary recipe learns one target column, but target names 2 (gattaca, "
            "gc_start); use dna-classify for several label columns (multi-label), or name one "
            "column.",
        ),
        (
            "dna-classify",
            "gattaca,colour",
            "target names label column 'colour' but the dataset has no such column; its columns "
            "are: id, sequence, gattaca, gc_start, score, split.",
        ),
        (
            "dna-classify",
            "gattaca,gattaca",
            "target names label column 'gattaca' twice; its columns are: id, sequence, gattaca, "
            "gc_start, score, split.",
        ),
    ],
)
def test_a_multilabel_target_is_checked_before_it_is_stored(
    space: Workspace, recipe: str, target: str, message: str
) -> None:
    add_dataset(space, "tags", tags_csv())
    with pytest.raises(InputError) as refused:
        queue(space, "tags", dataset="tags", recipe=recipe, target=target)
    assert str(refused.value) == message and refused.value.field == "target"


def test_a_label_column_must_hold_zero_or_one(space: Workspace) -> None:
    add_dataset(space, "tags", tags_csv())
    with pytest.raises(InputError) as refused:
        queue(space, "tags", dataset="tags", recipe="dna-classify", target="gattaca,score")
    assert str(refused.value).startswith(
        "label column 'score' of a multi-label target must hold 0 or 1 in every row (it holds "
        "0.000, 0.143, 0.286"
    )
