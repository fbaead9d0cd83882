"""The DNA classification family with its defaults: every simulated task kind (binary and
multi-class with position-dependent motifs, multi-label, variable length, N and IUPAC codes)
trained through ``helixserve train``'s path with no length flag and only ``epochs`` set (tiny
data, so it is fast; the defaults' quality is ``make bench-science``'s), published to a local
store and served: by the runtime Predictor, and over the real server for the multi-label one.
Also: what the data decide is said (notes), caps warn, refusals name the recipe to use."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helixserve.errors import HelixError
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.store import ModelStore
from helixserve.training.cli_support import TrainOptions, run
from helixserve.training.data import Dataset, split
from helixserve.training.publish import Outcome, train_and_publish
from helixserve.training.recipes import DnaBinary, DnaClassify, DnaVariable
from helixserve.training.simulate import TASKS, SimulatedTask
from tests.support.server import running

# small sizes of every simulated task (the registry's defaults are the benchmark's)
SMALL: dict[str, dict[str, Any]] = {
    "positional-binary": {"length": 40, "window": (4, 10)},
    "positional-multiclass": {"length": 48},
    "multilabel": {"length": 64, "window": 30},
    "variable-length": {"short": 30, "long": 90},
    "ambiguity-codes": {"length": 40},
}
ROWS = 150
BAD_LETTER = (
    "DNA sequence is not valid DNA: position 5 is 'X'. Only the letters A, C, G, T, N, R, Y, S, "
    "W, K, M, B, D, H, V are allowed; remove it or correct the typo."
)


def simulated(name: str) -> SimulatedTask:
    if name not in SMALL:
        pytest.fail(f"the simulated task {name} has no small size in SMALL; add one.")
    return TASKS[name](ROWS, 0, **SMALL[name])


def write_csv(path: Path, task: SimulatedTask) -> str:
    """The task as a CSV (sequence + one target column, or one column per label); returns
    what ``--target`` names."""
    columns = list(task.label_columns) or ["label"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sequence", *columns])
        for i, (sequence, target) in enumerate(zip(task.sequences, task.targets, strict=True)):
            values = list(target) if isinstance(target, tuple) else [target]
            writer.writerow([f"r{i}", sequence, *values])
    return ",".join(columns)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every task kind trained once with dna-classify's defaults (epochs: 2) into one store."""
    tmp = tmp_path_factory.mktemp("family")
    store = ModelStore.open(str(tmp / "store"), cache_dir=tmp / "cache")
    outcomes: dict[str, Outcome] = {}
    for name in TASKS:
        path = tmp / f"{name}.csv"
        options = TrainOptions(
            recipe="dna-classify",
            data=path,
            name=name,
            target=write_csv(path, simulated(name)),
            id_col="id",
            params={"epochs": 2},
            work_dir=tmp / "runs" / name,
        )
        outcomes[name] = run(options, store)
    yield {"store": store, "outcomes": outcomes, "tmp": tmp}


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_kind_trains_publishes_and_serves(trained: dict[str, Any], name: str) -> None:
    task, outcome = simulated(name), trained["outcomes"][name]
    manifest = outcome.manifest
    classes = sorted({str(t) for t in task.targets})
    expected = (
        "multilabel" if task.label_columns else "binary" if len(classes) == 2 else "multiclass"
    )
    assert manifest.task == expected
    assert manifest.output.labels == (list(task.label_columns) or classes)
    lengths = {len(s) for s in task.sequences}
    schema = manifest.input
    assert isinstance(schema, SequenceSchema)
    assert (schema.kind, schema.alphabet, schema.ambiguity) == ("dna", "IUPAC", "frequencies")
    if len(lengths) == 1:  # one length: exactly that
        assert (schema.length, schema.pad_to) == (lengths.pop(), None)
        assert outcome.notes[0] == (
            f"input rule from the data: every sequence is {schema.length} nt, exactly"
        )
    else:  # several: up to the longest, padded
        assert (schema.length, schema.max_length, schema.pad_to) == (
            None,
            max(lengths),
            max(lengths),
        )
        assert outcome.notes[0] == (
            f"input rule from the data: sequences of {min(lengths)} to {max(lengths)} nt, padded "
            f"on the 3' side to {max(lengths)} nt; longer ones are refused when served"
        )
    assert outcome.notes[1].startswith("arch auto: ")
    predictor = Predictor.from_store(trained["store"], name)
    results = predictor.predict([*task.sequences, task.sequences[0][:4] + "X"])
    answers, refused = results[:-1], results[-1]
    assert all(isinstance(r, Prediction) for r in answers)  # every row answered, N rows too
    assert isinstance(refused, ItemError) and str(refused.error) == BAD_LETTER
    first = answers[0]
    assert isinstance(first, Prediction) and first.probabilities is not None
    assert list(first.probabilities) == manifest.output.labels
    if expected == "multilabel":
        assert first.labels == [k for k, p in first.probabilities.items() if p >= 0.5]
    else:
        assert first.label in classes


