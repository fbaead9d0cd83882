"""Self-tests: bundles carry example inputs with their outputs; ``models test`` and the server
re-run them and refuse a model that no longer gives them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from helixserve.errors import SelfTestError
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime.importer import import_onnx
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.selftest import EXAMPLES_FILE, check_selftest, run_selftest
from helixserve.serving.registry import Registry
from helixserve.store import Headline, Lineage, ModelStore, OutputSchema, make_manifest
from tests.support.onnx_models import gc_binary_model
from tests.test_cli_models import SCHEMA, cli

GC = "GGCC" * 12 + "GC"


@pytest.fixture
def local(tmp_path: Path) -> ModelStore:
    return ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")


def imported(store: ModelStore, folder: Path, bias: float = 12.5) -> int:
    (folder / "model.onnx").write_bytes(gc_binary_model(50, bias=bias))
    (folder / "schema.yaml").write_text(SCHEMA)
    return import_onnx(store, folder / "model.onnx", folder / "schema.yaml", "gc").version


def swapped(store: ModelStore, version: int, bias: float) -> int:
    """Publish ``gc@version`` again with another ONNX model but the same examples: a consistent
    manifest (every sha256 right), so only the self-test can tell."""
    manifest, files = store.read_files(f"gc@{version}")
    files["model.onnx"] = gc_binary_model(50, bias=bias)
    fields = manifest.model_dump(exclude={"files", "version"})
    return store.publish(make_manifest(files, **fields), files).version


def test_import_stores_examples_and_lineage(local: ModelStore, tmp_path: Path) -> None:
    version = imported(local, tmp_path)
    manifest, files = local.read_files(f"gc@{version}")
    stored = json.loads(files[EXAMPLES_FILE])
    assert (stored["format"], stored["tolerance"], len(stored["examples"])) == (1, 1e-4, 8)
    assert all(len(e["input"]) == 50 and len(e["output"]) == 2 for e in stored["examples"])
    assert manifest.lineage is not None and manifest.lineage.how == "import"
    assert manifest.lineage.source is not None
    assert manifest.lineage.source.startswith("model.onnx (sha256 ")
    report = check_selftest(Predictor.from_store(local, "gc"))
    assert report.summary() == "gc@1: 8 examples match (tolerance 0.0001)"


def test_a_swapped_model_fails_its_self_test(local: ModelStore, tmp_path: Path) -> None:
    bad = swapped(local, imported(local, tmp_path), bias=0.0)
    report = run_selftest(Predictor.from_store(local, f"gc@{bad}"))
    assert not report.passed and report.checked == 8
    assert report.summary().startswith(
        "gc@2: 8 of 8 examples differ from the outputs stored at publish time: example 0: "
        "expected ["
    )
    with pytest.raises(SelfTestError):
        check_selftest(Predictor.from_store(local, f"gc@{bad}"))


def test_bundle_without_examples_says_so(local: ModelStore) -> None:
    files = {"model.onnx": gc_binary_model(50), "card.md": b"# gc\n"}
    manifest = make_manifest(
        files,
        name="old",
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
        lineage=Lineage(how="trained"),
    )
    local.publish(manifest, files)
    report = run_selftest(Predictor.from_store(local, "old"))
    assert (report.passed, report.has_examples, report.checked) == (True, False, 0)
    assert report.summary() == "old@1: no self-test examples in this bundle (nothing to check)"


def test_models_test_cli_exit_codes(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        "HELIXSERVE_PRETRAINED": "false",
        "COLUMNS": "300",
    }
    store = ModelStore.open(env["HELIXSERVE_STORE"], cache_dir=tmp_path / "cache")
    swapped(store, imported(store, tmp_path), bias=0.0)
    good = cli(env, "test", "gc@1")
    assert (good.returncode, good.stdout) == (0, "ok   gc@1: 8 examples match (tolerance 0.0001)\n")
    bad = cli(env, "test")  # every model, at its default version: gc@2, the swapped one
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL gc@2: 8 of 8 examples differ from the outputs stored at")
    assert bad.stderr == "Error: 1 of 1 model(s) failed the self-test.\n"


def test_server_refuses_a_failing_version_and_keeps_the_last_good(
    local: ModelStore, tmp_path: Path
) -> None:
    good = imported(local, tmp_path)
    local.set_alias("gc", "production", good)
    registry = Registry(local)
    asyncio.run(registry.load())
    assert registry.resolve("gc").version == good
    bad = swapped(local, good, bias=0.0)
    local.set_alias("gc", "production", bad)
    asyncio.run(registry.load())
    assert registry.resolve("gc").version == good  # the alias moved to a failing version
    assert registry.resolve("gc", "production").version == good
    assert registry.load_errors[f"gc@{bad}"].startswith(
        f"gc@{bad}: 8 of 8 examples differ from the outputs stored at publish time"
    )
    registry.close()


def test_training_publishes_headline_lineage_and_examples(tmp_path: Path) -> None:
    from helixserve.training.data import split
    from helixserve.training.publish import train_and_publish
    from helixserve.training.recipes import TabularForest
    from tests.test_training import FEATURES, table_data

    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    data = table_data()
    parts = split(data, task="binary", seed=1)
    train_and_publish(
        TabularForest(FEATURES, n_estimators=20),
        data,
        parts,
        store,
        name="t",
        description="d",
        seed=1,
    )
    manifest, files = store.read_files("t")
    assert manifest.headline is not None
    assert (manifest.headline.metric, manifest.headline.meaning) == (
        "accuracy",
        f"accuracy on the {len(parts.test)} held-out test rows",
    )
    assert manifest.lineage == Lineage(how="trained")
    stored = json.loads(files[EXAMPLES_FILE])["examples"]
    assert [e["input"] for e in stored] == [data.inputs[i] for i in _first_rows(data, parts)]
    assert check_selftest(Predictor.from_store(store, "t")).checked == 8


def _first_rows(data: object, parts: object) -> list[int]:
    """One test row of each class (in class order: benign, malignant), then the others."""
    from helixserve.training.data import Dataset, Split

    assert isinstance(data, Dataset) and isinstance(parts, Split)
    test = [int(i) for i in parts.test]
    first = [next(i for i in test if data.targets[i] == c) for c in ("benign", "malignant")]
    return (first + [i for i in test if i not in first])[:8]


def test_headline_names_isolates_and_the_external_rows() -> None:
    import numpy as np

    from helixserve.training.data import Split
    from helixserve.training.publish import choose_headline

    rows = np.arange(10, dtype=np.intp)
    parts = Split(rows[:4], rows[4:5], rows[5:8], external=rows[8:10])
    figures = {"accuracy": 1.0, "external_accuracy": 0.5}
    assert choose_headline("multiclass", figures, parts, bagged=False) == Headline(
        metric="accuracy",
        meaning="accuracy on the 3 held-out test rows",
        ood_metric="external_accuracy",
        ood_meaning="accuracy on the 2 external rows, never trained or tuned on (1/2)",
    )
    bags = {"accuracy": 0.31, "isolate_accuracy": 26 / 30, "isolates": 30.0, "isolates_correct": 26}
    assert choose_headline("binary", bags, Split(rows, rows, rows), bagged=True) == Headline(
        metric="isolate_accuracy",
        meaning="share of the 30 test bags (isolates) called right (26/30): positive iff the "
        "highest member score >= isolate_threshold",
    )
    assert choose_headline("regression", {"r2": 0.5}, parts, bagged=False) == Headline(
        metric="r2", meaning="R² on the 3 held-out test rows"
    )


def with_examples(store: ModelStore, version: int, examples: bytes) -> int:
    """Publish ``gc@version`` again with other ``examples.json`` bytes (hashes all consistent)."""
    manifest, files = store.read_files(f"gc@{version}")
    files[EXAMPLES_FILE] = examples
    fields = manifest.model_dump(exclude={"files", "version"})
    return store.publish(make_manifest(files, **fields), files).version


GOOD_OUTPUT = [0.5, 0.5]
DAMAGED = {
    "not json": (b"{", "is damaged (Expecting property name"),
    "a list": (b"[]", "is damaged (it must be an object with format 1)"),
    "no format": (b'{"tolerance": 0.0001, "examples": []}', "it must be an object with format 1"),
    "a string example": (
        b'{"format": 1, "tolerance": 0.0001, "examples": ["ACGT"]}',
        "example 0 must hold exactly an input and an output",
    ),
    "a scalar output": (
        b'{"format": 1, "tolerance": 0.0001, "examples": [{"input": "A", "output": 0.5}]}',
        "the output of example 0 must be a list of finite numbers",
    ),
    "an empty output": (
        b'{"format": 1, "tolerance": 0.0001, "examples": [{"input": "A", "output": []}]}',
        "the output of example 0 must be a list of finite numbers",
    ),
    "a huge tolerance": (
        b'{"format": 1, "tolerance": 1e9, "examples": [{"input": "A", "output": [1]}]}',
        "tolerance must be from 0 to 0.01, got 1000000000.0",
    ),
    "a boolean tolerance": (
        b'{"format": 1, "tolerance": true, "examples": [{"input": "A", "output": [1]}]}',
        "tolerance must be a number",
    ),
    "no examples": (b'{"format": 1, "tolerance": 0.0001, "examples": []}', "a list of 1 to 64"),
    "bad base64": (
        b'{"format": 1, "tolerance": 0.0001, "examples": [{"input": {"image_base64": "%%"}, '
        b'"output": [1]}]}',
        "an image input is not valid base64",
    ),
    "a number input": (
        b'{"format": 1, "tolerance": 0.0001, "examples": [{"input": 7, "output": [1]}]}',
        "an input must be a string or an object, got int",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_examples_file_is_a_clear_self_test_error(
    local: ModelStore, tmp_path: Path, case: str
) -> None:
    data, message = DAMAGED[case]
    bad = with_examples(local, imported(local, tmp_path), data)
    with pytest.raises(SelfTestError) as info:
        run_selftest(Predictor.from_store(local, f"gc@{bad}"))
    assert str(info.value).startswith(f"{EXAMPLES_FILE} of gc@{bad} is damaged (")
    assert message in str(info.value)
    assert str(info.value).endswith("); publish the model again.")


def test_wrong_length_outputs_are_reported_not_raised(local: ModelStore, tmp_path: Path) -> None:
    body = {"format": 1, "tolerance": 1e-4, "examples": [{"input": GC, "output": [1, 2, 3]}]}
    bad = with_examples(local, imported(local, tmp_path), json.dumps(body).encode())
    report = run_selftest(Predictor.from_store(local, f"gc@{bad}"))
    assert not report.passed
    assert (
        report.mismatches[0]
        .describe()
        .startswith("example 0: expected 3 numbers [1, 2, 3], got 2:")
    )


def test_a_damaged_bundle_never_stops_the_server(local: ModelStore, tmp_path: Path) -> None:
    good = imported(local, tmp_path)
    bad = with_examples(local, good, b'{"format": 1, "tolerance": 0.0001, "examples": [7]}')
    local.set_alias("gc", "production", good)
    registry = Registry(local)
    asyncio.run(registry.load())
    assert registry.resolve("gc").version == good
    assert registry.load_errors[f"gc@{bad}"].startswith(f"{EXAMPLES_FILE} of gc@{bad} is damaged")
    registry.close()


def test_after_a_restart_an_alias_on_a_failing_version_serves_the_one_before(
    local: ModelStore, tmp_path: Path
) -> None:
    first = imported(local, tmp_path)
    failing = swapped(local, first, bias=0.0)
    candidate = imported(local, tmp_path)  # newer, good, never promoted
    local.set_alias("gc", "production", failing)
    registry = Registry(local)  # a fresh server: no earlier snapshot to keep
    asyncio.run(registry.load())
    assert sorted(registry.entry("gc").versions) == [first, candidate]
    assert registry.resolve("gc", "production").version == first
    assert registry.resolve("gc").version == first
    registry.close()
