"""An experiment's settings, checked before anything is stored or queued.

Contract:
- :class:`ExperimentRequest` is what a person chooses (by name: dataset, version, subsets,
  recipe, target, the columns the recipe reads, hyper-parameters, an optional block stack): the
  dataset's fields (:class:`DatasetChoice`), then the
  :class:`~helixserve.workspace.experiments.ExperimentSettings`;
  :func:`check_experiment` checks it against the workspace and returns the
  :class:`~helixserve.workspace.experiments.ExperimentSpec` to store. Every refusal is a typed
  error whose message names the field and the fix, raised before a run could start:
  unknown dataset, version or subset (:class:`~helixserve.errors.DatasetNotFound`,
  :class:`~helixserve.errors.InvalidSubset`); a subset that selects no row
  (:class:`~helixserve.errors.EmptySubset`); training and validation subsets that share rows
  (:class:`~helixserve.errors.SplitOverlap`); a target column that is missing, not a number for a
  regression, or has fewer than two classes for a classifier; a positive class that is not one
  of a binary target's two, or that a target of another kind was given, or none for two classes
  that no convention orders (:func:`~helixserve.params.positive.binary_classes`); an input
  column of the wrong role;
  a hyper-parameter out of its declaration
  (:class:`~helixserve.params.declare.InvalidParameter`); a block stack whose shapes do not fit
  (:class:`~helixserve.errors.InvalidBlocks`; for a DNA recipe whose data decide the input
  length, checked at the longest sequence the dataset's profile found).
- :func:`request_of` is the request that gives a stored experiment's settings again (its dataset
  by name, its version by sha256), and :func:`with_changes` changes some of its fields (``params``
  are merged: the named parameters change, the others keep theirs; another recipe starts from
  no parameters and no block stack); checked again, they make a clone with changes. An unknown
  field raises :class:`~helixserve.errors.InputError`.
- :data:`READS` says which column role each recipe reads; when the request names no input
  column, the only column of that role is taken (tabular: every number column but the target).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from helixserve.errors import HelixError, InputError, InvalidSubset
from helixserve.params.positive import binary_classes
from helixserve.params.recipes import DECLARED
from helixserve.workspace.datasets import get_dataset, get_version, list_subsets
from helixserve.workspace.experiments import ExperimentSettings, ExperimentSpec, settings_of
from helixserve.workspace.models import Dataset, DatasetVersion, Experiment, Subset
from helixserve.workspace.presets import check_recipe_blocks
from helixserve.workspace.projects import listed
from helixserve.workspace.space import Workspace
from helixserve.workspace.subsets import columns_of, parse_subset, rows, split_labels, subset_table
from helixserve.workspace.tables import UNNAMED

Reads = Literal["sequence", "features", "image"]
READS: dict[str, Reads] = {
    "dna-classify": "sequence",
    "dna-binary": "sequence",
    "dna-regression": "sequence",
    "dna-variable": "sequence",
    "tabular": "features",
    "image": "image",
}
REGRESSION = frozenset({"dna-regression"})
MULTILABEL = frozenset({"dna-classify"})  # recipes that take several label columns
LABEL_VALUES = frozenset({"0", "1", "0.0", "1.0"})


class DatasetChoice(BaseModel):
    """The dataset version an experiment trains on, by name."""

    dataset: str
    version: str = Field(default="latest", description="sha256, a prefix of 8+, or latest")


class ExperimentRequest(ExperimentSettings, DatasetChoice):
    """An experiment as a person asks for it (see the module contract); the base named last
    comes first in its fields (``dataset``, ``version``, then the settings)."""


def request_of(session: Session, experiment: Experiment) -> ExperimentRequest:
    """The request that gives ``experiment``'s settings (see the module contract)."""
    dataset = session.get_one(Dataset, experiment.dataset_id).name
    version = experiment.dataset_version
    return ExperimentRequest(dataset=dataset, version=version, **settings_of(experiment))


def with_changes(request: ExperimentRequest, changes: Mapping[str, Any]) -> ExperimentRequest:
    """``request`` with ``changes`` (see the module contract)."""
    names = list(ExperimentRequest.model_fields)
    unknown = [name for name in changes if name not in names]
    if unknown:
        raise InputError(
            f"an experiment has no setting {unknown[0]!r}; its settings are: {listed(names)}.",
            field=unknown[0],
        )
    merged = dict(changes)
    if merged.get("recipe", request.recipe) != request.recipe:  # another recipe: start afresh
        request = request.model_copy(update={"params": {}, "blocks": None})
    if "params" in merged:
        merged["params"] = {**request.params, **dict(merged["params"] or {})}
    return request.model_copy(update=merged)


