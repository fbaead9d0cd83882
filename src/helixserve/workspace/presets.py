"""Each neural recipe's architecture as a block stack (the starting point of a block experiment).

Contract: :func:`presets` gives the block stack a recipe's own network has for its
hyper-parameters (``params``, by the recipe's declared names; missing ones take the defaults
declared in :mod:`helixserve.params.recipes`); the stack has the same layers, in
the same order, with the same parameter count as the recipe's torch module. :func:`recipe_input`
gives the input shape the recipe feeds its network, :func:`recipe_task` the task its output is
checked for, and :func:`check_recipe_blocks` checks a stack for a recipe (input, tokens, output,
size: :func:`~helixserve.workspace.blocks.check_blocks`). Recipes without a network (``tabular``)
and unknown names raise :class:`~helixserve.errors.InvalidBlocks`.

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
from helixserve.params.recipes import DECLARED
from helixserve.workspace.blocks import Block, Shape, Task, check_blocks, parse_blocks

Spec = dict[str, Any]

TASKS: dict[str, Task] = {
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


def _dna_binary(p: Mapping[str, Any], classes: int) -> list[Spec]:
    """DnaCNN (conv, ReLU, pool, dense, ReLU, dense) or DnaLSTM (LSTM, max, dense)."""
    if p["arch"] == "lstm":
        return [
            {"type": "lstm", "units": p["units"], "bidirectional": p["bidirectional"]},
            GLOBAL_MAX,
            _dropout(p["dropout"]),
            _dense(1),
        ]
    pool: Spec = {"type": "maxpool", "size": p["pool"]} if p["pool"] else GLOBAL_MAX
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
    "dna-binary": _dna_binary,
    "dna-regression": _dna_regression,
    "dna-variable": _dna_variable,
    "image": _image,
}


def _values(recipe: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    if recipe not in PRESETS:
        raise InvalidBlocks(
            f"the {recipe} recipe takes no block stack (only the neural recipes do: "
            f"{', '.join(PRESETS)})."
        )
    defaults = {p.name: p.default for p in declarations(DECLARED[recipe])}
    return {**defaults, **(params or {})}


def presets(
    recipe: str, params: Mapping[str, Any] | None = None, *, classes: int = 2
) -> list[Block]:
    """The block stack of ``recipe``'s network for ``params`` (others: the defaults);
    ``classes``: the outputs of the ``image`` recipe (one per class)."""
    values = _values(recipe, params)
    return parse_blocks(PRESETS[recipe](values, classes))


def recipe_input(recipe: str, params: Mapping[str, Any] | None = None) -> Shape:
    """The shape of one input of ``recipe``'s network: one-hot ``(4, L)``, tokens ``(L,)``,
    images ``(C, side, side)`` (with ``crop``, the crop's side: the network sees crops)."""
    p = _values(recipe, params)
    if recipe == "dna-binary":
        return (4, p["length"])
    if recipe == "dna-regression":
        return (4, p["max_length"] + 2 * p["flank"])
    if recipe == "dna-variable":
        return (p["pad_to"],)
    side = p["crop"] or p["size"]
    return (p["channels"], side, side)


def recipe_task(recipe: str) -> Task:
    """The task a recipe's network output is checked for (``image``: multiclass, always)."""
    _values(recipe, None)
    return TASKS[recipe]


def check_recipe_blocks(
    recipe: str,
    params: Mapping[str, Any] | None,
    blocks: Sequence[Block | Mapping[str, Any]],
    *,
    classes: int = 2,
) -> list[Shape]:
    """Each block's output shape when ``blocks`` replace ``recipe``'s network (see
    :func:`~helixserve.workspace.blocks.check_blocks`)."""
    return check_blocks(
        recipe_input(recipe, params),
        blocks,
        task=recipe_task(recipe),
        classes=classes,
        tokens=recipe in TOKEN_RECIPES,
    )
