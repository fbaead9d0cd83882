"""The k-mer ridge part of ``dna-regression``: counts inside the network equal the baseline's,
the closed-form ridge equals scikit-learn's, the exported blend serves like the native one, and
an earlier blend's weights continue training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from helixserve.inputs.encoding import encode_batch
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.store import ModelStore
from helixserve.training.cv import kmer_counts
from helixserve.training.data import Dataset, split
from helixserve.training.kmers import (
    Blend,
    KmerFeatures,
    RidgeHead,
    best_share,
    features_of,
    fit_ridge,
)
from helixserve.training.nets import UtrCNN
from helixserve.training.publish import train_and_publish
from helixserve.training.recipes import DnaRegression


def utr_data(n: int = 150, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), int(rng.integers(2, 21)))) for _ in range(n)]
    targets = [str(s.count("G") / 5 + ("ATG" in s) + s.endswith("A")) for s in seqs]
    return Dataset(list(seqs), targets, [str(i) for i in range(n)], sha256="0" * 64)


def small_recipe(**params: object) -> DnaRegression:
    return DnaRegression(max_length=20, flank=2, filters=8, kernel=3, dense=8, epochs=3, **params)


def test_counts_and_ridge_head_agree_with_the_baseline_features() -> None:
    seqs = [str(s) for s in utr_data().inputs]
    x = encode_batch(seqs, small_recipe().input_schema())
    features = KmerFeatures(24, k_max=6, positional=True)
    matrix = features_of(features, x)
    assert matrix.shape == (150, 5460 + 4 * 24)
    assert np.array_equal(matrix[:, :5460], kmer_counts(seqs).toarray())
    y = matrix[:, :20] @ np.linspace(-1, 1, 20) + np.random.default_rng(1).normal(size=150)
    fit = fit_ridge(matrix, y, (1.0, 30.0))
    reference = Ridge(alpha=fit.alpha).fit(matrix, y)
    assert np.allclose(fit.weights, reference.coef_, atol=1e-8)
    assert fit.bias == pytest.approx(float(reference.intercept_), abs=1e-8)
    with torch.no_grad():
        head = RidgeHead(features, fit.weights, fit.bias)(torch.as_tensor(x)).squeeze(1).numpy()
    assert np.abs(head - (matrix @ fit.weights + fit.bias)).max() < 1e-4


def test_fit_ridge_with_more_rows_than_features_and_no_alpha() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    fit = fit_ridge(x, y, (2.0,))
    assert np.allclose(fit.weights, Ridge(alpha=2.0).fit(x, y).coef_, atol=1e-10)
    with pytest.raises(ValueError, match=r"^fit_ridge needs at least one alpha\.$"):
        fit_ridge(x, y, ())


def test_best_share_prefers_the_ridge_on_ties() -> None:
    y = np.array([0.0, 1.0, 2.0])
    assert best_share(y, y, y) == 0.0
    assert best_share(np.zeros(3), y, y) == 1.0


def test_blend_is_exported_served_and_continued(tmp_path: Path) -> None:
    data = utr_data()
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    recipe = small_recipe()
    outcome = train_and_publish(
        recipe, data, split(data, task="regression", seed=0), store, name="utr", description="d"
    )
    assert outcome.parity <= 1e-4
    assert isinstance(recipe.model, Blend)
    assert 0.0 <= recipe.fitted["cnn_share"] <= 1.0 and recipe.fitted["ridge_alpha"] > 0
    assert "cnn_share=" in (store.pull("utr").path / "card.md").read_text()
    good, bad = Predictor.from_store(store, "utr").predict(["GGATG", "A" * 21])
    assert isinstance(good, Prediction) and good.value is not None
    assert isinstance(bad, ItemError)
    again = small_recipe()
    again.start_from(recipe.weights() or b"")
    parts = split(data, task="regression", seed=1)
    x = encode_batch([str(s) for s in data.inputs], again.input_schema())
    y = np.array([float(t) for t in data.targets], dtype=np.float32)
    again.fit(x[parts.train], y[parts.train], x[parts.val], y[parts.val], labels=None, seed=0)
    assert isinstance(again.model, Blend)


def test_without_kmer_ridge_the_recipe_is_the_plain_cnn() -> None:
    data = utr_data(60)
    recipe = small_recipe(kmer_ridge=False)
    x = encode_batch([str(s) for s in data.inputs], recipe.input_schema())
    y = np.array([float(t) for t in data.targets], dtype=np.float32)
    recipe.fit(x[:40], y[:40], x[40:], y[40:], labels=None, seed=0)
    assert isinstance(recipe.model, UtrCNN) and recipe.fitted == {}
