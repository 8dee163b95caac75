"""Fresh databases for store tests: a SQLite file, or a PostgreSQL schema of its own.

PostgreSQL is the server at ``FHIRGEN_TEST_POSTGRES_URL`` (default: the local one, database
``test``); tests that ask for it skip with the reason when it does not answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "FHIRGEN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@cache
def postgres_problem() -> str:
    """Why PostgreSQL cannot be used here ('' when it can)."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return f"PostgreSQL not reachable at {engine.url!r}: {type(exc.orig or exc).__name__}"
    finally:
        engine.dispose()
    return ""


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database of ``kind`` (``sqlite`` or ``postgresql``), removed after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store' / 'fhirgen.db'}"
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