def test_rows_with_ambiguity_codes_are_answered_as_base_probabilities(
    trained: dict[str, Any],
) -> None:
    """An N is the mean of the four bases' one-hot, so in the model's first (linear) layer an
    N is scored as the average of A, C, G and T there."""
    task = simulated("ambiguity-codes")
    with_codes = [s for s in task.sequences if set(s) - set("ACGT")]
    assert with_codes  # the kind holds them, and each is answered
    predictor = Predictor.from_store(trained["store"], "ambiguity-codes")
    batch = predictor.predict_batch(with_codes)
    assert not batch.errors and len(batch.positions) == len(with_codes)
    tensor = predictor.prepare(["NRACGTACGT" * 4]).tensor
    assert tensor is not None and tensor[0, :, 0].tolist() == [0.25] * 4
    assert tensor[0, :, 1].tolist() == [0.5, 0.0, 0.5, 0.0]


def test_a_variable_length_model_refuses_longer_sequences_by_name(
    trained: dict[str, Any],
) -> None:
    longest = max(len(s) for s in simulated("variable-length").sequences)
    result = Predictor.from_store(trained["store"], "variable-length").predict(["A" * 200])[0]
    assert isinstance(result, ItemError)
    assert str(result.error) == (
        f"DNA sequence length is 200 nt, but this model needs between 1 and {longest} nt; trim it."
    )


def test_the_multilabel_model_over_the_real_server(trained: dict[str, Any]) -> None:
    task, store = simulated("multilabel"), trained["store"]
    sequences = task.sequences[:3]
    served = Predictor.from_store(store, "multilabel").predict(sequences)
    with running(store.uri, trained["tmp"] / "server", access_log=False) as server:
        reply = httpx.post(
            f"{server.url}/api/v1/models/multilabel/predict",
            json={"inputs": [*sequences, "ACGTX"]},
        )
    assert reply.status_code == 200
    body = reply.json()
    for answer, local in zip(body["predictions"], served, strict=False):
        assert isinstance(local, Prediction) and local.probabilities is not None
        assert answer["labels"] == local.labels
        assert answer["probabilities"] == pytest.approx(local.probabilities, abs=1e-6)
    assert body["predictions"][3] is None
    assert body["errors"][0]["index"] == 3 and body["errors"][0]["message"] == BAD_LETTER


def test_a_label_column_with_another_value_refuses_that_row(tmp_path: Path) -> None:
    task = simulated("multilabel")
    path = tmp_path / "labels.csv"
    target = write_csv(path, task)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",maybe"
    path.write_text("\n".join(lines) + "\n")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    options = TrainOptions(
        recipe="dna-classify", data=path, name="m", target=target, params={"epochs": 1}
    )
    outcome = run(options, store)
    assert outcome.refused == 1
    assert str(outcome.refused_examples[0].error) == (
        "record 2 (id r1), line 3: label column 'm4' holds 'maybe'; a label column holds 0 or 1 "
        "(or true/false, yes/no)."
    )
    assert outcome.manifest.output.labels == ["m1", "m2", "m3", "m4"]


