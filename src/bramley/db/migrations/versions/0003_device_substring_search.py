"""device substring search

The device list's `serial_number` and `user_email` filters match substrings. A b-tree cannot seek on
`LIKE '%x%'`, so without these every such request read all of a tenant's devices (100 ms at 100,000).
PostgreSQL: trigram GIN indexes (pg_trgm; btree_gin so they start with tenant_id) serve ILIKE directly.
SQLite: an FTS5 trigram index over the two columns, kept in step by triggers; devices.service drives
the list from it. It spans tenants (FTS5 has no composite keys): the join back to devices filters on tenant_id.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE devices_search USING fts5(serial_number, user_email, content='devices', "
    "content_rowid='pk', tokenize='trigram')",
    "CREATE TRIGGER devices_search_insert AFTER INSERT ON devices BEGIN "
    "INSERT INTO devices_search(rowid, serial_number, user_email) VALUES (new.pk, new.serial_number, new.user_email); "
    "END",
    "CREATE TRIGGER devices_search_delete AFTER DELETE ON devices BEGIN "
    "INSERT INTO devices_search(devices_search, rowid, serial_number, user_email) "
    "VALUES ('delete', old.pk, old.serial_number, old.user_email); END",
    "CREATE TRIGGER devices_search_update AFTER UPDATE OF serial_number, user_email ON devices BEGIN "
    "INSERT INTO devices_search(devices_search, rowid, serial_number, user_email) "
    "VALUES ('delete', old.pk, old.serial_number, old.user_email); "
    "INSERT INTO devices_search(rowid, serial_number, user_email) VALUES (new.pk, new.serial_number, new.user_email); "
    "END",
    "INSERT INTO devices_search(devices_search) VALUES ('rebuild')",
]

POSTGRESQL_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX ix_devices_tenant_serial_trgm ON devices USING gin (tenant_id, serial_number gin_trgm_ops)",
    "CREATE INDEX ix_devices_tenant_user_email_trgm ON devices USING gin (tenant_id, user_email gin_trgm_ops)",
]


def upgrade() -> None:
    statements = {"sqlite": SQLITE_UP, "postgresql": POSTGRESQL_UP}.get(op.get_bind().dialect.name, [])
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("devices_search_insert", "devices_search_delete", "devices_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS devices_search")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_devices_tenant_user_email_trgm")
        op.execute("DROP INDEX IF EXISTS ix_devices_tenant_serial_trgm")
