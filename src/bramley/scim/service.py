"""Directory integrations (SCIM tokens) and the SCIM request log.

A SCIM token is its own credential: random, shown once, stored as its SHA-256, per integration, rotatable. It
opens only /api/v1/scim, and API tokens never open it. The request log records every SCIM request (method,
path, status, integration and a redacted summary of the change) so an admin can see why a user is archived.
"""
from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from bramley.audit import service as audit
from bramley.db.base import is_uuid, utcnow
from bramley.db.raw import RawStatement, as_utc, bound, execute, fetch_one
from bramley.errors import InvalidField, NotFound
from bramley.scim.models import ScimIntegration, ScimRequest
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.scim")
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_LOG_PAGE = 500


def hash_token(value: str) -> str:
    return hashlib.sha256(value.strip().encode()).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class IssuedToken:
    integration: ScimIntegration
    token: str


def _name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField({"name": ["This field is required."]})
    if len(value.strip()) > 255:
        raise InvalidField({"name": ["Ensure this field has no more than 255 characters."]})
    return value.strip()


def create_integration(db: Session, ctx: TenantContext, *, name: str) -> IssuedToken:
    """A new directory integration and its token (the only time the token is seen)."""
    name = _name(name)
    number = (db.scalar(select(func.max(ScimIntegration.number)).where(
        ScimIntegration.tenant_id == ctx.tenant_id)) or 0) + 1
    token = _new_token()
    row = ScimIntegration(tenant_id=ctx.tenant_id, number=number, name=name, token_hash=hash_token(token),
                          created_at=utcnow())
    db.add(row)
    db.flush()
    audit.record(db, ctx, action="create", target_type="scim_integration", target_id=row.id,
                 new_state={"name": name})
    return IssuedToken(row, token)


def get_all(db: Session, ctx: TenantContext) -> list[ScimIntegration]:
    return list(db.scalars(select(ScimIntegration).where(ScimIntegration.tenant_id == ctx.tenant_id)
                           .order_by(ScimIntegration.created_at, ScimIntegration.id)))


def get_or_raise(db: Session, ctx: TenantContext, integration_id: str) -> ScimIntegration:
    row = db.get(ScimIntegration, integration_id) if is_uuid(integration_id) else None
    if row is None or row.tenant_id != ctx.tenant_id:
        raise NotFound("scim integration")
    return row


def rotate(db: Session, ctx: TenantContext, integration_id: str) -> IssuedToken:
    """A new token; the old one stops working at once (the IdP must be given the new one)."""
    row = get_or_raise(db, ctx, integration_id)
    token = _new_token()
    row.token_hash = hash_token(token)
    row.rotated_at = utcnow()
    db.flush()
    audit.record(db, ctx, action="update", target_type="scim_integration", target_id=row.id,
                 new_state={"name": row.name, "token_rotated": True})
    return IssuedToken(row, token)


def rename(db: Session, ctx: TenantContext, integration_id: str, *, name: str) -> ScimIntegration:
    row = get_or_raise(db, ctx, integration_id)
    row.name = _name(name)
    db.flush()
    audit.record(db, ctx, action="update", target_type="scim_integration", target_id=row.id,
                 new_state={"name": row.name})
    return row


def delete(db: Session, ctx: TenantContext, integration_id: str) -> None:
    """The token dies with it; users it provisioned stay (still tagged with it)."""
    row = get_or_raise(db, ctx, integration_id)
    db.delete(row)
    db.flush()
    audit.record(db, ctx, action="delete", target_type="scim_integration", target_id=row.id,
                 new_state={"name": row.name})


def integration_tag(row: ScimIntegration) -> dict:
    """What `users[].integration` shows for a user this integration created (id a string, as irusdk wants)."""
    return {"id": str(row.number), "name": row.name, "uuid": row.id, "type": "scim"}


@dataclass(frozen=True)
class Caller:
    """What the SCIM door knows of a live token: a plain row, read on every request."""

    integration_id: str
    tenant_id: str
    name: str
    number: int
    last_used_at: datetime | None


# Read on the driver's cursor as a plain row: every SCIM request loads one (db/raw.py says why).
_BY_HASH = RawStatement("SELECT id, tenant_id, name, number, last_used_at, token_hash FROM scim_integrations "
                        "WHERE token_hash = :token_hash")


def authenticate(db: Session, value: str) -> Caller | None:
    digest = hash_token(value)
    row = fetch_one(db, _BY_HASH, {"token_hash": digest})
    if row is None or not hmac.compare_digest(row[5], digest):
        return None
    integration_id, tenant_id, name, number, last_used_at, _ = row
    return Caller(integration_id, tenant_id, name, number, as_utc(last_used_at))


def use_is_due(caller: Caller) -> bool:
    return caller.last_used_at is None or utcnow() - caller.last_used_at > LAST_USED_RESOLUTION


