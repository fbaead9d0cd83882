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
from helixserve.store import Lineage, ModelStore, OutputSchema, make_manifest
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
