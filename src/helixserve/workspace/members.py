"""Who may do what in a project: principals, memberships and the one access rule (issue 17).

Contract:
- A :class:`Principal` is whoever makes a request: the **local** owner (no user exists and the
  server listens on loopback: today's single-person workspace), a signed-in **user** (possibly
  through one of their API keys, which caps the role by the key's scope and may restrict it to
  one project), or a **service** key from ``HELIXSERVE_API_KEYS`` (``admin``: owner everywhere;
  ``predict``: predicts, reaches no project).
- :func:`role_in` is a principal's role in a project: ``owner`` for the local owner, an admin
  user and an admin service key; a user's membership role (:class:`~.models.Role`), capped by
  their key's scope (``predict`` -> viewer, ``write`` -> editor, ``admin`` -> owner) and ``None``
  outside the key's project; ``None`` for anyone else.
- :func:`require` is the check every project route makes: a project the principal has no role in
  is :class:`~helixserve.errors.ProjectNotFound`, worded exactly as for a project that does not
  exist (nobody learns which projects exist; only the local owner and admins, who see every
  project, get the list of names); a role below the one needed is
  :class:`~helixserve.errors.Forbidden` naming both roles.
- Memberships: :func:`share` adds a user or changes their role; :func:`unshare` removes one; a
  project always keeps an owner (removing or demoting its last owner is a
  :class:`~helixserve.errors.Conflict`). :func:`visible_projects` lists what a principal may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from helixserve.errors import Conflict, Forbidden, ProjectNotFound
from helixserve.workspace.accounts import get_user
from helixserve.workspace.models import Membership, Project, Role, User
from helixserve.workspace.projects import get_project

KeyScope = Literal["predict", "write", "admin"]
SCOPE_ROLE: dict[KeyScope, Role] = {
    "predict": Role.VIEWER,
    "write": Role.EDITOR,
    "admin": Role.OWNER,
}


@dataclass(frozen=True)
class Principal:
    """Whoever makes a request (see the module contract)."""

    kind: Literal["local", "user", "service"]
    name: str  # a user's name, "local", or "admin key" / "predict key"
    user_id: str | None = None
    admin: bool = False  # an admin user or an admin service key
    scope: KeyScope | None = None  # through an API key: its scope
    key_project: str | None = None  # a user key restricted to one project (its id)

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return self.name if self.scope is None or self.kind != "user" else f"{self.name} (key)"


LOCAL = Principal("local", "local", admin=True)


def role_in(session: Session, who: Principal, project: Project) -> Role | None:
    """``who``'s role in ``project`` (see the module contract)."""
    if who.kind == "local" or (who.admin and who.kind == "service"):
        return Role.OWNER
    if who.kind != "user" or who.user_id is None:
        return None
    if who.key_project is not None and who.key_project != project.id:
        return None
    role = Role.OWNER if who.admin else _membership(session, project.id, who.user_id)
    if role is None or who.scope is None:
        return role
    cap = SCOPE_ROLE[who.scope]
    return role if role.rank <= cap.rank else cap


def _membership(session: Session, project_id: str, user_id: str) -> Role | None:
    row = session.get(Membership, (project_id, user_id))
    return None if row is None else row.role


def require(session: Session, who: Principal, project: str, needed: Role) -> Project:
    """The project ``project`` if ``who`` has ``needed`` there (see the module contract)."""
    found = session.scalar(select(Project).where(Project.name == project))
    role = None if found is None else role_in(session, who, found)
    if found is None and (who.kind == "local" or who.admin):
        get_project(session, project)  # raises, listing the projects (they may see them all)
    if found is None or role is None:
        raise ProjectNotFound(f"no project named {project!r}.")
    if role.rank < needed.rank:
        article = "an" if role is Role.EDITOR or role is Role.OWNER else "a"
        raise Forbidden(
            f"{who.actor} is {article} {role.value} of project {project!r}; this needs "
            f"{needed.value} (a project owner can change your role)."
        )
    return found


def visible_projects(session: Session, who: Principal) -> list[Project]:
    """The projects ``who`` has a role in, by name."""
    everything = list(session.scalars(select(Project).order_by(Project.name)))
    return [p for p in everything if role_in(session, who, p) is not None]


def share(session: Session, project: str, user: str, role: Role) -> Membership:
    """Give ``user`` ``role`` in ``project`` (adding them, or changing their role)."""
    found, member = get_project(session, project), get_user(session, user)
    row = session.get(Membership, (found.id, member.id))
    if row is None:
        row = Membership(project_id=found.id, user_id=member.id, role=role)
        session.add(row)
    else:
        if row.role is Role.OWNER and role is not Role.OWNER:
            _keep_an_owner(session, found, member)
        row.role = role
    session.flush()
    return row


def unshare(session: Session, project: str, user: str) -> None:
    found, member = get_project(session, project), get_user(session, user)
    row = session.get(Membership, (found.id, member.id))
    if row is None:
        return
    if row.role is Role.OWNER:
        _keep_an_owner(session, found, member)
    session.delete(row)
    session.flush()


def _keep_an_owner(session: Session, project: Project, leaving: User) -> None:
    owners = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.project_id == project.id, Membership.role == Role.OWNER)
    )
    if (owners or 0) <= 1:
        raise Conflict(
            f"{leaving.name} is the only owner of project {project.name!r}; make someone else "
            "an owner first."
        )


def members(session: Session, project: str) -> list[tuple[User, Role]]:
    """A project's members and roles, owners first, then by name."""
    found = get_project(session, project)
    query = (
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == found.id)
    )
    rows = [(user, role) for user, role in session.execute(query)]
    return sorted(rows, key=lambda pair: (-pair[1].rank, pair[0].name))
