"""Motifs: the frequency matrix on a hand-made case, JASPAR matching, first-layer filters, motif
recovery on the primer model, and the `explain` / `design` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helixserve.explain.motifs import (
    Motif,
    cluster_windows,
    filter_motifs,
    frequencies,
    ism_motifs,
    jaspar_collection,
    jaspar_matches,
)
from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "examples"
MOTIF = "CGACCGAACTCC"


def test_frequencies_of_aligned_windows_by_hand() -> None:
    # three windows: ACG twice, and CGT one to the left (shift -1 puts its C under the seed's C)
    got = frequencies([("ACG", 0), ("ACG", 0), ("CGT", 1)], width=3)
    counts = np.array([[2, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype=float) + 0.1
    assert np.allclose(got, counts / counts.sum(axis=1, keepdims=True))
    motif = Motif("ism", got, 3)
    assert motif.consensus == "ACG"
    assert motif.information == pytest.approx(float((2 + (got * np.log2(got)).sum(axis=1)).sum()))


def test_clusters_group_near_windows_and_align_shifts() -> None:
    groups = cluster_windows(["AACCGGTT", "AACCGGTT", "ACCGGTTA", "TTTTAAAA"], max_mismatches=2)
    assert [(seed, len(members)) for seed, members in groups] == [("AACCGGTT", 3), ("TTTTAAAA", 1)]
    assert ("ACCGGTTA", 1) in groups[0][1]


def test_a_jaspar_matrix_finds_itself_first() -> None:
    matrix_id, name, matrix = jaspar_collection("CORE")[100]
    best = jaspar_matches(matrix, top=3)
    assert (best[0].matrix_id, best[0].name, best[0].strand, best[0].offset) == (
        matrix_id,
        name,
        "+",
        0,
    )
    assert best[0].score == pytest.approx(1.0, abs=1e-4)
    reverse = jaspar_matches(matrix[::-1, ::-1].copy(), top=1)[0]
    assert (reverse.matrix_id, reverse.strand) == (matrix_id, "-")


def test_first_layer_filters_of_the_primer_model_hold_the_motif(tmp_path: Path) -> None:
    predictor = Predictor.from_store(
        ModelStore.open(str(ZOO), cache_dir=tmp_path), "primer-binding"
    )
    found = filter_motifs(predictor.bundle_path / "model.onnx", top=5)
    assert len(found) == 5 and all(f.frequencies.shape == (12, 4) for f in found)
    assert MOTIF in [f.consensus for f in found]


@pytest.mark.shared_data
def test_ism_motif_extraction_returns_the_implanted_motif(
    shared_data: Path, tmp_path: Path
) -> None:
    from helixserve.inputs.sequence import SequenceSchema
    from helixserve.training.data import load_sequences, split

    folder = shared_data / "zou2019_primer_tf_binding"
    data = load_sequences(
        folder / "sequences.txt", SequenceSchema(length=50), labels_file=folder / "labels.txt"
    )
    test = split(data, task="binary", seed=42, test_fraction=0.25).test
    positives = [str(data.inputs[i]) for i in test.tolist() if data.targets[i] == "1"]
    predictor = Predictor.from_store(
        ModelStore.open(str(ZOO), cache_dir=tmp_path), "primer-binding"
    )
    best = ism_motifs(predictor, positives, width=12, top=2)[0]
    print(f"ISM motif {best.consensus}, support {best.support}/{len(positives)}")
    assert best.consensus == MOTIF
    assert best.support >= 0.95 * len(positives)


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELIXSERVE_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "helixserve", *args, "--store", str(ZOO)]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_design_command_keeps_its_constraints(tmp_path: Path) -> None:
    start = "ATG" + "A" * 20 + "CGACCGAAAAAA" + "T" * 15
    done = cli(
        "design",
        "primer-binding",
        "--start",
        start,
        "--rounds",
        "5",
        "--fixed",
        "1-3",
        "--forbid",
        "ATG",
        "--gc",
        "0:0.6",
        "--json",
        cache=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert steps[0] == {"round": 0, "sequence": start, "score": steps[0]["score"], "change": None}
    assert 1 < len(steps) <= 6
    scores = [s["score"] for s in steps]
    assert scores == sorted(scores) and scores[-1] > scores[0]
    for step in steps[1:]:
        assert step["sequence"][:3] == "ATG" and step["sequence"].count("ATG") == 1
        assert sum(c in "GC" for c in step["sequence"]) <= 0.6 * 50


def test_design_command_errors(tmp_path: Path) -> None:
    bad_goal = cli("design", "primer-binding", "--start", "A" * 50, "--goal", "up", cache=tmp_path)
    assert (bad_goal.returncode, bad_goal.stderr.strip()) == (
        1,
        "Error: goal must be max, min or target=<number>, got 'up'.",
    )
    bad_fixed = cli(
        "design", "primer-binding", "--start", "A" * 50, "--fixed", "1-x", cache=tmp_path
    )
    assert bad_fixed.stderr.strip() == (
        "Error: --fixed takes 1-based positions and ranges such as 1,5-8; got '1-x'."
    )


def test_motifs_command(tmp_path: Path) -> None:
    done = cli(
        "explain",
        "motifs",
        "primer-binding",
        str(EXAMPLES / "primers.fasta"),
        "--no-jaspar",
        "--filters",
        "1",
        "--json",
        cache=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["sequences"], body["refused"]) == (6, 4)
    assert [m["source"] for m in body["motifs"]][-1].startswith("filter ")
    assert body["motifs"][0]["consensus"] == MOTIF
    assert len(body["motifs"][0]["frequencies"]) == 12
