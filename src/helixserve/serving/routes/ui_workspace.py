"""Workspace pages (HTML): projects, a project's page, datasets (upload, roles, subsets).

Contract:
- ``GET /projects`` (``?archived=1`` lists archived ones too), ``POST /projects`` (create),
  ``POST /projects/{p}/archive`` (``archived=true|false``), ``POST /projects/{p}/rename``;
  ``GET /projects/{p}``: its datasets, experiments, runs with their status and deployed models,
  and the new-dataset upload form.
- Datasets: ``POST /projects/{p}/datasets`` (a name and a file: the dataset and its first
  version), ``GET /projects/{p}/datasets/{d}[?version=]`` (versions, the profile's preview with
  each column's role in a select, the refused-rows report, subsets with their sizes, the subset
  form), ``POST .../versions`` (a new version), ``POST .../roles`` (``version`` and
  ``role.<column>`` fields), ``POST .../subsets`` (the subset form) and ``POST
  .../subsets/preview`` (the subset form -> JSON ``{"rows", "of"}`` or ``{"error", "field"}``
  with 422: the form's live size).
- Every route is behind :func:`~helixserve.serving.deps.workspace_page_guard` (an ``admin`` key
  session while keys are on), every POST is CSRF-checked
  (:data:`~helixserve.serving.deps.PostedForm`), uploads are marked
  :func:`~helixserve.serving.responses.upload` (the upload size limit) and stream to the store.
  Handlers are synchronous (FastAPI runs them in its thread pool): the database work never
  blocks the event loop. A form that fails is shown again with the message next to its field
  at the error's status (:mod:`helixserve.error_table`); unknown projects and datasets are the
  404 error page. A successful POST redirects (303) to the page it changed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.datastructures import UploadFile

from helixserve.error_table import status_of
from helixserve.errors import HelixError, InputError
from helixserve.serving.access import ROLE
from helixserve.serving.deps import (
    PageCaller,
    PagesDep,
    PostedForm,
    ServerDep,
    WorkspaceDep,
    workspace_page_guard,
)
from helixserve.serving.responses import upload as takes_upload
from helixserve.serving.workspace_pages import errors_of, field_of, spec_text, subset_spec, text
from helixserve.workspace import audit, members
from helixserve.workspace import datasets as ds
from helixserve.workspace import projects as pj
from helixserve.workspace.datasets import ROLES
from helixserve.workspace.experiments import list_experiments
from helixserve.workspace.members import Principal
from helixserve.workspace.models import (
    Dataset,
    DatasetVersion,
    Deployment,
    Experiment,
    Role,
    Run,
)
from helixserve.workspace.runs import list_runs
from helixserve.workspace.space import Workspace
from helixserve.workspace.subsets import columns_of, parse_subset, rows, subset_table

router = APIRouter(dependencies=[Depends(workspace_page_guard)], include_in_schema=False)
OWNER = {ROLE: "owner"}  # the role these page routes need (see serving.access.needed_role)
REPORT_ROWS = 200
OPS = ("==", "!=", "<", "<=", ">", ">=", "in")


def see(url: str) -> Response:
    return RedirectResponse(url, 303)


# --- projects -----------------------------------------------------------------------------------


def _count(session: Any, table: type[Any], project_id: str) -> int:
    query = select(func.count()).select_from(table).where(table.project_id == project_id)
    return int(session.scalar(query) or 0)


def projects_context(space: Workspace, archived: bool, who: Principal) -> dict[str, Any]:
    """The projects ``who`` may see, with what each holds."""
    with space.db.session() as session:
        seen = {p.id for p in members.visible_projects(session, who)}
        listed = [p for p in pj.list_projects(session, include_archived=archived) if p.id in seen]
        rows = [
            {
                "project": p,
                "datasets": _count(session, Dataset, p.id),
                "experiments": _count(session, Experiment, p.id),
                "runs": _count(session, Run, p.id),
            }
            for p in listed
        ]
    return {"rows": rows, "archived": archived}


@router.get("/projects", response_class=HTMLResponse)
def projects_page(
    request: Request, space: WorkspaceDep, page: PagesDep, who: PageCaller, archived: bool = False
) -> Response:
    context = projects_context(space, archived, who)
    return page(request, "workspace/projects.html", values={}, errors={}, **context)


@router.post("/projects", response_class=HTMLResponse)
def create_project(
    request: Request, form: PostedForm, space: WorkspaceDep, page: PagesDep, who: PageCaller
) -> Response:
    values = {"name": text(form, "name"), "title": text(form, "title")}
    try:
        with space.db.session() as session:
            made = pj.create_project(session, values["name"], values["title"])
            if who.kind == "user":
                members.share(session, made.name, who.name, Role.OWNER)
            audit.record(session, who, "project.create", project_id=made.id, target=made.name)
    except HelixError as err:
        context = projects_context(space, False, who)
        return page(
            request,
            "workspace/projects.html",
            status_of(err),
            values=values,
            errors=errors_of(err, "name"),
            **context,
        )
    return see(f"/projects/{values['name']}")


@router.post("/projects/{project}/archive", openapi_extra=OWNER)
def archive_project(project: str, form: PostedForm, space: WorkspaceDep) -> Response:
    archived = text(form, "archived", "true") != "false"
    with space.db.session() as session:
        pj.archive_project(session, project, archived)
    return see("/projects" + ("" if archived else f"/{project}"))


@router.post("/projects/{project}/rename", response_class=HTMLResponse, openapi_extra=OWNER)
def rename_project(
    request: Request, project: str, form: PostedForm, space: WorkspaceDep, page: PagesDep
) -> Response:
    new = text(form, "name")
    try:
        with space.db.session() as session:
            pj.rename_project(session, project, new)
    except HelixError as err:
        if field_of(err, "name") != "name":
            raise
        errors = {"rename": str(err)}
        return _project_page(request, page, space, project, status=status_of(err), errors=errors)
    return see(f"/projects/{new}")


def project_context(space: Workspace, project: str) -> dict[str, Any]:
    """A project's page: its datasets, experiments, runs and deployed models."""
    with space.db.session() as session:
        owner = pj.get_project(session, project)
        sets = ds.list_datasets(session, project)
        latest = {d.id: next(reversed(ds.versions(session, d)), None) for d in sets}
        experiments = list_experiments(session, project)
        names = {e.id: e.name for e in experiments}
        runs = list_runs(session, project)
        deployed = session.scalars(
            select(Deployment).where(Deployment.project_id == owner.id).order_by(Deployment.at)
        ).all()
        people = [(u.name, r.value) for u, r in members.members(session, project)]
    runs_of = {e.id: sum(1 for r in runs if r.experiment_id == e.id) for e in experiments}
    return {
        "project": owner,
        "datasets": [(d, latest[d.id]) for d in sets],
        "experiments": [(e, runs_of[e.id]) for e in experiments],
        "runs": [(r, names.get(r.experiment_id, "?")) for r in reversed(runs)],
        "deployments": list(reversed(deployed)),
        "run_labels": {r.id: f"{names.get(r.experiment_id, '?')} #{r.number}" for r in runs},
        "members": people,
        "roles": [r.value for r in Role],
    }


