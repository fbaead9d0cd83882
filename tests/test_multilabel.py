"""Multi-label models (task ``multilabel``): the manifest contract, the runtime's decoding, the
micro-batcher, self-tests, int8 quantisation, ISM and block checks, on a real ONNX model made
without torch (:mod:`tests.support.multilabel`). The edges are in test_multilabel_serving.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from helixserve.errors import InputError, InvalidBlocks, ManifestError, ModelLoadError
from helixserve.explain.ism import Variant, ism, variant_effects
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.runtime.batcher import MicroBatcher
from helixserve.runtime.importer import import_onnx
from helixserve.runtime.predictor import BatchPrediction
from helixserve.runtime.quantize import TestSet as LabelledSet
from helixserve.runtime.quantize import int8_version
from helixserve.runtime.selftest import make_examples, run_selftest
from helixserve.store import (
    LABEL_SEPARATOR,
    LocalBundle,
    ModelStore,
    OutputSchema,
    headline_of,
    label_problem,
    make_manifest,
    parse_manifest,
)
from helixserve.workspace.blocks import check_output
from tests.support.multilabel import (
    LABEL_SETS,
    LABELS,
    LENGTH,
    SEQUENCES,
    expected,
    model_bytes,
    publish_multilabel,
)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")


@pytest.fixture
def predictor(store: ModelStore) -> Predictor:
    publish_multilabel(store)
    return Predictor.from_store(store, "dnafam")


def manifest_json(**output: object) -> bytes:
    files = {"model.onnx": b"x", "card.md": b"# c\n"}
    manifest = make_manifest(
        files,
        name="m",
        task="multiclass",
        input=SequenceSchema(length=LENGTH),
        output=OutputSchema(labels=["a", "b"]),
    )
    data = json.loads(manifest.to_json())
    data["task"] = "multilabel"
    data["output"] = output
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (
            ["enhancer"],
            "a multilabel model needs 2 or more output labels (one per label column), got 1; "
            "a single yes/no label is a binary model",
        ),
        (
            None,
            "a multilabel model needs 2 or more output labels (one per label column), got 0; "
            "a single yes/no label is a binary model",
        ),
        (
            ["enhancer", "promoter", "enhancer"],
            "the output labels of a multilabel model must differ; 'enhancer' is repeated",
        ),
        (
            ["enhancer", "pro;moter"],
            "output label 'pro;moter' of a multilabel model is empty or holds ';', which joins "
            "a prediction's labels in CSV cells; rename it",
        ),
        (
            ["enhancer", " "],
            "output label ' ' of a multilabel model is empty or holds ';', which joins a "
            "prediction's labels in CSV cells; rename it",
        ),
    ],
)
def test_manifest_refuses_bad_multilabel_labels(labels: list[str] | None, problem: str) -> None:
    assert label_problem("multilabel", labels) == problem
    with pytest.raises(ManifestError) as info:
        parse_manifest(manifest_json(labels=labels))
    assert str(info.value) == (
        f"manifest.json is not a valid manifest: (top level): Value error, {problem} "
        "(1 problem in all)."
    )


def test_manifest_takes_multilabel_and_round_trips() -> None:
    manifest = parse_manifest(manifest_json(labels=LABELS, threshold=0.3))
    assert manifest.task == "multilabel"
    assert manifest.output.labels == LABELS and manifest.output.threshold == 0.3
    assert parse_manifest(manifest.to_json()) == manifest
    assert LABEL_SEPARATOR == ";"
    assert label_problem("multilabel", LABELS) is None


def test_default_headline_of_a_multilabel_model_is_macro_auroc() -> None:
    data = json.loads(manifest_json(labels=LABELS))
    data["metrics"] = {"auroc": 0.875, "auroc:enhancer": 0.9, "accuracy": 0.5}
    figure = headline_of(parse_manifest(json.dumps(data).encode()))
    assert (figure.metric, figure.value, figure.text) == ("auroc", 0.875, "auroc 0.875")
    assert figure.meaning == "AUROC on the test set, the mean over the labels"


def bundle(tmp_path: Path, model: bytes) -> LocalBundle:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    files = {"model.onnx": model, "card.md": b"# test\n"}
    manifest = make_manifest(
        files,
        name="m",
        task="multilabel",
        input=SequenceSchema(length=LENGTH),
        output=OutputSchema(labels=LABELS),
    )
    store.publish(manifest, files)
    return store.pull("m")


def test_output_shape_must_have_one_column_per_label(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        Predictor(bundle(tmp_path, model_bytes(labels=2)))
    assert str(info.value) == (
        "model.onnx of m@1 outputs (N, 2) from 'p', but a multilabel model must output (?, 3) "
        "(one probability per label: enhancer, promoter, insulator)."
    )


def test_predictions_are_per_label_probabilities_and_the_labels_at_the_threshold(
    predictor: Predictor,
) -> None:
    results = predictor.predict([*SEQUENCES, "ACGX"])
    want = expected(SEQUENCES)
    assert results[:4] == [
        Prediction(probabilities=dict(zip(LABELS, row, strict=True)), labels=chosen)
        for row, chosen in zip(want.tolist(), LABEL_SETS, strict=True)
    ]
    assert want[1, 0] == want[1, 1] == 0.5  # exactly at the threshold: on
    error = results[4]
    assert isinstance(error, ItemError) and error.index == 4
    batch = predictor.predict_batch(SEQUENCES)
    assert batch.label_sets() == LABEL_SETS
    assert batch.labels() == []  # no single label
    assert batch.decoded.positive is not None
    assert batch.decoded.positive.tolist() == [[lab in s for lab in LABELS] for s in LABEL_SETS]


def test_threshold_applies_to_each_label(store: ModelStore) -> None:
    publish_multilabel(store, "strict", threshold=0.6)
    strict = Predictor.from_store(store, "strict")
    assert strict.predict_batch(SEQUENCES).label_sets() == [["enhancer"], [], ["insulator"], []]


def test_a_batch_with_no_valid_item(predictor: Predictor) -> None:
    batch = predictor.predict_batch(["ACGX"])
    assert batch.label_sets() == [] and batch.results() == [batch.errors[0]]
    assert batch.decoded.probabilities is not None
    assert batch.decoded.probabilities.shape == (0, 3)


def test_micro_batcher_merges_and_splits_label_sets(store: ModelStore) -> None:
    publish_multilabel(store, "variable", variable=True)
    sizes: list[int] = []
    batcher = MicroBatcher(
        Predictor.from_store(store, "variable"), observer=lambda n, q, r: sizes.append(n)
    )
    longer = ["A" * 30 + "C" * 10, "G" * 12, "ACGT" * 10]  # other lengths: bucketed, re-joined
    requests = [SEQUENCES[i:] + longer[:i] + ["ACGX"] for i in range(4)]

    async def submit_all() -> list[BatchPrediction]:
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in requests))
        finally:
            batcher.close()

    results = asyncio.run(submit_all())
    assert sizes == [sum(len(r) for r in requests)]
    for request, result in zip(requests, results, strict=True):
        valid = request[:-1]
        want = expected(valid)
        assert result.label_sets() == [
            [label for label, p in zip(LABELS, row, strict=True) if p >= 0.5]
            for row in want.tolist()
        ]
        assert result.decoded.probabilities is not None
        assert result.decoded.probabilities.tolist() == want.tolist()
        assert [e.index for e in result.errors] == [len(valid)]


def test_self_test_stores_every_label_s_probability(predictor: Predictor) -> None:
    data = json.loads(make_examples(predictor, SEQUENCES))
    assert [e["output"] for e in data["examples"]] == expected(SEQUENCES).tolist()


def test_self_test_of_a_published_multilabel_bundle(store: ModelStore) -> None:
    files = {"model.onnx": model_bytes(), "card.md": b"# c\n"}
    fields = {
        "name": "checked",
        "task": "multilabel",
        "input": SequenceSchema(length=LENGTH),
        "output": OutputSchema(labels=LABELS),
    }
    store.publish(make_manifest(files, **fields), files)
    files["examples.json"] = make_examples(Predictor.from_store(store, "checked"), SEQUENCES)
    store.publish(make_manifest(files, **fields), files)
    report = run_selftest(Predictor.from_store(store, "checked@2"))
    assert report.summary() == "checked@2: 4 examples match (tolerance 0.0001)"


def test_int8_version_compares_label_sets(predictor: Predictor) -> None:
    files = {p: (predictor.bundle_path / p).read_bytes() for p in predictor.manifest.files}
    targets = ["enhancer", "promoter ; enhancer", "insulator", ""]
    test = LabelledSet("test.csv", [*SEQUENCES, "ACGX"], [*targets, "enhancer"])
    manifest, _new, check, tested = int8_version(predictor, files, SEQUENCES * 4, test)
    assert check.label_agreement == 1.0 and check.items == 16
    assert tested is not None
    assert (tested.metric, tested.rows, tested.original, tested.int8) == ("exact_match", 4, 1, 1)
    assert manifest.metrics["exact_match"] == 1.0
    assert manifest.task == "multilabel" and manifest.output.labels == LABELS


def test_ism_scores_the_most_probable_label_by_default(predictor: Predictor) -> None:
    sequence = "A" * 12 + "C" * 8
    result = ism(predictor, sequence)
    assert result.target == "enhancer"
    p = expected([sequence])[0, 0]
    assert result.score == p
    # an A replaced by anything loses enhancer one A; every other change moves nothing
    one_less = expected(["C" + "A" * 11 + "C" * 8])[0, 0]
    assert result.effects[0] == pytest.approx([0.0, one_less - p, one_less - p, one_less - p])
    assert result.effects[19][0] == pytest.approx(expected(["A" * 12 + "C" * 7 + "A"])[0, 0] - p)
    assert result.effects[19][1:] == [0.0, 0.0, 0.0]


def test_ism_and_variants_of_a_chosen_label(predictor: Predictor) -> None:
    sequence = "A" * 12 + "C" * 8
    result = ism(predictor, sequence, "promoter")
    assert result.target == "promoter" and result.score == expected([sequence])[0, 1]
    reference, changes = variant_effects(
        predictor, sequence, [Variant(1, "A", "C")], target="promoter"
    )
    gained = expected(["C" + "A" * 11 + "C" * 8])[0, 1]
    assert reference == expected([sequence])[0, 1] and changes == [gained - reference]
    with pytest.raises(InputError) as info:
        ism(predictor, sequence, "silencer")
    assert str(info.value) == (
        "target label 'silencer' is not one of enhancer, promoter, insulator."
    )


def test_blocks_check_one_output_per_label() -> None:
    check_output([(3,)], "multilabel", 3)
    with pytest.raises(InvalidBlocks) as info:
        check_output([(1,)], "multilabel", 3)
    assert str(info.value) == (
        "block 1 (the last) outputs 1 value; a multilabel model needs 3 values per example (one "
        "logit per label; the recipe adds a sigmoid to each); end with a dense block of 3 units."
    )
    with pytest.raises(ValueError, match=r"^a multilabel model needs at least 2 labels, got 1$"):
        check_output([(1,)], "multilabel", 1)


def test_decoded_positive_is_bool(predictor: Predictor) -> None:
    positive = predictor.decode(np.array([[0.5, 0.49]], dtype=np.float32)).positive
    assert positive is not None and positive.dtype == np.bool_
    assert positive.tolist() == [[True, False]]


def test_import_of_a_multilabel_onnx_model(store: ModelStore, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(model_bytes())
    (tmp_path / "small.onnx").write_bytes(model_bytes(labels=2))
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "task: multilabel\ninput: {kind: dna, length: 20}\n"
        "output: {labels: [enhancer, promoter, insulator], threshold: 0.6}\n"
    )
    manifest = import_onnx(store, tmp_path / "model.onnx", schema, "imported")
    assert (manifest.task, manifest.output.labels) == ("multilabel", LABELS)
    imported = Predictor.from_store(store, "imported")
    assert run_selftest(imported).passed and run_selftest(imported).checked == 8
    assert imported.predict_batch(SEQUENCES).label_sets() == [["enhancer"], [], ["insulator"], []]
    with pytest.raises(ModelLoadError) as info:
        import_onnx(store, tmp_path / "small.onnx", schema, "small")
    assert str(info.value).endswith(
        "but a multilabel model must output (?, 3) (one probability per label: enhancer, "
        "promoter, insulator)."
    )
    assert store.list_models() == ["imported"]  # the refused one was never published
