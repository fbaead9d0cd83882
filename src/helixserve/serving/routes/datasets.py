"""Dataset routes of the workspace API: ``/api/v1/projects/{project}/datasets/...``.

Contract (see :mod:`.projects` for what every workspace route shares):
- ``POST .../datasets`` (201; 409 a name taken), ``GET .../datasets`` (each with its version
  count and latest version), ``GET .../datasets/{dataset}/versions`` (oldest first).
- ``POST .../datasets/{dataset}/versions`` uploads a file as a new version (201): multipart
  ``file``, or the raw body with ``?filename=``. The body streams into
  :func:`~helixserve.workspace.datasets.add_version` in a worker thread as it arrives
  (:mod:`helixserve.serving.body_stream`; constant memory); the route is an upload route
  (:func:`~helixserve.serving.responses.upload`), so a body over ``HELIXSERVE_MAX_UPLOAD_BYTES``
  is refused with 413 by the app before it is read (declared ``Content-Length``) or as soon as
  it passes the limit (streamed). The same bytes again give the same version.
- ``{version}`` is a sha256, its first 8+ characters, or ``latest``.
  ``GET .../versions/{version}/profile`` (counts, columns with roles, preview),
  ``GET .../versions/{version}/refused?offset=&limit=`` (the refused-row report, paged),
  ``PUT .../versions/{version}/roles`` (``{"roles": {column: role}}``; the roles now).
- ``POST .../datasets/{dataset}/subsets`` (201, with its size in the latest version),
  ``GET .../datasets/{dataset}/subsets?version=`` (each with the rows it selects in that version,
  or why none). Bad specs, columns and roles are 422 naming the field.
  ``DELETE .../datasets/{dataset}/subsets/{subset}`` deletes one that no experiment or other
  subset reads (409 naming them; 404 an unknown one) and answers the subsets left.
- A dataset is always looked up within the project of the path: another project's is 404.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from helixserve.serving.body_stream import Upload, blocking_file, open_upload
from helixserve.serving.deps import CallerDep, WorkspaceDep
from helixserve.serving.responses import upload
from helixserve.serving.routes.projects import GUARD, PREFIX
from helixserve.serving.schemas import ERRORS
from helixserve.serving.workspace_schemas import (
    REFUSED_PAGE,
    DatasetIn,
    DatasetList,
    DatasetOut,
    ProfileOut,
    RefusedPage,
    RolesIn,
    RolesOut,
    SubsetIn,
    SubsetList,
    SubsetOut,
    VersionList,
    VersionOut,
)
from helixserve.workspace import audit, datasets
from helixserve.workspace.members import Principal
from helixserve.workspace.space import Workspace

router = APIRouter(
    prefix=PREFIX + "/{project}/datasets", tags=["workspace"], dependencies=GUARD, responses=ERRORS
)
NO_VERSION = "the dataset has no version yet to count rows in."
VersionQuery = Annotated[str, Query(description="sha256, its first 8+ characters, or latest")]
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("", status_code=201)
def create_dataset(workspace: WorkspaceDep, project: str, body: DatasetIn) -> DatasetOut:
    """Create an empty dataset; upload versions to it."""
    with workspace.db.session() as session:
        return DatasetOut.of(datasets.create_dataset(session, project, body.name), [])


@router.get("")
def list_datasets(workspace: WorkspaceDep, project: str) -> DatasetList:
    """The project's datasets, with their latest versions."""
    with workspace.db.session() as session:
        found = datasets.list_datasets(session, project)
        return DatasetList(
            datasets=[DatasetOut.of(d, datasets.versions(session, d)) for d in found]
        )


@router.get("/{dataset}/versions")
def list_versions(workspace: WorkspaceDep, project: str, dataset: str) -> VersionList:
    """A dataset's versions, oldest first."""
    with workspace.db.session() as session:
        found = datasets.versions(session, datasets.get_dataset(session, project, dataset))
        return VersionList(dataset=dataset, versions=[VersionOut.of(v) for v in found])


def _add_version(
    workspace: Workspace, who: Principal, project: str, dataset: str, body: Upload
) -> VersionOut:
    """In a worker thread: stream the upload into a new version (see the module contract)."""
    with workspace.db.session() as session:
        stream = blocking_file(body.chunks)
        version = datasets.add_version(session, workspace, project, dataset, stream, body.filename)
        target = f"dataset {dataset}@{version.id[:12]}"
        audit.record_in(session, who, "dataset.upload", project, target, rows=version.rows)
        return VersionOut.of(version)


