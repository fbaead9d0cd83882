"""Block stacks -> PyTorch modules: the training side of the workspace's block language.

Contract: :func:`build` takes a block stack as plain JSON data (a list of dicts, as the
workspace stores it and checks it with :mod:`helixserve.workspace.blocks`; training cannot import
the workspace, so it reads the dicts itself with :data:`FIELDS`, each field's default the same
as the workspace declares: tests/test_blocks.py checks the two agree) and the shape of one input
without the batch axis (channels-first: one-hot ``(4, L)``, tokens ``(L,)``, images
``(C, H, W)``). It returns a :class:`BlockNet`, an ``nn.Sequential`` of one module per block
whose :attr:`BlockNet.shapes` are the output shapes torch gives (each block is run on a zero
batch as it is built, so torch itself checks the shapes). Input ``(N, *input_shape)``, float32
(int64 for tokens), output ``(N, *shapes[-1])``. It exports to ONNX with
:func:`~helixserve.training.export.torch_to_onnx` like the recipes' own networks.

Refusals raise :class:`~helixserve.errors.InvalidBlocks` naming the block (1-based, as the
workspace does): an unknown type or field, a missing field, a block that needs another number
of input dimensions (``block 3 (dense): needs a flat input (1 dimension), got 128 x 38; add a
flatten block before it.``), and whatever torch refuses (a kernel longer than the input ...).
Value ranges are the workspace's to check; :func:`check_outputs` refuses a last shape that is not
the loss's (``bce`` and ``mse``: 1 value, ``ce``: one per class).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from helixserve.errors import InvalidBlocks

Shape = tuple[int, ...]
REQUIRED = object()  # a field without a default

# every block type's fields and defaults: the same as helixserve.workspace.blocks declares
FIELDS: dict[str, dict[str, Any]] = {
    "embedding": {"dim": REQUIRED, "tokens": 6},
    "conv1d": {"filters": REQUIRED, "kernel": REQUIRED, "stride": 1, "padding": 0},
    "conv2d": {"filters": REQUIRED, "kernel": REQUIRED, "stride": 1, "padding": 0},
    "maxpool": {"size": REQUIRED, "stride": None},
    "avgpool": {"size": REQUIRED, "stride": None},
    "globalpool": {"op": "max"},
    "dropout": {"rate": REQUIRED},
    "flatten": {},
    "dense": {"units": REQUIRED},
    "lstm": {"units": REQUIRED, "layers": 1, "bidirectional": False},
    "activation": {"function": REQUIRED},
    "batchnorm": {},
    "standardize": {},
}
# the input dimensions a block takes, what it says it needs, and the hint after it
NEEDS: dict[str, tuple[tuple[int, ...], str, str]] = {
    "embedding": (
        (1,),
        "a token input (1 dimension)",
        "an embedding reads the integer tokens of the input",
    ),
    "conv1d": ((2,), "a (channels x length) input (2 dimensions)", ""),
    "conv2d": (
        (3,),
        "a (channels x height x width) input (3 dimensions)",
        "use conv1d on sequences",
    ),
    "maxpool": ((2, 3), "a (channels x length) or (channels x height x width) input", ""),
    "avgpool": ((2, 3), "a (channels x length) or (channels x height x width) input", ""),
    "globalpool": ((2, 3), "positions to pool over", ""),
    "dense": ((1,), "a flat input (1 dimension)", "add a flatten block before it"),
    "lstm": ((2,), "a (channels x length) input (2 dimensions)", ""),
}


class TokenEmbedding(nn.Module):
    """Tokens ``(N, L)`` -> ``(N, dim, L)`` (channels-first); token 0 pads (a zero vector)."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(tokens, dim, padding_idx=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.embed(x).transpose(1, 2)
        return out


class PositionLSTM(nn.Module):
    """``(N, C, L)`` -> ``(N, units x directions, L)``: the LSTM's state at every position."""

    def __init__(self, channels: int, units: int, layers: int, bidirectional: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            channels, units, num_layers=layers, batch_first=True, bidirectional=bidirectional
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(x.transpose(1, 2))
        out: torch.Tensor = states.transpose(1, 2)
        return out


class GlobalPool(nn.Module):
    """``(N, C, ...)`` -> ``(N, C)``: the max or the mean of each channel."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        return flat.amax(dim=2) if self.op == "max" else flat.mean(dim=2)


class Standardize(nn.Module):
    """Z-score of each example over all its values (sd at least 0.01: flat inputs stay finite)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True).clamp_min(0.01)
        return (x - mean) / std


class BlockNet(nn.Sequential):
    """The modules of a block stack, in order; :attr:`shapes`: each one's output shape."""

    shapes: list[Shape]


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=1),
}
POOLS: dict[tuple[str, int], Callable[..., nn.Module]] = {
    ("maxpool", 2): nn.MaxPool1d,
    ("maxpool", 3): nn.MaxPool2d,
    ("avgpool", 2): nn.AvgPool1d,
    ("avgpool", 3): nn.AvgPool2d,
}


