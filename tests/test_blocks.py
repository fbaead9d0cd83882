"""Blocks: the torch-free block language (workspace) against the torch modules (training).

Every preset's inferred shapes and parameter count are torch's, and each preset *is* its
recipe's network (the same parameter tensors, in order; with the recipe's weights copied in,
the same outputs). The Cuperus preset is written out and checked against the paper's layers.
Random valid stacks (hypothesis): the workspace accepts exactly what torch builds, with torch's
shapes and parameter counts. Each refusal's message is checked word for word. A block stack trains
end to end (through ``TrainOptions``), exports to ONNX and serves what torch predicts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helixserve.errors import InvalidBlocks
from helixserve.inputs.encoding import encode_batch
from helixserve.runtime import Prediction, Predictor
from helixserve.store import ModelStore
from helixserve.training.blocks_torch import (
    FIELDS,
    REQUIRED,
    BlockNet,
    TokenEmbedding,
    build,
    parameters,
)
from helixserve.training.cli_support import TrainOptions, recipe_and_data, run, run_fingerprint
from helixserve.training.data import split
from helixserve.training.nets import UtrCNN
from helixserve.training.publish import train_and_publish
from helixserve.training.recipes import RECIPES, DnaBinary, ImageCNN
from helixserve.training.recipes.torch_base import TorchRecipe
from helixserve.training.zoo import RXRX1_CROP, RXRX1_DEPTH, ZOO
from helixserve.workspace.blocks import (
    BLOCK_TYPES,
    MAX_PARAMETERS,
    block_form_fields,
    check_blocks,
    check_output,
    count_parameters,
    infer_shapes,
    shape_text,
    stack_table,
)
from helixserve.workspace.presets import (
    PRESETS,
    check_recipe_blocks,
    presets,
    recipe_input,
)
from tests.test_training import image_data, motif_data

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "helixserve"
ZOO_PARAMS = {m.name: m.options(Path("unused")).params for m in ZOO if m.name != "rxrx1-celltype"}
CASES: list[tuple[str, dict[str, Any], int]] = [
    ("dna-classify", {"max_length": 100}, 2),
    ("dna-classify", {"max_length": 50, "bins": 4, "kernel": 9}, 3),
    ("dna-classify", {"max_length": 1500, "arch": "global"}, 2),
    ("dna-binary", {"length": 50}, 2),
    ("dna-binary", {"pool": 4, "length": 30}, 2),
    ("dna-binary", {"arch": "lstm", "bidirectional": False, "units": 8, "length": 50}, 2),
    ("dna-binary", {**ZOO_PARAMS["primer-binding"], "length": 50}, 2),
    ("dna-regression", {}, 2),
    ("dna-regression", {"max_length": 30, "flank": 0, "filters": 16, "kernel": 5}, 2),
    ("dna-variable", {"pad_to": 64}, 2),
    ("dna-variable", {"pad_to": 64, "stride": 4, "units": 8, "arch": "bilstm"}, 2),
    ("dna-variable", {"pad_to": 64, "arch": "bilstm"}, 2),
    ("dna-variable", ZOO_PARAMS["amr-resistance"], 2),
    ("image", {"size": 32}, 3),
    ("image", {"size": 32, "channels": 3}, 2),
    ("image", {"size": 64, "crop": 16, "depth": 3, "normalize": "none"}, 4),
    ("image", {"size": 512, "crop": RXRX1_CROP, "depth": RXRX1_DEPTH}, 4),
]
IDS = [f"{recipe}-{i}" for i, (recipe, _, _) in enumerate(CASES)]


def torch_shapes(net: BlockNet, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Each block's output shape as torch produces it (forward hooks)."""
    seen: list[tuple[int, ...]] = []
    hooks = [
        child.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
        for child in net
    ]
    tokens = isinstance(net[0], TokenEmbedding)
    x = torch.ones(2, *input_shape, dtype=torch.int64 if tokens else torch.float32)
    with torch.no_grad():
        net.eval()(x)
    for hook in hooks:
        hook.remove()
    return seen


