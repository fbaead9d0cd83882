"""Request and response bodies of the team routes (members, audit, the caller's account and
keys), declared once; the same conventions as :mod:`helixserve.serving.workspace_schemas`
(requests refuse unknown fields; responses are made from ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from helixserve.workspace.models import Role, UserKey

Scope = Literal["predict", "write", "admin"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(_In):
    role: Role = Field(description="viewer (read, predict), editor (change, run), owner (all)")


class MemberOut(BaseModel):
    user: str
    role: Role


class MemberList(BaseModel):
    members: list[MemberOut]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    project_id: str | None
    target: str
    details: dict[str, Any]
    address: str | None


class AuditList(BaseModel):
    events: list[AuditOut]


class KeyIn(_In):
    scope: Scope = Field(
        description="predict: read and predict; write: up to editor; admin: all your roles allow"
    )
    label: str = Field(default="", max_length=200, description="what the key is for")
    project: str | None = Field(default=None, description="only this project (by name)")
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class KeyOut(BaseModel):
    id: str
    label: str
    scope: str
    project_id: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: UserKey) -> Self:
        return cls.model_validate(row, from_attributes=True)


class NewKeyOut(KeyOut):
    key: str = Field(description="the key itself: shown this once, stored only as its sha256")


class KeyList(BaseModel):
    keys: list[KeyOut]


class PasswordIn(_In):
    old: str
    new: str


class MeOut(BaseModel):
    name: str
    admin: bool
    kind: str
    projects: dict[str, Role]