Maker = Callable[[Mapping[str, Any], Shape], nn.Module]
MAKERS: dict[str, Maker] = {
    "embedding": lambda f, shape: TokenEmbedding(f["tokens"], f["dim"]),
    "conv1d": lambda f, shape: nn.Conv1d(
        shape[0], f["filters"], f["kernel"], stride=f["stride"], padding=f["padding"]
    ),
    "conv2d": lambda f, shape: nn.Conv2d(
        shape[0], f["filters"], f["kernel"], stride=f["stride"], padding=f["padding"]
    ),
    "maxpool": lambda f, shape: POOLS["maxpool", len(shape)](f["size"], f["stride"] or f["size"]),
    "avgpool": lambda f, shape: POOLS["avgpool", len(shape)](f["size"], f["stride"] or f["size"]),
    "globalpool": lambda f, shape: GlobalPool(f["op"]),
    "dropout": lambda f, shape: nn.Dropout(f["rate"]),
    "flatten": lambda f, shape: nn.Flatten(),
    "dense": lambda f, shape: nn.Linear(shape[0], f["units"]),
    "lstm": lambda f, shape: PositionLSTM(shape[0], f["units"], f["layers"], f["bidirectional"]),
    "activation": lambda f, shape: ACTIVATIONS[f["function"]](),
    "batchnorm": lambda f, shape: (
        nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])
    ),
    "standardize": lambda f, shape: Standardize(),
}


def shape_text(shape: Shape) -> str:
    """``(128, 38)`` -> ``128 x 38``."""
    return " x ".join(str(size) for size in shape)


def outputs_text(shape: Shape) -> str:
    """What a last block outputs, in words: ``1 value``, ``64 values``, ``128 x 38``."""
    if len(shape) == 1:
        return f"{shape[0]} value" + ("" if shape[0] == 1 else "s")
    return shape_text(shape)


def _fields(number: int, block: Any) -> tuple[str, dict[str, Any]]:
    """A block's type and its fields, defaults filled in; unknown or missing ones refused."""
    if not isinstance(block, Mapping) or block.get("type") not in FIELDS:
        kind = block.get("type") if isinstance(block, Mapping) else None
        raise InvalidBlocks(
            f"block {number}: unknown type {kind!r}; the types are {', '.join(FIELDS)}."
        )
    kind = str(block["type"])
    declared = FIELDS[kind]
    given = {k: v for k, v in block.items() if k != "type"}
    unknown = [k for k in given if k not in declared]
    if unknown:
        listed = f"its fields are {', '.join(declared)}" if declared else "it has no fields"
        raise InvalidBlocks(f"block {number} ({kind}): no field {unknown[0]!r}; {listed}.")
    fields = declared | given
    missing = [k for k, v in fields.items() if v is REQUIRED]
    if missing:
        raise InvalidBlocks(f"block {number} ({kind}): {missing[0]!r} is missing.")
    return kind, fields


def _check_dims(number: int, kind: str, shape: Shape) -> None:
    if number > 1 and kind == "embedding":
        raise InvalidBlocks(
            f"block {number} (embedding): an embedding reads the integer tokens of the input, "
            "so it must be the first block."
        )
    dims, what, hint = NEEDS.get(kind, ((len(shape),), "", ""))
    if kind == "conv1d":
        hint = "add an embedding block before it" if len(shape) == 1 else "use conv2d on images"
    if len(shape) not in dims:
        raise InvalidBlocks(
            f"block {number} ({kind}): needs {what}, got {shape_text(shape)}"
            + (f"; {hint}." if hint else ".")
        )


def build(blocks: Sequence[Mapping[str, Any]], input_shape: Sequence[int]) -> BlockNet:
    """The network of ``blocks`` for inputs of ``input_shape`` (see the module contract)."""
    if not blocks:
        raise InvalidBlocks("the block stack is empty; add blocks.")
    shape = tuple(int(n) for n in input_shape)
    tokens = blocks[0].get("type") == "embedding" if isinstance(blocks[0], Mapping) else False
    x = torch.zeros(2, *shape, dtype=torch.int64 if tokens else torch.float32)
    modules: list[nn.Module] = []
    shapes: list[Shape] = []
    for number, block in enumerate(blocks, 1):
        kind, fields = _fields(number, block)
        _check_dims(number, kind, shape)
        try:
            module = MAKERS[kind](fields, shape)
            with torch.no_grad():
                x = module.eval()(x)
        except (RuntimeError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InvalidBlocks(
                f"block {number} ({kind}): torch cannot apply it to {shape_text(shape)}: {first}."
            ) from None
        shape = tuple(x.shape[1:])
        modules.append(module.train())
        shapes.append(shape)
    net = BlockNet(*modules)
    net.shapes = shapes
    return net


def outputs_for(loss: str, classes: int) -> int:
    """Values per example a network trained with ``loss`` outputs (``ce``: one per class;
    ``multilabel``: one per label)."""
    if loss == "multilabel":
        return classes
    return max(classes, 2) if loss == "ce" else 1


def check_outputs(net: BlockNet, loss: str, classes: int, recipe: str) -> None:
    """Refuse a network whose last shape is not what ``recipe``'s loss needs."""
    need = outputs_for(loss, classes)
    last = net.shapes[-1]
    if last == (need,):
        return
    values = "value" if need == 1 else "values"
    raise InvalidBlocks(
        f"block {len(net.shapes)} (the last) outputs {outputs_text(last)}; the {recipe} recipe "
        f"needs {need} {values} per example; end with a dense block of {need} "
        f"unit{'' if need == 1 else 's'}."
    )


def parameters(net: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(math.prod(p.shape) for p in net.parameters() if p.requires_grad)
