"""Directory users: create (seed, SCIM), look up (UUID, legacy int, userName), list, SCIM profile changes, delete."""
from __future__ import annotations

import base64
import logging
import unicodedata
from dataclasses import dataclass, field
from types import SimpleNamespace

from sqlalchemy import and_, delete as sql_delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.db.base import new_uuid, tenant_row, utcnow
from bramley.db.raw import RawStatement, bound, execute, fetch_one
from bramley.errors import Conflict, DetailError, InvalidField, NotFound
from bramley.tenancy.context import TenantContext
from bramley.users.models import User, UserEmail

PAGE_SIZE = 300
log = logging.getLogger("bramley.users")


def user_name_key(user_name: str) -> str:
    """The form userName uniqueness and lookups compare: NFC, lower-cased (SCIM userName is caseExact false)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", user_name).lower())


def _next_legacy_id(db: Session, ctx: TenantContext) -> int:
    return (db.scalar(select(func.max(User.deprecated_user_id)).where(User.tenant_id == ctx.tenant_id)) or 0) + 1


def _free_user_names(db: Session, ctx: TenantContext, emails: list[str]) -> set[str]:
    """Which of these emails can also be their user's userName: not taken, not twice in the batch."""
    keys = [user_name_key(e) for e in emails if e]
    taken: set[str] = set()
    for start in range(0, len(keys), 500):
        taken.update(db.scalars(select(User.user_name_key).where(User.tenant_id == ctx.tenant_id,
                                                                 User.user_name_key.in_(keys[start:start + 500]))))
    free: set[str] = set()
    seen: set[str] = set()
    for key in keys:
        if key not in taken and key not in seen:
            free.add(key)
        seen.add(key)
    return free


@dataclass
class NewUser:
    name: str
    email: str
    department: str | None = None
    job_title: str | None = None
    integration: dict | None = None


def create(db: Session, ctx: TenantContext, *, name: str, email: str, department: str | None = None,
           job_title: str | None = None, integration: dict | None = None, audited: bool = True) -> User:
    return create_many(db, ctx, [NewUser(name, email, department, job_title, integration)], audited=audited)[0]


def create_many(db: Session, ctx: TenantContext, specs: list[NewUser], *, audited: bool = True) -> list[User]:
    """Create users in bulk (directory imports, the demo seed): a few statements per batch.

    A user's email doubles as its SCIM userName when no other user has it yet, so an IdP that looks the user up
    by userName adopts it (and PUTs its profile) instead of creating a twin.
    """
    first = _next_legacy_id(db, ctx)
    free = _free_user_names(db, ctx, [s.email for s in specs])
    created = []
    for i, s in enumerate(specs):
        key = user_name_key(s.email) if s.email else None
        named = key in free
        free.discard(key)
        created.append(User(tenant_id=ctx.tenant_id, deprecated_user_id=first + i, name=s.name, email=s.email,
                            department=s.department, job_title=s.job_title, integration=s.integration,
                            integration_id=(s.integration or {}).get("uuid"),
                            user_name=s.email if named else None, user_name_key=key if named else None))
    db.add_all(created)
    db.flush()
    if audited:
        for user in created:
            audit.record(db, ctx, action="create", target_type="user", target_id=user.id,
                         new_state={"name": user.name, "email": user.email})
    return created


def get(db: Session, ctx: TenantContext, user_id: str) -> User | None:
    return tenant_row(db, User, ctx.tenant_id, user_id)


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
        query = query.where(User.integration_id == integration_id)
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


# --- directory profiles (what SCIM writes) ------------------------------------------------------------------

@dataclass
class Email:
    value: str
    type: str | None = None
    primary: bool | None = None


@dataclass
class Profile:
    """Everything a directory says about a user, as plain values. `active=None`: unassigned (not archived)."""

    user_name: str
    external_id: str | None = None
    display_name: str | None = None
    formatted_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    middle_name: str | None = None
    title: str | None = None
    active: bool | None = True
    emails: list[Email] = field(default_factory=list)
    department: str | None = None
    employee_number: str | None = None
    manager_id: str | None = None


PROFILE_COLUMNS = {"user_name": "user_name", "external_id": "external_id", "display_name": "display_name",
                   "formatted_name": "formatted_name", "given_name": "given_name", "family_name": "family_name",
                   "middle_name": "middle_name", "title": "job_title", "department": "department",
                   "employee_number": "employee_number", "manager_id": "manager_id"}


def _iru_name(p: Profile) -> str:
    """Iru's single `name`: displayName, else the formatted or assembled name, else the userName."""
    parts = " ".join(x for x in (p.given_name, p.middle_name, p.family_name) if x)
    return (p.display_name or p.formatted_name or parts or p.user_name)[:255]


