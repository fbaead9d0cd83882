"""Options of ``helixserve train`` beyond the recipes: class weights, card sections and the
lineage of versions made ``--init-from`` an earlier one, on tiny data made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helixserve.errors import HelixError
from helixserve.store import ModelStore
from helixserve.training.cli_support import TrainOptions, run
from helixserve.training.publish import encode_inputs
from helixserve.training.recipes import DnaBinary, DnaRegression, Recipe, TabularForest
from tests.test_training import FEATURES, MOTIF


def imbalanced_motif_data(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """About 10% positives; the motif marks 70% of them (and 10% of the negatives)."""
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for _ in range(n):
        seq, positive = "".join(rng.choice(list("ACGT"), 20)), int(rng.random() < 0.1)
        if rng.random() < (0.7 if positive else 0.1):
            at = int(rng.integers(0, 20 - len(MOTIF)))
            seq = seq[:at] + MOTIF + seq[at + len(MOTIF) :]
        inputs.append(seq)
        targets.append(positive)
    return inputs, np.array(targets)


def imbalanced_rows(n: int, seed: int) -> tuple[list[object], np.ndarray]:
    """Class 1 is rare (about 11%): 2% where a < 7, 32% where a >= 7; b is noise."""
    rng = np.random.default_rng(seed)
    rows: list[object] = []
    targets = []
    for _ in range(n):
        a, b = int(rng.integers(1, 11)), int(rng.integers(1, 11))
        rows.append({"a": a, "b": b})
        targets.append(int(rng.random() < 0.02 + 0.3 * (a >= 7)))
    return rows, np.array(targets)


def minority_recall(
    recipe: Recipe, train: tuple[list[object], np.ndarray], test: tuple[list[object], np.ndarray]
) -> float:
    x, y = encode_inputs(recipe, train[0]), train[1]
    cut = len(x) * 4 // 5
    recipe.fit(x[:cut], y[:cut], x[cut:], y[cut:], labels=["0", "1"], seed=0)
    called = recipe.predict_proba(encode_inputs(recipe, test[0]))[:, 1] >= 0.5
    return float(called[test[1] == 1].mean())


@pytest.mark.parametrize("kind", ["dna-binary", "tabular-rf", "tabular-gb"])
def test_balanced_class_weight_raises_the_recall_of_the_rare_class(kind: str) -> None:
    def recipe(weight: str | None) -> Recipe:
        if kind == "dna-binary":
            return DnaBinary(length=20, kernel=6, epochs=10, class_weight=weight)
        model = kind.removeprefix("tabular-")
        return TabularForest(
            FEATURES, model=model, n_estimators=20, min_samples_leaf=5, class_weight=weight
        )

    make = imbalanced_motif_data if kind == "dna-binary" else imbalanced_rows
    train, test = make(200 if kind == "dna-binary" else 300, 0), make(400, 1)
    plain = minority_recall(recipe(None), train, test)  # type: ignore[arg-type]
    balanced = minority_recall(recipe("balanced"), train, test)  # type: ignore[arg-type]
    assert plain < 0.1  # unweighted, the rare class is almost never called
    assert balanced > plain + 0.3


def test_explicit_class_weights_by_label_name_reach_the_model_and_the_card(
    tmp_path: Path,
) -> None:
    rows, targets = imbalanced_rows(800, 0)
    lines = [
        ",".join(map(str, [*row.values(), t]))  # type: ignore[attr-defined]
        for row, t in zip(rows, targets, strict=True)
    ]
    path = tmp_path / "rows.csv"
    path.write_text("a,b,class\n" + "\n".join(lines) + "\n")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    base = TrainOptions(
        recipe="tabular",
        data=path,
        name="rows",
        target="class",
        feature_type="int",
        feature_range="1:10",
        seed=0,
        label_names="0=benign,1=malignant",
    )
    plain = run(base, store)
    weighted = run(
        TrainOptions(**{**base.__dict__, "params": {"class_weight": "malignant=8"}}), store
    )
    assert weighted.metrics["recall"] > plain.metrics["recall"] + 0.3
    bundle = store.pull("rows@2").path
    params = json.loads((bundle / "recipe.json").read_text())["params"]
    assert params["class_weight"] == "malignant=8"
    assert "class_weight=malignant=8" in (bundle / "card.md").read_text()


CLASS_WEIGHT = (
    "The 'class_weight' parameter of tabular must be 'none', 'balanced' or LABEL=WEIGHT pairs "
    "with positive weights like '0=1,1=4' or None. Got {!r} instead."
)
REGRESSION_PARAMETERS = ", ".join(d.name for d in DnaRegression.declared())


@pytest.mark.parametrize(
    ("recipe", "weight", "message"),
    [
        ("tabular", "heavy", CLASS_WEIGHT.format("heavy")),
        ("tabular", "benign=1,malignant=-2", CLASS_WEIGHT.format("benign=1,malignant=-2")),
        ("tabular", "0=1,0=2", CLASS_WEIGHT.format("0=1,0=2")),
        (
            "tabular",
            "benign=1,2=3",
            "The 'class_weight' parameter names class '2', which the targets do not hold; they "
            "hold benign, malignant.",
        ),
        (
            "dna-regression",
            "balanced",
            "dna-regression has no parameter 'class_weight'; its parameters are "
            f"{REGRESSION_PARAMETERS}.",
        ),
    ],
)
def test_bad_class_weights_are_refused_with_the_fix(
    tmp_path: Path, recipe: str, weight: str, message: str
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "a,b,class\n" + "".join(f"{i % 10 + 1},{i % 7 + 1},{i % 2}\n" for i in range(40))
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    options = TrainOptions(
        recipe=recipe,
        data=path,
        name="rows",
        target="class",
        feature_type="int",
        label_names="0=benign,1=malignant",
        params={"class_weight": weight},
    )
    with pytest.raises(HelixError) as info:
        run(options, store)
    assert str(info.value) == message


def rows_file(tmp_path: Path, n: int = 40) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(
        "a,b,class\n" + "".join(f"{i % 10 + 1},{i % 7 + 1},{i % 2}\n" for i in range(n))
    )
    return path


def test_limits_citation_licence_and_a_card_file_go_into_the_card(tmp_path: Path) -> None:
    extra = tmp_path / "extra.md"
    extra.write_text("## Intended use\n\nTeaching only.\n")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    options = TrainOptions(
        recipe="tabular",
        data=rows_file(tmp_path),
        name="rows",
        target="class",
        feature_type="int",
        card=extra,
        limits="Trained on 40 made-up rows.",
        citation="Doe J (2026).",
        licence="CC-BY-4.0",
    )
    run(options, store)
    card = (store.pull("rows").path / "card.md").read_text()
    assert (
        "## Limits\n\nTrained on 40 made-up rows.\n\n## Citation\n\nDoe J (2026).\n\n"
        "## Licence\n\nCC-BY-4.0\n\n## Intended use\n\nTeaching only.\n"
    ) in card
    assert card.index("## Metrics (test set)") < card.index("## Limits")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limits": "  "}, "--limits is empty; give the text, or leave the option out."),
        (
            {"card": "missing.md"},
            "--card {tmp}/missing.md: no such file; give a Markdown file "
            "to append to the model card.",
        ),
        (
            {"card": "extra.md", "licence": "MIT"},
            "--licence and the --card file {tmp}/extra.md "
            "both give the section '## Licence'; keep one of them.",
        ),
    ],
)
def test_bad_card_options_are_refused_before_training(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    (tmp_path / "extra.md").write_text("Notes.\n\n## Licence\n\nCC0\n")
    given: dict[str, object] = {**change}
    if "card" in change:
        given["card"] = tmp_path / change["card"]
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    base = TrainOptions(
        recipe="tabular", data=rows_file(tmp_path), name="rows", target="class", feature_type="int"
    )
    options = TrainOptions(**{**base.__dict__, **given})
    with pytest.raises(HelixError) as info:
        run(options, store)
    assert str(info.value) == message.format(tmp=tmp_path)
    assert store.list_models() == []


def test_init_from_records_the_resolved_parent_in_the_lineage(tmp_path: Path) -> None:
    from helixserve.store.manifest import Lineage
    from tests.test_training import motif_data

    data = motif_data(80)
    path = tmp_path / "t.csv"
    path.write_text(
        "sequence,label\n"
        + "".join(f"{s},{t}\n" for s, t in zip(data.inputs, data.targets, strict=True))
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    base = TrainOptions(
        recipe="dna-binary", data=path, name="m", target="label", params={"length": 20, "epochs": 1}
    )
    assert run(base, store).manifest.lineage == Lineage(how="trained")
    run(base, store)
    store.set_alias("m", "production", 1)
    third = run(TrainOptions(**{**base.__dict__, "init_from": "m@production"}), store)
    assert third.manifest.lineage == Lineage(how="init-from", parent="m@1")
    assert store.manifest("m@3").lineage == Lineage(how="init-from", parent="m@1")


def test_the_train_command_takes_class_weights_and_card_sections(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from helixserve.cli.app import app

    extra = tmp_path / "extra.md"
    extra.write_text("## Intended use\n\nTeaching only.\n")
    args = [
        "train",
        "tabular",
        "--data",
        str(rows_file(tmp_path)),
        "--target",
        "class",
        "--name",
        "rows",
        "--store",
        str(tmp_path / "store"),
        "--class-weight",
        "1=3",
        "--limits",
        "Made-up rows.",
        "--citation",
        "Doe J (2026).",
        "--licence",
        "MIT",
        "--card",
        str(extra),
    ]
    result = CliRunner().invoke(app, args, env={"HELIXSERVE_CACHE_DIR": str(tmp_path / "c")})
    assert result.exit_code == 0, result.output
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "c")
    bundle = store.pull("rows").path
    assert json.loads((bundle / "recipe.json").read_text())["params"]["class_weight"] == "1=3"
    card = (bundle / "card.md").read_text()
    assert (
        "## Limits\n\nMade-up rows.\n\n## Citation\n\nDoe J (2026).\n\n## Licence\n\nMIT\n\n"
        "## Intended use\n\nTeaching only.\n"
    ) in card


def test_train_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    data = tmp_path / "t.csv"
    data.write_text("sequence,label\n" + "".join(f"{'ACGT' * 5},{i % 2}\n" for i in range(20)))
    work = tmp_path / "work"
    args = [
        "train",
        "dna-binary",
        "--data",
        str(data),
        "--target",
        "label",
        "--length",
        "20",
        "--store",
        str(tmp_path / "store"),
        "--work-dir",
        str(work),
        "--resume",
    ]
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(tmp_path / "c"), "COLUMNS": "500"}
    result = subprocess.run(
        [sys.executable, "-m", "helixserve", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: --resume: there is no checkpoint at {work / 'checkpoint.npz'}, so there is "
        "nothing to resume; give --work-dir the folder of the interrupted run, or train from the "
        "start without --resume.\n"
    )
