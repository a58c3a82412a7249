"""Migrations go up and down on the backend under test, on a database of their own."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from config import Environment, Settings
from db import migrate
from db.base import Base
from db.session import make_engine
from tests.conftest import TEST_SECRET, create_postgres_database, drop_postgres_database


@pytest.fixture
def scratch_engine(tmp_path: Path) -> Iterator[Engine]:
    base_url = os.environ.get("DATABASE_URL")
    name = f"metrivo_migrate_{os.getpid()}"
    url = create_postgres_database(base_url, name) if base_url else None
    engine = make_engine(
        Settings(
            data_dir=tmp_path,
            database_url=url,
            secret=TEST_SECRET,
            environment=Environment.DEVELOPMENT,
        )
    )
    yield engine
    engine.dispose()
    if base_url:
        drop_postgres_database(base_url, name)


def test_upgrade_creates_every_table_and_downgrade_removes_them(scratch_engine: Engine) -> None:
    assert migrate.current_revision(scratch_engine) is None
    migrate.upgrade(scratch_engine)
    assert migrate.current_revision(scratch_engine) == migrate.head_revision()
    tables = set(inspect(scratch_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables

    migrate.downgrade(scratch_engine, "base")
    assert migrate.current_revision(scratch_engine) is None
    assert not set(Base.metadata.tables) & set(inspect(scratch_engine).get_table_names())

    migrate.upgrade(scratch_engine)  # and up again, as a rollback-then-redeploy would
    assert migrate.current_revision(scratch_engine) == migrate.head_revision()


def test_upgrade_is_idempotent(scratch_engine: Engine) -> None:
    migrate.upgrade(scratch_engine)
    migrate.upgrade(scratch_engine)
    assert migrate.current_revision(scratch_engine) == migrate.head_revision()


def test_models_match_the_migrations(scratch_engine: Engine) -> None:
    """No model change is left without a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    migrate.upgrade(scratch_engine)
    with scratch_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
