"""``helixserve experiments ...``: what to train, checked before it is stored.

Contract: the commands work on the configured workspace (:func:`helixserve.cli.workspace.opened`)
through :mod:`helixserve.workspace.checks` and :mod:`helixserve.workspace.experiments`, as
``/api/v1/projects/{project}/experiments`` does. ``create`` takes the dataset, version, subsets,
target, recipe, hyper-parameters (``--param NAME=VALUE``, read as the declared type:
:func:`~helixserve.params.recipes.parse_params`), the columns the recipe reads (``--input
ROLE=COLUMN``; ``features=a,b,c`` for a list) and optionally a block stack (``--blocks FILE.json``,
a JSON list of blocks, each block checked as the file is read, or ``--blocks preset``: the
recipe's own network as blocks). Every refusal (an unknown subset, a column of the wrong role, a
parameter out of range, blocks whose shapes do not fit) is ``Error: ...`` with exit 1, before
anything is stored. ``clone`` copies an experiment's settings with some changed (``--param``
values are merged into the original's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from helixserve.cli.options import examples
from helixserve.cli.train import Recipe
from helixserve.cli.workspace import ProjectOption, console, opened, pairs, say, shown, table, when
from helixserve.errors import InputError
from helixserve.params.recipes import DECLARED, parse_params
from helixserve.workspace import checks, experiments, runs
from helixserve.workspace.blocks import parse_block
from helixserve.workspace.models import Dataset, Experiment
from helixserve.workspace.presets import presets

experiments_app = typer.Typer(
    help="Experiments: a dataset version, subsets, a recipe and its hyper-parameters.",
    no_args_is_help=True,
)
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The experiment's name.")]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", metavar="NAME=VALUE", help="A hyper-parameter of the recipe; repeatable."
    ),
]
BlocksOption = Annotated[
    str | None,
    typer.Option(
        metavar="FILE",
        help="A block stack (a JSON list of blocks), or preset: the recipe's network as blocks.",
    ),
]
TestOption = Annotated[
    str | None, typer.Option(metavar="SUBSET", help="A test subset (metrics are measured on it).")
]
NormaliseOption = Annotated[
    str | None,
    typer.Option(metavar="SUBSET", help="Standardise number features with this subset's mean."),
]


def _params(recipe: str, assignments: list[str] | None) -> dict[str, Any]:
    """``--param`` values read as the recipe's declared types (an unknown recipe is refused by
    the experiment's check, with the recipes it knows)."""
    return parse_params(recipe, assignments or []) if recipe in DECLARED else {}


def _inputs(assignments: list[str] | None) -> dict[str, Any]:
    found: dict[str, Any] = pairs(assignments, "--input")
    if "features" in found:
        found["features"] = [f.strip() for f in found["features"].split(",")]
    return found


