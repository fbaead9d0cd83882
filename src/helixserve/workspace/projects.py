"""Projects: create, rename, archive, list, and find by name.

Contract:
- Every function takes an open :class:`~sqlalchemy.orm.Session` (from
  :meth:`helixserve.workspace.db.Database.session`), which commits; they only flush.
- A project name follows the model-name rules (:func:`helixserve.store.names.check_name`: 1-64 of
  ``A-Z a-z 0-9 . _ -``, starting with a letter or digit, no ``..``), else
  :class:`~helixserve.errors.InvalidName`; names are unique (case-sensitive), a taken one raises
  :class:`~helixserve.errors.NameTaken`. An unknown name raises
  :class:`~helixserve.errors.ProjectNotFound` listing the project names there are.
- Archived projects keep their rows; :func:`list_projects` leaves them out unless asked.
- :func:`project_counts` counts what a project holds (datasets, experiments, runs per state,
  deployments), for its page and ``GET /api/v1/projects/{name}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from helixserve.errors import NameTaken, ProjectNotFound
from helixserve.store.names import check_name
from helixserve.workspace.models import Dataset, Deployment, Experiment, Project, Run

SHOWN_NAMES = 20


def listed(names: Sequence[str]) -> str:
    """``a, b, c`` (the first 20, then ``...``) for a message; an empty name (a column the
    file's header leaves unnamed) as ``(no name)``."""
    shown = [name or "(no name)" for name in names[:SHOWN_NAMES]]
    return ", ".join(shown) + (", ..." if len(names) > SHOWN_NAMES else "")


def _taken(name: str) -> NameTaken:
    return NameTaken(f"a project named {name!r} already exists; choose another name.")


def _flush_or_taken(session: Session, name: str) -> None:
    """Flush, turning a lost race for a unique name into :class:`NameTaken`."""
    try:
        session.flush()
    except IntegrityError:
        raise _taken(name) from None


def create_project(session: Session, name: str, title: str = "") -> Project:
    """Create a project named ``name`` (see the module contract for the name rules)."""
    check_name(name, "project name")
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise _taken(name)
    project = Project(name=name, title=title)
    session.add(project)
    _flush_or_taken(session, name)
    return project


def get_project(session: Session, name: str) -> Project:
    """The project named ``name`` (archived or not), else :class:`ProjectNotFound`."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        names = session.scalars(select(Project.name).order_by(Project.name)).all()
        raise ProjectNotFound(
            f"no project named {name!r}; "
            + (f"projects: {listed(names)}." if names else "there are no projects yet.")
        )
    return project


def rename_project(session: Session, name: str, new_name: str) -> Project:
    """Rename a project; its rows keep pointing at it (they hold its id, not its name)."""
    project = get_project(session, name)
    check_name(new_name, "project name")
    if new_name == name:
        return project
    if session.scalar(select(Project.id).where(Project.name == new_name)) is not None:
        raise _taken(new_name)
    project.name = new_name
    _flush_or_taken(session, new_name)
    return project


def archive_project(session: Session, name: str, archived: bool = True) -> Project:
    """Archive (or, with ``archived=False``, restore) a project."""
    project = get_project(session, name)
    project.archived = archived
    session.flush()
    return project


def list_projects(session: Session, include_archived: bool = False) -> list[Project]:
    """Projects by name; archived ones only with ``include_archived``."""
    query = select(Project).order_by(Project.name)
    if not include_archived:
        query = query.where(Project.archived.is_(False))
    return list(session.scalars(query))


def project_counts(session: Session, name: str) -> dict[str, Any]:
    """``{"datasets", "experiments", "deployments": int, "runs": {state: int}}`` of a project."""
    owner = get_project(session, name)
    counts: dict[str, Any] = {}
    for key, table in (
        ("datasets", Dataset),
        ("experiments", Experiment),
        ("deployments", Deployment),
    ):
        query = select(func.count()).select_from(table).where(table.project_id == owner.id)
        counts[key] = int(session.scalar(query) or 0)
    by_state = (
        select(Run.status, func.count()).where(Run.project_id == owner.id).group_by(Run.status)
    )
    counts["runs"] = {status.value: int(n) for status, n in session.execute(by_state).all()}
    return counts
