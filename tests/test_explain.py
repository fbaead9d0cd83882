"""Explanations on the ONNX Predictor: ISM against a hand computation, variants, design
constraints, motif recovery on the primer model, and the API routes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from helixserve.errors import InputError
from helixserve.explain.design import design
from helixserve.explain.ism import InvalidVariant, Variant, ism, variant_effects
from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore
from tests.support.server import Running, publish_gc, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
MOTIF = "CGACCGAACTCC"


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def gc(tmp_path: Path) -> Predictor:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    publish_gc(store)
    return Predictor.from_store(store, "gc")


def test_ism_matches_a_hand_computation(gc: Predictor) -> None:
    """The test model scores sigmoid(0.5 * GC count - 12.5): a C or G adds 0.5 to the logit."""
    sequence = "A" * 20 + "G" * 5 + "T" * 25
    result = ism(gc, sequence)
    base = sigmoid(0.5 * 5 - 12.5)
    assert result.score == pytest.approx(base, abs=1e-6)
    effects = np.array(result.effects)
    assert effects.shape == (50, 4)
    gain, loss = sigmoid(0.5 * 6 - 12.5) - base, sigmoid(0.5 * 4 - 12.5) - base
    np.testing.assert_allclose(effects[0], [0, gain, gain, 0], atol=1e-6)  # A -> C, G gain
    np.testing.assert_allclose(effects[22], [loss, 0, 0, loss], atol=1e-6)  # G -> A, T lose
    assert result.importance[0] == pytest.approx(2 * gain / 3, abs=1e-6)
    assert result.target == "1"


def test_variants_check_the_reference(gc: Predictor) -> None:
    sequence = "A" * 48 + "GC"
    score, effects = variant_effects(
        gc, sequence, [Variant(49, "G", "C"), Variant(1, "A", "G"), Variant(49, "GC", "AA")]
    )
    assert effects[0] == pytest.approx(0, abs=1e-7)
    assert effects[1] == pytest.approx(sigmoid(0.5 * 3 - 12.5) - score, abs=1e-6)
    assert effects[2] == pytest.approx(sigmoid(-12.5) - score, abs=1e-6)
    with pytest.raises(InvalidVariant) as caught:
        variant_effects(gc, sequence, [Variant(1, "A", "G"), Variant(50, "G", "A")])
    assert str(caught.value) == (
        "variant 2: the sequence has 'C' at position 50, not 'G' as the variant says; check the "
        "position (1-based) and the reference base."
    )
    with pytest.raises(InvalidVariant) as caught:
        variant_effects(gc, sequence, [Variant(51, "A", "G")])
    assert str(caught.value) == (
        "variant 1: position 51 is outside the sequence (1 to 50); positions are 1-based."
    )


def test_design_respects_its_constraints(gc: Predictor) -> None:
    start = "AT" * 25
    steps = design(gc, start, goal="max", rounds=8, fixed=[1, 3], forbid=["GGG"], gc=(0, 0.1))
    assert steps[0].sequence == start and steps[0].change is None
    assert all(b.score > a.score for a, b in itertools.pairwise(steps))
    final = steps[-1].sequence
    assert final[0] == "A" and final[2] == "A"
    assert "GGG" not in final
    assert sum(c in "GC" for c in final) / 50 <= 0.1
    assert len(steps) == 6  # 5 G/C allowed by the GC range, then no allowed change improves
    down = design(gc, "GC" * 25, goal="target=0.5", rounds=40)
    assert abs(down[-1].score - 0.5) < abs(down[0].score - 0.5)


def test_design_adds_no_occurrence_of_a_forbidden_motif_already_in_the_start(
    gc: Predictor,
) -> None:
    """A UTR that holds one ATG may keep it, but no design step may add a second one (here: with
    C forbidden, the model's best change is a G, and the first G next to the GGG is refused)."""
    start = "GGG" + "AT" * 23 + "A"
    steps = design(gc, start, goal="max", rounds=10, forbid=["C", "GGG"])
    assert len(steps) == 11  # every round still finds a G to add
    for step in steps:
        assert "C" not in step.sequence
        found = [i for i in range(48) if step.sequence.startswith("GGG", i)]
        assert found == [0], step.sequence


def test_design_refuses_bad_constraints(gc: Predictor) -> None:
    with pytest.raises(InputError) as caught:
        design(gc, "AT" * 25, fixed=[51])
    assert str(caught.value) == "fixed position 51 is outside the sequence (1 to 50)."
    with pytest.raises(InputError) as caught:
        design(gc, "AT" * 25, goal="bigger")
    assert str(caught.value) == "goal must be max, min or target=<number>, got 'bigger'."


@pytest.mark.shared_data
def test_ism_finds_the_implanted_motif(shared_data: Path, tmp_path: Path) -> None:
    """U1: the most important 12-nt window overlaps the motif in >= 95% of positive test
    sequences (the zoo's split: 75/25, seed 42)."""
    from helixserve.inputs.sequence import SequenceSchema
    from helixserve.training.data import load_sequences, split

    folder = shared_data / "zou2019_primer_tf_binding"
    data = load_sequences(
        folder / "sequences.txt", SequenceSchema(length=50), labels_file=folder / "labels.txt"
    )
    test = split(data, task="binary", seed=42, test_fraction=0.25).test
    positives = [data.inputs[i] for i in test.tolist() if data.targets[i] == "1"]
    predictor = Predictor.from_store(
        ModelStore.open(str(ZOO), cache_dir=tmp_path), "primer-binding"
    )
    hits = 0
    for sequence in positives:
        importance = ism(predictor, str(sequence)).importance
        best = max(range(39), key=lambda s: sum(importance[s : s + 12]))
        where = str(sequence).find(MOTIF)
        hits += where >= 0 and abs(best - where) < 12
    rate = hits / len(positives)
    print(f"motif recovery: {hits}/{len(positives)} = {rate:.4f}")
    assert len(positives) > 200 and rate >= 0.95


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("explain"), access_log=False) as s:
        yield s


def test_explain_routes(server: Running) -> None:
    sequence = "ACGTAC" + MOTIF + "ACGT" * 8
    url = server.url + "/api/v1/models/primer-binding"
    body = httpx.post(url + "/explain", json={"sequence": sequence}).json()
    assert (body["alphabet"], body["target"], len(body["effects"])) == ("ACGT", "1", 50)
    top = max(range(39), key=lambda s: sum(body["importance"][s : s + 12]))
    assert abs(top - 6) < 12
    bad = httpx.post(
        url + "/variants",
        json={"sequence": sequence, "variants": [{"position": 7, "ref": "G", "alt": "T"}]},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "variants[0]"
    steps = httpx.post(url + "/design", json={"start": "ACGT" * 12 + "AC", "rounds": 3}).json()
    assert [s["round"] for s in steps["steps"]] == [0, 1, 2, 3]
    wrong = httpx.post(
        server.url + "/api/v1/models/tumor-wisconsin/explain", json={"sequence": sequence}
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == (
        "tumor-wisconsin@1 takes tabular inputs; explanations are for DNA models."
    )
