"""Declared hyper-parameters: every recipe's every parameter refuses a bad value in the one
message format; unknown names, ``get_params``/``set_params``, the declarations as plain data,
``--param NAME=VALUE`` and the zoo's options mapping onto the shipped models' values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

import helixserve
from helixserve.cli.app import app
from helixserve.errors import HelixError
from helixserve.params.declare import InvalidParameter, Param, declarations
from helixserve.params.recipes import DECLARED, RECIPE_NAMES, parse_params
from helixserve.training import zoo
from helixserve.training.recipes import RECIPES, DnaBinary, ImageCNN, Recipe, TabularForest
from helixserve.training.search import SPACES
from helixserve.training.train_options import TrainOptions, checked_params, shortcut_params
from tests.test_cli_help import run_cli
from tests.test_training import FEATURES

ZOO_STORE = Path(helixserve.__file__).parent / "zoo" / "store"


def make(name: str, **params: Any) -> Recipe:
    """A registered recipe built with ``params`` (the tabular recipe also needs features)."""
    if RECIPES[name] is TabularForest:
        return TabularForest(FEATURES, **params)
    return RECIPES[name](**params)


def bad_value(declared: Param) -> object:
    """A value the declaration refuses: below its range, outside its choices, against its rule."""
    spec = declared.spec
    if "bool" in declared.kinds:
        return "yes"
    if spec.low is not None:
        return spec.low if spec.open_low else spec.low - 1
    if spec.choices:
        return 99 if isinstance(spec.choices[0], int) else "no-such-choice"
    if spec.rule is not None:
        return "0=0"
    raise AssertionError(f"{declared.recipe} {declared.name}: no bad value to try")


EVERY_PARAMETER = [
    pytest.param(name, declared, id=f"{name}-{declared.name}")
    for name, recipe in RECIPES.items()
    for declared in recipe.declared()
]


@pytest.mark.parametrize(("name", "declared"), EVERY_PARAMETER)
def test_every_declared_parameter_refuses_a_bad_value(name: str, declared: Param) -> None:
    bad = bad_value(declared)
    with pytest.raises(InvalidParameter) as info:
        make(name, **{declared.name: bad})
    assert str(info.value) == (
        f"The {declared.name!r} parameter of {name} must be {declared.allowed()}. "
        f"Got {bad!r} instead."
    )
    assert make(name, **{declared.name: declared.default}).get_params()[declared.name] == (
        declared.default
    )


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("dna-binary", {"arch": "gru"}, "must be one of 'cnn', 'lstm'. Got 'gru' instead."),
        ("tabular", {"model": "xgb"}, "must be one of 'rf', 'gb'. Got 'xgb' instead."),
        ("dna-binary", {"epochs": 0}, "must be an int in the range [1, 1000000]. Got 0 instead."),
        (
            "dna-binary",
            {"epochs": 2.5},
            "must be an int in the range [1, 1000000]. Got 2.5 instead.",
        ),
        (
            "dna-binary",
            {"epochs": True},
            "must be an int in the range [1, 1000000]. Got True instead.",
        ),
        ("dna-binary", {"lr": 0}, "must be a float in the range (0, 10]. Got 0 instead."),
        (
            "tabular",
            {"max_depth": 0},
            "must be an int in the range [1, 1000000] or None. Got 0 instead.",
        ),
        ("image", {"channels": 2}, "must be one of 1, 3. Got 2 instead."),
    ],
)
def test_refusals_read_like_scikit_learn(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        make(name, **params)
    (key,) = params
    assert str(info.value) == f"The {key!r} parameter of {name} {message}"


def test_unknown_names_and_get_set_params() -> None:
    with pytest.raises(InvalidParameter) as info:
        DnaBinary(layers=3)
    names = ", ".join(d.name for d in DnaBinary.declared())
    assert str(info.value) == f"dna-binary has no parameter 'layers'; its parameters are {names}."
    recipe = DnaBinary(length=20, class_weight="none")
    assert recipe.get_params()["class_weight"] == "none"  # kept as given
    assert recipe.set_params(arch="lstm", units=8) is recipe
    with pytest.raises(InvalidParameter):
        recipe.set_params(arch="gru")
    assert (recipe.get_params()["arch"], recipe.get_params()["units"]) == ("lstm", 8)
    assert "arch=lstm" in recipe.describe() and "units=8" in recipe.describe()


def test_the_registry_is_the_declared_names_and_declarations_are_plain_data() -> None:
    assert tuple(RECIPES) == RECIPE_NAMES == tuple(DECLARED)
    forms = {name: [d.as_dict() for d in recipe.declared()] for name, recipe in RECIPES.items()}
    assert json.loads(json.dumps(forms)) == forms
    assert forms["dna-binary"][6] == {
        "name": "arch",
        "type": "str",
        "default": "cnn",
        "choices": ["cnn", "lstm"],
        "range": None,
        "range_open_low": False,
        "rule": None,
        "help": "Network: a CNN, or the seed's (Bi)LSTM.",
    }


def test_search_spaces_name_declared_parameters() -> None:
    for recipe_class, space in SPACES.items():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        name = recipe_class.name
        make(name).set_params(**space(trial))  # an undeclared or bad value raises


def test_param_assignments_are_read_as_the_declared_types() -> None:
    assert parse_params("dna-binary", ["lr=0.0005", "arch=lstm", "bidirectional=false"]) == {
        "lr": 0.0005,
        "arch": "lstm",
        "bidirectional": False,
    }
    assert parse_params("tabular", ["max_depth=none", "max_features=0.5"]) == {
        "max_depth": None,
        "max_features": 0.5,
    }
    refusals = {
        "lr": "--param must look like NAME=VALUE, got 'lr'.",
        "lr=1,lr=2": "--param lr is given twice; keep one of them.",
    }
    for text, message in refusals.items():
        with pytest.raises(HelixError) as info:
            parse_params("dna-binary", text.split(","))
        assert str(info.value) == message


def test_every_refused_assignment_is_named_at_once() -> None:
    with pytest.raises(HelixError) as info:
        parse_params("dna-binary", ["epochs=0", "arch=cnn", "lr=abc", "colour=red"])
    assert str(info.value) == (
        "3 parameters are refused:\n"
        "  The 'epochs' parameter of dna-binary must be an int in the range [1, 1000000]. Got 0 "
        "instead.\n"
        "  The 'lr' parameter of dna-binary must be a float in the range (0, 10]. Got 'abc' "
        "instead.\n"
        "  dna-binary has no parameter 'colour'; its parameters are "
        + ", ".join(d.name for d in declarations(DECLARED["dna-binary"]))
        + "."
    )


def test_shortcut_options_map_onto_parameters() -> None:
    given = {"length": 30, "epochs": 2, "arch": None}
    assert shortcut_params("dna-regression", given, {"lr": 0.01}) == {
        "max_length": 30,
        "epochs": 2,
        "lr": 0.01,
    }
    with pytest.raises(HelixError, match=r"^--length and --param length=\.\.\. both set length"):
        shortcut_params("dna-binary", {"length": 20}, {"length": 30})
    with pytest.raises(HelixError, match=r"^--epochs is not an option of the tabular recipe"):
        shortcut_params("tabular", {"epochs": 5}, {})
    with pytest.raises(
        HelixError, match=r"^unknown recipe 'protein'; the recipes are dna-classify, dna-binary"
    ):
        checked_params(TrainOptions(recipe="protein", data=Path("x"), name="m"))


@pytest.mark.parametrize(
    "args",
    [["--param", "arch=gru"], ["--arch", "gru"]],
    ids=["param", "shortcut"],
)
def test_the_train_command_refuses_a_bad_parameter_before_reading_data(args: list[str]) -> None:
    result = run_cli("train", "dna-binary", "--data", "missing.txt", *args)
    assert result.returncode == 1
    assert result.stderr == (
        "Error: The 'arch' parameter of dna-binary must be one of 'cnn', 'lstm'. "
        "Got 'gru' instead.\n"
    )


def test_train_help_lists_every_declared_parameter() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "arch: Network: a CNN, or the seed's (Bi)LSTM. One of 'cnn', 'lstm'; default 'cnn'." in (
        result.output
    )
    for recipe in RECIPES.values():
        for declared in recipe.declared():
            assert f"  {declared.name}: {declared.spec.help}" in result.output


def test_the_zoo_options_give_the_shipped_models_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(zoo, "rxrx1_manifest", lambda folder, out: out)
    for model in zoo.ZOO:
        options = model.options(Path("/nowhere"))
        params = DECLARED[options.recipe].build(checked_params(options)).values()
        if options.recipe == "image":  # tiles=0 is kept as given; the shipped file has the tiles
            params["tiles"] = ImageCNN(**options.params).tiles()
        shipped = sorted((ZOO_STORE / model.name / "versions").glob("*/recipe.json"))[-1]
        assert json.loads(shipped.read_text()) == {"recipe": options.recipe, "params": params}
