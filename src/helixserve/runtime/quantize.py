"""int8 quantisation of a bundle's ONNX model (``helixserve models quantize``).

Contract:
- :func:`quantize_bundle` reads a bundle, runs ONNX Runtime's pre-processing (shape inference,
  optimisation) and static QDQ quantisation (uint8 activations, int8 per-channel weights, the
  format CPUs with VNNI run fastest), calibrated on ``calibration`` inputs (raw inputs as the
  Predictor takes them: sequences, rows or image bytes; invalid ones are skipped). Only
  convolutions with learned weights are quantised: a Conv whose weights are all whole numbers
  computes an exact index or count (e.g. the k-mer index of the yeast-utr model, weights
  4^j x base code up to 4,095) that 8 bits would wreck, and dense layers stay float (they cost
  little and quantising the yeast-utr ridge moved single predictions by 0.26). It returns the
  quantised model and a :class:`Check` comparing the int8 model with the original on those
  inputs (largest absolute difference of the output, and for classifiers the share of inputs
  whose label is unchanged; multilabel: whose whole set of labels is unchanged). Nothing is
  published here: the CLI does that, as a new version.
- :func:`int8_version` makes the whole new bundle from it: the int8 ``model.onnx``, the card
  with a section on the quantisation, self-test examples from the int8 model (the original's
  example inputs when it has them), lineage ``quantize`` of the original ``name@version``, and,
  given a labelled test set (:class:`TestSet`), both models' test metric on it (R² for
  regression, accuracy for classifiers, ``exact_match`` for multilabel: the share of rows whose
  set of labels is exactly the target's, a target cell holding the labels joined by ``;`` as
  batch output writes them) as the int8 version's headline, in its metrics and card.
  Without a test set the int8 version carries no test figure (the original's are not copied).
- It needs the ``onnx`` package (the ``train`` extra); without it
  :class:`~helixserve.errors.ModelLoadError` says what to install. Quantisation failures raise
  :class:`~helixserve.errors.ModelLoadError` with ONNX Runtime's reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from helixserve.errors import ModelLoadError
from helixserve.runtime.predictor import Decoded, Predictor
from helixserve.runtime.samples import sample_inputs
from helixserve.runtime.selftest import EXAMPLES_FILE, make_examples, stored_inputs
from helixserve.store.bundle import make_manifest
from helixserve.store.manifest import LABEL_SEPARATOR, Headline, Lineage, Manifest
from helixserve.store.store import LocalBundle


@dataclass(frozen=True)
class Check:
    items: int
    max_abs_diff: float
    label_agreement: float | None


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over encoded batches."""

    def __init__(self, name: str, batches: list[npt.NDArray[Any]]) -> None:
        self._batches: Iterator[npt.NDArray[Any]] = iter(batches)
        self.name = name

    def get_next(self) -> dict[str, npt.NDArray[Any]] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.name: batch}


def _encoded(predictor: Predictor, inputs: Sequence[object], batch: int) -> list[npt.NDArray[Any]]:
    tensors = []
    for start in range(0, len(inputs), batch):
        prepared = predictor.prepare(inputs[start : start + batch])
        if prepared.tensor is not None and len(prepared.tensor):
            tensors.append(prepared.tensor)
    if not tensors:
        raise ModelLoadError(
            "none of the calibration inputs is valid for this model; give inputs the model accepts."
        )
    return tensors


def quantize_bundle(
    predictor: Predictor, calibration: Sequence[object], batch: int = 64
) -> tuple[bytes, Check]:
    """The int8 model and how far it is from the original; see the module contract."""
    try:
        from onnxruntime.quantization import (  # noqa: PLC0415 - needs onnx (train extra)
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )
    except ImportError:
        raise ModelLoadError(
            "quantisation needs the onnx package: pip install 'helixserve[train]'."
        ) from None
    tensors = _encoded(predictor, calibration, batch)
    source = predictor.bundle_path / "model.onnx"
    with tempfile.TemporaryDirectory(prefix="helixserve-quant-") as tmp:
        prepared, output = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            # ONNX Runtime's symbolic shape inference trips over some exported graphs (Squeeze
            # with dynamic axes); the plain ONNX shape inference and optimisation suffice.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(output),
                _Calibration(predictor.manifest.onnx_input, tensors),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["Conv"],
                nodes_to_exclude=exact_nodes(prepared),
            )
        except Exception as err:  # ONNX Runtime's quantiser raises assorted exception types
            raise ModelLoadError(
                f"{predictor.label} cannot be quantised: {str(err)[:300]}"
            ) from None
        data = output.read_bytes()
    return data, _compare(predictor, data, tensors)