def _check_dataset(workspace: Workspace, project: str, dataset: str) -> None:
    with workspace.db.session() as session:
        datasets.get_dataset(session, project, dataset)


@router.post("/{dataset}/versions", status_code=201, openapi_extra=UPLOAD_BODY)
@upload
async def upload_version(
    request: Request,
    workspace: WorkspaceDep,
    who: CallerDep,
    project: str,
    dataset: str,
    filename: Annotated[str | None, Query(description="the file's name (raw body)")] = None,
) -> VersionOut:
    """Upload a file (CSV/TSV/FASTA/Parquet, gzip too, or a zip of images) as a new version."""
    await anyio.to_thread.run_sync(_check_dataset, workspace, project, dataset)
    body = await open_upload(request, filename)
    return await anyio.to_thread.run_sync(_add_version, workspace, who, project, dataset, body)


@router.get("/{dataset}/versions/{version}/profile")
def version_profile(
    workspace: WorkspaceDep, project: str, dataset: str, version: str
) -> ProfileOut:
    """A version's profile: row counts, columns with their roles, a preview."""
    with workspace.db.session() as session:
        return ProfileOut.of(datasets.get_version(session, project, dataset, version))


@router.get("/{dataset}/versions/{version}/refused")
def refused_rows(
    workspace: WorkspaceDep,
    project: str,
    dataset: str,
    version: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = REFUSED_PAGE,
) -> RefusedPage:
    """The rows the inputs layer refused (row, id, line, message), a page at a time."""
    with workspace.db.session() as session:
        found = datasets.get_version(session, project, dataset, version)
        return RefusedPage.of(found, offset, limit)


@router.put("/{dataset}/versions/{version}/roles")
def set_roles(
    workspace: WorkspaceDep, project: str, dataset: str, version: str, body: RolesIn
) -> RolesOut:
    """Correct the roles of some columns (the others keep theirs)."""
    with workspace.db.session() as session:
        found = datasets.get_version(session, project, dataset, version)
        return RolesOut(roles=dict(datasets.set_roles(found, body.roles)))


@router.post("/{dataset}/subsets", status_code=201)
def create_subset(
    workspace: WorkspaceDep, who: CallerDep, project: str, dataset: str, body: SubsetIn
) -> SubsetOut:
    """Define a subset: a condition on a column, a random fraction, or the rest of others."""
    with workspace.db.session() as session:
        subset = datasets.add_subset(session, project, dataset, body.name, body.spec)
        target = f"subset {dataset}/{body.name}"
        audit.record_in(session, who, "subset.create", project, target)
        found = datasets.get_dataset(session, project, dataset)
        known = datasets.versions(session, found)
    if not known:
        return SubsetOut.of(subset, NO_VERSION)
    with workspace.db.session() as session:
        everything = datasets.list_subsets(session, found)
    counts = datasets.subset_counts(workspace, known[-1], everything)
    return SubsetOut.of(subset, counts[subset.name])


@router.get("/{dataset}/subsets")
def list_subsets(
    workspace: WorkspaceDep, project: str, dataset: str, version: VersionQuery = "latest"
) -> SubsetList:
    """The dataset's subsets, with the rows each selects in a version (default: the latest)."""
    with workspace.db.session() as session:
        found = datasets.get_dataset(session, project, dataset)
        subsets = datasets.list_subsets(session, found)
        known = datasets.versions(session, found)
        chosen = datasets.get_version(session, project, dataset, version) if known else None
    if chosen is None:
        listed = [SubsetOut.of(s, NO_VERSION) for s in subsets]
        return SubsetList(dataset=dataset, version=None, subsets=listed)
    counts = datasets.subset_counts(workspace, chosen, subsets)
    return SubsetList(
        dataset=dataset,
        version=chosen.id,
        subsets=[SubsetOut.of(s, counts[s.name]) for s in subsets],
    )


@router.delete("/{dataset}/subsets/{subset}")
def delete_subset(
    workspace: WorkspaceDep, who: CallerDep, project: str, dataset: str, subset: str
) -> SubsetList:
    """Delete a subset no experiment or other subset reads (409 naming those that do); the
    dataset's subsets left."""
    with workspace.db.session() as session:
        datasets.delete_subset(session, project, dataset, subset)
        audit.record_in(session, who, "subset.delete", project, f"subset {dataset}/{subset}")
    return list_subsets(workspace, project, dataset)