def mark_used(db: Session, integration_id: str) -> None:
    db.execute(update(ScimIntegration).where(ScimIntegration.id == integration_id).values(last_used_at=utcnow()))


# --- request log ---------------------------------------------------------------------------------------------

@dataclass
class LoggedRequest:
    tenant_id: str
    integration_id: str
    method: str
    path: str
    status: int
    resource_type: str | None
    resource_id: str | None
    summary: dict
    occurred_at: datetime

    def row(self) -> ScimRequest:
        return ScimRequest(tenant_id=self.tenant_id, id=str(ULID.from_datetime(self.occurred_at)),
                           occurred_at=self.occurred_at, integration_id=self.integration_id, method=self.method,
                           path=self.path[:512], status=self.status, resource_type=self.resource_type,
                           resource_id=self.resource_id, summary=self.summary)


_INSERT_REQUEST = RawStatement(
    "INSERT INTO scim_requests (tenant_id, id, occurred_at, integration_id, method, path, status, resource_type, "
    "resource_id, summary) VALUES (:tenant_id, :id, :occurred_at, :integration_id, :method, :path, :status, "
    ":resource_type, :resource_id, :summary)")
_R = ScimRequest.__table__.c


def record(db: Session, entry: LoggedRequest) -> None:
    """In the caller's transaction: a successful change and its log entry commit together. Plain SQL on the
    driver's cursor (db/raw.py): every SCIM write runs it."""
    execute(db, _INSERT_REQUEST, {
        "tenant_id": entry.tenant_id, "id": str(ULID.from_datetime(entry.occurred_at)),
        "occurred_at": bound(db, _R.occurred_at, entry.occurred_at), "integration_id": entry.integration_id,
        "method": entry.method, "path": entry.path[:512], "status": entry.status,
        "resource_type": entry.resource_type, "resource_id": entry.resource_id,
        "summary": bound(db, _R.summary, entry.summary)})


class LogBuffer:
    """Entries that must not cost a write of their own on the hot path (reads, refused requests): kept in memory
    and written in batches. A reader of the log flushes it first, so what it shows is complete in this process."""

    def __init__(self, database, flush_every: float = 1.0, max_pending: int = 500):
        self.database = database
        self.flush_every = flush_every
        self.max_pending = max_pending
        self._pending: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        atexit.register(self.flush)  # `bramley serve` stopping writes what is pending

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._pending.append(entry)
            full = len(self._pending) >= self.max_pending
            if not full and self._timer is None:
                self._timer = threading.Timer(self.flush_every, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            entries, self._pending = self._pending, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if not entries:
            return
        try:
            with self.database.unit_of_work() as s:
                s.add_all(e.row() for e in entries)
        except Exception:  # the log must never fail a request; losing a read's entry is the lesser harm
            log.exception("could not write %d SCIM request log entries", len(entries))


def _decode_cursor(value: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        direction, request_id = raw.split("|", 1)
        if direction not in (">", "<") or len(request_id) != 26:
            raise ValueError
        return direction, request_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidField({"cursor": ["Invalid cursor."]}) from None


def _encode_cursor(direction: str, request_id: str) -> str:
    return base64.urlsafe_b64encode(f"{direction}|{request_id}".encode()).decode().rstrip("=")


@dataclass
class LogPage:
    entries: list[ScimRequest]
    next_cursor: str | None
    previous_cursor: str | None


def list_requests(db: Session, ctx: TenantContext, *, limit: int, cursor: str | None = None,
                  integration_id: str | None = None, resource_id: str | None = None, method: str | None = None,
                  status: int | None = None, start: datetime | None = None, end: datetime | None = None) -> LogPage:
    """Newest first."""
    query = select(ScimRequest).where(ScimRequest.tenant_id == ctx.tenant_id)
    if integration_id:
        query = query.where(ScimRequest.integration_id == integration_id)
    if resource_id:
        query = query.where(ScimRequest.resource_id == resource_id)
    if method:
        query = query.where(ScimRequest.method == method.upper())
    if status is not None:
        query = query.where(ScimRequest.status == status)
    if start:
        query = query.where(ScimRequest.occurred_at >= start)
    if end:
        query = query.where(ScimRequest.occurred_at <= end)
    backwards = False
    if cursor:
        direction, request_id = _decode_cursor(cursor)
        backwards = direction == "<"
        query = query.where(ScimRequest.id > request_id if backwards else ScimRequest.id < request_id)
    order = ScimRequest.id.asc() if backwards else ScimRequest.id.desc()
    rows = list(db.scalars(query.order_by(order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_prev = bool(cursor) and (more if backwards else True)
    return LogPage(rows, _encode_cursor(">", rows[-1].id) if rows and has_next else None,
                   _encode_cursor("<", rows[0].id) if rows and has_prev else None)



def integration_tag_of(caller: Caller) -> dict:
    return {"id": str(caller.number), "name": caller.name, "uuid": caller.integration_id, "type": "scim"}