def _iru_email(p: Profile) -> str:
    primary = next((e.value for e in p.emails if e.primary), None)
    work = next((e.value for e in p.emails if (e.type or "").lower() == "work"), None)
    return (primary or work or (p.emails[0].value if p.emails else None) or p.user_name)[:320]


def get_by_user_name(db: Session, ctx: TenantContext, user_name: str) -> User | None:
    return db.scalar(select(User).where(User.tenant_id == ctx.tenant_id,
                                        User.user_name_key == user_name_key(user_name)))


def _taken(user_name: str) -> Conflict:
    return Conflict("userName", f"userName {user_name} is already taken")


def _email_rows(ctx: TenantContext, user_id: str, emails: list[Email]) -> list[UserEmail]:
    return [UserEmail(tenant_id=ctx.tenant_id, user_id=user_id, position=i, value=e.value,
                      value_key=e.value.lower(), type=e.type, primary=e.primary) for i, e in enumerate(emails)]


# Directory provisioning, the directory's hot write: plain SQL on the driver's cursor (db/raw.py). The user's
# legacy id is drawn inside its INSERT, and a row the unique indexes refuse (a taken userName, or on PostgreSQL a
# legacy id a concurrent transaction drew too) is skipped, not an error: no transaction or savepoint to unwind.
_USER_COLUMNS = [c.name for c in User.__table__.columns if c.name != "deprecated_user_id"]
_INSERT_DIRECTORY_USER = RawStatement(
    f"INSERT INTO users (deprecated_user_id, {', '.join(_USER_COLUMNS)}) VALUES ("
    "(SELECT COALESCE(MAX(deprecated_user_id), 0) + 1 FROM users WHERE tenant_id = :tenant_id), "
    f"{', '.join(':' + c for c in _USER_COLUMNS)}) ON CONFLICT DO NOTHING RETURNING deprecated_user_id")
_INSERT_EMAIL = RawStatement(
    'INSERT INTO user_emails (tenant_id, user_id, position, value, value_key, type, "primary") '
    "VALUES (:tenant_id, :user_id, :position, :value, :value_key, :type, :primary)")
_NAME_TAKEN = RawStatement("SELECT 1 FROM users WHERE tenant_id = :tenant_id AND user_name_key = :key")
# The typed columns, sent as SQLAlchemy would send them (a timestamp's text and JSON text on SQLite).
_TYPED = ("integration", "created_at", "updated_at")
# Concurrent creations in a tenant all draw the same next legacy id; each draw lost means a competitor committed
# one, so N parallel creators need up to N draws (an IdP runs a few to a few dozen requests at once).
LEGACY_ID_DRAWS = 64


def _name_taken(db: Session, ctx: TenantContext, key: str) -> bool:
    return fetch_one(db, _NAME_TAKEN, {"tenant_id": ctx.tenant_id, "key": key}) is not None


def create_directory_user(db: Session, ctx: TenantContext, profile: Profile, *,
                          integration: dict | None = None):
    """A user provisioned by a directory; returns it as a detached row (attributes as on User) for rendering.
    A taken userName (any case) is a Conflict, races included: the unique index decides (SQLite writers hold the
    database lock from BEGIN; a PostgreSQL INSERT racing another on the same userName waits for it to end)."""
    key = user_name_key(profile.user_name)
    values = _directory_user(ctx, profile, key, integration)
    params = {**values, **{c: bound(db, User.__table__.c[c], values[c]) for c in _TYPED}}
    row = None
    for _draw in range(LEGACY_ID_DRAWS):
        row = fetch_one(db, _INSERT_DIRECTORY_USER, params)
        if row is not None or _name_taken(db, ctx, key):
            break
        # Another transaction drew the same legacy id and has committed it (PostgreSQL): draw again.
    if row is None:
        raise _taken(profile.user_name)
    values["deprecated_user_id"] = row[0]
    for i, e in enumerate(profile.emails):
        execute(db, _INSERT_EMAIL, {"tenant_id": ctx.tenant_id, "user_id": values["id"], "position": i,
                                    "value": e.value, "value_key": e.value.lower(), "type": e.type,
                                    "primary": e.primary})
    audit.append(db, ctx, action="create", target_type="user", target_id=values["id"],
                 new_state={"user_name": profile.user_name, "active": values["active"]})
    return SimpleNamespace(**values)


