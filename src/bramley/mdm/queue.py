"""The per-enrollment command queue (NanoMDM's rules): FIFO by priority, NotNow skipped until the next Idle,
final results move to history in the same transaction, so the hot table holds pending work only."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.db.raw import RawStatement, bound, dialect_of, execute, fetch_all, fetch_one, insert_rows
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


# The connect path runs these on every device request: plain SQL on the driver's cursor (db/raw.py), since
# SQLAlchemy's statement building and ORM bookkeeping cost several times what the database took to run them.
_REOFFER = RawStatement("UPDATE mdm_queue SET status = 'queued' WHERE tenant_id = :tenant AND "
                        "enrollment_id = :enrollment AND status = 'not_now'")
# The channel's flag for "has commands it said NotNow to" (mdm_enrollments.deferred, migration 0010): an Idle
# looks for them only when it is set.
_DEFER = RawStatement("UPDATE mdm_enrollments SET deferred = TRUE WHERE tenant_id = :tenant AND id = :enrollment")
_UNDEFER = RawStatement("UPDATE mdm_enrollments SET deferred = FALSE WHERE tenant_id = :tenant AND id = :enrollment")
_PENDING = RawStatement("SELECT request_type, attempts FROM mdm_queue WHERE tenant_id = :tenant AND "
                        "enrollment_id = :enrollment AND command_uuid = :command")
_NOT_NOW = RawStatement("UPDATE mdm_queue SET status = 'not_now', not_now_count = not_now_count + 1 WHERE "
                        "tenant_id = :tenant AND enrollment_id = :enrollment AND command_uuid = :command")
_DONE = RawStatement("DELETE FROM mdm_queue WHERE tenant_id = :tenant AND enrollment_id = :enrollment AND "
                     "command_uuid = :command")
_HISTORY = RawStatement("UPDATE mdm_command_history SET status = :status, attempts = :attempts WHERE "
                        "tenant_id = :tenant AND enrollment_id = :enrollment AND command_uuid = :command")
_HISTORY_FINAL = RawStatement(
    "UPDATE mdm_command_history SET status = :status, attempts = :attempts, error_chain = :errors, "
    "completed_at = :now WHERE tenant_id = :tenant AND enrollment_id = :enrollment AND command_uuid = :command")
_NEXT = RawStatement(
    "SELECT q.command_uuid, q.attempts, c.payload FROM mdm_queue q JOIN mdm_commands c "
    "ON c.tenant_id = q.tenant_id AND c.command_uuid = q.command_uuid "
    "WHERE q.tenant_id = :tenant AND q.enrollment_id = :enrollment AND q.status <> 'not_now' "
    "ORDER BY q.priority DESC, q.created_at, q.command_uuid LIMIT 1")
_SENT = RawStatement("UPDATE mdm_queue SET status = 'sent', sent_at = :now, attempts = :attempts WHERE "
                     "tenant_id = :tenant AND enrollment_id = :enrollment AND command_uuid = :command")


# PostgreSQL answers every statement with a round trip (SQLite runs in-process): there the device door's turn
# (every report waiting, see mdm/api.py) re-offers, finishes and hands out work for all its channels at once, one
# statement each, with data-modifying CTEs (which SQLite lacks). The turn's keys go as one JSON parameter
# (`json_to_recordset`): orjson writes it in C, where psycopg's array dumpers are Python, element by element. On
# SQLite the same calls run the statements above once per channel.
_REOFFER_PG = RawStatement(
    "WITH cleared AS (UPDATE mdm_enrollments c SET deferred = FALSE FROM json_to_recordset(:rows::json) "
    "AS r(t text, e text) WHERE c.tenant_id = r.t AND c.id = r.e) "
    "UPDATE mdm_queue q SET status = 'queued' FROM json_to_recordset(:rows::json) AS r(t text, e text) "
    "WHERE q.tenant_id = r.t AND q.enrollment_id = r.e AND q.status = 'not_now'")
_FINISH_PG = RawStatement(
    "WITH r AS (SELECT * FROM json_to_recordset(:rows::json) AS r(i int, t text, e text, c text, status text, "
    "errors jsonb)), "
    "done AS (DELETE FROM mdm_queue q USING r WHERE q.tenant_id = r.t AND q.enrollment_id = r.e "
    "AND q.command_uuid = r.c RETURNING r.*, q.request_type, q.attempts), "
    "history AS (UPDATE mdm_command_history h SET status = done.status, attempts = done.attempts, "
    "error_chain = done.errors, completed_at = :now FROM done WHERE h.tenant_id = done.t "
    "AND h.enrollment_id = done.e AND h.command_uuid = done.c) "
    "SELECT i, request_type FROM done")
_NEXT_PG = RawStatement(
    "WITH next AS (SELECT r.i, r.t, r.e, n.command_uuid FROM json_to_recordset(:rows::json) AS r(i int, t text, "
    "e text) CROSS JOIN LATERAL (SELECT command_uuid FROM mdm_queue q "
    "WHERE q.tenant_id = r.t AND q.enrollment_id = r.e AND q.status <> 'not_now' "
    "ORDER BY q.priority DESC, q.created_at, q.command_uuid LIMIT 1 FOR UPDATE) n), "
    "sent AS (UPDATE mdm_queue q SET status = 'sent', sent_at = :now, attempts = q.attempts + 1 FROM next "
    "WHERE q.tenant_id = next.t AND q.enrollment_id = next.e AND q.command_uuid = next.command_uuid "
    "RETURNING next.i, q.tenant_id, q.enrollment_id, q.command_uuid, q.attempts), "
    "history AS (UPDATE mdm_command_history h SET status = 'Sent', attempts = sent.attempts FROM sent "
    "WHERE h.tenant_id = sent.tenant_id AND h.enrollment_id = sent.enrollment_id "
    "AND h.command_uuid = sent.command_uuid) "
    "SELECT sent.i, c.payload FROM sent JOIN mdm_commands c ON c.tenant_id = sent.tenant_id "
    "AND c.command_uuid = sent.command_uuid")


@dataclass
class Result:
    """A device's answer to one command, on one channel."""

    tenant_id: str
    enrollment_id: str
    status: str
    command_uuid: str
    error_chain: list
    deferred: bool = True  # the channel has commands it said NotNow to (True when not known: they are looked for)


