"""Alembic environment: run with the connection ``fhirgen.store.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from fhirgen.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic revision --autogenerate` by a developer
    from sqlalchemy import create_engine

    from fhirgen.config import load_settings

    connection = create_engine(load_settings().resolved_database_url).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
)
with context.begin_transaction():
    context.run_migrations()
