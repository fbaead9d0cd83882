"""Alembic environment of the workspace database (run by ``Database.upgrade``, workspace/db.py).

Contract: migrations run on the connection that ``Database.upgrade`` passes in
``config.attributes["connection"]`` (already in a transaction that holds the upgrade lock).
SQLite uses batch mode, so later revisions can alter its tables. This folder is not a Python
package: nothing imports it but Alembic. A new revision: copy ``versions/0001_initial.py``'s
header (``revision``, ``down_revision`` = the previous one) and write its ``op`` calls; the test
``test_migrations_create_what_the_models_declare`` fails until models and migrations agree.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from helixserve.workspace.models import Base


def run(connection: Connection) -> None:
    """Run the pending migrations on ``connection``."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the workspace migrations through helixserve.workspace.db.Database")
run(connection)
