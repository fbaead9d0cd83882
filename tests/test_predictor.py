"""Predictor round trips on tiny ONNX models built here, for every input kind and task."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helixserve.errors import (
    IntegrityError,
    InvalidImage,
    InvalidRow,
    InvalidSequence,
    ModelLoadError,
)
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import Feature, TabularSchema
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.store import LocalBundle, ModelStore, OutputSchema, make_manifest
from tests.support.onnx_models import (
    gc_binary_model,
    image_multiclass_model,
    tabular_softmax_model,
    token_regression_model,
)

GC_50 = "GC" * 25
AT_50 = "AT" * 25


def local_bundle(tmp_path: Path, model: bytes, **fields: object) -> LocalBundle:
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    files = {"model.onnx": model, "card.md": b"# test\n"}
    manifest = make_manifest(files, **{"name": "m", **fields})
    store.publish(manifest, files)
    return store.pull("m")


def dna_predictor(tmp_path: Path, **model_options: object) -> Predictor:
    bundle = local_bundle(
        tmp_path,
        gc_binary_model(50, **model_options),  # type: ignore[arg-type]
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["no-bind", "bind"]),
    )
    return Predictor(bundle)


def expected_p(sequence: str) -> float:
    gc = sum(c in "GC" for c in sequence.upper().replace("U", "T"))
    return 1 / (1 + math.exp(-(0.5 * gc - 12.5)))


def test_dna_binary_round_trip(tmp_path: Path) -> None:
    predictor = dna_predictor(tmp_path)
    results = predictor.predict([GC_50, AT_50])
    assert all(isinstance(r, Prediction) for r in results)
    bind, no_bind = results
    assert isinstance(bind, Prediction) and isinstance(no_bind, Prediction)
    assert bind.label == "bind"
    assert bind.probability == pytest.approx(expected_p(GC_50), rel=1e-5, abs=1e-8)
    assert no_bind.label == "no-bind"
    assert no_bind.probabilities == pytest.approx(
        {"no-bind": 1 - expected_p(AT_50), "bind": expected_p(AT_50)}, rel=1e-5, abs=1e-8
    )


def test_bad_items_get_their_own_errors_and_good_ones_are_predicted(tmp_path: Path) -> None:
    predictor = dna_predictor(tmp_path)
    batch: list[object] = [GC_50, "", GC_50[:49] + "F", AT_50.lower(), 42, GC_50 + "A"]
    results = predictor.predict(batch)
    assert len(results) == 6
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Prediction", "ItemError", "ItemError", "Prediction", "ItemError", "ItemError"]
    errors = [r for r in results if isinstance(r, ItemError)]
    assert [e.index for e in errors] == [1, 2, 4, 5]
    assert all(isinstance(e.error, InvalidSequence) for e in errors)
    assert str(errors[1].error) == (
        "DNA sequence is not valid DNA: position 50 is 'F'. Only the letters A, C, G, T are "
        "allowed; remove it or correct the typo."
    )
    fourth = results[3]
    assert isinstance(fourth, Prediction)
    assert fourth.probability == pytest.approx(1 - expected_p(AT_50), rel=1e-5, abs=1e-8)


def test_fast_path_equals_item_by_item_path(tmp_path: Path) -> None:
    predictor = dna_predictor(tmp_path)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGTacgtU"), 50)) for _ in range(300)]
    fast = predictor.predict(seqs)  # every item clean: one vectorised pass
    slow = predictor.predict([*seqs, ""])[:-1]  # one bad item: validated one by one
    assert fast == slow


def test_two_column_binary_output(tmp_path: Path) -> None:
    predictor = dna_predictor(tmp_path, two_columns=True)
    result = predictor.predict([GC_50])[0]
    assert isinstance(result, Prediction)
    assert result.label == "bind"
    assert result.probability == pytest.approx(expected_p(GC_50), rel=1e-5, abs=1e-8)


def test_tabular_rows(tmp_path: Path) -> None:
    names = [f"f{i}" for i in range(3)]
    weights = np.array([[1, -1], [0, 0], [0, 2]], dtype=np.float32)
    schema = TabularSchema(features=[Feature(name=n, type="int", min=1, max=10) for n in names])
    bundle = local_bundle(
        tmp_path,
        tabular_softmax_model(weights),
        task="binary",
        input=schema,
        output=OutputSchema(labels=["benign", "malignant"]),
    )
    predictor = Predictor(bundle)
    results = predictor.predict([{"f0": 1, "f1": 5, "f2": 9}, {"f0": 11, "f1": 1, "f2": 1}, "x"])
    first = results[0]
    assert isinstance(first, Prediction)
    logits = np.array([1.0, -1 + 18.0])
    assert first.probabilities == pytest.approx(
        dict(zip(["benign", "malignant"], np.exp(logits) / np.exp(logits).sum(), strict=True)),
        abs=1e-7,
    )
    assert first.label == "malignant"
    assert isinstance(results[1], ItemError) and isinstance(results[1].error, InvalidRow)
    assert (
        str(results[1].error) == "f0 is 11, above the maximum 10; use a whole number from 1 to 10."
    )
    assert isinstance(results[2], ItemError)
    assert str(results[2].error) == "a row must be an object of named fields (f0, f1, f2), got str."


def png(value: int, size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def test_image_multiclass(tmp_path: Path) -> None:
    labels = ["HEPG2", "HUVEC", "RPE", "U2OS"]
    bundle = local_bundle(
        tmp_path,
        image_multiclass_model(1, 8, 8, 4),
        task="multiclass",
        input=ImageSchema(width=8, height=8, channels=1),
        output=OutputSchema(labels=labels),
    )
    predictor = Predictor(bundle)
    bright, dark, broken, text = predictor.predict([png(255), png(0), b"not an image", "abc"])
    assert isinstance(bright, Prediction) and isinstance(dark, Prediction)
    assert bright.label == "U2OS"  # mean 1.0 -> logits 0, 4, 8, 12
    assert dark.probabilities == pytest.approx(dict.fromkeys(labels, 0.25))
    assert isinstance(broken, ItemError) and isinstance(broken.error, InvalidImage)
    assert isinstance(text, ItemError)
    assert str(text.error) == "an image must be file bytes, got str."


def test_token_regression(tmp_path: Path) -> None:
    schema = SequenceSchema(min_length=1, max_length=20, encoding="tokens", pad_to=8)
    bundle = local_bundle(
        tmp_path,
        token_regression_model(8),
        task="regression",
        input=schema,
        output=OutputSchema(units="growth rate"),
    )
    results = Predictor(bundle).predict(["ACGT", "TTTTTTTTTTTT", "A" * 21])
    assert results[:2] == [Prediction(value=10.0), Prediction(value=32.0)]  # 1+2+3+4; 8 x T=4
    assert isinstance(results[2], ItemError)


def test_empty_batch(tmp_path: Path) -> None:
    assert dna_predictor(tmp_path).predict([]) == []


def test_signature_mismatch_is_refused_at_load(tmp_path: Path) -> None:
    bundle = local_bundle(
        tmp_path,
        gc_binary_model(40),
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
    )
    with pytest.raises(ModelLoadError) as info:
        Predictor(bundle)
    assert str(info.value) == (
        "model.onnx of m@1 takes tensor(float) (N, 4, 40), but its manifest's dna schema gives "
        "tensor(float) (?, 4, 50); export the model for this schema or fix the schema."
    )


def test_wrong_input_name_and_output_shape(tmp_path: Path) -> None:
    wrong_name = local_bundle(
        tmp_path / "a",
        gc_binary_model(50),
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
        onnx_input="x",
    )
    with pytest.raises(ModelLoadError, match=r"has no input named 'x'; its inputs are input\."):
        Predictor(wrong_name)
    wrong_task = local_bundle(
        tmp_path / "b",
        gc_binary_model(50, two_columns=True),
        task="multiclass",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["a", "b", "c"]),
    )
    with pytest.raises(ModelLoadError) as info:
        Predictor(wrong_task)
    assert str(info.value) == (
        "model.onnx of m@1 outputs (N, 2) from 'probabilities', but a multiclass model must "
        "output (?, 3)."
    )


def test_garbage_model_file(tmp_path: Path) -> None:
    bundle = local_bundle(
        tmp_path,
        b"this is not onnx",
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
    )
    with pytest.raises(
        ModelLoadError, match=r"^model\.onnx of m@1 cannot be loaded by ONNX Runtime"
    ):
        Predictor(bundle)


def test_load_re_verifies_the_cached_files(tmp_path: Path) -> None:
    bundle = local_bundle(
        tmp_path,
        gc_binary_model(50),
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
    )
    data = bytearray((bundle.path / "model.onnx").read_bytes())
    data[-5] ^= 0x01
    (bundle.path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"^model\.onnx of m@1 is corrupted: its sha256 is"):
        Predictor(bundle)


def test_batch_arrays_match_per_item_results(tmp_path: Path) -> None:
    predictor = dna_predictor(tmp_path)
    batch: list[object] = [GC_50, "oops", AT_50, GC_50[:25] + AT_50[:25]]
    columnar = predictor.predict_batch(batch)
    assert columnar.positions.tolist() == [0, 2, 3]
    assert [e.index for e in columnar.errors] == [1]
    assert columnar.labels() == ["bind", "no-bind", "bind"]  # 25 G+C: P = 0.5, the threshold
    per_item = [r for r in predictor.predict(batch) if isinstance(r, Prediction)]
    probabilities = columnar.decoded.probabilities
    assert probabilities is not None
    assert [p.probabilities for p in per_item] == [
        dict(zip(["no-bind", "bind"], row, strict=True)) for row in probabilities.tolist()
    ]


def test_batch_with_only_bad_items(tmp_path: Path) -> None:
    columnar = dna_predictor(tmp_path).predict_batch(["", "x"])
    assert columnar.positions.tolist() == []
    assert columnar.labels() == []
    assert [type(r).__name__ for r in columnar.results()] == ["ItemError", "ItemError"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"batch": 1},
            "model.onnx of m@1 has a fixed batch size of 1; export it with a dynamic "
            "batch axis (e.g. dynamic_shapes={'x': {0: Dim('batch')}} in torch.onnx).",
        ),
        (
            {"extra_input": True},
            "model.onnx of m@1 needs more inputs than 'input': mask; "
            "helixserve feeds exactly one input tensor. Export the model with "
            "a single input.",
        ),
    ],
)
def test_models_helixserve_cannot_feed_are_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    bundle = local_bundle(
        tmp_path,
        gc_binary_model(50, **options),  # type: ignore[arg-type]
        task="binary",
        input=SequenceSchema(length=50),
        output=OutputSchema(labels=["0", "1"]),
    )
    with pytest.raises(ModelLoadError) as info:
        Predictor(bundle)
    assert str(info.value) == message
