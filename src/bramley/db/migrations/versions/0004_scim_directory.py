"""scim directory

SCIM 2.0 provisioning (issue 6): directory users gain their SCIM attributes (userName kept as sent plus a
case-folded key under a unique index, so uniqueness ignores case on SQLite and PostgreSQL alike), their emails,
pushed groups and memberships, directory integrations with hashed SCIM tokens, the SCIM request log, and
blueprint assignment rules with the record of how each device got its blueprint.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)
USER_COLUMNS = [
    ("user_name", 255), ("user_name_key", 255), ("external_id", 255), ("display_name", 255), ("formatted_name", 255),
    ("given_name", 255), ("family_name", 255), ("middle_name", 255), ("employee_number", 255), ("manager_id", 255),
    ("integration_id", 36),
]


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        for name, length in USER_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))
        batch.add_column(sa.Column("scim_active", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.create_index("ux_users_tenant_user_name", ["tenant_id", "user_name_key"], unique=True)
        batch.create_index("ix_users_tenant_external_id", ["tenant_id", "external_id"])
        batch.create_index("ix_users_tenant_integration", ["tenant_id", "integration_id"])

    op.create_table(
        "user_emails",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                          name="fk_user_emails_user_id_users"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("value_key", sa.String(320), nullable=False),
        sa.Column("type", sa.String(64), nullable=True),
        sa.Column("primary", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", "position", name="pk_user_emails"),
    )
    op.create_index("ix_user_emails_tenant_value", "user_emails", ["tenant_id", "value_key"])

    op.create_table(
        "directory_groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("display_name_key", sa.String(255), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=True),
        sa.Column("integration_id", sa.String(36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_groups"),
    )
    op.create_index("ux_directory_groups_tenant_name", "directory_groups", ["tenant_id", "display_name_key"],
                    unique=True)
    op.create_index("ix_directory_groups_tenant_order", "directory_groups", ["tenant_id", "created_at", "id"])
    op.create_index("ix_directory_groups_tenant_external_id", "directory_groups", ["tenant_id", "external_id"])

    op.create_table(
        "directory_group_members",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("group_id", sa.String(36), sa.ForeignKey(
            "directory_groups.id", ondelete="CASCADE", name="fk_directory_group_members_group_id_directory_groups"),
            nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey(
            "users.id", ondelete="CASCADE", name="fk_directory_group_members_user_id_users"), nullable=False),
        sa.Column("display", sa.String(255), nullable=True),
        sa.Column("type", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "group_id", "user_id", name="pk_directory_group_members"),
    )
    op.create_index("ix_directory_group_members_tenant_user", "directory_group_members", ["tenant_id", "user_id"])

    op.create_table(
        "scim_integrations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("rotated_at", UTC, nullable=True),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scim_integrations"),
        sa.UniqueConstraint("token_hash", name="uq_scim_integrations_token_hash"),
    )
    op.create_index("ix_scim_integrations_tenant", "scim_integrations", ["tenant_id", "created_at"])

    op.create_table(
        "scim_requests",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("occurred_at", UTC, nullable=False),
        sa.Column("integration_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(16), nullable=True),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("summary", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_scim_requests"),
    )
    op.create_index("ix_scim_requests_tenant_resource", "scim_requests", ["tenant_id", "resource_id", "id"])

    op.create_table(
        "blueprint_assignment_rules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("blueprint_id", sa.String(36), nullable=False),
        sa.Column("override_manual", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blueprint_assignment_rules"),
    )
    op.create_index("ix_blueprint_assignment_rules_tenant_order", "blueprint_assignment_rules",
                    ["tenant_id", "position"])

    op.create_table(
        "device_blueprint_sources",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "device_id", name="pk_device_blueprint_sources"),
    )


def downgrade() -> None:
    for table in ("device_blueprint_sources", "blueprint_assignment_rules", "scim_requests", "scim_integrations",
                  "directory_group_members", "directory_groups", "user_emails"):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_tenant_integration")
        batch.drop_index("ix_users_tenant_external_id")
        batch.drop_index("ux_users_tenant_user_name")
        batch.drop_column("version")
        batch.drop_column("scim_active")
        for name, _ in reversed(USER_COLUMNS):
            batch.drop_column(name)
