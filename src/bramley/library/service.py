"""Library items and their per-device status; blueprint assignment of items."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.devices.render import iso_z
from bramley.errors import ActionRefused, InvalidField
from bramley.library.models import BlueprintLibraryItem, DeviceItemStatus, LibraryItem
from bramley.tenancy.context import TenantContext


def create_item(db: Session, ctx: TenantContext, *, name: str, type: str, active: bool = True) -> LibraryItem:
    item = LibraryItem(tenant_id=ctx.tenant_id, name=name, type=type, active=active)
    db.add(item)
    db.flush()
    audit.record(db, ctx, action="create", target_type="library_item", target_id=item.id,
                 new_state={"name": name, "type": type})
    return item


def set_device_status(db: Session, ctx: TenantContext, *, device_id: str, kind: str, item_id: str, name: str,
                      status: str, type: str = "", category: str = "", subcategory: str = "", log: str = "",
                      reported_at=None) -> DeviceItemStatus:
    row = db.scalar(select(DeviceItemStatus).where(
        DeviceItemStatus.tenant_id == ctx.tenant_id, DeviceItemStatus.device_id == device_id,
        DeviceItemStatus.kind == kind, DeviceItemStatus.item_id == item_id))
    if row is None:
        row = DeviceItemStatus(tenant_id=ctx.tenant_id, device_id=device_id, kind=kind, item_id=item_id)
        db.add(row)
    row.name, row.status, row.type, row.category, row.subcategory, row.log = name, status, type, category, subcategory, log
    row.reported_at = reported_at
    return row


def _rows(db: Session, ctx: TenantContext, device_id: str, kind: str) -> list[DeviceItemStatus]:
    return list(db.scalars(select(DeviceItemStatus).where(
        DeviceItemStatus.tenant_id == ctx.tenant_id, DeviceItemStatus.device_id == device_id,
        DeviceItemStatus.kind == kind).order_by(DeviceItemStatus.id)))


def device_library_items(db: Session, ctx: TenantContext, device, blueprint: dict | None) -> list[dict]:
    return [{
        "id": r.id, "status": r.status, "reported_at": iso_z(r.reported_at), "log": r.log,
        "last_audit_run": iso_z(r.last_audit_run) or "", "last_audit_log": r.last_audit_log,
        "control_log": r.control_log, "control_reported_at": iso_z(r.control_reported_at) or "",
        "item_id": r.item_id, "name": r.name, "type": r.type,
        "computer": {"id": device.id, "name": device.device_name},
        "blueprint": blueprint, "rules_present": r.rules_present,
    } for r in _rows(db, ctx, device.id, "library_item")]


def device_parameters(db: Session, ctx: TenantContext, device_id: str) -> list[dict]:
    return [{"status": r.status, "item_id": r.item_id, "name": r.name, "category": r.category,
             "subcategory": r.subcategory} for r in _rows(db, ctx, device_id, "parameter")]


def device_status_items(db: Session, ctx: TenantContext, device_id: str) -> list[dict]:
    return [{"id": r.id, "item_id": r.item_id, "name": r.name, "status": r.status,
             "reported_at": iso_z(r.reported_at), "type": r.type, "last_audit_log": r.last_audit_log,
             "log": r.log} for r in _rows(db, ctx, device_id, "library_item")]


def blueprint_items(db: Session, ctx: TenantContext, blueprint_id: str, *, limit: int, offset: int):
    query = (select(LibraryItem).join(BlueprintLibraryItem, (BlueprintLibraryItem.item_id == LibraryItem.id)
                                      & (BlueprintLibraryItem.tenant_id == LibraryItem.tenant_id))
             .where(BlueprintLibraryItem.tenant_id == ctx.tenant_id, BlueprintLibraryItem.blueprint_id == blueprint_id))
    total = db.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.scalars(query.order_by(LibraryItem.name, LibraryItem.id).limit(limit).offset(offset))
    return total, [{"id": i.id, "name": i.name} for i in rows]


def _assigned_ids(db: Session, ctx: TenantContext, blueprint_id: str) -> list[str]:
    return list(db.scalars(select(BlueprintLibraryItem.item_id).where(
        BlueprintLibraryItem.tenant_id == ctx.tenant_id, BlueprintLibraryItem.blueprint_id == blueprint_id)
        .order_by(BlueprintLibraryItem.item_id)))


def copy_assignments(db: Session, ctx: TenantContext, source_id: str, target_id: str) -> None:
    """A blueprint created from another starts with that blueprint's library items (same nodes)."""
    links = db.scalars(select(BlueprintLibraryItem).where(
        BlueprintLibraryItem.tenant_id == ctx.tenant_id, BlueprintLibraryItem.blueprint_id == source_id))
    db.add_all(BlueprintLibraryItem(tenant_id=ctx.tenant_id, blueprint_id=target_id, item_id=link.item_id,
                                    assignment_node_id=link.assignment_node_id) for link in list(links))
    db.flush()


def _item_or_invalid(db: Session, ctx: TenantContext, item_id: str) -> LibraryItem:
    from bramley.db.base import is_uuid

    item = db.get(LibraryItem, item_id) if is_uuid(item_id or "") else None
    if item is None or item.tenant_id != ctx.tenant_id:
        raise InvalidField({"library_item_id": ["Library Item not found."]})
    return item


def _check_node(blueprint_type: str, node_id: str | None) -> None:
    if blueprint_type == "classic" and node_id:
        raise ActionRefused("assignment_node_id cannot be provided for Classic Blueprint")
    if blueprint_type == "map" and not node_id:
        raise ActionRefused("Must provide assignment_node_id for Assignment Map Blueprint")


def assign(db: Session, ctx: TenantContext, blueprint, item_id: str, node_id: str | None) -> list[str]:
    _check_node(blueprint.type, node_id)
    item = _item_or_invalid(db, ctx, item_id)
    link = db.get(BlueprintLibraryItem, (ctx.tenant_id, blueprint.id, item.id))
    if link is not None:
        raise ActionRefused("Library Item already exists in Assignment Node" if node_id
                            else "Library Item already exists on Blueprint")
    db.add(BlueprintLibraryItem(tenant_id=ctx.tenant_id, blueprint_id=blueprint.id, item_id=item.id,
                                assignment_node_id=node_id))
    db.flush()
    audit.record(db, ctx, action="update", target_type="blueprint", target_id=blueprint.id,
                 target_component="library_items", new_state={"added": item.id})
    return _assigned_ids(db, ctx, blueprint.id)


def remove(db: Session, ctx: TenantContext, blueprint, item_id: str, node_id: str | None) -> list[str]:
    _check_node(blueprint.type, node_id)
    item = _item_or_invalid(db, ctx, item_id)
    link = db.get(BlueprintLibraryItem, (ctx.tenant_id, blueprint.id, item.id))
    if link is None:
        raise ActionRefused("Library Item does not exist in Assignment Node" if node_id
                            else "Library Item does not exist on Blueprint")
    db.delete(link)
    db.flush()
    audit.record(db, ctx, action="update", target_type="blueprint", target_id=blueprint.id,
                 target_component="library_items", new_state={"removed": item.id})
    return _assigned_ids(db, ctx, blueprint.id)
