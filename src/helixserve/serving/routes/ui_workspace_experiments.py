"""Workspace pages (HTML): the new-experiment wizard, cloning, an experiment's page, and Run.

Contract:
- ``GET /projects/{p}/experiments/new``: the wizard — dataset and version, training /
  validation / optional test subsets, normalise-on subset, recipe, the hyper-parameter form
  generated from the recipe's declarations, target and input columns, a seed, and for neural
  recipes the network: the recipe's own, or a block stack (JSON in a textarea, checked on
  submit; ``static/workspace.js`` turns it into the block editor with live shapes). Its query
  holds a draft (every form field), so a change of dataset or recipe is a plain GET of the same
  form (the "Update choices" button; the script sends it on change); ``?clone=<experiment>``
  starts from that experiment's settings, ``preset=1`` resets the stack to the recipe's preset.
- ``POST /projects/{p}/experiments`` checks the draft
  (:func:`~helixserve.workspace.checks.check_experiment`: every refusal shown next to its field,
  at its status) and creates the experiment (``cloned_from`` when cloned), then redirects to it.
- ``GET /projects/{p}/experiments/{name}``: its settings, block stack with shapes, runs, the Run
  form (engine ``local`` or ``ray``) and the clone link. ``POST .../runs`` queues a run
  (:func:`~helixserve.workspace.runs.submit`, epochs planned from the ``epochs`` parameter) and
  redirects to the run's page.
- As in :mod:`.ui_workspace`: behind ``workspace_page_guard``, CSRF-checked posts, synchronous
  handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from helixserve.errors import HelixError, InvalidBlocks
from helixserve.params.declare import InvalidParameter, declarations
from helixserve.params.recipes import DECLARED, RECIPE_NAMES
from helixserve.serving.deps import (
    PageCaller,
    PagesDep,
    PostedForm,
    WorkspaceDep,
    workspace_page_guard,
)
from helixserve.serving.routes.ui_workspace import see
from helixserve.serving.workspace_pages import (
    NEURAL,
    Form,
    as_text,
    blocks_text,
    errors_of,
    param_fields,
    param_texts,
    preset_blocks,
    read_blocks,
    read_params,
    stack_view,
    text,
    texts,
)
from helixserve.store.names import check_name
from helixserve.workspace import audit, runs
from helixserve.workspace import datasets as ds
from helixserve.workspace.blocks import block_form_fields
from helixserve.workspace.checks import READS, ExperimentRequest, check_experiment
from helixserve.workspace.experiments import create_experiment, find_experiment
from helixserve.workspace.models import Dataset, Experiment
from helixserve.workspace.projects import get_project
from helixserve.workspace.space import Workspace

router = APIRouter(dependencies=[Depends(workspace_page_guard)], include_in_schema=False)
DRAFT = (
    "name",
    "dataset",
    "version",
    "recipe",
    "train_subset",
    "val_subset",
    "test_subset",
    "normalise_on",
    "target",
    "positive",
    "input",
    "seed",
    "network",
    "blocks",
    "blocks_recipe",
    "cloned_from",
)


def draft_of(form: Form) -> dict[str, Any]:
    """The wizard's fields from a form or a query (text; ``features`` a list)."""
    draft: dict[str, Any] = {key: text(form, key) for key in DRAFT}
    draft["target"] = ",".join(texts(form, "target"))  # several: a multi-label target
    draft["features"] = texts(form, "features")
    draft["params"] = param_texts(form, draft["recipe"])
    draft["preset"] = text(form, "preset") == "1"
    return draft


def clone_draft(space: Workspace, project: str, name: str) -> dict[str, Any]:
    """A draft holding experiment ``name``'s settings."""
    with space.db.session() as session:
        experiment = find_experiment(session, project, name)
        dataset = session.get_one(Dataset, experiment.dataset_id).name
    inputs = dict(experiment.inputs)
    column = next((v for k, v in inputs.items() if k != "features"), "")
    return {
        "name": f"{experiment.name}-2",
        "dataset": dataset,
        "version": experiment.dataset_version,
        "recipe": experiment.recipe,
        "train_subset": experiment.train_subset,
        "val_subset": experiment.val_subset,
        "test_subset": experiment.test_subset or "",
        "normalise_on": experiment.normalise_on or "",
        "target": experiment.target,
        "positive": experiment.positive or "",
        "input": column,
        "features": list(inputs.get("features", [])),
        "seed": str(experiment.seed),
        "network": "recipe" if experiment.blocks is None else "blocks",
        "blocks": "" if experiment.blocks is None else blocks_text(experiment.blocks),
        "blocks_recipe": experiment.recipe,
        "cloned_from": experiment.id,
        "params": {k: as_text(v) for k, v in experiment.params.items()},
        "preset": False,
    }


