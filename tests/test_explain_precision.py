"""Explaining with a version's int8 sibling: the rank agreement measured when it is made, the
server's choice (``precision`` auto / fp32 / int8) and what the answers and the page say."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from helixserve.explain.ism import ism
from helixserve.explain.precision import (
    AGREEMENT_BAR,
    ISM_SEQUENCES,
    ISM_SPEARMAN,
    ISM_SPEARMAN_MIN,
    PrecisionUnavailable,
    choose,
    compare_ism,
    spearman,
)
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.quantize import int8_version
from helixserve.store import Lineage, ModelStore, make_manifest
from tests.support.onnx_models import gc_binary_model
from tests.support.server import Running, publish_gc, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
MOTIF = "CGACCGAACTCC"
SEQUENCE = "ACGTAC" + MOTIF + "ACGT" * 8


def random_sequences(count: int, seed: int) -> list[str]:
    """50-nt sequences, every other one holding the primer model's motif."""
    rng = np.random.default_rng(seed)
    found = []
    for i in range(count):
        bases = "".join(rng.choice(list("ACGT"), 50))
        found.append(bases[:20] + MOTIF + bases[32:] if i % 2 else bases)
    return found


def test_spearman_ranks_ties_by_their_average() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)  # same ties, same ranks
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # nothing to rank


@dataclass
class Zoo:
    store: ModelStore
    poor: dict[str, float]


def publish_poor_sibling(store: ModelStore, tmp: Path) -> dict[str, float]:
    """gc@2, said to be the int8 of gc@1 but scoring A+T instead of G+C, with its agreement
    measured by the real check (as ``models quantize`` would)."""
    scratch = ModelStore.open(str(tmp / "scratch"), cache_dir=tmp / "scratch-cache")
    files = {"model.onnx": gc_binary_model(50, scale=-0.5, bias=-12.5), "card.md": b"# poor\n"}
    original = Predictor.from_store(store, "gc@1")
    schema = original.manifest
    fields = {"task": "binary", "input": schema.input, "output": schema.output}
    scratch.publish(make_manifest(files, name="gc", **fields), files)
    compared = compare_ism(
        original, Predictor.from_store(scratch, "gc@1"), random_sequences(20, 1), "20 tests"
    )
    assert compared is not None
    lineage = Lineage(how="quantize", parent="gc@1")
    manifest = make_manifest(files, name="gc", metrics=compared.metrics, lineage=lineage, **fields)
    store.publish(manifest, files)
    return compared.metrics


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """primer-binding@1 (the zoo's) and @2, its real int8 version with the ISM check; gc@1 with
    a poor sibling gc@2; plain@1 with none."""
    tmp = tmp_path_factory.mktemp("precision")
    shutil.copytree(ZOO / "primer-binding", tmp / "store" / "primer-binding")
    store = ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache")
    original = Predictor.from_store(store, "primer-binding@1")
    _, files = store.read_files("primer-binding@1")
    manifest, new, _, _ = int8_version(
        original, files, random_sequences(64, 0), compare=compare_ism
    )
    assert store.publish(manifest, new).version == 2
    publish_gc(store)
    store.set_alias("gc", "production", 1)  # else the newest version, gc@2, is the default
    poor = publish_poor_sibling(store, tmp)
    publish_gc(store, name="plain")
    return Zoo(store, poor)


def test_quantize_records_the_ism_agreement_of_the_int8_version(zoo: Zoo) -> None:
    manifest = zoo.store.manifest("primer-binding@2")
    assert manifest.metrics[ISM_SEQUENCES] == 64.0
    assert AGREEMENT_BAR <= manifest.metrics[ISM_SPEARMAN] <= 1.0
    assert manifest.metrics[ISM_SPEARMAN_MIN] <= manifest.metrics[ISM_SPEARMAN]
    card = zoo.store.read_files("primer-binding@2")[1]["card.md"].decode()
    assert (
        "In-silico mutagenesis of 64 sequences of the calibration inputs: the ranking of each "
        "sequence's single-base substitution effects agrees with the original's at a mean "
        f"Spearman of {manifest.metrics[ISM_SPEARMAN]:.4f}"
    ) in card
    assert "weights.npz" not in manifest.files  # training continues from the original


