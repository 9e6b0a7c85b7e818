"""enrollment locked_at

When a device acknowledged a DeviceLock and has not been heard from since, it is still locked: a second lock is
refused with Iru's "This device is already locked." Any later exchange on the channel clears it (a Mac locked
with a PIN checks in again only once someone has entered the PIN).

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mdm_enrollments", sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mdm_enrollments") as batch:
        batch.drop_column("locked_at")
