"""Audit log: record (inside the caller's transaction) and list with an opaque cursor."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from ulid import ULID

from bramley.audit.models import AuditEvent
from bramley.db.base import utcnow
from bramley.db.raw import RawStatement, bound, execute
from bramley.errors import InvalidField
from bramley.tenancy.context import TenantContext

SORTS = ("occurred_at", "-occurred_at", "id", "-id")
MAX_LIMIT = 500


def _event(ctx: TenantContext, action: str, target_type: str, target_id, new_state: dict | None,
           target_component: str, metadata: dict | None) -> dict:
    """An event's values, keyed by AuditEvent attribute."""
    now = utcnow()
    return dict(tenant_id=ctx.tenant_id, id=str(ULID.from_datetime(now)), action=action, occurred_at=now,
                actor_id=ctx.actor_id, actor_type=ctx.actor_type, actor_name=ctx.actor_name, target_id=str(target_id),
                target_type=target_type, target_component=target_component, new_state=new_state or {},
                meta={"actor_name": ctx.actor_name, **(metadata or {})})


def record(
    db: Session,
    ctx: TenantContext,
    *,
    action: str,
    target_type: str,
    target_id: str,
    new_state: dict | None = None,
    target_component: str = "",
    metadata: dict | None = None,
) -> AuditEvent:
    """Add an audit event to the current transaction; it commits or rolls back with the change."""
    event = AuditEvent(**_event(ctx, action, target_type, target_id, new_state, target_component, metadata))
    db.add(event)
    return event


_INSERT = RawStatement(
    "INSERT INTO audit_events (tenant_id, id, action, occurred_at, actor_id, actor_type, actor_name, target_id, "
    "target_type, target_component, new_state, metadata) VALUES (:tenant_id, :id, :action, :occurred_at, "
    ":actor_id, :actor_type, :actor_name, :target_id, :target_type, :target_component, :new_state, :meta)")
# The typed columns, sent as SQLAlchemy would send them (a timestamp's text and JSON text on SQLite).
_TYPED = {"occurred_at": AuditEvent.__table__.c.occurred_at, "new_state": AuditEvent.__table__.c.new_state,
          "meta": AuditEvent.__table__.c.metadata}


def append(db: Session, ctx: TenantContext, *, action: str, target_type: str, target_id: str,
           new_state: dict | None = None, target_component: str = "", metadata: dict | None = None) -> None:
    """`record`, written at once in plain SQL on the driver's cursor (db/raw.py), still inside the caller's
    transaction. For hot paths that write no ORM objects (SCIM provisioning): there the session's flush of the one
    event at commit cost more than the request's own INSERTs."""
    values = _event(ctx, action, target_type, target_id, new_state, target_component, metadata)
    for key, column in _TYPED.items():
        values[key] = bound(db, column, values[key])
    execute(db, _INSERT, values)


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None
    previous_cursor: str | None


def _encode(sort: str, event: AuditEvent, direction: str) -> str:
    raw = f"{direction}|{sort}|{event.occurred_at.isoformat()}|{event.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str, datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, sort, when, event_id = raw.split("|", 3)
        if direction not in (">", "<") or sort not in SORTS:
            raise ValueError
        return direction, sort, datetime.fromisoformat(when), event_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidField({"cursor": ["Invalid cursor."]}) from None


def parse_date_bound(value: str | None, field: str, *, end: bool) -> datetime | None:
    """start_date/end_date take a datetime or YYYY-MM-DD (a bare end date covers that whole day)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime.combine(d, time.max if end else time.min, tzinfo=timezone.utc)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField({field: ["Enter a valid date/time."]}) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def list_events(
    db: Session,
    ctx: TenantContext,
    *,
    limit: int,
    sort_by: str,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
) -> AuditPage:
    if sort_by not in SORTS:
        raise InvalidField({"sort_by": [f"Select a valid choice. {sort_by} is not one of the available choices."]})
    desc = sort_by.startswith("-")
    direction = ">"  # forward through the sort order
    if cursor:
        direction, sort_by, c_when, c_id = _decode(cursor)
        desc = sort_by.startswith("-")
    # Each sort keys on its own field: ULIDs minted in another process within the same millisecond
    # need not follow occurred_at, so sorting by id must compare ids alone (id breaks occurred_at ties).
    by_id = sort_by.lstrip("-") == "id"
    key = (AuditEvent.id,) if by_id else (AuditEvent.occurred_at, AuditEvent.id)
    query = select(AuditEvent).where(AuditEvent.tenant_id == ctx.tenant_id)
    if start:
        query = query.where(AuditEvent.occurred_at >= start)
    if end:
        query = query.where(AuditEvent.occurred_at <= end)
    backwards = direction == "<"
    if cursor:
        after = (desc != backwards)  # walking toward smaller keys?
        if by_id:
            query = query.where(AuditEvent.id < c_id if after else AuditEvent.id > c_id)
        elif after:
            query = query.where(or_(key[0] < c_when, and_(key[0] == c_when, key[1] < c_id)))
        else:
            query = query.where(or_(key[0] > c_when, and_(key[0] == c_when, key[1] > c_id)))
    smaller_first = not (desc != backwards)
    order = [k.asc() if smaller_first else k.desc() for k in key]
    rows = list(db.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_prev = bool(cursor) and (more if backwards else True)
    next_cursor = _encode(sort_by, rows[-1], ">") if rows and has_next else None
    prev_cursor = _encode(sort_by, rows[0], "<") if rows and has_prev else None
    return AuditPage(rows, next_cursor, prev_cursor)