def dataset(sequences: list[str], targets: list[str]) -> Dataset:
    return Dataset(
        list[object](sequences), targets, [str(i) for i in range(len(targets))], sha256="0" * 64
    )


def test_a_cap_cuts_with_a_warning_and_the_refit_is_labelled(tmp_path: Path) -> None:
    task = TASKS["variable-length"](80, 1, short=30, long=90)
    data = dataset(task.sequences, [str(t) for t in task.targets])
    cut = sum(len(s) > 60 for s in task.sequences)
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    recipe = DnaClassify(max_length=60, epochs=2, arch="global", refit=True)
    outcome = train_and_publish(
        recipe, data, split(data, task="binary", seed=0), store, name="m", description="d"
    )
    assert outcome.notes[1] == (
        f"warning: {cut} of 80 sequences are longer than max_length 60 nt and were cut to their "
        "first 60 nt for training; served, longer sequences are refused (leave max_length at 0 "
        "to keep the whole sequences)"
    )
    best = outcome.history.best_epoch if outcome.history else 0
    assert outcome.notes[2] == (
        f"refit: the published model was trained afresh on the 64 training and validation rows "
        f"for {best} epochs (the best epoch count of early stopping); its metrics are on the "
        "test rows, which it never saw; the loss curves are the first fit's"
    )
    card = (store.pull("m").path / "card.md").read_text()
    assert f"- {outcome.notes[1]}\n" in card and "On the 16 held-out test rows" in card
    assert isinstance(outcome.manifest.input, SequenceSchema)
    assert outcome.manifest.input.max_length == 60


def test_dna_binary_takes_its_length_from_the_data_and_sends_classes_to_dna_classify(
    tmp_path: Path,
) -> None:
    task = TASKS["positional-multiclass"](60, 0, length=30)
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    binary = [i for i, t in enumerate(task.targets) if t != "other"]
    data = dataset([task.sequences[i] for i in binary], [str(task.targets[i]) for i in binary])
    data.positive = "up"  # neither 'up' nor 'down' is positive by convention
    outcome = train_and_publish(
        DnaBinary(epochs=1),
        data,
        split(data, task="binary", seed=0),
        store,
        name="b",
        description="d",
    )
    schema = outcome.manifest.input
    assert isinstance(schema, SequenceSchema)
    assert (schema.length, schema.alphabet) == (30, "ACGT")
    path = tmp_path / "three.csv"
    write_csv(path, task)
    options = TrainOptions(recipe="dna-binary", data=path, name="m", target="label")
    with pytest.raises(HelixError) as info:
        run(options, store)
    assert str(info.value) == (
        "dna-binary is a binary recipe, but the targets hold 3 classes (down, other, up); use a "
        "two-class target, or dna-classify for three or more classes."
    )


def test_dna_variable_pads_to_the_longest_or_warns_how_many_a_cap_cuts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGTN"), int(n))) for n in rng.integers(20, 70, 40)]
    data = dataset(sequences, [str(i % 2) for i in range(40)])
    decided = DnaVariable(arch="cnn", stride=4)
    decided.adapt(data)
    longest = max(map(len, sequences))
    assert decided.input_schema().pad_to == -(-longest // 4) * 4
    assert decided.input_schema().max_length == longest
    capped = DnaVariable(pad_to=32)
    capped.adapt(data)
    assert capped.notes[1] == (
        f"warning: {sum(len(s) > 32 for s in sequences)} of 40 sequences are longer than pad_to "
        f"32 nt; the model reads their first 32 nt (served too); the longest is {longest} nt "
        "(leave pad_to at 0 to read all of it)"
    )
