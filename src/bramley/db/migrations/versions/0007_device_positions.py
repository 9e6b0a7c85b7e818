"""device positions

The default-ordered device list at offset k read and skipped k index entries (OFFSET): at 100,000 devices the
last pages cost 30 times the first. A dense per-tenant position turns every page into an index range.
Existing devices are numbered in pk order; the counter row per tenant holds the last number given out.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_position_counters",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("last_position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_device_position_counters")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Plain ADD COLUMN on SQLite (NOT NULL needs a default there): a batch rebuild of the table would drop the
    # triggers that keep the search index (0003) in step.
    op.add_column("devices", sa.Column("position", sa.Integer(), nullable=not sqlite,
                                       server_default="0" if sqlite else None))
    op.execute("UPDATE devices SET position = numbered.n FROM (SELECT pk, row_number() OVER "
               "(PARTITION BY tenant_id ORDER BY pk) AS n FROM devices) AS numbered WHERE numbered.pk = devices.pk")
    op.execute("INSERT INTO device_position_counters (tenant_id, last_position) "
               "SELECT tenant_id, max(position) FROM devices GROUP BY tenant_id")
    if not sqlite:
        op.alter_column("devices", "position", existing_type=sa.Integer(), nullable=False)
    op.create_index("ix_devices_tenant_position", "devices", ["tenant_id", "position"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_devices_tenant_position", table_name="devices")
    op.drop_column("devices", "position")
    op.drop_table("device_position_counters")
