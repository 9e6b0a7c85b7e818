"""Directory users: create, look up (UUID or legacy int), list with cursor, delete."""
from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.db.base import is_uuid
from bramley.errors import DetailError, InvalidField, NotFound
from bramley.tenancy.context import TenantContext
from bramley.users.models import User

PAGE_SIZE = 300


def create(db: Session, ctx: TenantContext, *, name: str, email: str, department: str | None = None,
           job_title: str | None = None, integration: dict | None = None, audited: bool = True) -> User:
    next_legacy = (db.scalar(select(func.max(User.deprecated_user_id)).where(User.tenant_id == ctx.tenant_id)) or 0) + 1
    user = User(tenant_id=ctx.tenant_id, deprecated_user_id=next_legacy, name=name, email=email,
                department=department, job_title=job_title, integration=integration)
    db.add(user)
    db.flush()
    if audited:
        audit.record(db, ctx, action="create", target_type="user", target_id=user.id,
                     new_state={"name": name, "email": email})
    return user


@dataclass
class NewUser:
    name: str
    email: str
    department: str | None = None
    job_title: str | None = None


def create_many(db: Session, ctx: TenantContext, specs: list[NewUser], *, audited: bool = True) -> list[User]:
    """Create users in bulk (directory imports, the demo seed): one legacy-id query and one flush per batch."""
    first = (db.scalar(select(func.max(User.deprecated_user_id)).where(User.tenant_id == ctx.tenant_id)) or 0) + 1
    created = [User(tenant_id=ctx.tenant_id, deprecated_user_id=first + i, name=s.name, email=s.email,
                    department=s.department, job_title=s.job_title) for i, s in enumerate(specs)]
    db.add_all(created)
    db.flush()
    if audited:
        for user in created:
            audit.record(db, ctx, action="create", target_type="user", target_id=user.id,
                         new_state={"name": user.name, "email": user.email})
    return created


def get(db: Session, ctx: TenantContext, user_id: str) -> User | None:
    if not is_uuid(user_id):
        return None
    user = db.get(User, str(user_id))
    return user if user is not None and user.tenant_id == ctx.tenant_id else None


def get_or_raise(db: Session, ctx: TenantContext, user_id: str) -> User:
    user = get(db, ctx, user_id)
    if user is None:
        raise NotFound("user")
    return user


def resolve(db: Session, ctx: TenantContext, ref) -> User | None:
    """A user by UUID, or by the legacy integer id (int or numeric string) the cards still send."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, str) and ref.strip().isascii() and ref.strip().isdigit():  # "²".isdigit() too
        ref = int(ref)
    if isinstance(ref, int):
        if not 0 <= ref < 2**63:  # no such id, and the database could not even bind it
            return None
        return db.scalar(select(User).where(User.tenant_id == ctx.tenant_id, User.deprecated_user_id == ref))
    if isinstance(ref, str):
        return get(db, ctx, ref.strip())
    return None


def get_many(db: Session, ctx: TenantContext, ids: list[str]) -> dict[str, User]:
    if not ids:
        return {}
    rows = db.scalars(select(User).where(User.tenant_id == ctx.tenant_id, User.id.in_(ids)))
    return {u.id: u for u in rows}


@dataclass
class UserPageResult:
    users: list[User]
    next_cursor: str | None
    previous_cursor: str | None


def _cursor(direction: str, user: User) -> str:
    raw = f"{direction}|{user.created_at.isoformat()}|{user.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _uncursor(value: str):
    from datetime import datetime

    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        direction, when, uid = raw.split("|", 2)
        if direction not in (">", "<"):
            raise ValueError
        return direction, datetime.fromisoformat(when), uid
    except (ValueError, UnicodeDecodeError):
        raise InvalidField({"cursor": ["Invalid cursor."]}) from None


def list_users(db: Session, ctx: TenantContext, *, email: str | None = None, user_id: str | None = None,
               integration_id: str | None = None, archived: bool | None = None, cursor: str | None = None,
               page_size: int = PAGE_SIZE) -> UserPageResult:
    query = select(User).where(User.tenant_id == ctx.tenant_id)
    if email:
        query = query.where(func.lower(User.email).contains(email.lower(), autoescape=True))
    if user_id:
        query = query.where(User.id == user_id)
    if integration_id:
        query = query.where(User.integration["uuid"].as_string() == integration_id)
    if archived is not None:
        query = query.where(User.archived == archived)
    direction = ">"
    if cursor:
        direction, when, uid = _uncursor(cursor)
        if direction == ">":
            query = query.where(or_(User.created_at > when, and_(User.created_at == when, User.id > uid)))
        else:
            query = query.where(or_(User.created_at < when, and_(User.created_at == when, User.id < uid)))
    order = (User.created_at.asc(), User.id.asc()) if direction == ">" else (User.created_at.desc(), User.id.desc())
    rows = list(db.scalars(query.order_by(*order).limit(page_size + 1)))
    more = len(rows) > page_size
    rows = rows[:page_size]
    if direction == "<":
        rows.reverse()
    has_next = more if direction == ">" else True
    has_prev = bool(cursor) and (True if direction == ">" else more)
    return UserPageResult(
        rows,
        _cursor(">", rows[-1]) if rows and has_next else None,
        _cursor("<", rows[0]) if rows and has_prev else None,
    )


def archive(db: Session, ctx: TenantContext, user_id: str, archived: bool = True) -> User:
    """Archive (or restore) a user; their devices' `user.is_archived` follows in the same transaction."""
    from bramley.devices import service as devices

    user = get_or_raise(db, ctx, user_id)
    if user.archived != archived:
        user.archived = archived
        db.flush()
        devices.user_changed(db, ctx, user)
        audit.record(db, ctx, action="update", target_type="user", target_id=user.id,
                     new_state={"archived": archived})
    return user


def delete(db: Session, ctx: TenantContext, user_id: str) -> None:
    from bramley.devices import service as devices

    user = get_or_raise(db, ctx, user_id)
    if devices.count_for_user(db, ctx, user.id):
        raise DetailError("User still assigned to one or more devices.")
    db.delete(user)
    audit.record(db, ctx, action="delete", target_type="user", target_id=user.id,
                 new_state={"email": user.email})
