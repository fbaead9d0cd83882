"""Checking that an ONNX model's inputs and outputs fit its manifest, before it serves anything.

Contract: :func:`check_signature` returns the name of the output to read, or raises
:class:`~helixserve.errors.ModelLoadError` naming the model, what the manifest expects and what the
ONNX graph declares. The model must take exactly one input, with a dynamic batch axis. Other
symbolic (dynamic) dimensions always fit; static ones must match:

- DNA one-hot: ``float (N, 4, L)`` with ``L`` = flanks + length when the length is exact;
  DNA tokens: ``int64 (N, pad_to)``; tabular: ``float (N, n_features)``; image:
  ``float (N, C, H, W)``.
- outputs: ``binary`` ``(N,)``, ``(N, 1)`` or ``(N, 2)``; ``multiclass`` ``(N, K)`` with K labels;
  ``multilabel`` ``(N, L)`` with L labels (one independent probability each); ``regression``
  ``(N,)`` or ``(N, 1)``.
"""

from __future__ import annotations

from typing import Any

from helixserve.errors import ModelLoadError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.store.manifest import Manifest

Dims = list[int | None]


def expected_input(manifest: Manifest) -> tuple[str, Dims]:
    """The ONNX element type and shape (``None`` = any size) the manifest's schema implies."""
    schema = manifest.input
    if isinstance(schema, SequenceSchema):
        if schema.encoding == "tokens":
            return "tensor(int64)", [None, schema.pad_to]
        flanks = len(schema.flank_left) + len(schema.flank_right)
        core = schema.length if schema.length is not None else schema.pad_to
        return "tensor(float)", [None, 4, None if core is None else core + flanks]
    if isinstance(schema, TabularSchema):
        return "tensor(float)", [None, len(schema.features)]
    image: ImageSchema = schema
    return "tensor(float)", [None, image.channels, image.height, image.width]


def _fits(declared: list[Any], expected: Dims) -> bool:
    if len(declared) != len(expected):
        return False
    return all(
        want is None or not isinstance(have, int) or have == want
        for have, want in zip(declared, expected, strict=True)
    )


def _shape(dims: list[Any]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in dims) + ")"


def check_signature(session: Any, manifest: Manifest, label: str) -> str:
    """Check inputs and outputs; return the output name to read."""
    inputs = {i.name: i for i in session.get_inputs()}
    node = inputs.get(manifest.onnx_input)
    if node is None:
        raise ModelLoadError(
            f"model.onnx of {label} has no input named '{manifest.onnx_input}'; its inputs are "
            f"{', '.join(inputs)}. Set onnx_input in the manifest to one of them."
        )
    extra = [n for n in inputs if n != manifest.onnx_input]
    if extra:
        raise ModelLoadError(
            f"model.onnx of {label} needs more inputs than '{manifest.onnx_input}': "
            f"{', '.join(extra)}; helixserve feeds exactly one input tensor. Export the model "
            "with a single input."
        )
    batch = next(iter(node.shape), None)
    if isinstance(batch, int):
        raise ModelLoadError(
            f"model.onnx of {label} has a fixed batch size of {batch}; export it with a "
            "dynamic batch axis (e.g. dynamic_shapes={'x': {0: Dim('batch')}} in torch.onnx)."
        )
    dtype, dims = expected_input(manifest)
    if node.type != dtype or not _fits(list(node.shape), dims):
        raise ModelLoadError(
            f"model.onnx of {label} takes {node.type} {_shape(list(node.shape))}, but its "
            f"manifest's {manifest.input.kind} schema gives {dtype} {_shape(list(dims))}; "
            "export the model for this schema or fix the schema."
        )
    return _check_output(session, manifest, label)


def _check_output(session: Any, manifest: Manifest, label: str) -> str:
    outputs = {o.name: o for o in session.get_outputs()}
    name = manifest.output.onnx_output or next(iter(outputs))
    node = outputs.get(name)
    if node is None:
        raise ModelLoadError(
            f"model.onnx of {label} has no output named '{name}'; its outputs are "
            f"{', '.join(outputs)}."
        )
    shape = list(node.shape)
    labels = manifest.output.labels or []
    options: dict[str, list[Dims]] = {
        "binary": [[None], [None, 1], [None, 2]],
        "multiclass": [[None, len(labels)]],
        "multilabel": [[None, len(labels)]],
        "regression": [[None], [None, 1]],
    }
    allowed = options[manifest.task]
    if not any(_fits(shape, option) for option in allowed):
        wanted = " or ".join(_shape(list(o)) for o in allowed)
        per_label = (
            f" (one probability per label: {', '.join(labels)})"
            if manifest.task == "multilabel"
            else ""
        )
        raise ModelLoadError(
            f"model.onnx of {label} outputs {_shape(shape)} from '{name}', but a "
            f"{manifest.task} model must output {wanted}{per_label}."
        )
    return name