def check_experiment(
    session: Session, space: Workspace, project: str, request: ExperimentRequest
) -> ExperimentSpec:
    """The checked settings of ``request`` in ``project``; see the module contract."""
    if request.recipe not in DECLARED:
        raise InputError(
            f"unknown recipe {request.recipe!r}; choose one of {listed(list(DECLARED))}.",
            field="recipe",
        )
    DECLARED[request.recipe].build(dict(request.params))
    dataset = get_dataset(session, project, request.dataset)
    version = get_version(session, project, request.dataset, request.version)
    named = {s.name: s for s in list_subsets(session, dataset)}
    chosen = _chosen_subsets(request, named, request.dataset)
    roles: dict[str, str] = dict(version.profile.get("roles", {}))
    classes = _check_target(request, version, roles)
    _check_positive(request, version, classes)
    inputs = _inputs(request, roles)
    if request.blocks is not None:
        longest = _longest(version, inputs.get("sequence"))
        check_recipe_blocks(
            request.recipe,
            request.params,
            request.blocks,
            classes=classes,
            length=longest,
            multilabel="," in request.target,
        )
    _check_subset_rows(space, version, named, chosen, request)
    settings = settings_of(request) | {"inputs": inputs}
    return ExperimentSpec(dataset_id=dataset.id, dataset_version=version.id, **settings)


def _longest(version: DatasetVersion, column: Any) -> int | None:
    """The longest sequence of ``column`` in the version's profile (the input length of a
    recipe whose data decide it), if known."""
    found = [c for c in version.profile.get("columns", []) if c.get("name") == column]
    longest = found[0].get("max_length") if found else None
    return int(longest) if longest else None


def _chosen_subsets(
    request: ExperimentRequest, named: Mapping[str, Subset], dataset: str
) -> dict[str, str]:
    """Role -> subset name for the subsets the request uses, each checked to exist."""
    wanted = {
        "train_subset": request.train_subset,
        "val_subset": request.val_subset,
        "test_subset": request.test_subset,
        "normalise_on": request.normalise_on,
    }
    chosen = {role: name for role, name in wanted.items() if name}
    for role, name in chosen.items():
        if name not in named:
            have = listed(list(named)) if named else "none yet; define one first"
            raise InvalidSubset(
                f"dataset {dataset!r} has no subset named {name!r}; its subsets: {have}.",
                field=role,
            )
    return chosen


def _check_target(
    request: ExperimentRequest, version: DatasetVersion, roles: Mapping[str, str]
) -> int:
    """The number of classes of the target (1 for a regression; for several comma-separated
    label columns, the number of labels), after checking it."""
    labels = [name.strip() for name in request.target.split(",")]
    if "" in labels:
        note = f" {UNNAMED}" if "" in roles else ""
        raise InputError(
            f"choose the target: the column to predict; the dataset's columns are: "
            f"{listed([c for c in roles if c])}.{note}",
            field="target",
        )
    if len(labels) > 1:
        return _check_labels(request, version, roles, labels)
    if request.target not in roles:
        raise InputError(
            f"the dataset has no column {request.target!r}; its columns are: "
            f"{listed(list(roles))}.",
            field="target",
        )
    column = next(c for c in version.profile["columns"] if c["name"] == request.target)
    regression = request.recipe in REGRESSION or (
        request.recipe == "tabular" and roles[request.target] == "number"
    )
    if regression:
        if roles[request.target] != "number":
            raise InputError(
                f"the {request.recipe} recipe predicts a number, but target column "
                f"{request.target!r} holds {roles[request.target]} values; choose a number "
                "column, or a classification recipe.",
                field="target",
            )
        return 1
    distinct = int(column.get("distinct", 0))
    if distinct < 2:
        raise InputError(
            f"target column {request.target!r} has {distinct} distinct value(s); a classifier "
            "needs at least two classes. Choose another column, or a regression recipe.",
            field="target",
        )
    return distinct


