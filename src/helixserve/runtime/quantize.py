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
  whose label is unchanged). Nothing is published here: the CLI does that, as a new version.
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
from helixserve.runtime.predictor import Predictor


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
        raise ModelLoadError("none of the calibration inputs is valid for this model; give "
                             "inputs the model accepts.")  # fmt: skip
    return tensors


def quantize_bundle(predictor: Predictor, calibration: Sequence[object],
                    batch: int = 64) -> tuple[bytes, Check]:  # fmt: skip
    """The int8 model and how far it is from the original; see the module contract."""
    try:
        from onnxruntime.quantization import (  # noqa: PLC0415 - needs onnx (train extra)
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )
    except ImportError:
        raise ModelLoadError("quantisation needs the onnx package: pip install "
                             "'helixserve[train]'.") from None  # fmt: skip
    tensors = _encoded(predictor, calibration, batch)
    source = predictor.bundle_path / "model.onnx"
    with tempfile.TemporaryDirectory(prefix="helixserve-quant-") as tmp:
        prepared, output = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            # ONNX Runtime's symbolic shape inference trips over some exported graphs (Squeeze
            # with dynamic axes); the plain ONNX shape inference and optimisation suffice.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(output), _Calibration(predictor.manifest.onnx_input, tensors),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv"],
                nodes_to_exclude=exact_nodes(prepared),
            )  # fmt: skip
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
            assert a.label_index is not None and b.label_index is not None
            same += int((a.label_index == b.label_index).sum())
        count += len(tensor)
    agreement = None if predictor.manifest.task == "regression" else same / count
    return Check(count, max(diffs), agreement)