def _project_page(
    request: Request,
    page: PagesDep,
    space: Workspace,
    project: str,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The project's page; after a refused form, at the error's status with its values and
    message."""
    context = project_context(space, project)
    shown = values or {}
    return page(
        request, "workspace/project.html", status, values=shown, errors=errors or {}, **context
    )


@router.get("/projects/{project}", response_class=HTMLResponse)
def project_page(request: Request, project: str, space: WorkspaceDep, page: PagesDep) -> Response:
    return _project_page(request, page, space, project)


@router.post("/projects/{project}/members", response_class=HTMLResponse, openapi_extra=OWNER)
def share_project(
    request: Request,
    project: str,
    form: PostedForm,
    server: ServerDep,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    """Share the project with a user (or change their role): the project page's Members form."""
    user, role = text(form, "user"), text(form, "role")
    try:
        with space.db.session() as session:
            if role not in {r.value for r in Role}:
                raise InputError(f"role {role!r}: choose viewer, editor or owner.", field="user")
            members.share(session, project, user, Role(role))
            audit.record(
                session,
                who,
                "member.share",
                project_id=pj.get_project(session, project).id,
                target=f"user {user}",
                details={"role": role},
            )
    except HelixError as err:
        values, errors = {"user": user}, {"user": str(err)}
        return _project_page(
            request, page, space, project, status=status_of(err), values=values, errors=errors
        )
    server.access.forget_keys()
    return see(f"/projects/{project}#members")


# --- datasets -----------------------------------------------------------------------------------


def _upload(form: Any) -> UploadFile:
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise InputError(
            "choose a file to upload (CSV, TSV, FASTA or Parquet, gzipped or not, or a zip of "
            "images with a labels CSV).",
            field="file",
        )
    return file


@router.post("/projects/{project}/datasets", response_class=HTMLResponse)
@takes_upload
def create_dataset(
    request: Request,
    project: str,
    form: PostedForm,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    name = text(form, "name")
    try:
        with space.db.session() as session:
            ds.create_dataset(session, project, name)
            file = _upload(form)
            made = ds.add_version(session, space, project, name, file.file, file.filename or "")
            target = f"dataset {name}@{made.id[:12]}"
            audit.record_in(session, who, "dataset.upload", project, target, rows=made.rows)
    except HelixError as err:
        values, errors = {"name": name}, errors_of(err, "file")
        return _project_page(
            request, page, space, project, status=status_of(err), values=values, errors=errors
        )
    return see(f"/projects/{project}/datasets/{name}")


def dataset_context(space: Workspace, project: str, name: str, ref: str) -> dict[str, Any]:
    """A dataset's page: versions, the chosen one's profile and report, subsets and sizes."""
    with space.db.session() as session:
        dataset = ds.get_dataset(session, project, name)
        known = ds.versions(session, dataset)
        version = ds.get_version(session, project, name, ref) if known else None
        subsets = ds.list_subsets(session, dataset)
    sizes: dict[str, int] = {}
    sizes_error = ""
    if version is not None and subsets:
        try:
            sizes = ds.subset_sizes(space, version, subsets)
        except HelixError as err:
            sizes_error = str(err)
    profile = version.profile if version is not None else {}
    return {
        "project_name": project,
        "dataset": dataset,
        "versions": list(reversed(known)),
        "version": version,
        "columns": profile.get("columns", []),
        "roles": profile.get("roles", {}),
        "preview": profile.get("preview", []),
        "refused": (version.report.get("refused", []) if version else [])[:REPORT_ROWS],
        "subsets": [(s, spec_text(s.spec), sizes.get(s.name)) for s in subsets],
        "sizes_error": sizes_error,
        "role_names": ROLES,
        "ops": OPS,
    }


def _dataset_page(
    request: Request,
    page: PagesDep,
    space: Workspace,
    project: str,
    name: str,
    *,
    ref: str = "latest",
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    context = dataset_context(space, project, name, ref)
    shown = {"kind": "where", "op": "==", "seed": "0", **(values or {})}
    return page(
        request, "workspace/dataset.html", status, values=shown, errors=errors or {}, **context
    )


@router.get("/projects/{project}/datasets/{name}", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    project: str,
    name: str,
    space: WorkspaceDep,
    page: PagesDep,
    version: str = "latest",
) -> Response:
    return _dataset_page(request, page, space, project, name, ref=version)


@router.post("/projects/{project}/datasets/{name}/versions", response_class=HTMLResponse)
@takes_upload
def add_version(
    request: Request,
    project: str,
    name: str,
    form: PostedForm,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    try:
        file = _upload(form)
        with space.db.session() as session:
            added = ds.add_version(session, space, project, name, file.file, file.filename or "")
            sha = added.id
            target = f"dataset {name}@{sha[:12]}"
            audit.record_in(session, who, "dataset.upload", project, target, rows=added.rows)
    except HelixError as err:
        errors = errors_of(err, "file")
        return _dataset_page(
            request, page, space, project, name, status=status_of(err), errors=errors
        )
    return see(f"/projects/{project}/datasets/{name}?version={sha}")


@router.post("/projects/{project}/datasets/{name}/roles", response_class=HTMLResponse)
def set_roles(
    request: Request,
    project: str,
    name: str,
    form: PostedForm,
    space: WorkspaceDep,
    page: PagesDep,
) -> Response:
    ref = text(form, "version", "latest")
    chosen = {
        key.removeprefix("role."): value
        for key, value in form.multi_items()
        if key.startswith("role.") and isinstance(value, str)
    }
    try:
        with space.db.session() as session:
            version = ds.get_version(session, project, name, ref)
            ds.set_roles(version, chosen)
            sha = version.id
    except HelixError as err:
        errors = errors_of(err, "roles")
        return _dataset_page(
            request, page, space, project, name, ref=ref, status=status_of(err), errors=errors
        )
    return see(f"/projects/{project}/datasets/{name}?version={sha}#columns")


def _subset_values(form: Any) -> dict[str, Any]:
    keys = [
        "subset",
        "kind",
        "column",
        "op",
        "value",
        "fraction_of",
        "rest_of",
        "fraction",
        "seed",
        "group",
    ]
    return {k: text(form, k) for k in keys} | {"minus": form.getlist("minus")}


@router.post("/projects/{project}/datasets/{name}/subsets", response_class=HTMLResponse)
def add_subset(
    request: Request,
    project: str,
    name: str,
    form: PostedForm,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    subset = text(form, "subset")
    try:
        spec = subset_spec(form)
        with space.db.session() as session:
            ds.add_subset(session, project, name, subset, spec)
            audit.record_in(session, who, "subset.create", project, f"subset {name}/{subset}")
    except HelixError as err:
        errors = {_subset_field(err): str(err)}
        return _dataset_page(
            request,
            page,
            space,
            project,
            name,
            status=status_of(err),
            values=_subset_values(form),
            errors=errors,
        )
    return see(f"/projects/{project}/datasets/{name}#subsets")


@router.post("/projects/{project}/datasets/{name}/subsets/{subset}/delete")
def delete_subset(
    request: Request,
    project: str,
    name: str,
    subset: str,
    form: PostedForm,
    space: WorkspaceDep,
    page: PagesDep,
    who: PageCaller,
) -> Response:
    try:
        with space.db.session() as session:
            ds.delete_subset(session, project, name, subset)
            audit.record_in(session, who, "subset.delete", project, f"subset {name}/{subset}")
    except HelixError as err:
        errors = {"delete": str(err)}
        return _dataset_page(
            request, page, space, project, name, status=status_of(err), errors=errors
        )
    return see(f"/projects/{project}/datasets/{name}#subsets")


def _subset_field(err: HelixError) -> str:
    found = field_of(err, "subset-form")
    return "subset" if found == "name" else found


def preview_size(space: Workspace, project: str, name: str, form: Any) -> tuple[int, int]:
    """The rows the subset form selects in the latest version, and the version's good rows."""
    with space.db.session() as session:
        dataset = ds.get_dataset(session, project, name)
        version: DatasetVersion = ds.get_version(session, project, name)
        named = {s.name: parse_subset(s.spec, s.name) for s in ds.list_subsets(session, dataset)}
    label = text(form, "subset") or "new subset"
    spec = parse_subset(subset_spec(form), label)
    path = space.blobs.local_copy(version.id, space.cache_dir)
    table = subset_table(
        path,
        version.filename,
        columns_of([*named.values(), spec]),
        roles=version.profile.get("roles"),
        limits=space.limits,
    )
    return int(rows(spec, table, named, name=label).size), int(table.n_rows)


@router.post("/projects/{project}/datasets/{name}/subsets/preview")
def subset_preview(project: str, name: str, form: PostedForm, space: WorkspaceDep) -> Response:
    try:
        selected, good = preview_size(space, project, name, form)
    except HelixError as err:
        body = {"error": str(err), "field": _subset_field(err)}
        return JSONResponse(body, status_of(err))
    return JSONResponse({"rows": selected, "of": good})
