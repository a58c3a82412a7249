"""Alembic environment: runs on the connection `db.migrate` hands over."""

from __future__ import annotations

from alembic import context

import db.models  # noqa: F401  (registers every table on the metadata)
from db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `metrivo db upgrade` (db.migrate)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
