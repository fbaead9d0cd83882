"""Blocks: a small, torch-free language of network layers, with shape inference.

Contract:

- A *block stack* is a JSON list of objects, each a ``type`` and that type's fields, e.g.
  ``[{"type": "conv1d", "filters": 128, "kernel": 13}, {"type": "activation", "function":
  "relu"}, ...]``. :func:`parse_blocks` reads it into :data:`Block` models (pydantic, strict: an
  int field takes an int, not ``"3"`` or ``3.0``; a discriminated union on ``type``). Each field
  is declared once, with its range and one line of help; :func:`block_form_fields` gives them
  as plain data for a form. ``model_dump()`` of a block is the JSON the training layer builds
  from (:mod:`helixserve.training.blocks_torch`, which takes plain dicts: training cannot import
  the workspace).
- Shapes are channels-first, as torch has them, without the batch axis: one-hot DNA ``(4, L)``,
  tokens ``(L,)``, images ``(C, H, W)``, features ``(F,)``. :func:`infer_shapes` gives each
  block's output shape, :func:`count_parameters` the trainable parameters torch creates,
  :func:`check_output` checks the last shape against the task (regression and binary: 1 value,
  multiclass: one per class, multilabel: one per label; the recipe adds the sigmoid or softmax),
  :func:`check_blocks` does all of it plus :data:`MAX_PARAMETERS`; :func:`shape_text` writes a
  shape as ``128 x 38``, :func:`stack_table` a whole stack with its shapes and parameters.
- Every refusal raises :class:`~helixserve.errors.InvalidBlocks` (an ``InputError``: 422 at the
  API) whose message names the block, 1-based, and its type:
  ``block 3 (dense): needs a flat input (1 dimension), got 128 x 38; add a flatten block before
  it.``
- What each block does is its class's docstring (the torch side builds exactly that); a
  window of ``kernel`` or ``size`` over ``L`` positions gives ``(L + 2 padding - kernel) //
  stride + 1``; an embedding reads integer tokens, so only the first block may be one.

The recipes' architectures as block stacks are in :mod:`helixserve.workspace.presets`. This
module imports neither torch nor :mod:`helixserve.training`.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helixserve.errors import InvalidBlocks

Shape = tuple[int, ...]
Task = Literal["regression", "binary", "multiclass", "multilabel"]
MAX_PARAMETERS = 50_000_000
BIG = 1_000_000


class Refused(Exception):
    """Why one block cannot take its input (:func:`infer_shapes` adds which block)."""


def shape_text(shape: Shape) -> str:
    """``(128, 38)`` -> ``128 x 38``."""
    return " x ".join(str(size) for size in shape)


def outputs_text(shape: Shape) -> str:
    """What a last block outputs, in words: ``1 value``, ``64 values``, ``128 x 38``."""
    if len(shape) == 1:
        return f"{shape[0]} value" + ("" if shape[0] == 1 else "s")
    return shape_text(shape)


def _needs(shape: Shape, dims: int, what: str, hint: str = "") -> None:
    if len(shape) != dims:
        plural = "dimension" if dims == 1 else "dimensions"
        raise Refused(
            f"needs {what} ({dims} {plural}), got {shape_text(shape)}"
            + (f"; {hint}" if hint else "")
        )


def _window(size: int, length: int, padding: int, stride: int, what: str) -> int:
    """Positions of a window of ``size`` sliding by ``stride`` over a padded ``length``."""
    if length + 2 * padding < size:
        padded = f", padded to {length + 2 * padding}" if padding else ""
        raise Refused(f"{what} {size} is longer than the input ({length}{padded})")
    return (length + 2 * padding - size) // stride + 1


class _Block(BaseModel):
    """What every block shares: strict fields, no unknown ones, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def output(self, shape: Shape) -> Shape:
        """The output shape for an input ``shape`` (default: the same); raise :class:`Refused`."""
        return shape

    def parameters(self, shape: Shape) -> int:
        """Trainable parameters for an input ``shape`` (default: none)."""
        return 0