def _directory_user(ctx: TenantContext, profile: Profile, key: str, integration: dict | None) -> dict:
    """A new directory user's columns, but for the legacy id its INSERT draws."""
    now = utcnow()
    archived = profile.active is False
    values = dict(id=new_uuid(), tenant_id=ctx.tenant_id, name=_iru_name(profile), email=_iru_email(profile),
                  active=not archived, archived=archived, scim_active=profile.active, user_name_key=key,
                  integration=integration, integration_id=(integration or {}).get("uuid"), version=1,
                  created_at=now, updated_at=now)
    for attr, column in PROFILE_COLUMNS.items():
        values[column] = getattr(profile, attr)
    return values


def emails_of(db: Session, ctx: TenantContext, user_ids: list[str]) -> dict[str, list[UserEmail]]:
    out: dict[str, list[UserEmail]] = {uid: [] for uid in user_ids}
    for start in range(0, len(user_ids), 500):
        rows = db.scalars(select(UserEmail).where(UserEmail.tenant_id == ctx.tenant_id,
                                                  UserEmail.user_id.in_(user_ids[start:start + 500]))
                          .order_by(UserEmail.user_id, UserEmail.position))
        for row in rows:
            out[row.user_id].append(row)
    return out


def profile_of(user: User, emails: list[UserEmail]) -> Profile:
    p = Profile(user_name=user.user_name or user.email, active=user.scim_active,
                emails=[Email(e.value, e.type, e.primary) for e in emails])
    for attr, column in PROFILE_COLUMNS.items():
        if attr != "user_name":
            setattr(p, attr, getattr(user, column))
    return p


def apply_profile(db: Session, ctx: TenantContext, user: User, profile: Profile, *,
                  keep_active: bool = False) -> list[str]:
    """Make the user match `profile`; returns the changed attribute names ([] when nothing changed).

    `active=False` archives the user (devices keep them, marked archived); `active=True` or unassigned restores
    them. `keep_active` leaves the status alone (a PUT that did not mention it).
    """
    from bramley.devices import service as devices

    current = profile_of(user, emails_of(db, ctx, [user.id])[user.id])
    changed = [attr for attr in PROFILE_COLUMNS if getattr(current, attr) != getattr(profile, attr)]
    emails_changed = current.emails != profile.emails
    status_changed = not keep_active and profile.active != current.active
    if not changed and not emails_changed and not status_changed:
        return []
    if "user_name" in changed:
        key = user_name_key(profile.user_name)
        other = db.scalar(select(User.id).where(User.tenant_id == ctx.tenant_id, User.user_name_key == key))
        if other is not None and other != user.id:
            raise _taken(profile.user_name)
        user.user_name_key = key
    for attr in changed:
        setattr(user, PROFILE_COLUMNS[attr], getattr(profile, attr))
    if emails_changed:
        db.execute(sql_delete(UserEmail).where(UserEmail.tenant_id == ctx.tenant_id, UserEmail.user_id == user.id))
        db.add_all(_email_rows(ctx, user.id, profile.emails))
        changed.append("emails")
    if status_changed:
        user.scim_active = profile.active
        user.archived = profile.active is False
        user.active = not user.archived
        changed.append("active")
    before = (user.name, user.email)
    user.name, user.email = _iru_name(profile), _iru_email(profile)
    user.version = (user.version or 1) + 1
    user.updated_at = utcnow()
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise _taken(profile.user_name) from None
    if status_changed or before != (user.name, user.email):
        devices.user_changed(db, ctx, user)
    state: dict = {"changed": changed}
    if status_changed:
        state.update(active=user.active, archived=user.archived)
    audit.record(db, ctx, action="update", target_type="user", target_id=user.id, new_state=state)
    return changed


def delete_directory_user(db: Session, ctx: TenantContext, user: User) -> None:
    """A directory deleted the user (Entra does): their devices stay, unassigned; memberships go with them."""
    from bramley.devices import service as devices

    for device_id in devices.ids_for_user(db, ctx, user.id):
        devices.update(db, ctx, device_id, user=None)
    from bramley.users import groups

    groups.forget_user(db, ctx, user.id)
    db.execute(sql_delete(UserEmail).where(UserEmail.tenant_id == ctx.tenant_id, UserEmail.user_id == user.id))
    db.delete(user)
    db.flush()
    audit.record(db, ctx, action="delete", target_type="user", target_id=user.id,
                 new_state={"user_name": user.user_name, "email": user.email})


def find(db: Session, ctx: TenantContext, where, *, offset: int, limit: int) -> tuple[int, list[User]]:
    """A page of users matching a WHERE clause (from users.filters), in creation order, and the total."""
    query = select(User).where(User.tenant_id == ctx.tenant_id, where)
    total = db.scalar(select(func.count()).select_from(query.with_only_columns(User.id).subquery()))
    if limit <= 0 or offset >= total:
        return total, []
    rows = list(db.scalars(query.order_by(User.created_at, User.id).offset(offset).limit(limit)))
    return total, rows
