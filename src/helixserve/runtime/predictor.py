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
  outputs ``(N, K)`` probabilities (K = number of labels). ``regression`` outputs ``(N,)`` or
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

from helixserve.errors import InputError, InvalidImage, ModelLoadError
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
    """One result: a label with probabilities (classifiers) or a value (regression)."""

    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None


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
        if verify:
            verify_dir(bundle.path, bundle.manifest, bundle.label)
        self.session = _open_session(bundle.path / "model.onnx", intra_op_threads, self.label)
        self.output_name = check_signature(self.session, self.manifest, self.label)

    @classmethod
    def from_store(cls, store: ModelStore, ref: str, **options: Any) -> Predictor:
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
        """The bare model call."""
        outputs = self.session.run([self.output_name], {self.manifest.onnx_input: tensor})
        return np.asarray(outputs[0])

    def decode(self, output: npt.NDArray[Any]) -> list[Prediction]:
        """Turn the output tensor into labels/probabilities or values."""
        task, spec = self.manifest.task, self.manifest.output
        out = output.astype(np.float64, copy=False)
        if task == "regression":
            return [Prediction(value=float(v)) for v in out.reshape(len(out))]
        labels = spec.labels or []
        if task == "binary":
            positive = out[:, -1] if out.ndim == 2 and out.shape[1] == 2 else out.reshape(len(out))
            probs = np.stack([1.0 - positive, positive], axis=1)
            chosen = (positive >= spec.threshold).astype(np.intp)
        else:
            probs, chosen = out, out.argmax(axis=1)
        return [
            Prediction(labels[c], float(row[c]), dict(zip(labels, row.tolist(), strict=True)))
            for row, c in zip(probs, chosen.tolist(), strict=True)
        ]

    # --- all together ---------------------------------------------------------------------------

    def predict(self, items: Sequence[object]) -> list[Result]:
        """Validate, encode, run once, decode; one result per input, in order."""
        fast = self._fast_path(items)
        if fast is not None:
            return list(self.decode(self.run(fast)))
        good, values, errors = self.validate(items)
        results: list[Result | None] = [None] * len(items)
        for error in errors:
            results[error.index] = error
        if good:
            for i, prediction in zip(good, self.decode(self.run(self.encode(values))), strict=True):
                results[i] = prediction
        return [r for r in results if r is not None]

    def _fast_path(self, items: Sequence[object]) -> npt.NDArray[Any] | None:
        schema = self.manifest.input
        if isinstance(schema, SequenceSchema) and items:
            return fast_encode(items, schema)
        return None


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
