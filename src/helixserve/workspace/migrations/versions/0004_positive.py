"""Experiments name the positive class of a binary target (issue 18): ``experiments.positive``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Types are written out here (not imported from ``models.py``), as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("positive", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("positive")
