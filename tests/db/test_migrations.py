"""The migrations build exactly the schema the models describe, on the database this run uses."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bramley.models import Base


def _ours(name, type_, parent_names) -> bool:
    # Made by raw SQL in 0003 (SQLite FTS5 table and triggers, PostgreSQL trigram indexes), not by the models.
    return not (name or "").startswith("devices_search") and not (name or "").endswith("_trgm")


def test_upgraded_database_matches_the_models(db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": _ours, "compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
