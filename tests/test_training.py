"""Training recipes: the conformance run (fit -> export -> bundle -> Predictor -> bad input),
splits, determinism, live history and the ``train`` command, on tiny data made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helixserve.errors import HelixError
from helixserve.inputs.tabular import Feature
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.runtime.quantize import int8_version
from helixserve.store import ModelStore
from helixserve.training.checkpoint import read_meta
from helixserve.training.cli_support import TrainOptions, parse_filter, run
from helixserve.training.data import Dataset, load_sequences, split
from helixserve.training.export import TrainingError, check_parity
from helixserve.training.publish import train_and_publish
from helixserve.training.recipes import (
    RECIPES,
    DnaBinary,
    DnaClassify,
    DnaRegression,
    DnaVariable,
    ImageCNN,
    Recipe,
    TabularForest,
)
from tests.test_kmers import utr_data

MOTIF = "CGACCG"


def motif_data(n: int = 240, length: int = 20, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    inputs: list[object] = []
    targets = []
    for i in range(n):
        seq = "".join(rng.choice(list("ACGT"), length))
        if i % 2:
            at = int(rng.integers(0, length - len(MOTIF)))
            seq = seq[:at] + MOTIF + seq[at + len(MOTIF) :]
        inputs.append(seq)
        targets.append(str(i % 2))
    return Dataset(inputs, targets, [str(i) for i in range(n)], sha256="0" * 64)


def table_data(n: int = 200, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    inputs: list[object] = []
    targets = []
    for i in range(n):
        a, b = int(rng.integers(1, 11)), int(rng.integers(1, 11))
        row: dict[str, object] = {"a": a, "b": b if i % 7 else None}  # some missing values
        inputs.append(row)
        targets.append("malignant" if a + (b or 5) > 11 else "benign")
    return Dataset(inputs, targets, [str(i) for i in range(n)], sha256="0" * 64)


FEATURES = [
    Feature(name="a", type="int", min=1, max=10),
    Feature(name="b", type="int", min=1, max=10),
]


def png_bytes(value: int, size: int = 16, spot: tuple[int, int] | None = None) -> bytes:
    import io

    from PIL import Image

    pixels = np.full((size, size), value, dtype=np.uint8)
    if spot is not None:
        pixels[spot[0] : spot[0] + 4, spot[1] : spot[1] + 4] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_data(n: int = 60) -> Dataset:
    rng = np.random.default_rng(0)
    inputs: list[object] = []
    targets = []
    for i in range(n):
        label = ["spots", "plain", "dim"][i % 3]
        spot = (int(rng.integers(0, 12)), int(rng.integers(0, 12))) if label == "spots" else None
        inputs.append(png_bytes(40 if label == "dim" else 90, spot=spot))
        targets.append(label)
    return Dataset(inputs, targets, [str(i) for i in range(n)], sha256="0" * 64)


def variable_data(n: int = 80) -> Dataset:
    rng = np.random.default_rng(0)
    inputs: list[object] = []
    for i in range(n):
        seq = "".join(rng.choice(list("ACGT"), int(rng.integers(20, 60))))
        inputs.append(seq + ("GGGGGG" if i % 2 else "") + ("N" if i % 5 == 0 else ""))
    return Dataset(
        inputs, [str(i % 2) for i in range(n)], [str(i) for i in range(n)], sha256="0" * 64
    )


@dataclass(frozen=True)
class Tiny:
    """A small recipe, tiny data it trains on in seconds, and an input it must refuse."""

    make: Callable[[], Recipe]
    data: Callable[[], Dataset]
    bad: object


# every recipe in the registry needs at least one entry: the conformance test fails without
TINY: dict[str, dict[str, Tiny]] = {
    "dna-classify": {  # lengths 20..66 nt and N codes: the input rule comes from the data
        "auto": Tiny(lambda: DnaClassify(epochs=2, filters=8), variable_data, "ACGZ"),
    },
    "dna-binary": {
        "cnn": Tiny(lambda: DnaBinary(length=20, epochs=4, kernel=6), motif_data, "ACGT" * 5 + "A"),
        "lstm": Tiny(
            lambda: DnaBinary(length=20, arch="lstm", units=8, epochs=2), motif_data, "ACGF" * 5
        ),
    },
    "dna-regression": {
        "blend": Tiny(
            lambda: DnaRegression(max_length=20, flank=2, filters=8, kernel=3, dense=8, epochs=3),
            utr_data,
            "A" * 21,
        ),
    },
    "dna-variable": {
        "bilstm": Tiny(
            lambda: DnaVariable(pad_to=64, arch="bilstm", units=8, epochs=2), variable_data, "ACGZ"
        ),
        "cnn": Tiny(lambda: DnaVariable(epochs=2, filters=8), variable_data, "ACGZ"),
    },
    "tabular": {
        "rf": Tiny(lambda: TabularForest(FEATURES, n_estimators=20), table_data, {"a": 11, "b": 1}),
        "gb": Tiny(
            lambda: TabularForest(FEATURES, model="gb", n_estimators=50),
            table_data,
            {"a": "x", "b": 1},
        ),
        "calibrated": Tiny(
            lambda: TabularForest(FEATURES, n_estimators=20, calibrate="sigmoid"),
            table_data,
            {"a": 0, "b": 1},
        ),
    },
    "image": {"cnn": Tiny(lambda: ImageCNN(size=16, epochs=2), image_data, b"not an image")},
}
CONFORMANCE = [
    pytest.param(name, variant, id=f"{name}-{variant}")
    for name in RECIPES
    for variant in TINY.get(name) or ["no-tiny-dataset"]
]


@pytest.mark.parametrize(("name", "variant"), CONFORMANCE)
def test_recipe_conformance(tmp_path: Path, name: str, variant: str) -> None:
    """Every registered recipe: fit -> export -> bundle -> served predictions -> bad input."""
    case = TINY.get(name, {}).get(variant)
    if case is None:
        pytest.fail(f"the registered recipe {name} has no tiny dataset in TINY; add one.")
    recipe, data = case.make(), case.data()
    assert recipe.name == name and isinstance(recipe, RECIPES[name])
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    regression = recipe.task == "regression"
    parts = split(data, task="regression" if regression else "binary", seed=1)
    outcome = train_and_publish(
        recipe,
        data,
        parts,
        store,
        name=variant,
        description="test model",
        seed=1,
        work_dir=tmp_path / "work",
    )
    assert outcome.parity <= 1e-4
    manifest = store.manifest(variant)
    assert manifest.version == 1 and manifest.training_data_sha256 == "0" * 64
    assert {"model.onnx", "card.md", "metrics.json", "recipe.json"} <= set(manifest.files)
    if regression:
        assert {"plots/scatter.png", "plots/errors.json"} <= set(manifest.files)
    else:
        assert "plots/confusion.png" in manifest.files
        assert ("plots/roc.json" in manifest.files) == (manifest.task == "binary")
        assert 0.0 <= manifest.metrics["accuracy"] <= 1.0
    good = data.inputs[int(parts.test[0])]
    results = Predictor.from_store(store, variant).predict([good, case.bad])
    assert isinstance(results[0], Prediction) and isinstance(results[1], ItemError)
    assert results[0].value is not None if regression else results[0].label in set(data.targets)
    if outcome.history is not None:  # neural recipes: curves in the bundle and live on disk
        assert "history.json" in manifest.files and "plots/loss.png" in manifest.files
        live = json.loads((tmp_path / "work" / "history.json").read_text())
        assert live["epochs"] == len(outcome.history.train_loss) >= 1
        saved = read_meta(tmp_path / "work" / "checkpoint.npz")  # the training state on disk
        assert saved["best_epoch"] == outcome.history.best_epoch
        assert saved["epoch"] == len(outcome.history.train_loss)


def test_cnn_learns_the_motif(tmp_path: Path) -> None:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    data = motif_data(600)
    outcome = train_and_publish(
        DnaBinary(length=20, kernel=6, epochs=40),
        data,
        split(data, task="binary", seed=0),
        store,
        name="m",
        description="d",
        seed=0,
    )
    assert outcome.metrics["accuracy"] >= 0.95


def test_same_seed_same_model(tmp_path: Path) -> None:
    data = motif_data()
    parts = split(data, task="binary", seed=3)
    predictions = []
    for attempt in range(2):
        store = ModelStore.open(str(tmp_path / f"s{attempt}"), cache_dir=tmp_path / f"c{attempt}")
        recipe = DnaBinary(length=20, epochs=3, kernel=6)
        train_and_publish(recipe, data, parts, store, name="m", description="d", seed=7)
        predictions.append(Predictor.from_store(store, "m").predict(data.inputs[:50]))
    assert predictions[0] == predictions[1]


def test_split_rules() -> None:
    data = motif_data(100)
    parts = split(data, task="binary", seed=0, test_fraction=0.2, val_fraction=0.1)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (70, 10, 20)
    assert not set(parts.train) & set(parts.test)
    data.split_labels = ["T"] * 80 + ["V"] * 20  # the yeast tutorial's T/V column
    parts = split(data, task="binary", seed=0)
    assert parts.test.tolist() == list(range(80, 100))
    assert len(parts.val) == 8 and not set(parts.val) & set(parts.train)
    data.split_labels = ["train"] * 99 + ["holdout"]
    with pytest.raises(
        HelixError,
        match=r"^split column values must be train/T, val/V, test or "
        r"external; found holdout\.$",
    ):
        split(data, task="binary", seed=0)


def test_parity_failure_is_a_clear_error() -> None:
    with pytest.raises(TrainingError) as info:
        check_parity(np.array([0.5, 0.2]), np.array([0.5, 0.21]), "m")
    assert str(info.value) == (
        "m: ONNX Runtime and the trained model differ by up to 0.01 on the test set (tolerance "
        "0.0001); the export is not faithful, so nothing was published."
    )


def test_load_sequences_reports_refused_records(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("id,sequence,label\na,ACGTACGTAC,1\nb,ACGTFCGTAC,0\nc,ACGTACGTAA,0\n")
    data = load_sequences(path, DnaBinary(length=10).input_schema(), target_col="label")
    assert data.inputs == ["ACGTACGTAC", "ACGTACGTAA"]
    assert [str(r.error) for r in data.refused] == [
        "record 2 (id b), line 3: DNA sequence is not valid DNA: position 5 is 'F'. Only the "
        "letters A, C, G, T are allowed; remove it or correct the typo."
    ]
    with pytest.raises(HelixError, match=r"^column 'target' is not in "):
        load_sequences(path, DnaBinary(length=10).input_schema(), target_col="target")


def test_train_command(tmp_path: Path) -> None:
    data = motif_data(120)
    path = tmp_path / "train.csv"
    path.write_text(
        "sequence,label\n"
        + "".join(f"{s},{t}\n" for s, t in zip(data.inputs, data.targets, strict=True))
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "COLUMNS": "120",
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},  # the tree under test
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "helixserve",
            "train",
            "dna-binary",
            "--data",
            str(path),
            "--target",
            "label",
            "--length",
            "20",
            "--epochs",
            "2",
            "--name",
            "tiny",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tiny@1" in result.stdout
    assert "0 records refused by validation" in result.stdout
    unknown = subprocess.run(
        [sys.executable, "-m", "helixserve", "train", "protein-fold", "--data", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert unknown.returncode == 2  # the recipe is a choice: click's usage error
    assert unknown.stderr.splitlines()[3].startswith(
        "│ Invalid value for 'RECIPE': Value error, 'protein-fold' is not one of 'dna-classify', "
    )


def test_train_command_tabular_with_cross_validation(tmp_path: Path) -> None:
    data = table_data(120)
    path = tmp_path / "rows.csv"
    lines = [
        f"{i},{row['a']},{'' if row['b'] is None else row['b']},{t}"  # type: ignore[index]
        for i, (row, t) in enumerate(zip(data.inputs, data.targets, strict=True))
    ]
    path.write_text("id,a,b,class\n" + "\n".join(lines) + "\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "COLUMNS": "120",
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},  # the tree under test
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "helixserve",
            "train",
            "tabular",
            "--data",
            str(path),
            "--target",
            "class",
            "--id-col",
            "id",
            "--feature-type",
            "int",
            "--feature-range",
            "1:10",
            "--cv",
            "3",
            "--name",
            "rows",
            "--label-names",
            "benign=B,malignant=M",
            "--positive",
            "M",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3-fold cross-validation (train + validation part)" in result.stdout
    card = next((tmp_path / "store" / "rows" / "versions" / "1").glob("card.md")).read_text()
    assert "## 3-fold cross-validation" in card
    manifest = ModelStore.open(str(tmp_path / "store")).manifest("rows")
    assert manifest.output.labels == ["B", "M"]


# --- found in review ------------------------------------------------------------------------------


def test_image_options_reach_the_recipe(tmp_path: Path) -> None:
    data = image_data(30)
    for i, (image, label) in enumerate(zip(data.inputs, data.targets, strict=True)):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(image)  # type: ignore[arg-type]
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    options = TrainOptions(
        recipe="image", data=tmp_path / "images", name="cells", params={"size": 16, "epochs": 1}
    )
    run(options, store)
    schema = store.manifest("cells").input
    assert (schema.kind, schema.width, schema.height) == ("image", 16, 16)  # type: ignore[union-attr]


def test_training_refusals_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = [f"{s},{t}" for s, t in zip(motif_data(60).inputs, motif_data(60).targets, strict=True)]
    path.write_text(
        "sequence,label,t0\n"
        + "\n".join(f"{r},{i}" for i, r in enumerate(rows))
        + "\nACGTACGTACGTACGTACGT,,5\n"
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    base = {
        "recipe": "dna-binary",
        "data": path,
        "name": "m",
        "target": "label",
        "params": {"length": 20, "epochs": 1},
    }
    outcome = run(TrainOptions(**base), store)  # type: ignore[arg-type]
    assert [str(r.error) for r in outcome.refused_examples] == [
        "record 61, line 62: the target is empty; fill it in or remove the record."
    ]
    kept = run(TrainOptions(**base, filter="t0>=30"), store)  # type: ignore[arg-type]
    card = (store.pull(f"m@{kept.manifest.version}").path / "card.md").read_text()
    assert "30 records used" in card
    with pytest.raises(HelixError, match=r"^--label-names renames 7, which the targets do not"):
        run(TrainOptions(**base, label_names="7=x"), store)  # type: ignore[arg-type]
    with pytest.raises(HelixError, match=r"^test and validation fractions 0\.99 and 0\.1 do not"):
        run(TrainOptions(**{**base, "test_fraction": 0.99}), store)  # type: ignore[arg-type]
    no_train = motif_data(20)
    no_train.split_labels = ["val"] * 10 + ["test"] * 10
    with pytest.raises(HelixError, match=r"^the split leaves no rows for train; give more rows"):
        split(no_train, task="binary", seed=0)
    with pytest.raises(HelixError, match=r"^--filter must look like COLUMN>VALUE"):
        run(TrainOptions(**base, filter="t0>"), store)  # type: ignore[arg-type]


def test_filter_compares_numbers_and_drops_unreadable_cells() -> None:
    keep = parse_filter("t0>100")
    assert keep is not None
    assert [keep({"t0": v}) for v in ("101", "99", "NA", "")] == [True, False, False, False]
    exact = parse_filter("plate==4")
    assert exact is not None and exact({"Plate": "4"}) and not exact({"plate": "3"})


def test_binary_recipe_refuses_three_classes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("sequence,label\n" + "".join(f"{'ACGT' * 5},{i % 3}\n" for i in range(30)))
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    with pytest.raises(HelixError) as info:
        run(
            TrainOptions(
                recipe="dna-binary", data=path, name="m", target="label", params={"length": 20}
            ),
            store,
        )
    assert str(info.value) == (
        "dna-binary is a binary recipe, but the targets hold 3 classes (0, 1, 2); use a "
        "two-class target, or dna-classify for three or more classes."
    )


def test_search_picks_from_the_declared_space_and_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    data = table_data(90)
    lines = [
        f"{row['a']},{'' if row['b'] is None else row['b']},{t}"  # type: ignore[index]
        for row, t in zip(data.inputs, data.targets, strict=True)
    ]
    path.write_text("a,b,class\n" + "\n".join(lines) + "\n")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    options = TrainOptions(
        recipe="tabular",
        data=path,
        name="rows",
        target="class",
        feature_type="int",
        feature_range="1:10",
        search=3,
        cv=2,
    )
    outcome = run(options, store)
    assert "## Hyper-parameter search (3 trials, 2-fold CV accuracy" in outcome.cv_table
    card = (store.pull("rows").path / "card.md").read_text()
    assert "## Hyper-parameter search" in card and "## 2-fold cross-validation" in card
    assert "n_estimators=" in card


def test_init_from_continues_from_earlier_weights(tmp_path: Path) -> None:
    data = motif_data(120)
    path = tmp_path / "t.csv"
    path.write_text(
        "sequence,label\n"
        + "".join(f"{s},{t}\n" for s, t in zip(data.inputs, data.targets, strict=True))
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    base = TrainOptions(
        recipe="dna-binary", data=path, name="m", target="label", params={"length": 20, "epochs": 2}
    )
    first = run(base, store)
    assert "weights.npz" in first.manifest.files and "recipe.json" in first.manifest.files
    again = {"init_from": "m@1", "params": {**base.params, "epochs": 1}}
    second = run(TrainOptions(**{**base.__dict__, **again}), store)
    assert second.manifest.version == 2
    lstm = TrainOptions(
        **{**base.__dict__, "params": {**base.params, "arch": "lstm"}, "init_from": "m@1"}
    )
    with pytest.raises(
        HelixError, match=r"^the earlier model's weights do not fit this architecture"
    ):
        run(lstm, store)
    original = Predictor.from_store(store, "m@1")
    made = int8_version(original, store.read_files("m@1")[1], list(data.inputs[:32]))
    int8 = store.publish(made[0], made[1]).version  # without the training weights
    with pytest.raises(HelixError) as caught:
        run(TrainOptions(**{**base.__dict__, **again, "init_from": f"m@{int8}"}), store)
    assert str(caught.value) == (
        f"m@{int8} is an int8 version of m@1 and holds no training weights; continue from m@1."
    )
