"""Tags: a tenant's tag names; which devices carry them is the devices domain's business."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.db.base import is_uuid
from bramley.errors import Conflict, InvalidField, NotFound
from bramley.tags.models import Tag
from bramley.tenancy.context import TenantContext


def _clean(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidField({"name": ["This field may not be blank."]})
    return name


def create(db: Session, ctx: TenantContext, *, name: str) -> Tag:
    name = _clean(name)
    if get_by_name(db, ctx, name) is not None:
        raise Conflict("name", "tag with this name already exists.")
    tag = Tag(tenant_id=ctx.tenant_id, name=name)
    db.add(tag)
    db.flush()
    audit.record(db, ctx, action="create", target_type="tag", target_id=tag.id, new_state={"name": name})
    return tag


def get_by_name(db: Session, ctx: TenantContext, name: str) -> Tag | None:
    return db.scalar(select(Tag).where(Tag.tenant_id == ctx.tenant_id, Tag.name == name))


def get_or_raise(db: Session, ctx: TenantContext, tag_id: str) -> Tag:
    tag = db.get(Tag, tag_id) if is_uuid(tag_id) else None
    if tag is None or tag.tenant_id != ctx.tenant_id:
        raise NotFound("tag")
    return tag


def ensure(db: Session, ctx: TenantContext, names: list[str]) -> list[Tag]:
    """The tags with these names, creating the missing ones (PATCH device takes tag names)."""
    out = []
    for name in dict.fromkeys(_clean(n) for n in names):
        out.append(get_by_name(db, ctx, name) or create(db, ctx, name=name))
    return out


def names_for(db: Session, ctx: TenantContext, tag_ids: list[str]) -> dict[str, str]:
    if not tag_ids:
        return {}
    rows = db.execute(select(Tag.id, Tag.name).where(Tag.tenant_id == ctx.tenant_id, Tag.id.in_(tag_ids)))
    return dict(rows.all())


def ids_for_names(db: Session, ctx: TenantContext, names: list[str]) -> list[str]:
    return list(db.scalars(select(Tag.id).where(Tag.tenant_id == ctx.tenant_id, Tag.name.in_(names))))


def list_page(db: Session, ctx: TenantContext, *, search: str | None, limit: int, offset: int):
    query = select(Tag).where(Tag.tenant_id == ctx.tenant_id)
    if search:
        query = query.where(func.lower(Tag.name).contains(search.lower(), autoescape=True))
    total = db.scalar(select(func.count()).select_from(query.subquery()))
    rows = list(db.scalars(query.order_by(Tag.name, Tag.id).limit(limit).offset(offset)))
    return total, rows


def rename(db: Session, ctx: TenantContext, tag_id: str, name: str) -> Tag:
    from bramley.devices import service as devices

    tag = get_or_raise(db, ctx, tag_id)
    name = _clean(name)
    other = get_by_name(db, ctx, name)
    if other is not None and other.id != tag.id:
        raise Conflict("name", "tag with this name already exists.")
    tag.name = name
    db.flush()
    devices.tags_changed(db, ctx, tag.id)
    audit.record(db, ctx, action="update", target_type="tag", target_id=tag.id, new_state={"name": name})
    return tag


def delete(db: Session, ctx: TenantContext, tag_id: str) -> None:
    from bramley.devices import service as devices

    tag = get_or_raise(db, ctx, tag_id)
    devices.tag_deleted(db, ctx, tag.id)
    db.delete(tag)
    audit.record(db, ctx, action="delete", target_type="tag", target_id=tag.id, new_state={"name": tag.name})
