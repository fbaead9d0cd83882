"""Predictor: one bundle, loaded once, turning a batch of raw inputs into per-item results.

Contract:
- :class:`Predictor` verifies the bundle's files against its manifest (sha256) before loading,
  opens ``model.onnx`` with ONNX Runtime on the CPU provider with explicit thread settings
  (``intra_op_threads``, one inter-op thread, sequential execution), and checks that the model's
  input/output names, ranks, static sizes and dtypes fit the manifest's schema
  (:class:`~helixserve.errors.ModelLoadError` otherwise, naming both sides).
- :meth:`Predictor.predict` takes a sequence of raw inputs — DNA as ``str``, tabular rows as
  mappings, images as ``bytes`` — validates each through :mod:`helixserve.inputs` (same messages
  everywhere), encodes the valid ones as one batch, runs the model once, and returns one result per
  input in input order: a :class:`Prediction` or an :class:`ItemError` (0-based ``index`` plus the
  typed error). One bad item never fails the good ones.
- Decoding: ``binary`` models may output P(positive) ``(N,)`` / ``(N, 1)`` or two probabilities
  ``(N, 2)``; the label is the positive one when P >= the manifest's threshold. ``multiclass``
  outputs ``(N, K)`` probabilities (K = number of labels). ``multilabel`` outputs ``(N, L)``
  independent probabilities, one per label; the item's labels are those with P >= the threshold
  (:attr:`Decoded.positive`, :meth:`BatchPrediction.label_sets`; a :class:`Prediction` has
  ``labels`` and ``probabilities``, no single ``label``). ``regression`` outputs ``(N,)`` or
  ``(N, 1)`` values. Nothing is unpickled, ever: models arrive as ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from helixserve.errors import InputError, InvalidImage, ModelLoadError, ModelRunError
from helixserve.inputs.encoding import encode_batch, fast_encode
from helixserve.inputs.images import decode_image
from helixserve.inputs.sequence import SequenceSchema, validate_sequence
from helixserve.inputs.tabular import TabularSchema, rows_to_array, validate_row
from helixserve.runtime.signature import check_signature
from helixserve.store.bundle import verify_dir
from helixserve.store.manifest import Manifest
from helixserve.store.store import LocalBundle, ModelStore


@dataclass(frozen=True, slots=True)
class Prediction:
    """One result: a label with probabilities (classifiers), the labels at or above the threshold
    with every label's probability (multilabel), or a value (regression)."""

    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None
    labels: list[str] | None = None


@dataclass(frozen=True, slots=True)
class ItemError:
    """An input the model could not take: its 0-based position in the batch and why."""

    index: int
    error: InputError


Result = Prediction | ItemError


