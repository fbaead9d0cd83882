"""Multiple-instance training of ``dna-variable`` (genes in isolates): fit -> export -> parity ->
Predictor -> isolate calls, on tiny bags made here; the pooling maths and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helixserve.errors import HelixError
from helixserve.runtime import Predictor
from helixserve.store import ModelStore
from helixserve.training.cli_support import TrainOptions, run
from helixserve.training.data import Dataset, split
from helixserve.training.isolates import (
    bag_labels,
    choose_threshold,
    isolate_metrics,
    isolate_scores,
)
from helixserve.training.mil import make_bags, pool_logits
from helixserve.training.publish import train_and_publish
from helixserve.training.recipes import DnaVariable

MARKER = "GGGGGGGGCCCCCCCC"  # the "resistance gene": present in every positive isolate only


def bag_data(isolates: int = 40, seed: int = 0) -> Dataset:
    """Isolates of 3-5 random genes; odd isolates also carry a gene holding MARKER."""
    rng = np.random.default_rng(seed)
    inputs: list[object] = []
    targets, ids, groups, splits = [], [], [], []
    for i in range(isolates):
        genes = [
            "".join(rng.choice(list("ACGT"), int(rng.integers(20, 60))))
            for _ in range(int(rng.integers(3, 6)))
        ]
        if i % 2:
            genes.append("".join(rng.choice(list("ACT"), 10)) + MARKER)
        for j, gene in enumerate(genes):
            inputs.append(gene)
            targets.append(str(i % 2))
            ids.append(f"iso{i}_gene{j}")
            groups.append(f"iso{i}")
            splits.append("test" if i >= isolates - 10 else "train")
    return Dataset(inputs, targets, ids, splits, sha256="0" * 64, groups=groups)


def test_mil_fit_export_serve_and_isolate_calls(tmp_path: Path) -> None:
    data = bag_data()
    parts = split(data, task="binary", seed=0)
    assert data.groups is not None
    train_groups = {data.groups[i] for i in parts.train}
    assert not train_groups & {data.groups[i] for i in parts.val}  # whole isolates carved out
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    recipe = DnaVariable(
        pad_to=64, arch="bilstm", units=8, stride=4, pool="max", epochs=3, bag_batch=4
    )
    outcome = train_and_publish(
        recipe,
        data,
        parts,
        store,
        name="genes",
        description="d",
        seed=0,
        work_dir=tmp_path / "work",
    )
    assert outcome.parity <= 1e-4
    metrics = store.manifest("genes").metrics
    assert metrics["isolates"] == 10 and 0 < metrics["isolate_threshold"] < 1
    assert 0 <= metrics["isolate_balanced_accuracy"] <= 1
    predictor = Predictor.from_store(store, "genes")
    test = parts.test.tolist()
    served = predictor.predict_batch([data.inputs[i] for i in test]).decoded.probabilities
    assert served is not None and served.shape == (len(test), 2)
    bags = [data.groups[i] for i in test]
    names, scores = isolate_scores(served[:, 1], bags)
    truth = bag_labels([int(data.targets[i]) for i in test], bags)
    figures = isolate_metrics(
        scores, np.array([truth[n] for n in names]), metrics["isolate_threshold"]
    )
    assert figures["isolates_correct"] == metrics["isolates_correct"]  # served == trained


def test_pooling_maths() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    index = torch.tensor([[0, 1], [2, 0]])
    mask = torch.tensor([[True, True], [True, False]])
    assert pool_logits(logits, index, mask, "max").tolist() == [2.0, -1.0]
    noisy = torch.sigmoid(pool_logits(logits, index, mask, "noisy-or"))
    expected = 1 - (1 - torch.sigmoid(torch.tensor(0.0))) * (1 - torch.sigmoid(torch.tensor(2.0)))
    assert noisy[0].item() == pytest.approx(expected.item(), abs=1e-6)
    assert noisy[1].item() == pytest.approx(torch.sigmoid(torch.tensor(-1.0)).item(), abs=1e-6)
    smooth = pool_logits(logits, index, mask, "lse")
    assert 1.0 < smooth[0].item() < 2.0 and smooth[1].item() == pytest.approx(-1.0)


def test_isolate_rule() -> None:
    names, scores = isolate_scores(np.array([0.1, 0.9, 0.2, 0.3]), ["b", "b", "a", "a"])
    assert names == ["a", "b"] and scores.tolist() == [0.3, 0.9]
    labels = np.array([0, 1])
    assert choose_threshold(scores, labels) == pytest.approx(0.5)
    assert choose_threshold(np.array([0.7, 0.8, 0.95]), np.array([0, 0, 1])) == pytest.approx(0.875)
    assert isolate_metrics(scores, labels, 0.5)["isolates_correct"] == 2
    bags = make_bags(np.array([[1, 2], [1, 2], [3, 4]]), np.array([1, 1, 0]), ["x", "x", "y"])
    assert len(bags.x) == 2 and bags.y.tolist() == [1.0, 0.0]


def test_mil_refusals(tmp_path: Path) -> None:
    with pytest.raises(HelixError) as info:
        bag_labels([1, 0], ["iso7", "iso7"])
    assert str(info.value) == (
        "isolate iso7 has genes labelled both 0 and 1; every gene of an "
        "isolate must carry the isolate's label."
    )
    with pytest.raises(HelixError) as info:
        DnaVariable(pool="mean")
    assert str(info.value) == (
        "The 'pool' parameter of dna-variable must be one of '', 'max', 'noisy-or', 'lse'. "
        "Got 'mean' instead."
    )
    with pytest.raises(HelixError) as info:
        DnaVariable(pad_to=100, stride=3)
    assert str(info.value) == (
        "The 'stride' parameter of dna-variable must be a divisor of 'pad_to' (100). Got 3 instead."
    )
    recipe = DnaVariable(pad_to=64, pool="max")
    x, y = np.ones((2, 64), dtype=np.int64), np.array([0, 1])
    with pytest.raises(HelixError) as info:
        recipe.fit(x, y, x, y, labels=["0", "1"], seed=0)
    assert str(info.value) == (
        "pool='max' learns from bags: give the bag id of each training and validation row "
        "(use_bags) before fitting."
    )
    path = tmp_path / "genes.csv"
    path.write_text("sequence,label,isolate\nACGT,1,a\nACGA,0,b\n")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    with pytest.raises(HelixError) as info:
        run(
            TrainOptions(
                recipe="dna-variable", data=path, name="m", target="label", bag_col="isolate"
            ),
            store,
        )
    assert str(info.value) == (
        "multiple-instance training needs both --bag-col (the column naming each sequence's "
        "bag, e.g. isolate_id) and --pool (max, noisy-or or lse)."
    )