class Embedding(_Block):
    """A learned vector per token: integer tokens (L) -> (dim, L); token 0 is padding."""

    type: Literal["embedding"] = "embedding"
    dim: int = Field(ge=1, le=4096, description="Length of each token's learned vector.")
    tokens: int = Field(
        6, ge=2, le=BIG, description="Token ids 0 .. tokens-1 (DNA: 6 = padding, A, C, G, T, N)."
    )

    def output(self, shape: Shape) -> Shape:
        _needs(shape, 1, "a token input", "an embedding reads the integer tokens of the input")
        return (self.dim, shape[0])

    def parameters(self, shape: Shape) -> int:
        return self.tokens * self.dim


class _Conv(_Block):
    filters: int = Field(ge=1, le=4096, description="Filters (output channels).")
    kernel: int = Field(ge=1, le=1024, description="Filter width in positions.")
    stride: int = Field(1, ge=1, le=1024, description="Step between filter positions.")
    padding: int = Field(0, ge=0, le=1024, description="Zero positions added at each end.")


class Conv1d(_Conv):
    """Filters slid along a sequence: (C, L) -> (filters, L')."""

    type: Literal["conv1d"] = "conv1d"

    def output(self, shape: Shape) -> Shape:
        hint = "add an embedding block before it" if len(shape) == 1 else "use conv2d on images"
        _needs(shape, 2, "a (channels x length) input", hint)
        return (self.filters, _window(self.kernel, shape[1], self.padding, self.stride, "kernel"))

    def parameters(self, shape: Shape) -> int:
        return shape[0] * self.filters * self.kernel + self.filters


class Conv2d(_Conv):
    """Square filters slid over an image: (C, H, W) -> (filters, H', W')."""

    type: Literal["conv2d"] = "conv2d"

    def output(self, shape: Shape) -> Shape:
        _needs(shape, 3, "a (channels x height x width) input", "use conv1d on sequences")
        sides = [_window(self.kernel, n, self.padding, self.stride, "kernel") for n in shape[1:]]
        return (self.filters, *sides)

    def parameters(self, shape: Shape) -> int:
        return shape[0] * self.filters * self.kernel**2 + self.filters


class _Pool(_Block):
    size: int = Field(ge=1, le=1024, description="Window width in positions (square on images).")
    stride: int | None = Field(
        None, ge=1, le=1024, description="Step between windows (none: the window width)."
    )

    def output(self, shape: Shape) -> Shape:
        if len(shape) not in (2, 3):
            raise Refused(
                "needs a (channels x length) or (channels x height x width) input, got "
                f"{shape_text(shape)}"
            )
        step = self.stride or self.size
        return (shape[0], *(_window(self.size, n, 0, step, "pool size") for n in shape[1:]))


class MaxPool(_Pool):
    """The largest value of each window: (C, L) or (C, H, W), fewer positions."""

    type: Literal["maxpool"] = "maxpool"


class AvgPool(_Pool):
    """The mean of each window: (C, L) or (C, H, W), fewer positions."""

    type: Literal["avgpool"] = "avgpool"