class Predictor:
    """A loaded model bundle; see the module contract."""

    def __init__(self, bundle: LocalBundle, *, intra_op_threads: int = 1, verify: bool = True):
        self.manifest: Manifest = bundle.manifest
        self.label = bundle.label
        self.bundle_path = bundle.path
        if verify:
            verify_dir(bundle.path, bundle.manifest, bundle.label)
        self.session = _open_session(bundle.path / "model.onnx", intra_op_threads, self.label)
        self.output_name = check_signature(self.session, self.manifest, self.label)

    @classmethod
    def from_store(cls, store: ModelStore, ref: str, **options: Any) -> Predictor:
        """Pull ``ref`` from ``store`` (verified) and load it."""
        return cls(store.pull(ref), **options)

    # --- the three steps ------------------------------------------------------------------------

    def validate(self, items: Sequence[object]) -> tuple[list[int], list[Any], list[ItemError]]:
        """Split inputs into (positions, validated values) and per-item errors."""
        good: list[int] = []
        values: list[Any] = []
        errors: list[ItemError] = []
        for i, item in enumerate(items):
            try:
                values.append(self._validate_one(item))
                good.append(i)
            except InputError as err:
                errors.append(ItemError(i, err))
        return good, values, errors

    def _validate_one(self, item: object) -> Any:
        schema = self.manifest.input
        if isinstance(schema, SequenceSchema):
            return validate_sequence(item, schema)
        if isinstance(schema, TabularSchema):
            return validate_row(item, schema)
        if not isinstance(item, bytes | bytearray):
            raise InvalidImage(f"an image must be file bytes, got {type(item).__name__}.")
        return decode_image(bytes(item), schema)

    def encode(self, values: Sequence[Any]) -> npt.NDArray[Any]:
        """One input tensor for validated values."""
        schema = self.manifest.input
        if isinstance(schema, SequenceSchema):
            return encode_batch(values, schema)
        if isinstance(schema, TabularSchema):
            return rows_to_array(values)
        if not values:
            return np.zeros((0, schema.channels, schema.height, schema.width), np.float32)
        return np.stack(values)

    def run(self, tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The bare model call; an ONNX Runtime failure raises :class:`ModelRunError`."""
        try:
            outputs = self.session.run([self.output_name], {self.manifest.onnx_input: tensor})
        except Exception as err:  # onnxruntime raises its own, untyped exception classes
            raise ModelRunError(
                f"{self.label} failed while running on a batch of {len(tensor)}: {str(err)[:300]}"
            ) from None
        return np.asarray(outputs[0])

    def decode(self, output: npt.NDArray[Any]) -> Decoded:
        """Turn the output tensor into label indices + probabilities, or values (columnar)."""
        task, spec = self.manifest.task, self.manifest.output
        n = len(output)
        if task == "regression":
            return Decoded(values=output.reshape(n).astype(np.float64))
        if task == "multilabel":
            probabilities = output.reshape(n, -1).astype(np.float64)
            return Decoded(probabilities=probabilities, positive=probabilities >= spec.threshold)
        if task == "binary":
            flat = output.reshape(n, -1)
            positive = flat[:, -1].astype(np.float64)
            probabilities = np.stack([1.0 - positive, positive], axis=1)
            chosen = (positive >= spec.threshold).astype(np.intp)
        else:
            probabilities = output.astype(np.float64)
            chosen = probabilities.argmax(axis=1)
        return Decoded(label_index=chosen, probabilities=probabilities)

    # --- all together ---------------------------------------------------------------------------

    def prepare(self, items: Sequence[object]) -> Prepared:
        """Validate and encode (the CPU work before the model call): the positions predicted,
        the errors of the others, and the input tensor (``None`` when no item is valid)."""
        fast = self._fast_path(items)
        if fast is not None:
            return Prepared(len(items), np.arange(len(items), dtype=np.intp), [], fast)
        good, values, errors = self.validate(items)
        tensor = self.encode(values) if good else None
        return Prepared(len(items), np.array(good, dtype=np.intp), errors, tensor)

    def finish(self, prepared: Prepared) -> BatchPrediction:
        """Run the model on a prepared batch and decode it."""
        labels = self.manifest.output.labels
        if prepared.tensor is None:
            decoded = Decoded.empty(self)
        else:
            decoded = self.decode(self.run(prepared.tensor))
        return BatchPrediction(prepared.size, prepared.positions, prepared.errors, labels, decoded)

    def predict_batch(self, items: Sequence[object]) -> BatchPrediction:
        """Validate, encode, run once, decode; columnar results plus per-item errors."""
        return self.finish(self.prepare(items))

    def predict(self, items: Sequence[object]) -> list[Result]:
        """One :class:`Prediction` or :class:`ItemError` per input, in input order."""
        return self.predict_batch(items).results()

    def _fast_path(self, items: Sequence[object]) -> npt.NDArray[Any] | None:
        schema = self.manifest.input
        if isinstance(schema, SequenceSchema) and items:
            return fast_encode(items, schema)
        return None


@dataclass(frozen=True)
class Prepared:
    """A validated, encoded batch waiting for the model (see :meth:`Predictor.prepare`)."""

    size: int
    positions: npt.NDArray[np.intp]
    errors: list[ItemError]
    tensor: npt.NDArray[Any] | None


@dataclass(frozen=True)
class Decoded:
    """Decoded model output for the predicted items, as arrays: the chosen label's index and
    every label's probability (binary, multiclass), every label's probability and whether it is
    at or above the threshold (multilabel: ``positive``, ``(N, L)`` bool), or the values."""

    label_index: npt.NDArray[np.intp] | None = None
    probabilities: npt.NDArray[np.float64] | None = None
    values: npt.NDArray[np.float64] | None = None
    positive: npt.NDArray[np.bool_] | None = None

    @staticmethod
    def empty(predictor: Predictor) -> Decoded:
        """The decoded output of a batch in which no item was predicted."""
        if predictor.manifest.task == "regression":
            return Decoded(values=np.zeros(0))
        k = len(predictor.manifest.output.labels or [])
        if predictor.manifest.task == "multilabel":
            return Decoded(probabilities=np.zeros((0, k)), positive=np.zeros((0, k), dtype=bool))
        return Decoded(np.zeros(0, dtype=np.intp), np.zeros((0, k)))


@dataclass(frozen=True)
class BatchPrediction:
    """Results of one batch: ``positions`` (input indices predicted), their decoded output, and
    an :class:`ItemError` for every other input."""

    size: int
    positions: npt.NDArray[np.intp]
    errors: list[ItemError]
    label_names: list[str] | None
    decoded: Decoded

    def labels(self) -> list[str]:
        """The predicted label of each predicted item (classifiers)."""
        names, index = self.label_names or [], self.decoded.label_index
        return [] if index is None else [names[i] for i in index.tolist()]

    def label_sets(self) -> list[list[str]]:
        """The labels at or above the threshold of each predicted item, in label order
        (multilabel; empty for other tasks)."""
        names, positive = self.label_names or [], self.decoded.positive
        if positive is None:
            return []
        return [[n for n, on in zip(names, row, strict=True) if on] for row in positive.tolist()]

    def results(self) -> list[Result]:
        """Per-item objects in input order (slower than the arrays; for small batches and APIs)."""
        out: list[Result | None] = [None] * self.size
        for error in self.errors:
            out[error.index] = error
        for position, prediction in zip(self.positions.tolist(), self._predictions(), strict=True):
            out[position] = prediction
        return [r for r in out if r is not None]

    def _predictions(self) -> list[Prediction]:
        d = self.decoded
        if d.values is not None:
            return [Prediction(value=v) for v in d.values.tolist()]
        names = self.label_names or []
        if d.probabilities is not None and d.positive is not None:
            return [
                Prediction(probabilities=dict(zip(names, row, strict=True)), labels=chosen)
                for row, chosen in zip(d.probabilities.tolist(), self.label_sets(), strict=True)
            ]
        if d.probabilities is None or d.label_index is None:
            return []
        rows, chosen = d.probabilities.tolist(), d.label_index.tolist()
        return [
            Prediction(names[c], row[c], dict(zip(names, row, strict=True)))
            for row, c in zip(rows, chosen, strict=True)
        ]


def prediction_columns(manifest: Manifest) -> list[str]:
    """The columns a prediction fills in a table (CSV, Parquet): ``value`` (regression);
    ``label``, ``probability`` and ``p_<label>`` per label (binary, multiclass); ``labels`` (the
    labels at or above the threshold; in CSV joined by ``;``) and ``p_<label>`` (multilabel)."""
    labels = manifest.output.labels
    if labels is None:
        return ["value"]
    head = ["labels"] if manifest.task == "multilabel" else ["label", "probability"]
    return [*head, *(f"p_{label}" for label in labels)]


def _open_session(path: Path, threads: int, label: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ModelLoadError(
            f"model.onnx of {label} cannot be loaded by ONNX Runtime: {str(err)[:300]}. "
            "Export the model again (opset 17 or newer is supported)."
        ) from None