def record_result(db: Session, ctx: TenantContext, enrollment_id: str, status: str, command_uuid: str,
                  error_chain: list[dict]) -> Outcome | None:
    """Store a device's result. Unknown or already-final commands are ignored (retries are idempotent)."""
    return record_results(db, [Result(ctx.tenant_id, enrollment_id, status, command_uuid, error_chain)])[0]


def record_results(db: Session, results: list[Result]) -> list[Outcome | None]:
    """Store the results of a turn, one per channel (no channel twice): an Idle re-offers what the device said
    NotNow to (a new exchange), a final status moves its command to history, NotNow sets it aside until then."""
    outcomes: list[Outcome | None] = [None] * len(results)
    postgresql = dialect_of(db) == "postgresql"
    idle = [r for r in results if r.status == "Idle" and r.deferred]
    if idle and postgresql:
        rows = [{"t": r.tenant_id, "e": r.enrollment_id} for r in idle]
        execute(db, _REOFFER_PG, {"rows": orjson.dumps(rows).decode()})
    else:
        for r in idle:
            execute(db, _REOFFER, {"tenant": r.tenant_id, "enrollment": r.enrollment_id})
            execute(db, _UNDEFER, {"tenant": r.tenant_id, "enrollment": r.enrollment_id})
    final = [i for i, r in enumerate(results) if r.status in FINAL_STATUSES]
    now = bound(db, CommandHistory.completed_at, utcnow())
    if final and postgresql:
        rows = fetch_all(db, _FINISH_PG, {"now": now, "rows": orjson.dumps([
            {"i": i, "t": results[i].tenant_id, "e": results[i].enrollment_id, "c": results[i].command_uuid,
             "status": results[i].status, "errors": results[i].error_chain[:10]} for i in final]).decode()})
        for i, request_type in rows:
            outcomes[i] = Outcome(results[i].command_uuid, request_type, final=True)
    for i, r in enumerate(results):
        if r.status == "Idle" or (postgresql and r.status in FINAL_STATUSES):
            continue
        keys = {"tenant": r.tenant_id, "enrollment": r.enrollment_id, "command": r.command_uuid}
        row = fetch_one(db, _PENDING, keys)
        if row is None:
            continue
        request_type, attempts = row
        if r.status == "NotNow":
            execute(db, _NOT_NOW, keys)
            execute(db, _DEFER, keys)
            execute(db, _HISTORY, {**keys, "status": "NotNow", "attempts": attempts})
            outcomes[i] = Outcome(r.command_uuid, request_type, final=False)
        elif r.status in FINAL_STATUSES:
            execute(db, _HISTORY_FINAL, {**keys, "status": r.status, "attempts": attempts, "now": now,
                                         "errors": bound(db, CommandHistory.error_chain, r.error_chain[:10])})
            execute(db, _DONE, keys)
            outcomes[i] = Outcome(r.command_uuid, request_type, final=True)
    return outcomes


def next_command(db: Session, ctx: TenantContext, enrollment_id: str) -> bytes | None:
    """The next eligible command's plist (marked sent), or None when the queue has nothing for now."""
    return next_commands(db, [(ctx.tenant_id, enrollment_id)])[0]


def next_commands(db: Session, channels: list[tuple[str, str]]) -> list[bytes | None]:
    """next_command for each (tenant id, enrollment id) of a turn, no channel twice."""
    now = bound(db, QueuedCommand.sent_at, utcnow())
    payloads: list[bytes | None] = [None] * len(channels)
    if not channels:
        return payloads
    if dialect_of(db) == "postgresql":
        rows = fetch_all(db, _NEXT_PG, {"now": now, "rows": orjson.dumps(
            [{"i": i, "t": tenant, "e": enrollment} for i, (tenant, enrollment) in enumerate(channels)]).decode()})
        for i, payload in rows:
            payloads[i] = bytes(payload)
        return payloads
    for i, (tenant, enrollment) in enumerate(channels):
        keys = {"tenant": tenant, "enrollment": enrollment}
        row = fetch_one(db, _NEXT, keys)
        if row is None:
            continue
        command_uuid, attempts, payload = row
        keys.update(command=command_uuid, attempts=attempts + 1)
        execute(db, _SENT, {**keys, "now": now})
        execute(db, _HISTORY, {**keys, "status": "Sent"})
        payloads[i] = bytes(payload)
    return payloads


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
    # created_at bounds the scan to its index (nothing completes before it was created); completed_at decides.
    removed = db.execute(delete(CommandHistory).where(CommandHistory.created_at < cutoff,
                                                      CommandHistory.completed_at.is_not(None),
                                                      CommandHistory.completed_at < cutoff)).rowcount or 0
    orphan = ~select(QueuedCommand.command_uuid).where(
        QueuedCommand.tenant_id == Command.tenant_id, QueuedCommand.command_uuid == Command.command_uuid).exists()
    unreferenced = ~select(CommandHistory.id).where(
        CommandHistory.tenant_id == Command.tenant_id, CommandHistory.command_uuid == Command.command_uuid).exists()
    db.execute(delete(Command).where(orphan, unreferenced, Command.created_at < cutoff))
    return removed


def queue_size(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(QueuedCommand))