class GlobalPool(_Block):
    """The max or mean of each channel over all positions: (C, ...) -> (C)."""

    type: Literal["globalpool"] = "globalpool"
    op: Literal["max", "avg"] = Field("max", description="Largest value, or the mean.")

    def output(self, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise Refused(f"needs positions to pool over, got {shape_text(shape)} (already flat)")
        return (shape[0],)


class Dropout(_Block):
    """Zero a random share of the values while training (same shape)."""

    type: Literal["dropout"] = "dropout"
    rate: float = Field(ge=0, le=0.99, description="Share of values zeroed while training.")


class Flatten(_Block):
    """All values in one row: (C, L ...) -> (C x L ...)."""

    type: Literal["flatten"] = "flatten"

    def output(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


class Dense(_Block):
    """A fully connected layer: (F) -> (units)."""

    type: Literal["dense"] = "dense"
    units: int = Field(ge=1, le=65536, description="Output values (neurons).")

    def output(self, shape: Shape) -> Shape:
        _needs(shape, 1, "a flat input", "add a flatten block before it")
        return (self.units,)

    def parameters(self, shape: Shape) -> int:
        return shape[0] * self.units + self.units


class Lstm(_Block):
    """An LSTM over positions: (C, L) -> (units x directions, L), the state at every position."""

    type: Literal["lstm"] = "lstm"
    units: int = Field(ge=1, le=4096, description="Hidden units per direction.")
    layers: int = Field(1, ge=1, le=8, description="Stacked LSTM layers.")
    bidirectional: bool = Field(False, description="Also read the sequence backwards.")

    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def output(self, shape: Shape) -> Shape:
        _needs(shape, 2, "a (channels x length) input")
        return (self.units * self._directions(), shape[1])

    def parameters(self, shape: Shape) -> int:
        total, width = 0, shape[0]
        for _ in range(self.layers):
            total += self._directions() * 4 * (self.units * (width + self.units) + 2 * self.units)
            width = self.units * self._directions()
        return total


class Activation(_Block):
    """A function applied to every value (softmax: across the channels); same shape."""

    type: Literal["activation"] = "activation"
    function: Literal["relu", "gelu", "tanh", "sigmoid", "softmax"] = Field(
        description="The function."
    )


class BatchNorm(_Block):
    """Normalise each channel over the batch, with a learned scale and shift; same shape."""

    type: Literal["batchnorm"] = "batchnorm"

    def parameters(self, shape: Shape) -> int:
        return 2 * shape[0]


class Standardize(_Block):
    """Z-score each example over all its values (sd at least 0.01); same shape."""

    type: Literal["standardize"] = "standardize"


Block = Annotated[
    Embedding
    | Conv1d
    | Conv2d
    | MaxPool
    | AvgPool
    | GlobalPool
    | Dropout
    | Flatten
    | Dense
    | Lstm
    | Activation
    | BatchNorm
    | Standardize,
    Field(discriminator="type"),
]
Stack = Sequence[Block | Mapping[str, Any]]  # JSON data, or blocks already parsed
BLOCK_TYPES: dict[str, type[_Block]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Block)[0])
}


def _form_field(cls: type[_Block], name: str) -> dict[str, Any]:
    """One field as plain data: name, type, required, default, choices, range, help."""
    info = cls.model_fields[name]
    annotation: Any = info.annotation
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    optional = type(None) in members
    if members:
        annotation = next(m for m in members if m is not type(None))
    choices = list(get_args(annotation)) if get_origin(annotation) is Literal else None
    kind = type(choices[0]).__name__ if choices else annotation.__name__
    low = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in info.metadata if hasattr(m, "le")), None)
    required = info.is_required()
    return {
        "name": name,
        "type": kind + (" | None" if optional else ""),
        "required": required,
        "default": None if required else info.default,
        "choices": choices,
        "range": None if low is None and high is None else [low, high],
        "help": info.description,
    }


def block_form_fields() -> dict[str, dict[str, Any]]:
    """Every block type -> ``{"help": one line, "fields": [field, ...]}``, each field plain data
    (``name``, ``type`` as ``int`` / ``float`` / ``bool`` / ``str`` [``| None``], ``required``,
    ``default``, ``choices``, ``range`` ``[low, high]`` (closed), ``help``) for a web form."""
    return {
        name: {
            "help": (cls.__doc__ or "").strip(),
            "fields": [_form_field(cls, f) for f in cls.model_fields if f != "type"],
        }
        for name, cls in BLOCK_TYPES.items()
    }


def _allowed(field: dict[str, Any]) -> str:
    """What a field takes, in words: ``an int in the range [1, 4096]``."""
    if field["choices"]:
        text = "one of " + ", ".join(repr(c) for c in field["choices"])
    elif field["range"]:
        low, high = field["range"]
        article = "an int" if field["type"].startswith("int") else "a number"
        text = f"{article} in the range [{low:g}, {high:g}]"
    elif field["type"].startswith("bool"):
        text = "true or false"
    else:
        text = f"a {field['type']}"
    return text + (" or null" if field["type"].endswith("None") else "")


