"""Each neural recipe's architecture as a block stack (the starting point of a block experiment).

Contract: :func:`presets` gives the block stack a recipe's own network has for its
hyper-parameters (``params``, by the recipe's declared names; missing ones take the defaults
declared in :mod:`helixserve.params.recipes`); the stack has the same layers, in
the same order, with the same parameter count as the recipe's torch module. :func:`recipe_input`
gives the input shape the recipe feeds its network, :func:`recipe_task` the task its output is
checked for, and :func:`check_recipe_blocks` checks a stack for a recipe (input, tokens, output,
size: :func:`~helixserve.workspace.blocks.check_blocks`). Recipes without a network (``tabular``)
and unknown names raise :class:`~helixserve.errors.InvalidBlocks`.

The DNA classifiers take their input length from the data unless a parameter sets it
(``dna-classify``: ``max_length``; ``dna-binary``: ``length``; ``dna-variable``: ``pad_to``):
:func:`recipe_input` and the functions that use it then take ``length``, the longest sequence
of the data (a dataset's profile knows it); without it, a stack is shown and checked for
:data:`NOMINAL_LENGTH` (the recipe checks it again once the data have decided the length). The
``dna-classify`` preset is its ``positional`` network for ``arch="auto"`` (the choice is made
while training).

Two networks do more than a stack says, in their forward pass (no parameters): ``dna-variable``
masks the padding positions before its max-pool (a block stack pools over them too), and
``image`` with ``crop`` classifies a served image as the mean of a grid of crops (the recipe
wraps a block stack the same way, so the stack itself sees crops).

The ``dna-regression`` preset is the Cuperus et al. 2017 CNN: on one-hot ``4 x 70`` (50 nt and
10-position flanks), three times conv1d 128 x 13 + ReLU + dropout 0.15, flatten, dense 64 + ReLU,
dropout, dense 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from helixserve.errors import InvalidBlocks
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED, DnaClassifyParams
from helixserve.workspace.blocks import Block, Shape, Task, check_blocks, parse_blocks

Spec = dict[str, Any]

TASKS: dict[str, Task] = {
    "dna-classify": "binary",  # two classes; multiclass with more (see recipe_task)
    "dna-binary": "binary",
    "dna-regression": "regression",
    "dna-variable": "binary",
    "image": "multiclass",  # one output per class, two classes included
}
TOKEN_RECIPES = frozenset({"dna-variable"})
RELU: Spec = {"type": "activation", "function": "relu"}
FLATTEN: Spec = {"type": "flatten"}
GLOBAL_MAX: Spec = {"type": "globalpool", "op": "max"}


def _conv(kind: str, filters: int, kernel: int, **more: int) -> Spec:
    return {"type": kind, "filters": filters, "kernel": kernel, **more}


def _dense(units: int) -> Spec:
    return {"type": "dense", "units": units}


def _dropout(rate: float) -> Spec:
    return {"type": "dropout", "rate": rate}


def _dna_classify(p: Mapping[str, Any], classes: int) -> list[Spec]:
    """MotifCNN: conv (padded), ReLU, max-pool (windows, or global), flatten, dropout, dense,
    ReLU, dense (one logit for two classes, else one per class)."""
    declared = DnaClassifyParams.build({k: v for k, v in p.items() if not k.startswith("__")})
    padding, window = declared.layout(p["__length__"], _arch(p))
    pool: Spec = {"type": "maxpool", "size": window} if window else GLOBAL_MAX
    return [
        _conv("conv1d", p["filters"], p["kernel"], padding=padding),
        RELU,
        pool,
        FLATTEN,
        _dropout(p["dropout"]),
        _dense(p["hidden"]),
        RELU,
        _dense(1 if classes == 2 else classes),
    ]


def _arch(p: Mapping[str, Any]) -> str:
    return "positional" if p["arch"] == "auto" else str(p["arch"])


def _dna_binary(p: Mapping[str, Any], classes: int) -> list[Spec]:
    """DnaCNN (conv, ReLU, pool, dense, ReLU, dense) or DnaLSTM (LSTM, max, dense)."""
    if p["arch"] == "lstm":
        return [
            {"type": "lstm", "units": p["units"], "bidirectional": p["bidirectional"]},
            GLOBAL_MAX,
            _dropout(p["dropout"]),
            _dense(1),
        ]
    pool = {"type": "maxpool", "size": p["pool"]} if p["pool"] else GLOBAL_MAX
    return [
        _conv("conv1d", p["filters"], p["kernel"]),
        RELU,
        pool,
        FLATTEN,
        _dropout(p["dropout"]),
        _dense(p["hidden"]),
        RELU,
        _dense(1),
    ]


def _dna_regression(p: Mapping[str, Any], classes: int) -> list[Spec]:
    """UtrCNN, the Cuperus et al. 2017 CNN (see the module)."""
    convs = [_conv("conv1d", p["filters"], p["kernel"]), RELU, _dropout(p["dropout"])]
    return [*convs * 3, FLATTEN, _dense(p["dense"]), RELU, _dropout(p["dropout"]), _dense(1)]


def _dna_variable(p: Mapping[str, Any], classes: int) -> list[Spec]:
    """GeneBiLSTM (embedding, [k-mer stem], 2 x BiLSTM, max) or GeneCNN (embedding, conv, max)."""
    stack: list[Spec] = [{"type": "embedding", "dim": p["embed"], "tokens": 6}]
    if p["arch"] == "cnn":
        stack += [_conv("conv1d", p["filters"], p["kernel"]), RELU]
    else:
        stride = p["stride"]
        stack += [_conv("conv1d", 32, stride, stride=stride), RELU] if stride > 1 else []
        stack += [{"type": "lstm", "units": p["units"], "layers": 2, "bidirectional": True}]
    return [*stack, GLOBAL_MAX, _dropout(p["dropout"]), _dense(1)]


def _image(p: Mapping[str, Any], classes: int) -> list[Spec]:
    """SmallImageCNN (whole image) or TiledImageCNN's crop classifier (``crop``)."""
    widths = [32, 64, 64, 64][: p["depth"]] if p["crop"] else [32, 64]
    stack: list[Spec] = [] if p["crop"] and p["normalize"] == "none" else [{"type": "standardize"}]
    for width in widths:
        stack += [_conv("conv2d", width, 3, padding=1), RELU, {"type": "maxpool", "size": 2}]
    stack += [{"type": "globalpool", "op": "avg"}] if p["crop"] else [FLATTEN]
    return [*stack, _dropout(p["dropout"]), _dense(128), RELU, _dense(classes)]