def _default_recipe(roles: Mapping[str, str]) -> str:
    kinds = set(roles.values())
    return "dna-regression" if "sequence" in kinds else "image" if "image" in kinds else "tabular"


def _classes(columns: list[dict[str, Any]], target: str) -> int:
    """The target's classes (for several label columns: the number of labels)."""
    if "," in target:
        return len(target.split(","))
    found = next((c for c in columns if c["name"] == target), None)
    return max(int(found.get("distinct", 2)), 2) if found else 2


def wizard_context(space: Workspace, project: str, draft: dict[str, Any]) -> dict[str, Any]:
    """Everything the wizard shows for ``draft`` (missing choices filled in)."""
    with space.db.session() as session:
        get_project(session, project)
        names = [d.name for d in ds.list_datasets(session, project)]
        draft["dataset"] = draft["dataset"] if draft["dataset"] in names else next(iter(names), "")
        versions, subsets, version = [], [], None
        if draft["dataset"]:
            dataset = ds.get_dataset(session, project, draft["dataset"])
            versions = ds.versions(session, dataset)
            subsets = [s.name for s in ds.list_subsets(session, dataset)]
            if versions:
                known = {v.id for v in versions}
                ref = draft["version"] if draft["version"] in known else versions[-1].id
                version = ds.get_version(session, project, draft["dataset"], ref)
    columns: list[dict[str, Any]] = version.profile.get("columns", []) if version else []
    roles: dict[str, str] = version.profile.get("roles", {}) if version else {}
    draft["version"] = version.id if version else ""
    if not draft["target"] and columns:  # the first column a model could predict
        wanted = (c["name"] for c in columns if roles.get(c["name"]) in ("number", "category"))
        draft["target"] = next(wanted, columns[0]["name"])
    if draft["recipe"] not in DECLARED:
        draft["recipe"] = _default_recipe(roles)
    return {
        "project_name": project,
        "draft": draft,
        "datasets": names,
        "versions": list(reversed(versions)),
        "subsets": subsets,
        "columns": columns,
        "roles": roles,
        "reads": READS[draft["recipe"]],
        **_network(draft, columns),
    }