def _refusal(number: int, kind: str, cls: type[_Block], err: ValidationError) -> InvalidBlocks:
    """The first pydantic error of one block, in the module's words."""
    first = err.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    where = f"block {number} ({kind})"
    fields = [f for f in cls.model_fields if f != "type"]
    if first["type"] == "extra_forbidden" or name not in fields:
        listed = f"its fields are {', '.join(fields)}" if fields else "it has no fields"
        return InvalidBlocks(f"{where}: no field {name!r}; {listed}.")
    allowed = _allowed(_form_field(cls, name))
    if first["type"] == "missing":
        return InvalidBlocks(f"{where}: {name!r} is missing; give {allowed}.")
    return InvalidBlocks(f"{where}: {name!r} must be {allowed}; got {first['input']!r}.")


def parse_block(number: int, data: Block | Mapping[str, Any]) -> Block:
    """One block from its JSON object (``number``: its 1-based place, for the messages)."""
    if isinstance(data, _Block):
        return data
    known = ", ".join(BLOCK_TYPES)
    if not isinstance(data, Mapping):
        raise InvalidBlocks(f"block {number}: must be an object with a 'type', got {data!r}.")
    kind = data.get("type")
    if kind is None:
        raise InvalidBlocks(f"block {number}: no 'type'; give one of {known}.")
    cls = BLOCK_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidBlocks(f"block {number}: unknown type {kind!r}; the types are {known}.")
    try:
        block: Block = cls.model_validate(dict(data))  # type: ignore[assignment]
    except ValidationError as err:
        raise _refusal(number, kind, cls, err) from None
    return block


def parse_blocks(blocks: Stack) -> list[Block]:
    """A block stack from JSON data (or blocks); an empty stack is refused."""
    if not isinstance(blocks, list | tuple):
        raise InvalidBlocks(f"a block stack is a list of blocks, got {type(blocks).__name__}.")
    if not blocks:
        raise InvalidBlocks(
            "the block stack is empty; add blocks, ending with a dense block of as many units "
            "as the model has outputs."
        )
    return [parse_block(number, data) for number, data in enumerate(blocks, 1)]


def _check_input(shape: Sequence[int]) -> Shape:
    sizes = tuple(shape)
    good = all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
    if not good or not 1 <= len(sizes) <= 3:
        raise InvalidBlocks(
            "the input shape must be 1 to 3 positive sizes (features or tokens; channels x "
            f"length; channels x height x width), got {sizes!r}."
        )
    return sizes


def _walk(input_shape: Sequence[int], blocks: Stack) -> list[Shape]:
    """The shape before the first block, then after each (refusals name the block)."""
    shapes = [_check_input(input_shape)]
    for number, block in enumerate(parse_blocks(blocks), 1):
        try:
            if isinstance(block, Embedding) and number > 1:
                raise Refused(
                    "an embedding reads the integer tokens of the input, so it must be the "
                    "first block"
                )
            shapes.append(block.output(shapes[-1]))
        except Refused as why:
            raise InvalidBlocks(f"block {number} ({block.type}): {why}.") from None
    return shapes


def infer_shapes(input_shape: Sequence[int], blocks: Stack) -> list[Shape]:
    """Each block's output shape (channels-first, no batch axis), or :class:`InvalidBlocks`."""
    return _walk(input_shape, blocks)[1:]


def block_parameters(input_shape: Sequence[int], blocks: Stack) -> list[int]:
    """The trainable parameters of each block."""
    parsed = parse_blocks(blocks)
    shapes = _walk(input_shape, parsed)
    return [block.parameters(shape) for block, shape in zip(parsed, shapes, strict=False)]


def count_parameters(input_shape: Sequence[int], blocks: Stack) -> int:
    """The trainable parameters torch creates for the stack (weights and biases)."""
    return sum(block_parameters(input_shape, blocks))


