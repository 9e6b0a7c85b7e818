"""A private database and data dir for tests that rotate keys: rotation covers every tenant of a database
and replaces the data dir's master key, so it must not touch the shared one."""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bramley.config import Settings
from bramley.db.engine import Database
from bramley.db.migrate import upgrade
from bramley.tenancy import service as tenants


@pytest.fixture
def private_settings(tmp_path):
    shared = os.environ.get("BRAMLEY_DATABASE_URL")
    data_dir = tmp_path / "data"
    if not shared:
        yield Settings(data_dir=data_dir, database_url=f"sqlite:///{tmp_path / 'private.db'}")
        return
    name = f"bramley_secrets_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(shared).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield Settings(data_dir=data_dir, database_url=make_url(shared).set(database=name)
                       .render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def private_db(private_settings):
    upgrade(private_settings)
    database = Database(private_settings)
    yield database
    database.dispose()


def new_tenant(database: Database):
    with database.unit_of_work() as s:
        return tenants.system_context(tenants.create(s, subdomain=f"s{uuid.uuid4().hex[:12]}"))