PRESETS: dict[str, Callable[[Mapping[str, Any], int], list[Spec]]] = {
    "dna-classify": _dna_classify,
    "dna-binary": _dna_binary,
    "dna-regression": _dna_regression,
    "dna-variable": _dna_variable,
    "image": _image,
}


# the parameter that sets the input length of the recipes whose data decide it otherwise
DATA_LENGTH = {"dna-classify": "max_length", "dna-binary": "length", "dna-variable": "pad_to"}
# the length a stack is shown for while neither the parameter nor the data say it
NOMINAL_LENGTH = {"dna-classify": 50, "dna-binary": 50, "dna-variable": 1024}


def _values(
    recipe: str, params: Mapping[str, Any] | None, length: int | None = None
) -> dict[str, Any]:
    if recipe not in PRESETS:
        raise InvalidBlocks(
            f"the {recipe} recipe takes no block stack (only the neural recipes do: "
            f"{', '.join(PRESETS)})."
        )
    defaults = {p.name: p.default for p in declarations(DECLARED[recipe])}
    values = {**defaults, **(params or {})}
    if recipe in DATA_LENGTH:
        values["__length__"] = _length(recipe, values, length)
    return values


def _length(recipe: str, values: Mapping[str, Any], length: int | None) -> int:
    """The input length: the parameter's, else the data's longest (``length``), else the
    nominal one."""
    name = DATA_LENGTH[recipe]
    given = int(values[name]) or length or NOMINAL_LENGTH[recipe]
    if recipe == "dna-variable" and not values[name]:
        stride = int(values["stride"])
        return -(-given // stride) * stride  # what the recipe pads to
    return given


def presets(
    recipe: str,
    params: Mapping[str, Any] | None = None,
    *,
    classes: int = 2,
    length: int | None = None,
) -> list[Block]:
    """The block stack of ``recipe``'s network for ``params`` (others: the defaults);
    ``classes``: the outputs of the ``image`` and ``dna-classify`` recipes (one per class, or
    one logit for two); ``length``: the data's longest sequence (see the module contract)."""
    values = _values(recipe, params, length)
    return parse_blocks(PRESETS[recipe](values, classes))


def recipe_input(
    recipe: str, params: Mapping[str, Any] | None = None, *, length: int | None = None
) -> Shape:
    """The shape of one input of ``recipe``'s network: one-hot ``(4, L)``, tokens ``(L,)``,
    images ``(C, side, side)`` (with ``crop``, the crop's side: the network sees crops);
    ``length``: the data's longest sequence (see the module contract)."""
    p = _values(recipe, params, length)
    if recipe in ("dna-classify", "dna-binary"):
        return (4, p["__length__"])
    if recipe == "dna-regression":
        return (4, p["max_length"] + 2 * p["flank"])
    if recipe == "dna-variable":
        return (p["__length__"],)
    side = p["crop"] or p["size"]
    return (p["channels"], side, side)


def recipe_task(recipe: str, classes: int = 2, multilabel: bool = False) -> Task:
    """The task a recipe's network output is checked for (``image``: multiclass, always;
    ``dna-classify``: multilabel for several label columns, binary for two classes, else
    multiclass)."""
    if recipe not in PRESETS:
        _values(recipe, None)  # refuses it
    if recipe == "dna-classify" and multilabel:
        return "multilabel"
    if recipe == "dna-classify" and classes > 2:
        return "multiclass"
    return TASKS[recipe]


def check_recipe_blocks(
    recipe: str,
    params: Mapping[str, Any] | None,
    blocks: Sequence[Block | Mapping[str, Any]],
    *,
    classes: int = 2,
    length: int | None = None,
    multilabel: bool = False,
) -> list[Shape]:
    """Each block's output shape when ``blocks`` replace ``recipe``'s network (see
    :func:`~helixserve.workspace.blocks.check_blocks`; ``multilabel``: ``classes`` labels)."""
    return check_blocks(
        recipe_input(recipe, params, length=length),
        blocks,
        task=recipe_task(recipe, classes, multilabel),
        classes=classes,
        tokens=recipe in TOKEN_RECIPES,
    )