def stack_table(input_shape: Sequence[int], blocks: Stack) -> str:
    """The stack as text: one line per block (number, type, fields, output shape, parameters)."""
    parsed = parse_blocks(blocks)
    shapes, counts = _walk(input_shape, parsed), block_parameters(input_shape, parsed)
    lines = [f" #  {'block':<11} {'fields':<44} {'output':<10} {'parameters':>10}"]
    lines.append(f"    {'input':<11} {'':<44} {shape_text(shapes[0])}")
    for number, (block, shape, count) in enumerate(zip(parsed, shapes[1:], counts, strict=True)):
        fields = ", ".join(f"{k}={v}" for k, v in block.model_dump().items() if k != "type")
        row = f"{number + 1:>2}  {block.type:<11} {fields:<44} {shape_text(shape):<10} "
        lines.append((row + (f"{count:>10,}" if count else "")).rstrip())
    lines.append(f"    {'total':<11} {'':<44} {'':<10} {sum(counts):>10,}")
    return "\n".join(lines)


def outputs_needed(task: Task, classes: int) -> int:
    """Values the network outputs per example: 1 (regression, binary), else one per class
    (multilabel: ``classes`` is the number of labels)."""
    if task in ("multiclass", "multilabel"):
        if classes < 2:
            kind = "classes" if task == "multiclass" else "labels"
            raise ValueError(f"a {task} model needs at least 2 {kind}, got {classes}")
        return classes
    return 1


def check_output(shapes: Sequence[Shape], task: Task, classes: int = 2) -> None:
    """Refuse a last shape that is not the task's outputs (see :func:`outputs_needed`)."""
    need = outputs_needed(task, classes)
    last = shapes[-1]
    if tuple(last) == (need,):
        return
    why = {
        "regression": "the value",
        "binary": "one logit; the recipe adds the sigmoid",
        "multiclass": "one logit per class; the recipe adds the softmax",
        "multilabel": "one logit per label; the recipe adds a sigmoid to each",
    }[task]
    values = "value" if need == 1 else "values"
    flat = "" if len(last) == 1 else "a flatten (or globalpool) block and "
    raise InvalidBlocks(
        f"block {len(shapes)} (the last) outputs {outputs_text(last)}; a {task} model needs "
        f"{need} {values} per example ({why}); end with {flat}a dense block of {need} "
        f"unit{'' if need == 1 else 's'}."
    )


def check_blocks(
    input_shape: Sequence[int],
    blocks: Stack,
    *,
    task: Task,
    classes: int = 2,
    tokens: bool = False,
) -> list[Shape]:
    """Everything :func:`infer_shapes` and :func:`check_output` check, plus: a token input
    (``tokens``) starts with an embedding and only it does, the stack does not end in the
    sigmoid or softmax the recipe adds, and it has at most :data:`MAX_PARAMETERS`."""
    parsed = parse_blocks(blocks)
    first = parsed[0]
    if tokens and not isinstance(first, Embedding):
        raise InvalidBlocks(
            f"block 1 ({first.type}): the input is integer tokens; start with an embedding block."
        )
    if not tokens and isinstance(first, Embedding):
        raise InvalidBlocks(
            "block 1 (embedding): the input is not tokens (it is one-hot, numbers or pixels); "
            "leave the embedding out."
        )
    shapes = infer_shapes(input_shape, parsed)
    last = parsed[-1]
    if isinstance(last, Activation) and last.function in ("sigmoid", "softmax"):
        raise InvalidBlocks(
            f"block {len(parsed)} (activation): the recipe adds the {last.function} to the "
            "network's output itself; leave this block out (the network outputs logits)."
        )
    check_output(shapes, task, classes)
    _check_size(parsed, block_parameters(input_shape, parsed))
    return shapes


def _check_size(parsed: Sequence[Block], counts: Sequence[int]) -> None:
    total = sum(counts)
    if total <= MAX_PARAMETERS:
        return
    biggest = max(range(len(counts)), key=lambda i: counts[i])
    raise InvalidBlocks(
        f"the block stack has {total:,} parameters, over the limit of {MAX_PARAMETERS:,} "
        f"(block {biggest + 1} ({parsed[biggest].type}) alone has {counts[biggest]:,}); use fewer "
        "filters or units, or pool before the dense blocks."
    )
