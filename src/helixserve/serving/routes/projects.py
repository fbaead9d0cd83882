"""Project routes of the workspace API: ``/api/v1/projects``.

Contract:
- ``POST /api/v1/projects`` (201; 400 a bad name, 409 a name taken), ``GET /api/v1/projects``
  (``?archived=true`` includes archived ones), ``GET /api/v1/projects/{project}`` (with counts
  of datasets, experiments, runs per state and deployments; 404 unknown), ``PATCH
  /api/v1/projects/{project}`` (``name``: rename; ``archived``: archive or restore).
- Every workspace route (these, and those of :mod:`.datasets`, :mod:`.experiments`,
  :mod:`.runs`) is behind :func:`~helixserve.serving.deps.project_caller`: a caller
  (nobody: 401; a ``predict`` service key: 403) with the role the route needs in its
  ``{project}`` (a project they have no role in: 404, as one that does not exist; a lower role:
  403); renaming or archiving needs ``owner``. Each route answers 503 while the workspace
  database is not available. Handlers are plain ``def`` (FastAPI runs them in its thread pool)
  and open their own session, so a failed commit is the route's error; errors are the workspace's
  typed errors, mapped by the error table.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from helixserve.serving.access import ROLE
from helixserve.serving.deps import CallerDep, WorkspaceDep, project_caller
from helixserve.serving.schemas import ERRORS
from helixserve.serving.workspace_schemas import (
    ProjectChange,
    ProjectCounts,
    ProjectDetail,
    ProjectIn,
    ProjectList,
    ProjectOut,
)
from helixserve.workspace import audit, members, projects
from helixserve.workspace.models import Role

PREFIX = "/api/v1/projects"
GUARD = [Depends(project_caller)]

router = APIRouter(prefix=PREFIX, tags=["workspace"], dependencies=GUARD, responses=ERRORS)


@router.post("", status_code=201)
def create_project(workspace: WorkspaceDep, body: ProjectIn, who: CallerDep) -> ProjectOut:
    """Create a project (a user who creates one is its owner)."""
    with workspace.db.session() as session:
        made = projects.create_project(session, body.name, body.title)
        if who.kind == "user":
            members.share(session, made.name, who.name, Role.OWNER)
        audit.record(session, who, "project.create", project_id=made.id, target=made.name)
        return ProjectOut.of(made)


@router.get("")
def list_projects(
    workspace: WorkspaceDep,
    who: CallerDep,
    archived: Annotated[bool, Query(description="include archived projects")] = False,
) -> ProjectList:
    """The projects the caller is a member of (all of them for the local owner and admins), by
    name."""
    with workspace.db.session() as session:
        found = projects.list_projects(session, include_archived=archived)
        seen = {p.id for p in members.visible_projects(session, who)}
        return ProjectList(projects=[ProjectOut.of(p) for p in found if p.id in seen])


def _detail(workspace: WorkspaceDep, name: str) -> ProjectDetail:
    with workspace.db.session() as session:
        project = projects.get_project(session, name)
        counts = ProjectCounts.model_validate(projects.project_counts(session, name))
        return ProjectDetail(**ProjectOut.of(project).model_dump(), counts=counts)


@router.get("/{project}")
def get_project(workspace: WorkspaceDep, project: str) -> ProjectDetail:
    """One project, with what it holds."""
    return _detail(workspace, project)


@router.patch("/{project}", openapi_extra={ROLE: "owner"})
def change_project(workspace: WorkspaceDep, project: str, body: ProjectChange) -> ProjectDetail:
    """Rename, archive or restore a project."""
    name = project
    with workspace.db.session() as session:
        if body.name is not None:
            name = projects.rename_project(session, project, body.name).name
        if body.archived is not None:
            projects.archive_project(session, name, body.archived)
    return _detail(workspace, name)
