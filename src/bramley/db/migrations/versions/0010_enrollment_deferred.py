"""enrollment deferred: the channel has commands it said NotNow to

Every Idle re-offers the commands its device said NotNow to. Finding them visited every pending command of the
device, on every check-in, for what is rare. The channel now says whether it has any: set when a NotNow is
recorded, cleared by the re-offer. Channels with NotNow commands already queued start with it set.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mdm_enrollments") as batch:
        batch.add_column(sa.Column("deferred", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE mdm_enrollments SET deferred = TRUE WHERE EXISTS (SELECT 1 FROM mdm_queue q "
               "WHERE q.tenant_id = mdm_enrollments.tenant_id AND q.enrollment_id = mdm_enrollments.id "
               "AND q.status = 'not_now')")


def downgrade() -> None:
    with op.batch_alter_table("mdm_enrollments") as batch:
        batch.drop_column("deferred")