def exact_nodes(path: Path) -> list[str]:
    """Names of the Conv / MatMul / Gemm nodes whose weights are all whole numbers."""
    import onnx  # noqa: PLC0415 - the train extra, checked by the caller
    from onnx import numpy_helper  # noqa: PLC0415

    graph = onnx.load(str(path)).graph
    weights = {i.name: i for i in graph.initializer}
    exact = []
    for node in graph.node:
        if node.op_type in ("Conv", "MatMul", "Gemm") and len(node.input) > 1:
            init = weights.get(node.input[1])
            if init is not None:
                values = numpy_helper.to_array(init)
                if np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values)):
                    exact.append(node.name)
    return exact


def _compare(predictor: Predictor, data: bytes, tensors: list[npt.NDArray[Any]]) -> Check:
    import onnxruntime as ort  # noqa: PLC0415 - the runtime layer's own dependency

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_outputs()[0].name
    diffs, same, count = [], 0, 0
    for tensor in tensors:
        original = predictor.run(tensor)
        quantised = np.asarray(session.run([name], {predictor.manifest.onnx_input: tensor})[0])
        diffs.append(float(np.max(np.abs(original.astype(np.float64) - quantised))))
        if predictor.manifest.task != "regression":
            a, b = predictor.decode(original), predictor.decode(quantised.reshape(original.shape))
            same += _same_answers(a, b)
        count += len(tensor)
    agreement = None if predictor.manifest.task == "regression" else same / count
    return Check(count, max(diffs), agreement)


def _same_answers(a: Decoded, b: Decoded) -> int:
    """Items given the same label (multilabel: the same set of labels) by both decodings."""
    if a.positive is not None and b.positive is not None:
        return int((a.positive == b.positive).all(axis=1).sum())
    assert a.label_index is not None and b.label_index is not None
    return int((a.label_index == b.label_index).sum())


@dataclass(frozen=True)
class TestSet:
    """Labelled raw inputs to measure both models on (``targets`` as text, like the file)."""

    source: str
    inputs: list[object]
    targets: list[str]


@dataclass(frozen=True)
class TestScore:
    """One metric of the original and of the int8 model on the same labelled rows."""

    metric: str
    rows: int
    original: float
    int8: float

    @property
    def delta(self) -> float:
        return self.int8 - self.original


def score(predictor: Predictor, test: TestSet) -> tuple[str, float, int]:
    """R² (regression), accuracy (classifiers) or exact match (multilabel) on the rows the model
    accepts, and their count."""
    batch = predictor.predict_batch(test.inputs)
    rows = batch.positions.tolist()
    if not rows:
        raise ModelLoadError(f"{predictor.label} refused every row of {test.source}.")
    if predictor.manifest.task == "regression":
        assert batch.decoded.values is not None
        truth = np.array([_number(test.targets[i], test.source) for i in rows])
        residual = float(np.sum((truth - batch.decoded.values) ** 2))
        total = float(np.sum((truth - truth.mean()) ** 2)) or 1.0
        return "r2", 1.0 - residual / total, len(rows)
    if predictor.manifest.task == "multilabel":
        sets = [set(chosen) for chosen in batch.label_sets()]
        right = sum(sets[k] == _label_set(test.targets[i]) for k, i in enumerate(rows))
        return "exact_match", right / len(rows), len(rows)
    called = batch.labels()
    right = sum(called[k] == test.targets[i].strip() for k, i in enumerate(rows))
    return "accuracy", right / len(rows), len(rows)


def _label_set(text: str) -> set[str]:
    """A multilabel target cell: the labels joined by ``;`` (as batch output writes them)."""
    return {part.strip() for part in text.split(LABEL_SEPARATOR) if part.strip()}