def _check_labels(
    request: ExperimentRequest,
    version: DatasetVersion,
    roles: Mapping[str, str],
    labels: list[str],
) -> int:
    """Several label columns (a multi-label target, as ``helixserve train --target a,b``): a
    recipe that takes them, each column there once, holding 0 or 1."""
    if request.recipe not in MULTILABEL:
        raise InputError(
            f"the {request.recipe} recipe learns one target column, but target names "
            f"{len(labels)} ({', '.join(labels)}); use {listed(sorted(MULTILABEL))} for several "
            "label columns (multi-label), or name one column.",
            field="target",
        )
    for name in labels:
        if labels.count(name) > 1 or name not in roles:
            problem = "twice" if name in roles else "but the dataset has no such column"
            raise InputError(
                f"target names label column {name!r} {problem}; its columns are: "
                f"{listed(list(roles))}.",
                field="target",
            )
        column = next(c for c in version.profile["columns"] if c["name"] == name)
        found = [v for v in column.get("examples", []) if v.strip() not in LABEL_VALUES]
        if found or int(column.get("distinct", 0)) > 2:
            raise InputError(
                f"label column {name!r} of a multi-label target must hold 0 or 1 in every row "
                f"(it holds {listed(column.get('examples', []))}); make one 0/1 column per "
                "label.",
                field="target",
            )
    return len(labels)


def _check_positive(request: ExperimentRequest, version: DatasetVersion, classes: int) -> None:
    """The positive class fits the target (see the module contract)."""
    if classes != 2 or "," in request.target:
        if request.positive is not None:
            what = "a number" if classes == 1 else f"{classes} classes"
            what = f"{classes} labels (multi-label)" if "," in request.target else what
            raise InputError(
                f"a positive class is for a binary target, but target column "
                f"{request.target!r} holds {what}; leave it out.",
                field="positive",
            )
        return
    column = next(c for c in version.profile["columns"] if c["name"] == request.target)
    values = set(column.get("examples", []))  # the first distinct values, cut at 80 characters
    if len(values) != 2 or any(v.endswith("…") for v in values):
        return  # not known for sure here: the training checks it on the rows themselves
    try:
        binary_classes(values, request.positive, how="positive={}")
    except HelixError as err:
        raise InputError(str(err), field="positive") from None


def _inputs(request: ExperimentRequest, roles: Mapping[str, str]) -> dict[str, Any]:
    """Role -> column(s) the recipe reads: the request's, else the dataset's only candidate."""
    reads = READS[request.recipe]
    given = dict(request.inputs)
    if reads == "features":
        features = given.get("features") or [
            name for name, role in roles.items() if role == "number" and name != request.target
        ]
        unknown = [f for f in features if f not in roles]
        if not features or unknown:
            raise InputError(
                "the tabular recipe needs number columns as features; "
                + (f"{unknown[0]!r} is not a column." if unknown else "the dataset has none."),
                field="inputs.features",
            )
        return {**given, "features": list(features)}
    column = given.get(reads) or _only(roles, reads, request.recipe)
    if roles.get(column) != reads:
        raise InputError(
            f"the {request.recipe} recipe reads a {reads} column; {column!r} is "
            + (f"a {roles[column]} column." if column in roles else "not a column.")
            + " Choose another, or correct the column's role.",
            field=f"inputs.{reads}",
        )
    return {**given, reads: column}


def _only(roles: Mapping[str, str], role: str, recipe: str) -> str:
    found = [name for name, kind in roles.items() if kind == role]
    if len(found) != 1:
        raise InputError(
            f"the {recipe} recipe reads one {role} column; the dataset has "
            + (f"several ({listed(found)}): choose one." if found else "none.")
            + "",
            field=f"inputs.{role}",
        )
    return found[0]


def _check_subset_rows(
    space: Workspace,
    version: DatasetVersion,
    named: Mapping[str, Subset],
    chosen: Mapping[str, str],
    request: ExperimentRequest,
) -> None:
    """Every chosen subset selects rows of this version, and the parts do not overlap."""
    specs = {name: parse_subset(subset.spec, name) for name, subset in named.items()}
    path = space.blobs.local_copy(version.id, space.cache_dir)
    table = subset_table(
        path,
        version.filename,
        columns_of(specs.values()),
        roles=version.profile.get("roles"),
        limits=space.limits,
    )
    picked = {name: rows(specs[name], table, specs, name=name) for name in set(chosen.values())}
    test = request.test_subset
    split_labels(
        table.n_rows,
        (request.train_subset, picked[request.train_subset]),
        (request.val_subset, picked[request.val_subset]),
        (test, picked[test]) if test else None,
    )
