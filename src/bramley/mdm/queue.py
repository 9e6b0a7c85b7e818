"""The per-enrollment command queue (NanoMDM's rules): FIFO by priority, NotNow skipped until the next Idle,
final results move to history in the same transaction, so the hot table holds pending work only."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.db.raw import bound, insert_rows
from bramley.mdm.models import Command, CommandHistory, QueuedCommand
from bramley.mdm.protocol import FINAL_STATUSES, encode_command, new_command_uuid
from bramley.tenancy.context import TenantContext


@dataclass
class Target:
    enrollment_id: str
    device_id: str


_QUEUE_COLUMNS = ("tenant_id", "enrollment_id", "command_uuid", "request_type", "priority", "status", "not_now_count",
                  "attempts", "created_at")
_HISTORY_COLUMNS = ("tenant_id", "device_id", "enrollment_id", "command_uuid", "request_type", "status",
                    "error_chain", "attempts", "created_at")


def enqueue(db: Session, ctx: TenantContext, targets: list[Target], request_type: str, fields: dict, *,
            action: str = "", priority: int = 0) -> str:
    """One command body for all targets plus one queue row each, in bulk statements. Returns the CommandUUID."""
    command_uuid = new_command_uuid()
    now = utcnow()
    db.execute(insert(Command).values(
        tenant_id=ctx.tenant_id, command_uuid=command_uuid, request_type=request_type,
        payload=encode_command(command_uuid, request_type, fields), action=action,
        created_by=ctx.actor_name, created_at=now))
    # 100,000 targets are 200,000 rows: written on the driver's cursor, with the shared values converted once
    # (the ORM's per-row parameter processing took longer than the database did).
    created = bound(db, QueuedCommand.__table__.c.created_at, now)
    no_errors = bound(db, CommandHistory.__table__.c.error_chain, [])
    tenant = ctx.tenant_id
    insert_rows(db, "mdm_queue", _QUEUE_COLUMNS, [
        (tenant, t.enrollment_id, command_uuid, request_type, priority, "queued", 0, 0, created) for t in targets])
    # History rows (status Pending) give /commands its list; completion updates them in place.
    insert_rows(db, "mdm_command_history", _HISTORY_COLUMNS, [
        (tenant, t.device_id, t.enrollment_id, command_uuid, request_type, "Pending", no_errors, 0, created)
        for t in targets])
    return command_uuid


def pending_types(db: Session, ctx: TenantContext, enrollment_id: str) -> set[str]:
    return set(db.scalars(select(QueuedCommand.request_type).where(
        QueuedCommand.tenant_id == ctx.tenant_id, QueuedCommand.enrollment_id == enrollment_id)))


def pending_fields(db: Session, ctx: TenantContext, enrollment_id: str, request_type: str) -> bytes | None:
    """The payload of a still-pending command of this type (a pending lock's PIN is reused)."""
    return db.scalar(select(Command.payload).join(QueuedCommand, and_(
        QueuedCommand.tenant_id == Command.tenant_id, QueuedCommand.command_uuid == Command.command_uuid))
        .where(QueuedCommand.tenant_id == ctx.tenant_id, QueuedCommand.enrollment_id == enrollment_id,
               QueuedCommand.request_type == request_type).limit(1))


@dataclass
class Outcome:
    """What a result did: the finished command (if it was ours and pending) and its request type."""

    command_uuid: str
    request_type: str
    final: bool


def record_result(db: Session, ctx: TenantContext, enrollment_id: str, status: str, command_uuid: str,
                  error_chain: list[dict]) -> Outcome | None:
    """Store a device's result. Unknown or already-final commands are ignored (retries are idempotent)."""
    now = utcnow()
    if status == "Idle":
        # A new exchange: commands the device said NotNow to are offered again.
        db.execute(update(QueuedCommand).where(
            QueuedCommand.tenant_id == ctx.tenant_id, QueuedCommand.enrollment_id == enrollment_id,
            QueuedCommand.status == "not_now").values(status="queued"))
        return None
    row = db.scalar(select(QueuedCommand).where(
        QueuedCommand.tenant_id == ctx.tenant_id, QueuedCommand.enrollment_id == enrollment_id,
        QueuedCommand.command_uuid == command_uuid))
    if row is None:
        return None
    history = (update(CommandHistory).where(
        CommandHistory.tenant_id == ctx.tenant_id, CommandHistory.enrollment_id == enrollment_id,
        CommandHistory.command_uuid == command_uuid))
    if status == "NotNow":
        row.status = "not_now"
        row.not_now_count += 1
        db.execute(history.values(status="NotNow", attempts=row.attempts))
        db.flush()
        return Outcome(command_uuid, row.request_type, final=False)
    if status in FINAL_STATUSES:
        db.execute(history.values(status=status, error_chain=error_chain[:10], attempts=row.attempts,
                                  completed_at=now))
        db.delete(row)
        db.flush()
        return Outcome(command_uuid, row.request_type, final=True)
    return None


def next_command(db: Session, ctx: TenantContext, enrollment_id: str) -> bytes | None:
    """The next eligible command's plist (marked sent), or None when the queue has nothing for now."""
    row = db.scalar(select(QueuedCommand).where(
        QueuedCommand.tenant_id == ctx.tenant_id, QueuedCommand.enrollment_id == enrollment_id,
        QueuedCommand.status != "not_now")
        .order_by(QueuedCommand.priority.desc(), QueuedCommand.created_at, QueuedCommand.command_uuid).limit(1))
    if row is None:
        return None
    row.status, row.sent_at, row.attempts = "sent", utcnow(), row.attempts + 1
    db.flush()
    db.execute(update(CommandHistory).where(
        CommandHistory.tenant_id == ctx.tenant_id, CommandHistory.enrollment_id == enrollment_id,
        CommandHistory.command_uuid == row.command_uuid).values(status="Sent", attempts=row.attempts))
    return db.scalar(select(Command.payload).where(Command.tenant_id == ctx.tenant_id,
                                                   Command.command_uuid == row.command_uuid))


def command_payload(db: Session, ctx: TenantContext, command_uuid: str) -> bytes | None:
    return db.scalar(select(Command.payload).where(Command.tenant_id == ctx.tenant_id,
                                                   Command.command_uuid == command_uuid))


def deactivate(db: Session, ctx: TenantContext, enrollment_ids: list[str], reason: str = "Deactivated") -> int:
    """Drop pending work (Authenticate re-enrolls; erase ends the enrollment). History keeps why."""
    if not enrollment_ids:
        return 0
    db.execute(update(CommandHistory).where(
        CommandHistory.tenant_id == ctx.tenant_id, CommandHistory.enrollment_id.in_(enrollment_ids),
        CommandHistory.status.in_(("Pending", "Sent", "NotNow"))).values(status=reason, completed_at=utcnow()))
    result = db.execute(delete(QueuedCommand).where(QueuedCommand.tenant_id == ctx.tenant_id,
                                                    QueuedCommand.enrollment_id.in_(enrollment_ids)))
    return result.rowcount or 0


def history_page(db: Session, ctx: TenantContext, device_id: str, *, limit: int, offset: int):
    query = select(CommandHistory).where(CommandHistory.tenant_id == ctx.tenant_id,
                                         CommandHistory.device_id == device_id)
    total = db.scalar(select(func.count()).select_from(query.subquery()))
    rows = list(db.scalars(query.order_by(CommandHistory.created_at.desc(), CommandHistory.id.desc())
                           .limit(limit).offset(offset)))
    return total, rows


def compact(db: Session, *, retention: timedelta, now: datetime | None = None) -> int:
    """Trim finished history past retention and command bodies nothing references any more."""
    cutoff = (now or utcnow()) - retention
    removed = db.execute(delete(CommandHistory).where(CommandHistory.completed_at.is_not(None),
                                                      CommandHistory.completed_at < cutoff)).rowcount or 0
    orphan = ~select(QueuedCommand.command_uuid).where(
        QueuedCommand.tenant_id == Command.tenant_id, QueuedCommand.command_uuid == Command.command_uuid).exists()
    unreferenced = ~select(CommandHistory.id).where(
        CommandHistory.tenant_id == Command.tenant_id, CommandHistory.command_uuid == Command.command_uuid).exists()
    db.execute(delete(Command).where(orphan, unreferenced, Command.created_at < cutoff))
    return removed


def queue_size(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(QueuedCommand))