def _number(text: str, source: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ModelLoadError(
            f"the target {text!r} in {source} is not a number; a regression test set needs "
            "numeric targets."
        ) from None


def int8_version(
    predictor: Predictor,
    files: dict[str, bytes],
    calibration: Sequence[object],
    test: TestSet | None = None,
) -> tuple[Manifest, dict[str, bytes], Check, TestScore | None]:
    """The int8 bundle of ``predictor`` (its stored ``files``); see the module contract."""
    data, check = quantize_bundle(predictor, calibration)
    new = {k: v for k, v in files.items() if k not in ("model.onnx", EXAMPLES_FILE)}
    new["model.onnx"] = data
    manifest = predictor.manifest
    fields = manifest.model_dump(exclude={"version", "files", "created", "metrics", "headline"})
    fields["description"] = (manifest.description + " (int8)").strip()
    with tempfile.TemporaryDirectory(prefix="helixserve-int8-") as tmp:
        for relative, content in new.items():
            (Path(tmp) / relative).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / relative).write_bytes(content)
        draft = make_manifest(new, **fields)
        int8 = Predictor(LocalBundle(Path(tmp), draft), verify=False)
        tested = _test_score(predictor, int8, test) if test is not None else None
        new[EXAMPLES_FILE] = make_examples(int8, _example_inputs(predictor))
    metrics, details = _int8_figures(check, tested)
    new["card.md"] = files["card.md"] + _card_note(predictor.label, check, tested, test).encode()
    fields["metrics"] = metrics
    fields["lineage"] = Lineage(how="quantize", parent=predictor.label, details=details)
    if tested is not None and test is not None:
        fields["headline"] = Headline(
            metric=tested.metric,
            meaning=f"{tested.metric} of this int8 model on {test.source} ({tested.rows} rows); "
            f"the original {predictor.label}: {tested.original:.4f}",
        )
    return make_manifest(new, **fields), new, check, tested


def _test_score(original: Predictor, int8: Predictor, test: TestSet) -> TestScore:
    metric, before, rows = score(original, test)
    _, after, _ = score(int8, test)
    return TestScore(metric, rows, before, after)


def _example_inputs(predictor: Predictor) -> list[object]:
    path = predictor.bundle_path / EXAMPLES_FILE
    if EXAMPLES_FILE in predictor.manifest.files and path.is_file():
        return stored_inputs(path.read_bytes(), predictor.label)
    return sample_inputs(predictor, 8)


def _int8_figures(
    check: Check, tested: TestScore | None
) -> tuple[dict[str, float], dict[str, float | str]]:
    metrics = {"int8_max_abs_diff_vs_fp32": check.max_abs_diff}
    if check.label_agreement is not None:
        metrics["int8_label_agreement_vs_fp32"] = check.label_agreement
    details: dict[str, float | str] = {"calibration_inputs": float(check.items)}
    if tested is not None:
        metrics[tested.metric] = tested.int8
        metrics[f"{tested.metric}_fp32"] = tested.original
        metrics[f"{tested.metric}_delta"] = tested.delta
        metrics["test_rows"] = float(tested.rows)
        details |= {f"{tested.metric}_delta": tested.delta}
    return metrics, details


def _card_note(label: str, check: Check, tested: TestScore | None, test: TestSet | None) -> str:
    agreement = (
        ""
        if check.label_agreement is None
        else (f"; the label is unchanged for {check.label_agreement:.2%} of them")
    )
    note = (
        f"\n\n## int8 quantisation\n\nStatic QDQ int8 version of {label} (ONNX "
        f"Runtime; uint8 activations, int8 per-channel weights), calibrated on "
        f"{check.items} inputs. On those inputs the largest absolute difference from the "
        f"original's output is {check.max_abs_diff:.4g}{agreement}. "
    )
    if tested is None or test is None:
        return note + (
            "No labelled test set was given: the metrics above are the original's; "
            "measure this version before promoting it.\n"
        )
    return note + (
        f"On {test.source} ({tested.rows} rows) its {tested.metric} is "
        f"{tested.int8:.4f}, the original's {tested.original:.4f} (change "
        f"{tested.delta:+.4f}).\n"
    )
