"""The ``image`` recipe's crop mode: native-size random crops, per-crop standardisation, test-time
tiling inside the ONNX graph, an external test set and saliency plots; on tiny images made here."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helixserve.errors import HelixError
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.store import ModelStore
from helixserve.training.data import Dataset, split
from helixserve.training.nets import TiledImageCNN, tile_starts
from helixserve.training.publish import train_and_publish
from helixserve.training.recipes import ImageCNN
from helixserve.training.recipes.image import random_crops


def cell_png(dots: int, brightness: int, rng: np.random.Generator, size: int = 32) -> bytes:
    """A dark field with ``dots`` bright 3x3 'nuclei' scaled by ``brightness``."""
    pixels = np.full((size, size), 5.0)
    for _ in range(dots):
        r, c = rng.integers(0, size - 3, 2)
        pixels[r : r + 3, c : c + 3] = 200.0
    scaled = np.clip(pixels * brightness / 100, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(scaled).save(buffer, format="PNG")
    return buffer.getvalue()


def cells(n: int = 36) -> Dataset:
    """'dense' and 'sparse' fields; the last 4 rows are a dimmer 'experiment' marked external."""
    rng = np.random.default_rng(0)
    inputs: list[object] = []
    targets, parts = [], []
    for i in range(n):
        label = "dense" if i % 2 else "sparse"
        external = i >= n - 4
        inputs.append(cell_png(30 if i % 2 else 4, 30 if external else 100, rng))
        targets.append(label)
        parts.append("external" if external else "test" if i >= n - 10 else "train")
    ids = [f"img{i}" for i in range(n)]
    return Dataset(inputs, targets, ids, parts, sha256="0" * 64, positive="sparse")


def test_crop_mode_conformance(tmp_path: Path) -> None:
    data = cells()
    data.groups = [str(i) for i in range(len(data))]
    parts = split(data, task="binary", seed=0)
    assert len(parts.external) == 4 and not set(parts.external) & set(parts.train)
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    recipe = ImageCNN(size=32, crop=16, tiles=2, crops_per_image=4, epochs=2)
    outcome = train_and_publish(recipe, data, parts, store, name="cells", description="d")
    assert outcome.parity <= 1e-4
    manifest = store.manifest("cells")
    schema = manifest.input
    assert (schema.width, schema.height, schema.resize) == (32, 32, False)  # type: ignore[union-attr]
    assert {"plots/saliency.png", "plots/saliency.json"} <= set(manifest.files)
    assert manifest.metrics["external_records"] == 4.0
    assert 0.0 <= manifest.metrics["external_accuracy"] <= 1.0
    card = (tmp_path / "store" / "cells" / "versions" / "1" / "card.md").read_text()
    assert "## External test set (never trained or tuned on)" in card
    assert "## What the model looks at" in card
    predictor = Predictor.from_store(store, "cells")
    rng = np.random.default_rng(1)
    good, wrong_size = predictor.predict([cell_png(4, 100, rng), cell_png(4, 100, rng, size=64)])
    assert isinstance(good, Prediction) and good.label in ("dense", "sparse")
    assert isinstance(wrong_size, ItemError)
    assert str(wrong_size.error) == (
        "image is 64 x 64 pixels, but this model needs exactly 32 x 32; resize it before uploading."
    )


def test_tiled_output_is_the_mean_of_the_crops() -> None:
    torch.manual_seed(0)
    net = TiledImageCNN(channels=1, classes=3, crop=8, tiles=2).eval()
    x = torch.rand(2, 1, 12, 12)
    crops = torch.cat([x[:, :, r : r + 8, c : c + 8] for r in (0, 4) for c in (0, 4)])
    expected = torch.softmax(net(crops), 1).reshape(4, 2, 3).mean(0)
    assert torch.allclose(torch.softmax(net(x), 1), expected, atol=1e-6)
    scaled = torch.softmax(net(x * 0.1), 1)  # per-crop z-score: brightness does not matter
    assert torch.allclose(scaled, expected, atol=1e-4)
    assert tile_starts(512, 96, 4) == [0, 139, 277, 416]
    assert tile_starts(96, 96, 4) == [0]


def test_default_tiles_cover_the_image() -> None:
    assert ImageCNN(size=512, crop=96).tiles() == 6
    assert ImageCNN(size=512, crop=128).tiles() == 4
    assert ImageCNN(size=512, crop=96, tiles=2).tiles() == 2


def test_random_crops_are_seeded_and_shaped() -> None:
    x = np.random.default_rng(0).random((3, 1, 20, 20)).astype(np.float32)
    y = np.array([0, 1, 2])
    first = random_crops(x, y, crop=8, per_image=5, rng=np.random.default_rng(7), jitter=True)
    again = random_crops(x, y, crop=8, per_image=5, rng=np.random.default_rng(7), jitter=True)
    assert first[0].shape == (15, 1, 8, 8) and first[0].dtype == np.float32
    assert np.array_equal(first[0], again[0]) and first[1].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert first[0].min() >= 0.0 and first[0].max() <= 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"crop": 200},
            "The 'crop' parameter of image must be 0 (the whole image) or at most 'size' (128). "
            "Got 200 instead.",
        ),
        (
            {"crop": 64, "tiles": -1},
            "The 'tiles' parameter of image must be an int in the range [0, 1000]. Got -1 instead.",
        ),
        (
            {"crop": 64, "normalize": "global"},
            "The 'normalize' parameter of image must be one of 'per-image', 'none'. "
            "Got 'global' instead.",
        ),
        (
            {"crop": 64, "depth": 5},
            "The 'depth' parameter of image must be one of 2, 3, 4. Got 5 instead.",
        ),
    ],
)
def test_crop_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(HelixError) as caught:
        ImageCNN(**options)
    assert str(caught.value) == message


def test_unknown_split_value_names_external() -> None:
    data = cells(12)
    data.split_labels = ["train"] * 10 + ["holdout"] * 2
    with pytest.raises(HelixError) as caught:
        split(data, task="binary", seed=0)
    assert str(caught.value) == (
        "split column values must be train/T, val/V, test or external; found holdout."
    )


def test_saliency_json_has_one_map_per_class(tmp_path: Path) -> None:
    data = cells(24)
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    recipe = ImageCNN(size=32, crop=16, tiles=2, crops_per_image=2, epochs=1)
    train_and_publish(
        recipe, data, split(data, task="binary", seed=0), store, name="c", description="d"
    )
    saved = json.loads(
        (tmp_path / "store" / "c" / "versions" / "1" / "plots" / "saliency.json").read_text()
    )
    assert len(saved["maps"]) == 2 and len(saved["maps"][0]) == 32


def test_gradient_x_input_of_a_linear_model_is_the_weight_of_each_present_base() -> None:
    import torch

    from helixserve.training.saliency import gradient_x_input

    weights = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 10  # position x base
    linear = torch.nn.Linear(12, 1, bias=True)
    with torch.no_grad():
        linear.weight.copy_(weights.reshape(1, 12))
        linear.bias.fill_(5.0)
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = np.zeros((1, 3, 4), dtype=np.float32)
    x[0, [0, 1, 2], [2, 0, 3]] = 1  # G, A, T
    got = gradient_x_input(model, x)
    assert got.shape == (1, 3)
    assert np.allclose(got[0], [0.2, 0.4, 1.1])  # weights[0, G], weights[1, A], weights[2, T]