def _network(draft: dict[str, Any], columns: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameter form, and the block stack of a neural recipe with its shapes."""
    recipe = draft["recipe"]
    params, _ = read_params(recipe, draft["params"])
    classes = _classes(columns, draft["target"])
    neural = recipe in NEURAL
    if neural and (draft["preset"] or not draft["blocks"] or draft["blocks_recipe"] != recipe):
        draft["blocks"] = blocks_text(preset_blocks(recipe, params, classes))
    draft["blocks_recipe"] = recipe
    stack = None
    if neural:
        try:
            stack = stack_view(recipe, params, read_blocks(draft["blocks"]), classes)
        except InvalidBlocks as err:
            stack = stack_view(recipe, params, [], classes)
            stack.error = str(err)
    return {
        "recipes": RECIPE_NAMES,
        "fields": param_fields(recipe, draft["params"]),
        "neural": neural,
        "stack": stack,
        "classes": classes,
        "block_types": block_form_fields(),
    }


@router.get("/projects/{project}/experiments/new", response_class=HTMLResponse)
def new_experiment(
    request: Request, project: str, space: WorkspaceDep, page: PagesDep, clone: str = ""
) -> Response:
    draft = clone_draft(space, project, clone) if clone else draft_of(request.query_params)
    context = wizard_context(space, project, draft)
    return page(request, "workspace/experiment_new.html", errors={}, **context)


def _request(draft: dict[str, Any], params: dict[str, Any]) -> ExperimentRequest:
    """The checked-later request of a draft; a malformed seed or block stack raises here."""
    try:
        seed = int(draft["seed"] or "0")
    except ValueError:
        raise InvalidParameter(f"the seed must be a whole number, got {draft['seed']!r}.") from None
    reads = READS[draft["recipe"]]
    inputs: dict[str, Any] = {}
    if reads == "features" and draft["features"]:
        inputs["features"] = draft["features"]
    elif reads != "features" and draft["input"]:
        inputs[reads] = draft["input"]
    neural = draft["recipe"] in NEURAL and draft["network"] == "blocks"
    return ExperimentRequest(
        dataset=draft["dataset"],
        version=draft["version"] or "latest",
        target=draft["target"],
        train_subset=draft["train_subset"],
        val_subset=draft["val_subset"],
        test_subset=draft["test_subset"] or None,
        normalise_on=draft["normalise_on"] or None,
        positive=draft["positive"] or None,
        recipe=draft["recipe"],
        inputs=inputs,
        seed=seed,
        params=params,
        blocks=read_blocks(draft["blocks"]) if neural else None,
    )


def _create(space: Workspace, project: str, draft: dict[str, Any]) -> dict[str, str]:
    """Create the draft's experiment; field -> message for each refusal (empty: created)."""
    params, errors = read_params(draft["recipe"], draft["params"])
    try:
        check_name(draft["name"], "experiment name")
    except HelixError as err:
        errors["name"] = str(err)
    if errors:
        return errors
    try:
        request = _request(draft, params)
        with space.db.session() as session:
            spec = check_experiment(session, space, project, request)
            cloned = draft["cloned_from"] or None
            create_experiment(session, project, draft["name"], spec, cloned_from=cloned)
    except InvalidParameter as err:
        return {"seed" if "seed" in str(err) else "params": str(err)}
    except HelixError as err:
        return errors_of(err)
    return {}


@router.post("/projects/{project}/experiments", response_class=HTMLResponse)
def create(
    request: Request,
    project: str,
    form: PostedForm,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    draft = draft_of(form)
    errors = _create(space, project, draft)
    if not errors:
        with space.db.session() as session:
            audit.record_in(
                session, who, "experiment.create", project, f"experiment {draft['name']}"
            )
        return see(f"/projects/{project}/experiments/{draft['name']}")
    context = wizard_context(space, project, draft)
    status = 409 if "already has an experiment" in errors.get("name", "") else 422
    return page(request, "workspace/experiment_new.html", status, errors=errors, **context)


def experiment_context(space: Workspace, project: str, name: str) -> dict[str, Any]:
    with space.db.session() as session:
        experiment = find_experiment(session, project, name)
        dataset = session.get_one(Dataset, experiment.dataset_id).name
        listed = runs.list_runs(session, project, experiment_id=experiment.id)
        best = {r.id: _best_val(session, r.id) for r in listed}
        origin = session.get(Experiment, experiment.cloned_from) if experiment.cloned_from else None
    stack = None
    if experiment.blocks is not None:
        stack = stack_view(experiment.recipe, experiment.params, experiment.blocks, 2)
    return {
        "project_name": project,
        "experiment": experiment,
        "dataset_name": dataset,
        "runs": [(r, best[r.id]) for r in reversed(listed)],
        "origin": origin,
        "stack": stack,
        "engines": ("local", "ray"),
    }


def _best_val(session: Any, run_id: str) -> float | None:
    values = [e.val_loss for e in runs.epochs_since(session, run_id) if e.val_loss is not None]
    return min(values) if values else None


@router.get("/projects/{project}/experiments/{name}", response_class=HTMLResponse)
def experiment_page(
    request: Request, project: str, name: str, space: WorkspaceDep, page: PagesDep
) -> Response:
    context = experiment_context(space, project, name)
    return page(request, "workspace/experiment.html", **context)


def epochs_planned(experiment: Experiment) -> int | None:
    """The ``epochs`` parameter of the experiment (its declared default when not set)."""
    declared = {d.name: d.default for d in declarations(DECLARED[experiment.recipe])}
    if "epochs" not in declared:
        return None
    return int(experiment.params.get("epochs", declared["epochs"]))


@router.post("/projects/{project}/experiments/{name}/runs")
def run_experiment(
    project: str, name: str, form: PostedForm, space: WorkspaceDep, who: PageCaller
) -> Response:
    engine = text(form, "engine", "local") or "local"
    with space.db.session() as session:
        experiment = find_experiment(session, project, name)
        run = runs.submit(session, experiment.id, engine, epochs_planned=epochs_planned(experiment))
        run_id = run.id
        audit.record_in(session, who, "run.start", project, f"run {name}:{run.number}")
    return see(f"/projects/{project}/runs/{run_id}")
