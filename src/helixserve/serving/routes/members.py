"""Sharing a project and its audit log: ``/api/v1/projects/{project}/members`` and ``.../audit``.

Contract:
- ``GET .../members`` (viewer): the members and roles, owners first. ``PUT .../members/{user}``
  ``{"role": ...}`` (owner) adds a user or changes their role; ``DELETE .../members/{user}``
  (owner) removes one; the last owner cannot leave or be demoted (409). Each change is audited.
- ``GET .../audit`` (owner): the project's events, newest first (``?before=ID&limit=N``), as
  JSON, or CSV with ``?format=csv`` (a download).
- Behind the workspace guard (:func:`~helixserve.serving.deps.project_caller`); the roles are
  declared here in the route table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from helixserve.serving.access import ROLE
from helixserve.serving.deps import CallerDep, ServerDep, WorkspaceDep
from helixserve.serving.routes.projects import GUARD, PREFIX
from helixserve.serving.schemas import ERRORS
from helixserve.serving.server import Server
from helixserve.serving.team_schemas import AuditList, AuditOut, MemberIn, MemberList, MemberOut
from helixserve.workspace import audit, members
from helixserve.workspace.members import Principal
from helixserve.workspace.projects import get_project
from helixserve.workspace.space import Workspace

router = APIRouter(
    prefix=PREFIX + "/{project}", tags=["teams"], dependencies=GUARD, responses=ERRORS
)
OWNER = {ROLE: "owner"}


def _listed(workspace: WorkspaceDep, project: str) -> MemberList:
    with workspace.db.session() as session:
        found = members.members(session, project)
        return MemberList(members=[MemberOut(user=u.name, role=r) for u, r in found])


@router.get("/members")
def list_members(workspace: WorkspaceDep, project: str) -> MemberList:
    """The project's members and their roles."""
    return _listed(workspace, project)


@router.put("/members/{user}", openapi_extra=OWNER)
def share_project(
    request: Request,
    server: ServerDep,
    workspace: WorkspaceDep,
    who: CallerDep,
    project: str,
    user: str,
    body: MemberIn,
) -> MemberList:
    """Add a member, or change their role."""
    change = _Change(request, server, workspace, who, project, user)
    return change.made(
        "member.share", lambda s: members.share(s, project, user, body.role), role=body.role.value
    )


@router.delete("/members/{user}", openapi_extra=OWNER)
def unshare_project(
    request: Request,
    server: ServerDep,
    workspace: WorkspaceDep,
    who: CallerDep,
    project: str,
    user: str,
) -> MemberList:
    """Remove a member."""
    change = _Change(request, server, workspace, who, project, user)
    return change.made("member.unshare", lambda s: members.unshare(s, project, user))


@dataclass
class _Change:
    """One change of a project's members: made, audited, the role caches dropped."""

    request: Request
    server: Server
    workspace: Workspace
    who: Principal
    project: str
    user: str

    def made(self, action: str, change: Callable[[Session], object], **details: str) -> MemberList:
        self.server.access.forget_keys()
        with self.workspace.db.session() as session:
            change(session)
            audit.record(
                session,
                self.who,
                action,
                project_id=get_project(session, self.project).id,
                target=f"user {self.user}",
                details=details,
                address=_address(self.request),
            )
        return _listed(self.workspace, self.project)


@router.get("/audit", openapi_extra=OWNER, response_model=AuditList)
def project_audit(
    workspace: WorkspaceDep,
    project: str,
    before: Annotated[int | None, Query(description="only events older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response | AuditList:
    """Who did what in the project, newest first."""
    with workspace.db.session() as session:
        found = audit.events(session, get_project(session, project).id, before=before, limit=limit)
    if format == "csv":
        disposition = f'attachment; filename="{project}-audit.csv"'
        return Response(
            audit.as_csv(found),
            media_type="text/csv",
            headers={"Content-Disposition": disposition},
        )
    return AuditList(events=[AuditOut.model_validate(e, from_attributes=True) for e in found])


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None
