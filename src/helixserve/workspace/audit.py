"""The audit log: who uploaded, ran, deployed, promoted, deleted, shared or changed a key, and when.

Contract:
- :func:`record` adds one event in the caller's session (so it commits, or not, with the change
  it records): the actor (:attr:`~.members.Principal.actor`), an action from :data:`ACTIONS`, the
  project (its id, kept when the project is gone), a target (``dataset utrs``, ``run cuperus:1``)
  and details (JSON; never a password, key or token: :func:`record` refuses details whose names
  look like one), and the client's address when there is one.
- :func:`record_model` records a change made to the model store outside the server
  (``helixserve models push|promote|delete``): its project is the one the model was last
  deployed from (none for a model that never came from a project: only admins see those).
- :func:`events` lists a project's events (or every event, for an admin), newest first, with
  paging by ``before`` (an event id); :func:`as_csv` writes them as CSV with a header.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from helixserve.workspace.members import Principal
from helixserve.workspace.models import AuditEvent, Deployment, Project

ACTIONS = frozenset(
    {
        "project.create",
        "project.update",
        "dataset.upload",
        "subset.create",
        "subset.delete",
        "experiment.create",
        "run.start",
        "run.stop",
        "run.resume",
        "run.deploy",
        "model.push",
        "model.promote",
        "model.delete",
        "member.share",
        "member.unshare",
        "key.create",
        "key.revoke",
        "user.add",
        "user.disable",
        "user.enable",
        "user.reset",
        "user.password",
        "user.signin",
    }
)
SECRET_WORDS = ("password", "token", "secret", "key_value")
COLUMNS = ("id", "at", "actor", "action", "project_id", "target", "details", "address")


def record(
    session: Session,
    who: Principal,
    action: str,
    *,
    project_id: str | None = None,
    target: str = "",
    details: Mapping[str, Any] | None = None,
    address: str | None = None,
) -> AuditEvent:
    """Add one event (see the module contract)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    for name in details or {}:
        if any(word in name.lower() for word in SECRET_WORDS):
            raise ValueError(f"audit details must not hold secrets ({name!r})")
    event = AuditEvent(
        actor=who.actor,
        action=action,
        project_id=project_id,
        target=target,
        details=dict(details or {}),
        address=address,
    )
    session.add(event)
    return event


def record_in(
    session: Session,
    who: Principal,
    action: str,
    project: str,
    target: str,
    **details: Any,
) -> AuditEvent:
    """:func:`record` for project ``project`` named (its id looked up)."""
    found = session.scalar(select(Project.id).where(Project.name == project))
    return record(session, who, action, project_id=found, target=target, details=details)


def record_model(
    session: Session, who: Principal, action: str, model: str, version: int, **details: Any
) -> AuditEvent:
    """:func:`record` a change to ``model@version`` in the store (see the module contract)."""
    project_id = session.scalar(
        select(Deployment.project_id)
        .where(Deployment.model == model)
        .order_by(Deployment.at.desc())
        .limit(1)
    )
    target = f"model {model}@{version}"
    return record(session, who, action, project_id=project_id, target=target, details=details)


def events(
    session: Session, project_id: str | None, *, before: int | None = None, limit: int = 100
) -> list[AuditEvent]:
    """A project's events (every event when ``project_id`` is ``None``), newest first."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(session.scalars(query))


def as_rows(found: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    return [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "project_id": e.project_id,
            "target": e.target,
            "details": e.details,
            "address": e.address,
        }
        for e in found
    ]


def as_csv(found: Sequence[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in as_rows(found):
        writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
    return out.getvalue()