def dumped(recipe: str, params: dict[str, Any], classes: int) -> list[dict[str, Any]]:
    return [block.model_dump() for block in presets(recipe, params, classes=classes)]


# --- layering --------------------------------------------------------------------------------


def test_the_workspace_blocks_import_neither_torch_nor_training() -> None:
    for path in (PACKAGE / "workspace").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith(("helixserve.training", "torch"))], path
    code = (
        "import sys, helixserve.workspace.blocks, helixserve.workspace.presets; "
        "print(sorted(m for m in ('torch', 'helixserve.training') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- presets ---------------------------------------------------------------------------------


def test_every_neural_recipe_has_a_preset() -> None:
    neural = sorted(name for name, cls in RECIPES.items() if issubclass(cls, TorchRecipe))
    assert sorted(PRESETS) == neural


@pytest.mark.parametrize(("recipe", "params", "classes"), CASES, ids=IDS)
def test_preset_shapes_and_parameters_are_torchs(
    recipe: str, params: dict[str, Any], classes: int
) -> None:
    blocks = dumped(recipe, params, classes)
    shape = recipe_input(recipe, params)
    net = build(blocks, shape)
    inferred = check_recipe_blocks(recipe, params, blocks, classes=classes)
    assert inferred == infer_shapes(shape, blocks) == net.shapes == torch_shapes(net, shape)
    assert count_parameters(shape, blocks) == parameters(net)


@pytest.mark.parametrize(("recipe", "params", "classes"), CASES, ids=IDS)
def test_preset_is_the_recipes_network(recipe: str, params: dict[str, Any], classes: int) -> None:
    """Same parameter tensors in the same order; with the recipe's weights, the same outputs
    (on inputs without padding: the recipe's own dna-variable networks mask padding)."""
    own = RECIPES[recipe](**params)
    assert isinstance(own, TorchRecipe)
    torch.manual_seed(0)
    theirs = own.build(classes).eval()
    ours = build(dumped(recipe, params, classes), recipe_input(recipe, params)).eval()
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    with torch.no_grad():
        for mine, given_ in zip(ours.parameters(), theirs.parameters(), strict=True):
            mine.copy_(given_)
    shape = recipe_input(recipe, params)
    generator = torch.Generator().manual_seed(1)
    if recipe == "dna-variable":
        x = torch.randint(1, 6, (3, *shape), generator=generator)
    else:
        x = torch.rand(3, *shape, generator=generator)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


YEAST = [
    *[
        {"type": "conv1d", "filters": 128, "kernel": 13, "stride": 1, "padding": 0},
        {"type": "activation", "function": "relu"},
        {"type": "dropout", "rate": 0.15},
    ]
    * 3,
    {"type": "flatten"},
    {"type": "dense", "units": 64},
    {"type": "activation", "function": "relu"},
    {"type": "dropout", "rate": 0.15},
    {"type": "dense", "units": 1},
]
YEAST_SHAPES = [
    *["128 x 58"] * 3,
    *["128 x 46"] * 3,
    *["128 x 34"] * 3,
    "4352",
    "64",
    "64",
    "64",
    "1",
]


def test_the_cuperus_preset_is_the_papers_cnn() -> None:
    """Cuperus et al. 2017 (the zoo's yeast-utr): one-hot 4 x 70 (50 nt, 10-position flanks),
    3 x (conv 128 x 13, ReLU, dropout 0.15), dense 64 + ReLU, dropout, linear output."""
    params = ZOO_PARAMS["yeast-utr"]
    blocks = dumped("dna-regression", params, 2)
    assert blocks == YEAST
    shape = recipe_input("dna-regression", params)
    assert shape == (4, 70)
    assert [shape_text(s) for s in infer_shapes(shape, blocks)] == YEAST_SHAPES
    expected = sum(p.numel() for p in UtrCNN().parameters())
    assert count_parameters(shape, blocks) == parameters(build(blocks, shape)) == expected
    assert expected == 711_681


def test_the_docs_show_the_cuperus_preset_as_the_code_prints_it() -> None:
    table = stack_table(recipe_input("dna-regression"), presets("dna-regression"))
    assert table.splitlines()[-1].endswith("711,681")
    assert f"```text\n{table}\n```" in (PACKAGE.parents[1] / "docs" / "training.md").read_text()


def test_tabular_and_unknown_recipes_have_no_preset() -> None:
    for recipe in ("tabular", "gru"):
        with pytest.raises(InvalidBlocks) as info:
            presets(recipe)
        assert str(info.value) == (
            f"the {recipe} recipe takes no block stack (only the neural recipes do: "
            "dna-classify, dna-binary, dna-regression, dna-variable, image)."
        )


# --- the two sides agree ---------------------------------------------------------------------


def test_training_reads_the_fields_the_workspace_declares() -> None:
    assert list(FIELDS) == list(BLOCK_TYPES)
    for kind, cls in BLOCK_TYPES.items():
        declared = {
            name: REQUIRED if info.is_required() else info.default
            for name, info in cls.model_fields.items()
            if name != "type"
        }
        assert FIELDS[kind] == declared, kind


def test_form_fields_give_types_ranges_choices_and_help() -> None:
    form = block_form_fields()
    assert list(form) == list(BLOCK_TYPES)
    assert form["conv1d"]["help"] == "Filters slid along a sequence: (C, L) -> (filters, L')."
    assert form["conv1d"]["fields"][0] == {
        "name": "filters",
        "type": "int",
        "required": True,
        "default": None,
        "choices": None,
        "range": [1, 4096],
        "help": "Filters (output channels).",
    }
    assert form["maxpool"]["fields"][1]["type"] == "int | None"
    assert form["activation"]["fields"][0]["choices"] == [
        "relu",
        "gelu",
        "tanh",
        "sigmoid",
        "softmax",
    ]
    assert form["dropout"]["fields"][0]["range"] == [0, 0.99]
    assert form["lstm"]["fields"][2]["type"] == "bool"
    assert form["flatten"]["fields"] == []
    assert all(f["help"] for spec in form.values() for f in spec["fields"])


# --- hypothesis: random stacks ---------------------------------------------------------------

SMALL = st.integers(1, 4)


def _block(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A block of ``kind`` with small, valid field values (some left to their defaults)."""
    fields: dict[str, dict[str, Any]] = {
        "embedding": {"dim": draw(SMALL), "tokens": draw(st.integers(2, 7))},
        "conv1d": {
            "filters": draw(SMALL),
            "kernel": draw(SMALL),
            "stride": draw(st.integers(1, 3)),
        },
        "conv2d": {
            "filters": draw(SMALL),
            "kernel": draw(SMALL),
            "padding": draw(st.integers(0, 2)),
        },
        "maxpool": {"size": draw(st.integers(1, 3)), "stride": draw(st.none() | st.integers(1, 3))},
        "avgpool": {"size": draw(st.integers(1, 3))},
        "globalpool": {"op": draw(st.sampled_from(["max", "avg"]))},
        "dropout": {"rate": draw(st.floats(0, 0.99))},
        "dense": {"units": draw(SMALL)},
        "lstm": {"units": draw(SMALL), "layers": draw(st.integers(1, 2)), "bidirectional": True},
        "activation": {
            "function": draw(st.sampled_from(["relu", "gelu", "tanh", "sigmoid", "softmax"]))
        },
    }
    return {"type": kind, **fields.get(kind, {})}


@st.composite
def stacks(draw: st.DrawFn) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    dims = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(dims))
    kinds = st.sampled_from(list(BLOCK_TYPES))
    blocks = [_block(draw, draw(kinds)) for _ in range(draw(st.integers(1, 6)))]
    if dims == 1 and draw(st.booleans()):
        blocks[0] = _block(draw, "embedding")  # a token input
    return shape, blocks


@settings(max_examples=300, deadline=None)
@given(stacks())
def test_random_stacks_infer_torchs_shapes(
    case: tuple[tuple[int, ...], list[dict[str, Any]]],
) -> None:
    """The workspace accepts a stack exactly when torch builds it, with torch's shapes."""
    shape, blocks = case
    try:
        inferred = infer_shapes(shape, blocks)
    except InvalidBlocks:
        inferred = None
    try:
        net = build(blocks, shape)
    except InvalidBlocks:
        assert inferred is None, (shape, blocks)
        return
    assert inferred == net.shapes == torch_shapes(net, shape), (shape, blocks)
    assert count_parameters(shape, blocks) == parameters(net)


# --- refusals, word for word -----------------------------------------------------------------

CONV = {"type": "conv1d", "filters": 128, "kernel": 13}
RELU = {"type": "activation", "function": "relu"}
REFUSED: list[tuple[tuple[int, ...], Any, str]] = [
    (
        (4, 50),
        [CONV, RELU, {"type": "dense", "units": 1}],
        "block 3 (dense): needs a flat input (1 dimension), got 128 x 38; add a flatten block "
        "before it.",
    ),
    (
        (4, 20),
        [CONV, {**CONV, "filters": 8}],
        "block 2 (conv1d): kernel 13 is longer than the input (8).",
    ),
    (
        (4, 20),
        [CONV, {**CONV, "padding": 1}],
        "block 2 (conv1d): kernel 13 is longer than the input (8, padded to 10).",
    ),
    (
        (1, 8, 3),
        [{"type": "conv2d", "filters": 2, "kernel": 4}],
        "block 1 (conv2d): kernel 4 is longer than the input (3).",
    ),
    (
        (4, 3),
        [{"type": "maxpool", "size": 4}],
        "block 1 (maxpool): pool size 4 is longer than the input (3).",
    ),
    (
        (4, 50),
        [],
        "the block stack is empty; add blocks, ending with a dense block of as many units as the "
        "model has outputs.",
    ),
    ((4, 50), {"type": "dense"}, "a block stack is a list of blocks, got dict."),
    ((4, 50), [RELU, "dense"], "block 2: must be an object with a 'type', got 'dense'."),
    (
        (4, 50),
        [{"units": 1}],
        "block 1: no 'type'; give one of embedding, conv1d, conv2d, maxpool, avgpool, globalpool, "
        "dropout, flatten, dense, lstm, activation, batchnorm, standardize.",
    ),
    (
        (4, 50),
        [{"type": "conv3d"}],
        "block 1: unknown type 'conv3d'; the types are embedding, conv1d, conv2d, maxpool, "
        "avgpool, globalpool, dropout, flatten, dense, lstm, activation, batchnorm, standardize.",
    ),
    (
        (4, 50),
        [{**CONV, "kernal": 3}],
        "block 1 (conv1d): no field 'kernal'; its fields are filters, kernel, stride, padding.",
    ),
    (
        (4, 50),
        [{"type": "flatten", "size": 3}],
        "block 1 (flatten): no field 'size'; it has no fields.",
    ),
    (
        (4, 50),
        [{"type": "conv1d", "kernel": 13}],
        "block 1 (conv1d): 'filters' is missing; give an int in the range [1, 4096].",
    ),
    (
        (4, 50),
        [{**CONV, "kernel": 0}],
        "block 1 (conv1d): 'kernel' must be an int in the range [1, 1024]; got 0.",
    ),
    (
        (4, 50),
        [{**CONV, "kernel": "13"}],
        "block 1 (conv1d): 'kernel' must be an int in the range [1, 1024]; got '13'.",
    ),
    (
        (4, 50),
        [{**CONV, "kernel": 13.0}],
        "block 1 (conv1d): 'kernel' must be an int in the range [1, 1024]; got 13.0.",
    ),
    (
        (4, 50),
        [{"type": "dropout", "rate": 1.5}],
        "block 1 (dropout): 'rate' must be a number in the range [0, 0.99]; got 1.5.",
    ),
    (
        (4, 50),
        [{"type": "activation", "function": "swish"}],
        "block 1 (activation): 'function' must be one of 'relu', 'gelu', 'tanh', 'sigmoid', "
        "'softmax'; got 'swish'.",
    ),
    (
        (4, 50),
        [{"type": "maxpool", "size": 2, "stride": 0}],
        "block 1 (maxpool): 'stride' must be an int in the range [1, 1024] or null; got 0.",
    ),
    (
        (4, 50),
        [{"type": "lstm", "units": 4, "bidirectional": "yes"}],
        "block 1 (lstm): 'bidirectional' must be true or false; got 'yes'.",
    ),
    (
        (4, 50),
        [CONV, {"type": "embedding", "dim": 4}],
        "block 2 (embedding): an embedding reads the integer tokens of the input, so it must be "
        "the first block.",
    ),
    (
        (4, 50),
        [{"type": "embedding", "dim": 4}],
        "block 1 (embedding): needs a token input (1 dimension), got 4 x 50; an embedding reads "
        "the integer tokens of the input.",
    ),
    (
        (50,),
        [CONV],
        "block 1 (conv1d): needs a (channels x length) input (2 dimensions), got 50; add an "
        "embedding block before it.",
    ),
    (
        (3, 8, 8),
        [CONV],
        "block 1 (conv1d): needs a (channels x length) input (2 dimensions), got 3 x 8 x 8; use "
        "conv2d on images.",
    ),
    (
        (4, 50),
        [{"type": "conv2d", "filters": 2, "kernel": 3}],
        "block 1 (conv2d): needs a (channels x height x width) input (3 dimensions), got 4 x 50; "
        "use conv1d on sequences.",
    ),
    (
        (50,),
        [{"type": "maxpool", "size": 2}],
        "block 1 (maxpool): needs a (channels x length) or (channels x height x width) input, got "
        "50.",
    ),
    (
        (4, 50),
        [{"type": "flatten"}, {"type": "globalpool"}],
        "block 2 (globalpool): needs positions to pool over, got 200 (already flat).",
    ),
    (
        (4, 50),
        [{"type": "flatten"}, {"type": "lstm", "units": 4}],
        "block 2 (lstm): needs a (channels x length) input (2 dimensions), got 200.",
    ),
    (
        (4, 0),
        [RELU],
        "the input shape must be 1 to 3 positive sizes (features or tokens; channels x length; "
        "channels x height x width), got (4, 0).",
    ),
]


@pytest.mark.parametrize(("shape", "blocks", "message"), REFUSED, ids=range(len(REFUSED)))
def test_infer_shapes_refusals(shape: tuple[int, ...], blocks: Any, message: str) -> None:
    with pytest.raises(InvalidBlocks) as info:
        infer_shapes(shape, blocks)
    assert str(info.value) == message


FLAT = [{"type": "flatten"}]
CHECKED: list[tuple[dict[str, Any], list[Any], str]] = [
    (
        {"task": "regression"},
        [*FLAT, {"type": "dense", "units": 64}],
        "block 2 (the last) outputs 64 values; a regression model needs 1 value per example (the "
        "value); end with a dense block of 1 unit.",
    ),
    (
        {"task": "multiclass", "classes": 3},
        [*FLAT, {"type": "dense", "units": 1}],
        "block 2 (the last) outputs 1 value; a multiclass model needs 3 values per example (one "
        "logit per class; the recipe adds the softmax); end with a dense block of 3 units.",
    ),
    (
        {"task": "binary"},
        [CONV],
        "block 1 (the last) outputs 128 x 38; a binary model needs 1 value per example (one "
        "logit; the recipe adds the sigmoid); end with a flatten (or globalpool) block and a "
        "dense block of 1 unit.",
    ),
    (
        {"task": "binary"},
        [*FLAT, {"type": "dense", "units": 1}, {"type": "activation", "function": "sigmoid"}],
        "block 3 (activation): the recipe adds the sigmoid to the network's output itself; leave "
        "this block out (the network outputs logits).",
    ),
    (
        {"task": "binary", "tokens": True},
        [CONV],
        "block 1 (conv1d): the input is integer tokens; start with an embedding block.",
    ),
    (
        {"task": "binary"},
        [{"type": "embedding", "dim": 2}],
        "block 1 (embedding): the input is not tokens (it is one-hot, numbers or pixels); leave "
        "the embedding out.",
    ),
    (
        {"task": "regression"},
        [
            {**CONV, "filters": 4096, "kernel": 1},
            *FLAT,
            {"type": "dense", "units": 1000},
            {"type": "dense", "units": 1},
        ],
        f"the block stack has 204,822,481 parameters, over the limit of {MAX_PARAMETERS:,} (block "
        "3 (dense) alone has 204,801,000); use fewer filters or units, or pool before the dense "
        "blocks.",
    ),
]


@pytest.mark.parametrize(("options", "blocks", "message"), CHECKED, ids=range(len(CHECKED)))
def test_check_blocks_refusals(options: dict[str, Any], blocks: list[Any], message: str) -> None:
    with pytest.raises(InvalidBlocks) as info:
        check_blocks((4, 50), blocks, **options)
    assert str(info.value) == message


def test_check_output_takes_the_tasks_outputs() -> None:
    check_output([(4, 50), (1,)], "regression")
    check_output([(3,)], "multiclass", 3)
    check_output([(2,)], "multiclass", 2)  # the image recipe: one output per class, two too
    with pytest.raises(ValueError, match="at least 2 classes"):
        check_output([(1,)], "multiclass", 1)


TORCH_REFUSED: list[tuple[tuple[int, ...], list[Any], str]] = [
    (
        (4, 50),
        [CONV, RELU, {"type": "dense", "units": 1}],
        "block 3 (dense): needs a flat input (1 dimension), got 128 x 38; add a flatten block "
        "before it.",
    ),
    (
        (4, 50),
        [{"type": "gru"}],
        "block 1: unknown type 'gru'; the types are embedding, conv1d, conv2d, maxpool, avgpool, "
        "globalpool, dropout, flatten, dense, lstm, activation, batchnorm, standardize.",
    ),
    (
        (4, 50),
        [{**CONV, "kernal": 3}],
        "block 1 (conv1d): no field 'kernal'; its fields are filters, kernel, stride, padding.",
    ),
    ((4, 50), [{"type": "dense"}], "block 1 (dense): 'units' is missing."),
    (
        (4, 50),
        [CONV, {"type": "embedding", "dim": 4}],
        "block 2 (embedding): an embedding reads the integer tokens of the input, so it must be "
        "the first block.",
    ),
    ((4, 50), [], "the block stack is empty; add blocks."),
]


@pytest.mark.parametrize(
    ("shape", "blocks", "message"), TORCH_REFUSED, ids=range(len(TORCH_REFUSED))
)
def test_build_refusals(shape: tuple[int, ...], blocks: list[Any], message: str) -> None:
    with pytest.raises(InvalidBlocks) as info:
        build(blocks, shape)
    assert str(info.value) == message


def test_build_passes_on_what_torch_refuses() -> None:
    with pytest.raises(
        InvalidBlocks, match=r"^block 2 \(conv1d\): torch cannot apply it to 128 x 8: "
    ):
        build([CONV, {**CONV, "kernel": 13}], (4, 20))


def test_recipes_refuse_stacks_they_cannot_train() -> None:
    binary = DnaBinary(length=20)
    with pytest.raises(InvalidBlocks) as info:
        binary.use_blocks([*FLAT, {"type": "dense", "units": 2}])
    assert str(info.value) == (
        "block 2 (the last) outputs 2 values; the dna-binary recipe needs 1 value per example; "
        "end with a dense block of 1 unit."
    )
    options = TrainOptions(
        recipe="tabular",
        data=Path("not-read.csv"),
        name="m",
        target="class",
        features=["a"],
        blocks=[RELU],
    )
    with pytest.raises(InvalidBlocks) as info:
        recipe_and_data(options)
    assert str(info.value) == (
        "the tabular recipe takes no block stack (it trains no neural network); leave the blocks "
        "out, or choose a neural recipe."
    )


# --- end to end ------------------------------------------------------------------------------

SMALL_CNN: list[dict[str, Any]] = [
    {"type": "conv1d", "filters": 8, "kernel": 6},
    {"type": "batchnorm"},
    {"type": "activation", "function": "gelu"},
    {"type": "globalpool", "op": "max"},
    {"type": "dense", "units": 1},
]


def test_a_block_stack_trains_exports_and_serves_what_torch_predicts(tmp_path: Path) -> None:
    data = motif_data(120)
    path = tmp_path / "t.csv"
    path.write_text(
        "sequence,label\n"
        + "".join(f"{s},{t}\n" for s, t in zip(data.inputs, data.targets, strict=True))
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    options = TrainOptions(
        recipe="dna-binary",
        data=path,
        name="blocks",
        target="label",
        params={"length": 20, "epochs": 2},
        blocks=SMALL_CNN,
        work_dir=tmp_path / "work",
    )
    check_recipe_blocks("dna-binary", options.params, SMALL_CNN)  # what the web app checks
    outcome = run(options, store)
    assert outcome.parity <= 1e-4
    bundle = store.pull("blocks")
    assert '"blocks": [' in (bundle.path / "recipe.json").read_text()
    assert (
        "network: the block stack conv1d(filters=8, kernel=6)"
        in (bundle.path / "card.md").read_text()
    )
    recipe, _ = recipe_and_data(options)  # the blocks reach the recipe
    assert isinstance(recipe, DnaBinary) and recipe.blocks == SMALL_CNN
    with np.load(bundle.path / "weights.npz") as arrays:
        state = {k: torch.as_tensor(arrays[k]) for k in arrays.files if not k.startswith("__")}
    recipe.model = recipe.network(2)
    recipe.model.load_state_dict(state)
    sequences = [str(s) for s in data.inputs[:16]]
    native = recipe.predict_proba(encode_batch(sequences, recipe.input_schema()))[:, 1]
    results = Predictor.from_store(store, "blocks").predict(sequences)
    served = [
        r.probabilities["1"] for r in results if isinstance(r, Prediction) and r.probabilities
    ]
    assert np.allclose(native, np.array(served), atol=1e-5)
    assert run_fingerprint(options, data)["options"]["blocks"] == SMALL_CNN
    plain = TrainOptions(**{**options.__dict__, "blocks": None})
    assert "blocks" not in run_fingerprint(plain, data)["options"]  # fingerprints kept as they were


def test_image_crops_with_a_block_stack_are_tiled_in_the_export(tmp_path: Path) -> None:
    recipe = ImageCNN(size=16, crop=8, epochs=1, crops_per_image=2, augment=False)
    recipe.use_blocks(
        [
            {"type": "standardize"},
            {"type": "conv2d", "filters": 4, "kernel": 3, "padding": 1},
            {"type": "activation", "function": "relu"},
            {"type": "globalpool", "op": "avg"},
            {"type": "dense", "units": 3},
        ]
    )
    data = image_data(30)
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    parts = split(data, task="multiclass", seed=1)
    outcome = train_and_publish(
        recipe, data, parts, store, name="cells", description="test", seed=1
    )
    assert outcome.parity <= 1e-4
    assert type(recipe.model).__name__ == "Tiled"
    assert store.manifest("cells").input.width == 16  # type: ignore[union-attr]