def _blocks(given: str | None, recipe: str, params: dict[str, Any]) -> list[Any] | None:
    if given is None:
        return None
    if given == "preset":
        return [block.model_dump() for block in presets(recipe, params)]
    try:
        stack = json.loads(Path(given).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the block stack {given}: {err}.", field="--blocks") from None
    if not isinstance(stack, list):
        raise InputError(f"{given} must hold a JSON list of blocks.", field="--blocks")
    for number, block in enumerate(stack, 1):
        parse_block(number, block)  # each an object of a known type (shapes: checked later)
    return stack


@experiments_app.command(
    "create",
    epilog=examples(
        (
            "The Cuperus CNN, as blocks, on the tutorial's subsets",
            "experiments create cuperus -p yeast --dataset utrs --target growth_rate "
            "--train train --val val --recipe dna-regression --blocks preset",
        ),
        (
            "A random forest with 300 trees",
            "experiments create forest -p tumours --dataset cells --target class "
            "--train train --val val --recipe tabular --param n_estimators=300",
        ),
    ),
)
def create(
    name: NameArgument,
    project: ProjectOption,
    dataset: Annotated[str, typer.Option(metavar="DATASET", help="The dataset's name.")],
    target: Annotated[str, typer.Option(metavar="COLUMN", help="The column to predict.")],
    train: Annotated[str, typer.Option(metavar="SUBSET", help="The training subset.")],
    val: Annotated[str, typer.Option(metavar="SUBSET", help="The validation subset.")],
    recipe: Annotated[
        Recipe,
        typer.Option(
            metavar="RECIPE", show_choices=False, help=f"What to train: {', '.join(DECLARED)}."
        ),
    ],
    version: Annotated[
        str, typer.Option(metavar="REF", help="The dataset version (sha256, 8+ of it, latest).")
    ] = "latest",
    test: TestOption = None,
    param: ParamOption = None,
    blocks: BlocksOption = None,
    input_column: Annotated[
        list[str] | None,
        typer.Option(
            "--input", metavar="ROLE=COLUMN", help="A column the recipe reads (sequence=UTR)."
        ),
    ] = None,
    normalise_on: NormaliseOption = None,
    positive: Annotated[
        str | None,
        typer.Option(
            metavar="LABEL",
            help="The positive class of a binary target (default: 1, true, yes, + ...).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="The seed of the run.")] = 0,
) -> None:
    """Create an experiment; its settings are checked against the dataset first."""
    params = _params(recipe, param)
    request = checks.ExperimentRequest(
        dataset=dataset,
        version=version,
        target=target,
        train_subset=train,
        val_subset=val,
        test_subset=test,
        recipe=recipe,
        inputs=_inputs(input_column),
        normalise_on=normalise_on,
        positive=positive,
        seed=seed,
        params=params,
        blocks=_blocks(blocks, recipe, params),
    )
    with opened() as (space, session):
        spec = checks.check_experiment(session, space, project, request)
        experiments.create_experiment(session, project, name, spec)
    say(f"created experiment {name}: {recipe} on {dataset}@{spec.dataset_version[:12]}")


@experiments_app.command(
    "list", epilog=examples(("The experiments of project yeast", "experiments list -p yeast"))
)
def list_experiments(project: ProjectOption) -> None:
    """List a project's experiments, oldest first."""
    with opened() as (_, session):
        found = experiments.list_experiments(session, project)
        listing = table("experiment", "recipe", "dataset", "target", "subsets", "runs", "created")
        for item in found:
            count = len(runs.list_runs(session, project, experiment_id=item.id))
            listing.add_row(
                item.name,
                item.recipe + (" (blocks)" if item.blocks is not None else ""),
                f"{_dataset(session, item)}@{item.dataset_version[:8]}",
                item.target,
                f"{item.train_subset} / {item.val_subset}",
                str(count),
                when(item.created_at),
            )
    if not found:
        say(f"Project {project} has no experiments yet: helixserve experiments create ...")
        return
    console.print(listing)


def _dataset(session: Session, experiment: Experiment) -> str:
    return session.get_one(Dataset, experiment.dataset_id).name


def _settings(session: Session, item: Experiment) -> list[tuple[str, str]]:
    rows = [
        ("id", item.id),
        ("dataset", f"{_dataset(session, item)}@{item.dataset_version}"),
        ("target", item.target),
        ("inputs", json.dumps(item.inputs)),
        (
            "subsets",
            f"train: {item.train_subset}, val: {item.val_subset}, test: {shown(item.test_subset)}",
        ),
        ("recipe", item.recipe),
        ("params", json.dumps(item.params) if item.params else "defaults"),
        ("blocks", f"{len(item.blocks)} blocks" if item.blocks is not None else "the recipe's"),
        ("seed", str(item.seed)),
    ]
    if item.cloned_from:
        rows.append(("cloned from", experiments.get_experiment(session, item.cloned_from).name))
    return rows


@experiments_app.command(
    "show", epilog=examples(("One experiment and its runs", "experiments show cuperus -p yeast"))
)
def show(name: NameArgument, project: ProjectOption) -> None:
    """Show an experiment's settings and its runs."""
    with opened() as (_, session):
        item = experiments.project_experiment(session, project, name)
        settings = table("setting", "value", title=f"experiment {item.name}")
        for key, value in _settings(session, item):
            settings.add_row(key, value)
        listing = table("run", "number", "status", "engine", "best epoch", "finished")
        for run in runs.list_runs(session, project, experiment_id=item.id):
            listing.add_row(
                run.id,
                str(run.number),
                run.status.value,
                run.engine,
                shown(run.best_epoch),
                when(run.finished_at),
            )
    console.print(settings)
    console.print(listing)


@experiments_app.command(
    "clone",
    epilog=examples(
        (
            "The same experiment with a lower learning rate",
            "experiments clone cuperus cuperus-slow -p yeast --param lr=0.0005",
        ),
    ),
)
def clone(
    name: NameArgument,
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="The clone's name.")],
    project: ProjectOption,
    param: ParamOption = None,
    blocks: BlocksOption = None,
    train: Annotated[
        str | None, typer.Option(metavar="SUBSET", help="Another training subset.")
    ] = None,
    val: Annotated[
        str | None, typer.Option(metavar="SUBSET", help="Another validation subset.")
    ] = None,
    test: TestOption = None,
    version: Annotated[
        str | None, typer.Option(metavar="REF", help="Another version of the dataset.")
    ] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Another seed.")] = None,
) -> None:
    """Copy an experiment's settings into a new one, some changed (checked again)."""
    with opened() as (space, session):
        original = experiments.project_experiment(session, project, name)
        request = checks.request_of(session, original)
        changes: dict[str, Any] = {"params": _params(request.recipe, param)} if param else {}
        if blocks is not None:
            merged = {**request.params, **changes.get("params", {})}
            changes["blocks"] = _blocks(blocks, request.recipe, merged)
        given = {"train_subset": train, "val_subset": val, "test_subset": test}
        changes |= {
            k: v for k, v in {**given, "version": version, "seed": seed}.items() if v is not None
        }
        changed = checks.with_changes(request, changes)
        spec = checks.check_experiment(session, space, project, changed)
        experiments.clone_experiment(session, original.id, new_name, spec)
    say(f"created experiment {new_name}, a clone of {name}")