def test_the_check_measures_a_poor_sibling_as_poor(zoo: Zoo) -> None:
    assert zoo.poor[ISM_SPEARMAN] == pytest.approx(-1.0)  # every ranking reversed
    assert zoo.poor[ISM_SEQUENCES] == 20.0


@pytest.fixture(scope="module")
def server(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(zoo.store.uri, tmp_path_factory.mktemp("served"), access_log=False) as s:
        yield s


def explain(server: Running, name: str, query: str = "", **body: str) -> httpx.Response:
    url = f"{server.url}/api/v1/models/{name}/explain{query}"
    return httpx.post(url, json={"sequence": SEQUENCE, **body}, timeout=30)


def test_auto_explains_with_the_vetted_int8_sibling_and_says_so(zoo: Zoo, server: Running) -> None:
    body = explain(server, "primer-binding").json()
    figure = zoo.store.manifest("primer-binding@2").metrics[ISM_SPEARMAN]
    assert (body["model"], body["version"]) == ("primer-binding", 1)  # the version asked for
    assert body["computed_by"] == {
        "version": 2,
        "precision": "int8",
        "ism_spearman": figure,
        "ism_sequences": 64,
    }
    int8 = ism(Predictor.from_store(zoo.store, "primer-binding@2"), SEQUENCE)
    np.testing.assert_allclose(body["effects"], int8.effects, atol=1e-6)
    assert explain(server, "primer-binding", precision="int8").json() == body


def test_fp32_when_asked(zoo: Zoo, server: Running) -> None:
    body = explain(server, "primer-binding", precision="fp32").json()
    assert body["computed_by"] == {
        "version": 1,
        "precision": "fp32",
        "ism_spearman": None,
        "ism_sequences": None,
    }
    fp32 = ism(Predictor.from_store(zoo.store, "primer-binding@1"), SEQUENCE)
    np.testing.assert_allclose(body["effects"], fp32.effects, atol=1e-6)
    parent = explain(server, "primer-binding", "?version=2", precision="fp32").json()
    assert (parent["version"], parent["computed_by"]["version"]) == (2, 1)
    itself = explain(server, "primer-binding", "?version=2").json()["computed_by"]
    assert (itself["version"], itself["precision"]) == (2, "int8")


def test_a_bad_precision_value_is_refused(zoo: Zoo, server: Running) -> None:
    reply = explain(server, "primer-binding", precision="fp16")
    assert reply.status_code == 400
    assert reply.json()["detail"] == "body.precision: Input should be 'auto', 'fp32' or 'int8'"
    manifest = zoo.store.manifest("primer-binding@1")  # the Python API says the same
    with pytest.raises(PrecisionUnavailable) as caught:
        choose(manifest, [manifest], "fp16")
    assert str(caught.value) == "precision 'fp16' is not one of auto, fp32, int8."


def test_a_poor_int8_sibling_is_never_used(server: Running) -> None:
    auto = explain(server, "gc").json()
    assert auto["computed_by"] == {
        "version": 1,
        "precision": "fp32",
        "ism_spearman": None,
        "ism_sequences": None,
    }
    refused = explain(server, "gc", precision="int8")
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "gc@2 (int8 of gc@1) is not used for explanations: its ISM effects rank like gc@1's at "
        "a Spearman of -1.0000 over 20 sequences, below the bar of 0.99; send precision auto "
        "or fp32."
    )
    assert refused.json()["errors"][0]["field"] == "precision"


def test_int8_without_an_int8_version(server: Running) -> None:
    refused = explain(server, "plain", precision="int8")
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "plain@1 has no int8 version to explain with; make one with `helixserve models quantize "
        "plain@1 --test-file FILE` (it measures how well its ISM effects agree), or send "
        "precision auto or fp32."
    )


def test_the_predict_page_names_the_int8_version(zoo: Zoo, server: Running) -> None:
    token = "precision-form-token-01"
    with httpx.Client(base_url=server.url, cookies={"hs_csrf": token}) as browser:
        page = browser.post(
            "/models/primer-binding/predict", data={"csrf_token": token, "sequence": SEQUENCE}
        )
    figure = zoo.store.manifest("primer-binding@2").metrics[ISM_SPEARMAN]
    assert page.status_code == 200
    assert (
        '<span id="computed-by">Effects computed by primer-binding@2, the int8 version of '
        "primer-binding@1 (it ranks substitutions like the original at a mean Spearman of "
        f"{figure:.4f} over 64 sequences).</span>"
    ) in page.text
