"""ONNX export of PyTorch modules, and the parity check between a native model and its ONNX graph.

Contract: :func:`torch_to_onnx` exports with the dynamo exporter, one input named ``input`` with a
dynamic batch axis, opset 18, and returns the serialised model. :func:`check_parity` runs the
graph with ONNX Runtime on held-out inputs and raises :class:`TrainingError` when any output
differs from the native model's by more than ``tolerance`` (1e-4), naming the largest difference.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from helixserve.errors import HelixError

PARITY_TOLERANCE = 1e-4


class TrainingError(HelixError):
    """Training could not produce a model that is safe to publish."""


def torch_to_onnx(module: torch.nn.Module, example: torch.Tensor) -> bytes:
    """Export ``module`` (forward argument named ``x``) with a dynamic batch axis."""
    module.eval()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            opset_version=18,
            verbose=False,
        )
    if program is None:
        raise TrainingError("torch.onnx.export returned no program.")
    data: bytes = program.model_proto.SerializeToString()
    return data


def run_onnx(model: bytes, x: npt.NDArray[Any], output: str | None = None) -> npt.NDArray[Any]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = output or session.get_outputs()[0].name
    return np.asarray(session.run([name], {session.get_inputs()[0].name: x})[0])


def check_parity(
    native: npt.NDArray[Any],
    exported: npt.NDArray[Any],
    label: str,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """The largest absolute difference; raise if it is over ``tolerance``."""
    if native.shape != exported.shape:
        raise TrainingError(
            f"{label}: the ONNX export outputs shape {exported.shape}, the trained model "
            f"{native.shape}; the export is wrong."
        )
    worst = float(
        np.max(np.abs(native.astype(np.float64) - exported.astype(np.float64)), initial=0.0)
    )
    if worst > tolerance:
        raise TrainingError(
            f"{label}: ONNX Runtime and the trained model differ by up to {worst:.3g} on the "
            f"test set (tolerance {tolerance:g}); the export is not faithful, so nothing was "
            "published."
        )
    return worst
