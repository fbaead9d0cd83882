"""ONNX export of PyTorch modules, and the parity check between a native model and its ONNX graph.

Contract: :func:`torch_to_onnx` exports with the dynamo exporter, one input named ``input`` with a
dynamic batch axis, opset 18, and returns the serialised model. :func:`check_parity` runs the
graph with ONNX Runtime on held-out inputs and raises :class:`TrainingError` when any output
differs from the native model's by more than ``tolerance`` (1e-4), naming the largest difference.
The exporter's "torchvision is not installed" notices are dropped (:class:`NoTorchvisionNotice`);
every other message of it is kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
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


class NoTorchvisionNotice(logging.Filter):
    """Drops the dynamo exporter's "torchvision is not installed. Skipping torchvision::nms"
    notices (four, one per op, on every first export of a process). Their cause is inside
    PyTorch: its ONNX op registry lists torchvision's detection ops (nms, roi_align, roi_pool,
    deform_conv2d) and warns when torchvision is absent. No helixserve network uses them, and
    torchvision is not a dependency; only these records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed.")


_REGISTRY_LOG = logging.getLogger("torch.onnx._internal.exporter._registration")
if not any(isinstance(f, NoTorchvisionNotice) for f in _REGISTRY_LOG.filters):
    _REGISTRY_LOG.addFilter(NoTorchvisionNotice())


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
