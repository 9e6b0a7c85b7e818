"""check-ins update rows in place; the queue's index in hand-out order

Every check-in rewrites its device's row (last_check_in and the stored list document) and every finished command
its history row (completed_at). On PostgreSQL an update that changes no indexed column stays on its page and
touches no index (a HOT update); one that changes an indexed column writes a new entry into every index of the
table: twelve for a device, two of them trigram GIN indexes. So neither column is indexed any more:
- devices (tenant_id, last_check_in): ordering by last check-in and the trust rule's window are filters over a
  tenant's rows, which a tenant's other indexes already bound;
- mdm_command_history (tenant_id, completed_at), used only by the hourly compaction, becomes (created_at):
  a command completes after it was created, so what is past retention lies in that index's range.
On SQLite, which rewrites a row and the indexes whose columns changed, this saves one index write per check-in.

mdm_queue's (tenant_id, enrollment_id, priority, created_at) could not give the hand-out order (priority
descending, then oldest first, then command UUID): every check-in sorted all of a device's pending commands to take
the first. (tenant_id, enrollment_id, priority DESC, created_at, command_uuid) is that order.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_index("ix_devices_tenant_check_in")
    with op.batch_alter_table("mdm_command_history") as batch:
        batch.drop_index("ix_mdm_command_history_done")
        batch.create_index("ix_mdm_command_history_created", ["created_at"])
    with op.batch_alter_table("mdm_queue") as batch:
        batch.drop_index("ix_mdm_queue_next")
        batch.create_index("ix_mdm_queue_next", ["tenant_id", "enrollment_id", sa.text("priority DESC"), "created_at",
                                                 "command_uuid"])


def downgrade() -> None:
    with op.batch_alter_table("mdm_queue") as batch:
        batch.drop_index("ix_mdm_queue_next")
        batch.create_index("ix_mdm_queue_next", ["tenant_id", "enrollment_id", "priority", "created_at"])
    with op.batch_alter_table("mdm_command_history") as batch:
        batch.drop_index("ix_mdm_command_history_created")
        batch.create_index("ix_mdm_command_history_done", ["tenant_id", "completed_at"])
    with op.batch_alter_table("devices") as batch:
        batch.create_index("ix_devices_tenant_check_in", ["tenant_id", "last_check_in"])
