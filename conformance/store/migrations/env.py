"""Alembic's environment: always driven from ``conformance.store.db.upgrade``.

The caller passes an open connection (already inside the transaction that holds the
migration lock), so nothing here reads an ini file or builds an engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from conformance.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the system database migrations run through 'conformance db upgrade', not the alembic command")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
