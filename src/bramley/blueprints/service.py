"""Blueprints: create (from scratch or copied from another blueprint), read, update, delete."""
from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.blueprints.models import Blueprint
from bramley.db.base import is_uuid, tenant_row
from bramley.errors import Conflict, InvalidField, NotFound, RuleViolation
from bramley.library import service as library
from bramley.tenancy.context import TenantContext

TYPES = ("classic", "map")
EDITABLE = ("name", "color", "description", "icon", "enrollment_code", "enrollment_code_active")


def _code(value) -> str:
    code = str(value).strip()
    if not code or len(code) > 32:
        raise InvalidField({"enrollment_code.code": ["Enter a valid enrollment code."]})
    return code


def _state(bp: Blueprint) -> dict:
    return {"name": bp.name, "description": bp.description, "icon": bp.icon, "color": bp.color, "type": bp.type,
            "enrollment_code": {"code": bp.enrollment_code, "is_active": bp.enrollment_code_active}}


def create(db: Session, ctx: TenantContext, *, name: str, enrollment_code_active: bool,
           enrollment_code: str | None = None, color: str | None = None, description: str | None = None,
           icon: str | None = None, type: str = "classic", source_type: str | None = None,
           source_id: str | None = None) -> Blueprint:
    name = (name or "").strip()
    if not name:
        raise InvalidField({"name": ["This field is required."]})
    if type not in TYPES:
        raise InvalidField({"type": [f'"{type}" is not a valid choice.']})
    if get_by_name(db, ctx, name) is not None:
        raise Conflict("name", "blueprint with this name already exists.")
    params: dict = {}
    if source_type is not None:
        if source_type == "blueprint":
            source = get(db, ctx, source_id or "")
            if source is None:
                raise InvalidField({"source.id": ["Blueprint not found."]})
            if source.type != type:
                raise RuleViolation("Blueprint type does not match the source blueprint type")
            params = dict(source.params)
        elif source_type != "template":
            raise InvalidField({"source.type": [f'"{source_type}" is not a valid choice.']})
    bp = Blueprint(
        tenant_id=ctx.tenant_id, name=name, type=type, params=params,
        enrollment_code=_code(enrollment_code) if enrollment_code not in (None, "") else f"{secrets.randbelow(10**6):06d}",
        enrollment_code_active=bool(enrollment_code_active),
        color=color or "aqua-800", icon=icon or "ss-files", description=description or "",
    )
    db.add(bp)
    db.flush()
    if source_type == "blueprint":
        library.copy_assignments(db, ctx, source.id, bp.id)
    audit.record(db, ctx, action="create", target_type="blueprint", target_id=bp.id, new_state=_state(bp))
    return bp


def get(db: Session, ctx: TenantContext, blueprint_id: str) -> Blueprint | None:
    return tenant_row(db, Blueprint, ctx.tenant_id, blueprint_id)


def get_or_raise(db: Session, ctx: TenantContext, blueprint_id: str) -> Blueprint:
    bp = get(db, ctx, blueprint_id)
    if bp is None:
        raise NotFound("blueprint")
    return bp


def get_by_name(db: Session, ctx: TenantContext, name: str) -> Blueprint | None:
    return db.scalar(select(Blueprint).where(Blueprint.tenant_id == ctx.tenant_id, Blueprint.name == name))


def get_all(db: Session, ctx: TenantContext) -> list[Blueprint]:
    return list(db.scalars(select(Blueprint).where(Blueprint.tenant_id == ctx.tenant_id)
                           .order_by(Blueprint.created_at, Blueprint.id)))


def list_page(db: Session, ctx: TenantContext, *, ids: list[str] | None, name: str | None,
              limit: int, offset: int) -> tuple[int, list[Blueprint]]:
    query = select(Blueprint).where(Blueprint.tenant_id == ctx.tenant_id)
    if ids is not None:
        query = query.where(Blueprint.id.in_([i for i in ids if is_uuid(i)]))
    if name:
        query = query.where(func.lower(Blueprint.name).contains(name.lower(), autoescape=True))
    total = db.scalar(select(func.count()).select_from(query.subquery()))
    rows = list(db.scalars(query.order_by(Blueprint.created_at, Blueprint.id).limit(limit).offset(offset)))
    return total, rows


def update(db: Session, ctx: TenantContext, blueprint_id: str, changes: dict) -> Blueprint:
    from bramley.devices import service as devices

    bp = get_or_raise(db, ctx, blueprint_id)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidField({k: ["This field cannot be changed."] for k in sorted(unknown)})
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise InvalidField({"name": ["This field may not be blank."]})
        other = get_by_name(db, ctx, name)
        if other is not None and other.id != bp.id:
            raise Conflict("name", "blueprint with this name already exists.")
        renamed = name != bp.name
        bp.name = name
    else:
        renamed = False
    if "enrollment_code" in changes:
        bp.enrollment_code = _code(changes["enrollment_code"])
    if "enrollment_code_active" in changes:
        bp.enrollment_code_active = bool(changes["enrollment_code_active"])
    if "description" in changes:
        bp.description = changes["description"] or ""
    if bp.type == "classic":  # map blueprints ignore color and icon
        if changes.get("color"):
            bp.color = changes["color"]
        if changes.get("icon"):
            bp.icon = changes["icon"]
    db.flush()
    if renamed:
        devices.blueprint_renamed(db, ctx, bp.id, bp.name)
    audit.record(db, ctx, action="update", target_type="blueprint", target_id=bp.id, new_state=_state(bp))
    return bp


def delete(db: Session, ctx: TenantContext, blueprint_id: str) -> None:
    from bramley.devices import service as devices

    bp = get_or_raise(db, ctx, blueprint_id)
    devices.blueprint_deleted(db, ctx, bp.id)
    db.delete(bp)
    audit.record(db, ctx, action="delete", target_type="blueprint", target_id=bp.id, new_state={"name": bp.name})
