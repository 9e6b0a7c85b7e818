"""ade integrations

Revision ID: 0006
Revises: 0005
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ade_keys",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        _ts("created_at", False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_ade_keys")),
    )
    op.create_table(
        "ade_integrations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("blueprint_id", sa.String(length=36), nullable=True),
        sa.Column("use_blueprint_routing", sa.Boolean(), nullable=False),
        sa.Column("phone", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("server_uuid", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.String(length=320), nullable=False),
        sa.Column("org_name", sa.String(length=255), nullable=False),
        sa.Column("org_email", sa.String(length=320), nullable=False),
        sa.Column("org_phone", sa.String(length=64), nullable=False),
        sa.Column("org_address", sa.Text(), nullable=False),
        sa.Column("org_type", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("stoken_file_name", sa.String(length=255), nullable=False),
        _ts("access_token_expiry"),
        _ts("last_device_sync"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=64), nullable=True),
        _ts("status_received_at"),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("phase", sa.String(length=8), nullable=False),
        _ts("fetch_started_at"),
        _ts("sync_locked_until"),
        sa.Column("profile_uuid", sa.String(length=64), nullable=True),
        sa.Column("profile_url", sa.Text(), nullable=False),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ade_integrations")),
        sa.UniqueConstraint("tenant_id", "server_uuid", name=op.f("uq_ade_integrations_tenant_id")),
    )
    with op.batch_alter_table("ade_integrations", schema=None) as batch_op:
        batch_op.create_index("ix_ade_integrations_tenant_order", ["tenant_id", "created_at", "id"], unique=False)

    op.create_table(
        "ade_devices",
        sa.Column("pk", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("color", sa.String(length=64), nullable=False),
        sa.Column("asset_tag", sa.String(length=255), nullable=True),
        sa.Column("device_family", sa.String(length=32), nullable=False),
        sa.Column("os", sa.String(length=32), nullable=False),
        sa.Column("device_assigned_by", sa.String(length=320), nullable=False),
        _ts("device_assigned_date"),
        sa.Column("profile_status", sa.String(length=16), nullable=False),
        sa.Column("profile_uuid", sa.String(length=64), nullable=False),
        _ts("profile_assign_time"),
        _ts("profile_push_time"),
        sa.Column("blueprint_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("use_blueprint_routing", sa.Boolean(), nullable=False),
        sa.Column("needs_assignment", sa.Boolean(), nullable=False),
        sa.Column("last_assignment_status", sa.String(length=32), nullable=True),
        sa.Column("failed_assignment_attempts", sa.Integer(), nullable=False),
        _ts("assignment_status_received_at"),
        _ts("seen_at"),
        _ts("deleted_at"),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ade_devices")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_ade_devices_tenant_id")),
        sa.UniqueConstraint("tenant_id", "integration_id", "serial_number",
                            name="uq_ade_devices_tenant_id_integration_serial"),
    )
    with op.batch_alter_table("ade_devices", schema=None) as batch_op:
        batch_op.create_index("ix_ade_devices_tenant_integration", ["tenant_id", "integration_id", "deleted_at", "pk"],
                              unique=False)
        batch_op.create_index("ix_ade_devices_tenant_pk", ["tenant_id", "pk"], unique=False)
        batch_op.create_index("ix_ade_devices_tenant_serial", ["tenant_id", "serial_number"], unique=False)
        batch_op.create_index("ix_ade_devices_tenant_blueprint", ["tenant_id", "blueprint_id"], unique=False)
        batch_op.create_index("ix_ade_devices_tenant_user", ["tenant_id", "user_id"], unique=False)
        batch_op.create_index("ix_ade_devices_tenant_assign",
                              ["tenant_id", "integration_id", "needs_assignment", "pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ade_devices", schema=None) as batch_op:
        for name in ("ix_ade_devices_tenant_assign", "ix_ade_devices_tenant_user", "ix_ade_devices_tenant_blueprint",
                     "ix_ade_devices_tenant_serial", "ix_ade_devices_tenant_pk", "ix_ade_devices_tenant_integration"):
            batch_op.drop_index(name)
    op.drop_table("ade_devices")
    with op.batch_alter_table("ade_integrations", schema=None) as batch_op:
        batch_op.drop_index("ix_ade_integrations_tenant_order")
    op.drop_table("ade_integrations")
    op.drop_table("ade_keys")
