"""Tiny ONNX models built in the tests, with outputs a test can compute by hand.

- :func:`gc_binary_model`: P(positive) = sigmoid(scale * (#G + #C) - bias), from one-hot (N, 4, L).
- :func:`tabular_softmax_model`: softmax(x @ W) over 2 classes, from (N, F).
- :func:`image_multiclass_model`: softmax(mean-pixel * w_k) over K classes, from (N, C, H, W).
- :func:`token_regression_model`: sum of tokens, from int64 (N, L).
- :func:`dna_multilabel_model`: independent sigmoids of a linear layer over the base counts of
  one-hot DNA, (N, 4, L) -> (N, K).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: Sequence[np.ndarray],
    names: Sequence[str],
) -> bytes:
    initializers = [numpy_helper.from_array(a, n) for a, n in zip(inits, names, strict=True)]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="helixserve-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def gc_binary_model(
    length: int | str = "L",
    scale: float = 0.5,
    bias: float = 12.5,
    two_columns: bool = False,
    batch: int | str = "N",
    extra_input: bool = False,
) -> bytes:
    """Binary classifier on one-hot DNA: more G+C -> more likely positive."""
    weight = np.array([0, 1, 1, 0], dtype=np.float32).reshape(1, 4, 1) * scale
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 4, length])
    inputs = [x]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1]))
    nodes = [
        helper.make_node("Mul", ["input", "w"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes"], ["score"], keepdims=0),
        helper.make_node("Sub", ["score", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p"]),
    ]
    inits = [weight, np.array([1, 2], dtype=np.int64), np.array([bias], dtype=np.float32)]
    if two_columns:
        nodes += [
            helper.make_node("Unsqueeze", ["p", "one"], ["p1"]),
            helper.make_node("Sub", ["ones", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        ]
        inits += [np.array([1], dtype=np.int64), np.ones((1, 1), dtype=np.float32)]
        out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
        return _model(nodes, inputs, [out], inits, ["w", "axes", "bias", "one", "ones"])
    out = helper.make_tensor_value_info("p", TensorProto.FLOAT, [batch])
    return _model(nodes, inputs, [out], inits, ["w", "axes", "bias"])


def tabular_softmax_model(weights: np.ndarray) -> bytes:
    """softmax(x @ weights) for ``weights`` of shape (F, K)."""
    features, classes = weights.shape
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", features])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return _model(nodes, [x], [out], [weights.astype(np.float32)], ["w"])


def image_multiclass_model(channels: int, height: int, width: int, classes: int) -> bytes:
    """softmax(mean pixel value * [0, 1, ..., K-1] * 4) over K classes."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, height, width])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    scale = (np.arange(classes, dtype=np.float32) * 4.0).reshape(1, classes)
    count = np.array([channels * height * width], dtype=np.float32)
    nodes = [
        helper.make_node("ReduceSum", ["input", "axes"], ["total"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["mean"]),
        helper.make_node("Unsqueeze", ["mean", "one"], ["mean2"]),
        helper.make_node("Mul", ["mean2", "scale"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits: list[np.ndarray] = [
        np.array([1, 2, 3], dtype=np.int64),
        count,
        np.array([1], dtype=np.int64),
        scale,
    ]
    return _model(nodes, [x], [out], inits, ["axes", "count", "one", "scale"])


def token_regression_model(length: int) -> bytes:
    """value = sum of the int64 tokens (padding 0 adds nothing), as (N, 1)."""
    x = helper.make_tensor_value_info("input", TensorProto.INT64, ["N", length])
    out = helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", 1])
    nodes = [
        helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["xf", "axes"], ["value"], keepdims=1),
    ]
    return _model(nodes, [x], [out], [np.array([1], dtype=np.int64)], ["axes"])


def dna_multilabel_model(
    weights: np.ndarray, bias: np.ndarray, length: int | str = "L", output: str = "p"
) -> bytes:
    """sigmoid(counts @ weights + bias), ``counts`` (N, 4) the A/C/G/T counts of one-hot
    ``x`` (N, 4, length): ``weights`` is (4, K), ``bias`` (K,); outputs (N, K) probabilities."""
    labels = weights.shape[1]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, length])
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", labels])
    nodes = [
        helper.make_node("ReduceSum", ["input", "axes"], ["counts"], keepdims=0),
        helper.make_node("MatMul", ["counts", "w"], ["linear"]),
        helper.make_node("Add", ["linear", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [output]),
    ]
    inits: list[np.ndarray] = [
        np.array([2], dtype=np.int64),
        weights.astype(np.float32),
        bias.astype(np.float32),
    ]
    return _model(nodes, [x], [out], inits, ["axes", "w", "b"])
