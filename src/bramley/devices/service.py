"""Devices: inventory records, the hot list, updates, notes, tags. Services flush; the door commits."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete as sql_delete
import orjson
from sqlalchemy import case, false, func, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.blueprints import service as blueprints
from bramley.db.base import is_uuid, new_uuid, utcnow
from bramley.db.raw import RawStatement, bound, dialect_of, execute, execute_many, fetch_all, fetch_one
from bramley.devices import render
from bramley.devices.models import (Device, DeviceInventory, DeviceNote, DevicePositionCounter, DeviceTag,
                                    device_search)
from bramley.errors import InvalidField, NotFound
from bramley.secrets import service as secrets
from bramley.tags import service as tags
from bramley.tenancy.context import TenantContext
from bramley.users import service as users

PLATFORMS = ("Mac", "iPhone", "iPad", "AppleTV")
MAX_PAGE = 300

ORDERING = {
    "asset_tag": Device.asset_tag,
    "blueprint_id": Device.blueprint_id,
    "device_id": Device.id,
    "device_name": Device.device_name,
    "last_check_in": Device.last_check_in,
    "model": Device.model,
    "platform": Device.platform,
    "os_version": Device.os_version,
    "serial_number": Device.serial_number,
    "user": Device.user_name,
}


@dataclass
class DeviceFilters:
    """The List Devices card's filters plus the API's extras. Exact unless the reference says contains."""

    asset_tag: str | None = None
    blueprint_id: str | None = None
    device_id: str | None = None
    device_name: str | None = None
    filevault_enabled: bool | None = None
    mac_address: str | None = None
    model: str | None = None  # contains
    os_version: str | None = None  # contains
    platform: str | None = None
    serial_number: str | None = None  # contains
    tag_name: str | None = None
    tag_name_in: str | None = None
    tag_id: str | None = None
    tag_id_in: str | None = None
    user: str | None = None  # name or email contains
    user_email: str | None = None  # contains
    user_email_exact: str | None = None
    user_id: str | None = None  # UUID or legacy int
    user_name: str | None = None  # contains


def _contains(db: Session, column, value: str):
    # SQLite's LIKE is already case-insensitive (ASCII); PostgreSQL needs ILIKE.
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    if db.get_bind().dialect.name == "postgresql":
        return column.ilike(pattern, escape="\\")
    return column.like(pattern, escape="\\")


def _filter_clauses(db: Session, ctx: TenantContext, f: DeviceFilters) -> list:
    c: list = [Device.tenant_id == ctx.tenant_id]
    exact = {"asset_tag": Device.asset_tag, "blueprint_id": Device.blueprint_id, "device_id": Device.id,
             "device_name": Device.device_name, "platform": Device.platform, "user_email_exact": Device.user_email}
    for name, column in exact.items():
        value = getattr(f, name)
        if value is not None and value != "":
            c.append(column == value)
    if f.mac_address:
        c.append(func.upper(Device.mac_address) == f.mac_address.upper())
    for name, column in (("model", Device.model), ("os_version", Device.os_version),
                         ("serial_number", Device.serial_number), ("user_email", Device.user_email),
                         ("user_name", Device.user_name)):
        value = getattr(f, name)
        if value:
            c.append(_contains(db, column, value))
    if f.user:
        c.append(or_(_contains(db, Device.user_name, f.user), _contains(db, Device.user_email, f.user)))
    if f.filevault_enabled is not None:
        c.append(Device.filevault_enabled == f.filevault_enabled)
    if f.user_id:
        user = users.resolve(db, ctx, f.user_id)
        c.append(Device.user_id == user.id if user else false())
    tag_ids: list[str] | None = None
    if f.tag_id or f.tag_id_in:
        tag_ids = [t for t in ([f.tag_id] if f.tag_id else []) + (f.tag_id_in.split(",") if f.tag_id_in else []) if t]
    if f.tag_name or f.tag_name_in:
        names = ([f.tag_name] if f.tag_name else []) + (f.tag_name_in.split(",") if f.tag_name_in else [])
        by_name = tags.ids_for_names(db, ctx, [n for n in names if n])
        tag_ids = by_name if tag_ids is None else [t for t in tag_ids if t in by_name]
    if tag_ids is not None:
        c.append(Device.pk.in_(select(DeviceTag.device_pk).where(
            DeviceTag.tenant_id == ctx.tenant_id, DeviceTag.tag_id.in_(tag_ids))))
    return c


def _search_terms(db: Session, f: DeviceFilters) -> list[tuple[str, str]]:
    """FTS5 phrases for the substring filters SQLite's trigram index can serve (3+ characters; shorter ones scan).

    PostgreSQL needs none: its trigram GIN indexes serve ILIKE as it is.
    """
    if db.get_bind().dialect.name != "sqlite":
        return []
    values = (("serial_number", f.serial_number), ("user_email", f.user_email))
    return [(name, '"' + value.replace('"', '""') + '"') for name, value in values if value and len(value) >= 3]


def _order(ordering: str | None) -> list:
    terms = []
    for term in (ordering or "").split(","):
        term = term.strip()
        column = ORDERING.get(term.lstrip("-"))
        if column is not None:  # unknown ordering fields are ignored, as the upstream framework does
            terms.append(column.desc() if term.startswith("-") else column.asc())
    return [*terms, Device.pk.asc()]


def _docs_of(dialect: str, pks, order: list):
    """The stored JSON of the page whose keys `pks` selects, in list order. SQLite walks `pk IN (...)` in key
    order and needs no sort of the 300 documents a join would copy into one; PostgreSQL keeps a join's order."""
    if dialect == "sqlite":
        return select(Device.doc).where(Device.pk.in_(pks)).order_by(*order)
    page = pks.subquery()
    return select(Device.doc).join(page, Device.pk == page.c.pk).order_by(*order)


# The unfiltered page in default order (connectors walking the whole fleet), the commonest request. Positions are
# dense and in pk order, so offset k starts right after position k: an index range at any depth. Read on the
# driver's cursor (db/raw.py), as the bytes stored, never decoded into str only to be encoded again for the reply.
# SQLite joins the page's documents into one BLOB: one row to fetch instead of 300 (it yields the ordered subquery
# in order). PostgreSQL sends the rows: its string_agg copied the page several times over and, with the ORDER BY
# it needs to be sure of the order, sorted 300 documents: twice the server's CPU of the page's rows.
WHOLE_FLEET_PAGE = RawStatement(
    "SELECT CAST('[' || coalesce(group_concat(doc, ','), '') || ']' AS BLOB) FROM (SELECT doc FROM devices "
    "WHERE tenant_id = :tenant_id AND position > :offset ORDER BY position LIMIT :limit)",
    postgresql="SELECT doc FROM devices WHERE tenant_id = :tenant_id AND position > :offset "
               "ORDER BY position LIMIT :limit")
# The same page for `api_read_along`, which reads it in the round trip that checks the token.
WHOLE_FLEET_PAGE_ALONG = ("SELECT doc FROM devices WHERE tenant_id = {tenant} AND position > :offset "
                          "ORDER BY position LIMIT :limit")
NO_FILTERS = DeviceFilters()


def is_whole_fleet(filters: DeviceFilters, ordering: str | None) -> bool:
    """The unfiltered page in default order: WHOLE_FLEET_PAGE serves it."""
    terms = (ordering or "").split(",")
    return filters == NO_FILTERS and not any(term.strip().lstrip("-") in ORDERING for term in terms)


def json_array(docs: list[bytes]) -> bytes:
    """Stored documents as the list's JSON array; takes the list over (its ends get the brackets).

    One allocation of the page's size, where `b"[" + b",".join(docs) + b"]"` made three."""
    if not docs:
        return b"[]"
    docs[0] = b"[" + docs[0]
    docs[-1] = docs[-1] + b"]"
    return b",".join(docs)


async def whole_fleet_page(reader, ctx: TenantContext, *, limit: int, offset: int) -> bytes:
    """The unfiltered page in default order, on SQLite's reader (db/raw.py SQLiteReader)."""
    return (await reader.fetch_one(WHOLE_FLEET_PAGE, _page_keys(ctx, limit, offset)))[0]


def _page_keys(ctx: TenantContext, limit: int, offset: int) -> dict:
    return {"tenant_id": ctx.tenant_id, "limit": limit, "offset": offset}


def list_json(db: Session, ctx: TenantContext, *, filters: DeviceFilters, limit: int, offset: int,
              ordering: str | None = None) -> str | bytes:
    """One page of the device list as a JSON array (str or UTF-8 bytes), built from stored per-device JSON.

    The inner query picks primary keys from the (tenant_id, ...) indexes; only the page's rows are read whole.
    Executed on the connection: 300 plain strings need none of the ORM's result machinery.
    """
    dialect = db.get_bind().dialect.name
    order = _order(ordering)
    if is_whole_fleet(filters, ordering):
        if dialect == "postgresql":
            return json_array([doc for doc, in fetch_all(db, WHOLE_FLEET_PAGE, _page_keys(ctx, limit, offset),
                                                          text_as_bytes=True)])
        return fetch_one(db, WHOLE_FLEET_PAGE, _page_keys(ctx, limit, offset))[0]
    page = select(Device.pk).where(*_filter_clauses(db, ctx, filters))
    inner_order = order
    search = _search_terms(db, filters)
    if search:
        # SQLite: start from the trigram index, which yields matches in rowid (= pk) order, so a default-ordered
        # page stops after `limit` hits. The LIKE clauses above still decide; the index only narrows.
        page = page.select_from(device_search).join(Device, Device.pk == device_search.c.rowid).where(
            *(device_search.c[name].match(phrase) for name, phrase in search))
        inner_order = [*order[:-1], device_search.c.rowid.asc()]
    page = page.order_by(*inner_order).limit(limit).offset(offset)
    docs = db.connection().execute(_docs_of(dialect, page, order)).scalars().all()
    return "[" + ",".join(docs) + "]"


def count(db: Session, ctx: TenantContext, *, filters: DeviceFilters | None = None) -> int:
    return db.scalar(select(func.count()).select_from(Device).where(
        *_filter_clauses(db, ctx, filters or DeviceFilters())))


# --- one device ---------------------------------------------------------------------------------------------

def get(db: Session, ctx: TenantContext, device_id: str) -> Device | None:
    if not is_uuid(device_id):
        return None
    return db.scalar(select(Device).where(Device.tenant_id == ctx.tenant_id, Device.id == str(device_id)))


def get_or_raise(db: Session, ctx: TenantContext, device_id: str) -> Device:
    device = get(db, ctx, device_id)
    if device is None:
        raise NotFound("device")
    return device


def get_by_serial(db: Session, ctx: TenantContext, serial_number: str) -> Device | None:
    return db.scalar(select(Device).where(Device.tenant_id == ctx.tenant_id, Device.serial_number == serial_number))


def tag_names(db: Session, ctx: TenantContext, device: Device) -> list[str]:
    ids = list(db.scalars(select(DeviceTag.tag_id).where(DeviceTag.tenant_id == ctx.tenant_id,
                                                         DeviceTag.device_pk == device.pk)))
    return sorted(tags.names_for(db, ctx, ids).values())


def device_json(db: Session, ctx: TenantContext, device_id: str) -> str:
    return get_or_raise(db, ctx, device_id).doc


def details(db: Session, ctx: TenantContext, device_id: str) -> dict:
    device = get_or_raise(db, ctx, device_id)
    inventory = db.get(DeviceInventory, device.pk)
    return render.details_dict(device, inventory.details if inventory else {}, tag_names(db, ctx, device))


def apps(db: Session, ctx: TenantContext, device_id: str) -> dict:
    device = get_or_raise(db, ctx, device_id)
    inventory = db.get(DeviceInventory, device.pk)
    return {"device_id": device.id, "apps": inventory.apps if inventory else []}


def _rerender(db: Session, ctx: TenantContext, devices: list[Device]) -> None:
    """Re-render stored JSON for these devices with one tag query, never one per device."""
    if not devices:
        return
    pairs = db.execute(select(DeviceTag.device_pk, DeviceTag.tag_id).where(
        DeviceTag.tenant_id == ctx.tenant_id, DeviceTag.device_pk.in_([d.pk for d in devices]))).all()
    names = tags.names_for(db, ctx, list({t for _, t in pairs}))
    by_device: dict[int, list[str]] = defaultdict(list)
    for pk, tag_id in pairs:
        if tag_id in names:
            by_device[pk].append(names[tag_id])
    for device in devices:
        device.doc = render.device_json(device, by_device.get(device.pk, []))


def _apply_user(device: Device, user) -> None:
    device.user_id = user.id if user else None
    device.user_email = user.email if user else None
    device.user_name = user.name if user else None
    device.user_archived = bool(user.archived) if user else False


@dataclass
class NewDevice:
    """What enrollment (or the demo seed) knows about a device."""

    serial_number: str
    platform: str
    model: str = ""
    model_identifier: str = ""
    device_name: str = ""
    os_version: str = ""
    os_build: str = ""
    udid: str = ""
    mac_address: str = ""
    asset_tag: str = ""
    supervised: bool = False
    agent_installed: bool = False
    agent_version: str = ""
    filevault_enabled: bool | None = None
    mdm_enabled: bool = True
    is_missing: bool = False
    is_removed: bool = False
    lost_mode_status: str = ""
    first_enrollment: datetime | None = None
    last_enrollment: datetime | None = None
    last_check_in: datetime | None = None
    user_id: str | None = None
    blueprint_id: str | None = None
    tag_names: tuple[str, ...] = ()
    details: dict | None = None
    apps: list | None = None


def create_many(db: Session, ctx: TenantContext, specs: list[NewDevice], *, audited: bool = True) -> list[Device]:
    """Insert devices in bulk (enrollment batches, the demo seed): a few statements for the whole batch."""
    user_map = users.get_many(db, ctx, [s.user_id for s in specs if s.user_id])
    bp_ids = {s.blueprint_id for s in specs if s.blueprint_id}
    bp_map = {bid: blueprints.get(db, ctx, bid) for bid in bp_ids}
    tag_map = {t.name: t for t in tags.ensure(db, ctx, sorted({n for s in specs for n in s.tag_names}))}
    for s in specs:
        if s.platform not in PLATFORMS:
            raise InvalidField({"platform": [f'"{s.platform}" is not a valid choice.']})
    # Before any key is drawn: the counter's row lock then orders this tenant's inserts, so pk order and
    # position order agree even with several API workers enrolling at once.
    first_position = _reserve_positions(db, ctx, len(specs)) if specs else 0
    now = utcnow()
    created: list[Device] = []
    for s in specs:
        bp = bp_map.get(s.blueprint_id) if s.blueprint_id else None
        device = Device(
            tenant_id=ctx.tenant_id, position=first_position + len(created), id=new_uuid(),
            serial_number=s.serial_number, udid=s.udid,
            device_name=s.device_name, model=s.model, model_identifier=s.model_identifier, platform=s.platform,
            os_version=s.os_version, os_build=s.os_build, mac_address=s.mac_address, asset_tag=s.asset_tag,
            supervised=s.supervised, agent_installed=s.agent_installed, agent_version=s.agent_version,
            filevault_enabled=s.filevault_enabled, mdm_enabled=s.mdm_enabled, is_missing=s.is_missing,
            is_removed=s.is_removed, lost_mode_status=s.lost_mode_status,
            first_enrollment=s.first_enrollment or now, last_enrollment=s.last_enrollment or s.first_enrollment or now,
            last_check_in=s.last_check_in, blueprint_id=bp.id if bp else None, blueprint_name=bp.name if bp else "",
            created_at=now, updated_at=now,
        )
        _apply_user(device, user_map.get(s.user_id) if s.user_id else None)
        device.doc = render.device_json(device, sorted(set(s.tag_names)))  # before the INSERT: no UPDATE per row
        created.append(device)
    if created and db.get_bind().dialect.name == "postgresql":
        # Keys drawn up front let the ORM insert with one pipelined executemany. Otherwise it sends one huge
        # multi-row INSERT ... RETURNING, which psycopg takes longer to parse than PostgreSQL takes to run.
        keys = db.scalars(select(func.nextval(func.pg_get_serial_sequence("devices", "pk")))
                          .select_from(func.generate_series(1, len(created)))).all()
        for device, key in zip(created, keys):
            device.pk = key
    db.add_all(created)
    db.flush()
    inventories = []
    links = []
    for device, s in zip(created, specs):
        inventories.append(DeviceInventory(device_pk=device.pk, tenant_id=ctx.tenant_id,
                                           details=s.details or {}, apps=s.apps or []))
        names = sorted(set(s.tag_names))
        links.extend(DeviceTag(tenant_id=ctx.tenant_id, device_pk=device.pk, tag_id=tag_map[n].id) for n in names)
    db.add_all(inventories)
    db.add_all(links)
    if audited:
        for device in created:
            audit.record(db, ctx, action="create", target_type="device", target_id=device.id,
                         new_state={"serial_number": device.serial_number, "platform": device.platform})
    db.flush()
    return created


def _reserve_positions(db: Session, ctx: TenantContext, count: int) -> int:
    """Take the next `count` positions of the tenant; returns the first. Holds the counter's row until commit."""
    insert = postgresql_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (insert(DevicePositionCounter).values(tenant_id=ctx.tenant_id, last_position=count)
                 .on_conflict_do_update(index_elements=[DevicePositionCounter.tenant_id],
                                        set_={"last_position": DevicePositionCounter.last_position + count})
                 .returning(DevicePositionCounter.last_position))
    return db.execute(statement).scalar_one() - count + 1


def _close_position(db: Session, ctx: TenantContext, device: Device) -> None:
    """Delete the device and shift the later ones down one place, keeping positions dense."""
    db.execute(sql_update(DevicePositionCounter).where(DevicePositionCounter.tenant_id == ctx.tenant_id)
               .values(last_position=DevicePositionCounter.last_position - 1))
    # Read under the counter's lock: another delete may have moved this device since it was loaded.
    position = db.scalar(select(Device.position).where(Device.pk == device.pk))
    db.delete(device)
    db.flush()
    db.execute(sql_update(Device).where(Device.tenant_id == ctx.tenant_id, Device.position > position)
               .values(position=Device.position - 1).execution_options(synchronize_session=False))


def create(db: Session, ctx: TenantContext, spec: NewDevice) -> Device:
    return create_many(db, ctx, [spec])[0]


_UNSET = object()


def update(db: Session, ctx: TenantContext, device_id: str, *, blueprint_id=_UNSET, user=_UNSET,
           asset_tag=_UNSET, tag_names=_UNSET) -> Device:
    """The Update Device card: any subset of blueprint, user, asset tag, tags."""
    device = get_or_raise(db, ctx, device_id)
    changed: dict = {}
    if blueprint_id is not _UNSET:
        if blueprint_id is None:  # a device always has a blueprint; only DELETE of the blueprint unsets it
            raise InvalidField({"blueprint_id": ["This field may not be null."]})
        bp = blueprints.get(db, ctx, blueprint_id) if blueprint_id else None
        if bp is None:
            raise InvalidField({"blueprint_id": [f'Invalid pk "{blueprint_id}" - object does not exist.']})
        device.blueprint_id, device.blueprint_name = bp.id, bp.name
        changed["blueprint_id"] = bp.id
    if user is not _UNSET:
        if user is None:
            _apply_user(device, None)
        else:
            found = users.resolve(db, ctx, user)
            if found is None:
                raise InvalidField({"user": [f'Invalid pk "{user}" - object does not exist.']})
            _apply_user(device, found)
        changed["user"] = device.user_id
    if asset_tag is not _UNSET:
        device.asset_tag = "" if asset_tag is None else str(asset_tag)
        changed["asset_tag"] = device.asset_tag
    if tag_names is not _UNSET:
        wanted = tags.ensure(db, ctx, list(tag_names or []))
        db.execute(sql_delete(DeviceTag).where(DeviceTag.tenant_id == ctx.tenant_id, DeviceTag.device_pk == device.pk))
        db.add_all(DeviceTag(tenant_id=ctx.tenant_id, device_pk=device.pk, tag_id=t.id) for t in wanted)
        changed["tags"] = sorted(t.name for t in wanted)
    device.updated_at = utcnow()
    db.flush()
    _rerender(db, ctx, [device])
    audit.record(db, ctx, action="update", target_type="device", target_id=device.id, new_state=changed)
    if blueprint_id is not _UNSET or user is not _UNSET:  # blueprint assignment rules (issue 6)
        from bramley.blueprints import rules

        rules.device_updated(db, ctx, device.id, blueprint_by_hand=blueprint_id is not _UNSET,
                             user_changed=user is not _UNSET)
    return device


def delete(db: Session, ctx: TenantContext, device_id: str) -> None:
    device = get_or_raise(db, ctx, device_id)
    db.execute(sql_delete(DeviceNote).where(DeviceNote.tenant_id == ctx.tenant_id, DeviceNote.device_id == device.id))
    db.execute(sql_delete(DeviceTag).where(DeviceTag.tenant_id == ctx.tenant_id, DeviceTag.device_pk == device.pk))
    db.execute(sql_delete(DeviceInventory).where(DeviceInventory.device_pk == device.pk))
    # Escrowed values (FileVault key, bypass code, unlock PIN) must not outlive the record they belong to.
    secrets.delete(db, ctx, owner_type="device", owner_id=device.id)
    from bramley.blueprints import rules  # (imported here: rules reads devices through this module)

    rules.forget_device(db, ctx, device.id)
    _close_position(db, ctx, device)
    audit.record(db, ctx, action="delete", target_type="device", target_id=device.id,
                 new_state={"serial_number": device.serial_number})


def save(db: Session, ctx: TenantContext, device: Device) -> None:
    """Re-render after a caller in this domain changed columns (check-in, inventory)."""
    device.updated_at = utcnow()
    db.flush()
    _rerender(db, ctx, [device])


# --- reactions to other domains' changes (called by their services) ---------------------------------------

def _devices_where(db: Session, ctx: TenantContext, *clauses) -> list[Device]:
    return list(db.scalars(select(Device).where(Device.tenant_id == ctx.tenant_id, *clauses)))


def blueprint_renamed(db: Session, ctx: TenantContext, blueprint_id: str, name: str) -> None:
    devices = _devices_where(db, ctx, Device.blueprint_id == blueprint_id)
    for d in devices:
        d.blueprint_name = name
    _rerender(db, ctx, devices)


def blueprint_deleted(db: Session, ctx: TenantContext, blueprint_id: str) -> None:
    """Deleting a blueprint un-manages its devices (Iru): they keep their record but lose the assignment."""
    devices = _devices_where(db, ctx, Device.blueprint_id == blueprint_id)
    for d in devices:
        d.blueprint_id, d.blueprint_name, d.mdm_enabled = None, "", False
    _rerender(db, ctx, devices)


def user_changed(db: Session, ctx: TenantContext, user) -> None:
    devices = _devices_where(db, ctx, Device.user_id == user.id)
    for d in devices:
        _apply_user(d, user)
    _rerender(db, ctx, devices)


def tags_changed(db: Session, ctx: TenantContext, tag_id: str) -> None:
    pks = select(DeviceTag.device_pk).where(DeviceTag.tenant_id == ctx.tenant_id, DeviceTag.tag_id == tag_id)
    _rerender(db, ctx, _devices_where(db, ctx, Device.pk.in_(pks)))


def tag_deleted(db: Session, ctx: TenantContext, tag_id: str) -> None:
    pks = list(db.scalars(select(DeviceTag.device_pk).where(DeviceTag.tenant_id == ctx.tenant_id,
                                                            DeviceTag.tag_id == tag_id)))
    db.execute(sql_delete(DeviceTag).where(DeviceTag.tenant_id == ctx.tenant_id, DeviceTag.tag_id == tag_id))
    _rerender(db, ctx, _devices_where(db, ctx, Device.pk.in_(pks)) if pks else [])


def ids_for_user(db: Session, ctx: TenantContext, user_id: str) -> list[str]:
    return list(db.scalars(select(Device.id).where(Device.tenant_id == ctx.tenant_id, Device.user_id == user_id)))


def assignment_view(db: Session, ctx: TenantContext, *, device_ids: list[str] | None = None,
                    user_ids: list[str] | None = None) -> list[tuple[str, str | None, str | None]]:
    """(device_id, user_id, blueprint_id) of the given devices, or of the given users' devices, or of every
    device with a user: what blueprint assignment rules need to decide."""
    query = select(Device.id, Device.user_id, Device.blueprint_id).where(Device.tenant_id == ctx.tenant_id)
    if device_ids is not None:
        query = query.where(Device.id.in_(device_ids))
    elif user_ids is not None:
        query = query.where(Device.user_id.in_(user_ids))
    else:
        query = query.where(Device.user_id.is_not(None))
    return [tuple(row) for row in db.execute(query.order_by(Device.pk)).all()]


def assign_blueprint(db: Session, ctx: TenantContext, device_id: str, blueprint_id: str, *, metadata: dict) -> None:
    """Move a device to a blueprint on behalf of a rule: audited with `metadata` (which rule, why), and unlike
    update() not recorded as an admin's choice."""
    device = get_or_raise(db, ctx, device_id)
    bp = blueprints.get_or_raise(db, ctx, blueprint_id)
    device.blueprint_id, device.blueprint_name = bp.id, bp.name
    device.updated_at = utcnow()
    db.flush()
    _rerender(db, ctx, [device])
    audit.record(db, ctx, action="update", target_type="device", target_id=device.id,
                 new_state={"blueprint_id": bp.id}, metadata=metadata)


def count_for_user(db: Session, ctx: TenantContext, user_id: str) -> int:
    return db.scalar(select(func.count()).select_from(Device).where(Device.tenant_id == ctx.tenant_id,
                                                                    Device.user_id == user_id))


def counts_for_users(db: Session, ctx: TenantContext, user_ids: list[str]) -> dict[str, int]:
    if not user_ids:
        return {}
    rows = db.execute(select(Device.user_id, func.count()).where(
        Device.tenant_id == ctx.tenant_id, Device.user_id.in_(user_ids)).group_by(Device.user_id))
    return dict(rows.all())


def counts_for_blueprints(db: Session, ctx: TenantContext, blueprint_ids: list[str]) -> dict[str, tuple[int, int]]:
    """{blueprint_id: (computers_count, missing_computers_count)}."""
    if not blueprint_ids:
        return {}
    rows = db.execute(select(Device.blueprint_id, func.count(),
                             func.sum(case((Device.is_missing, 1), else_=0)))
                      .where(Device.tenant_id == ctx.tenant_id, Device.blueprint_id.in_(blueprint_ids))
                      .group_by(Device.blueprint_id))
    return {bid: (int(total), int(missing or 0)) for bid, total, missing in rows.all()}


# --- notes ---------------------------------------------------------------------------------------------

def note_dict(note: DeviceNote) -> dict:
    return {"note_id": note.note_id, "created_at": render.iso_z(note.created_at),
            "updated_at": render.iso_z(note.updated_at), "author": note.author, "content": note.content}


def _note_or_raise(db: Session, ctx: TenantContext, device: Device, note_id: str) -> DeviceNote:
    note = db.get(DeviceNote, note_id) if is_uuid(note_id) else None
    if note is None or note.tenant_id != ctx.tenant_id or note.device_id != device.id:
        raise NotFound("note")
    return note


def list_notes(db: Session, ctx: TenantContext, device_id: str) -> list[DeviceNote]:
    device = get_or_raise(db, ctx, device_id)
    return list(db.scalars(select(DeviceNote).where(DeviceNote.tenant_id == ctx.tenant_id,
                                                    DeviceNote.device_id == device.id)
                           .order_by(DeviceNote.created_at, DeviceNote.note_id)))


def get_note(db: Session, ctx: TenantContext, device_id: str, note_id: str) -> DeviceNote:
    return _note_or_raise(db, ctx, get_or_raise(db, ctx, device_id), note_id)


def _content(content) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidField({"content": ["This field may not be blank."]})
    return content


def create_note(db: Session, ctx: TenantContext, device_id: str, *, content: str) -> DeviceNote:
    device = get_or_raise(db, ctx, device_id)
    now = utcnow()
    note = DeviceNote(tenant_id=ctx.tenant_id, device_id=device.id, author=ctx.actor_name,
                      content=_content(content), created_at=now, updated_at=now)
    db.add(note)
    db.flush()
    audit.record(db, ctx, action="create", target_type="device_note", target_id=note.note_id,
                 new_state={"device_id": device.id})
    return note


def update_note(db: Session, ctx: TenantContext, device_id: str, note_id: str, *, content: str) -> DeviceNote:
    note = get_note(db, ctx, device_id, note_id)
    note.content = _content(content)
    note.updated_at = utcnow()
    audit.record(db, ctx, action="update", target_type="device_note", target_id=note.note_id,
                 new_state={"device_id": note.device_id})
    return note


def delete_note(db: Session, ctx: TenantContext, device_id: str, note_id: str) -> dict:
    note = get_note(db, ctx, device_id, note_id)
    db.delete(note)
    audit.record(db, ctx, action="delete", target_type="device_note", target_id=note.note_id,
                 new_state={"device_id": note.device_id})
    return {"note_id": note.note_id, "deleted_at": render.iso_z(utcnow())}


def mark_check_in(device: Device, when: datetime) -> None:
    device.last_check_in = when



# --- library status (owned by the library domain, keyed by device) --------------------------------------

def _blueprint_ref(device: Device) -> dict | None:
    return {"id": device.blueprint_id, "name": device.blueprint_name} if device.blueprint_id else None


def library_items(db: Session, ctx: TenantContext, device_id: str) -> dict:
    from bramley.library import service as library

    device = get_or_raise(db, ctx, device_id)
    return {"device_id": device.id,
            "library_items": library.device_library_items(db, ctx, device, _blueprint_ref(device))}


def parameters(db: Session, ctx: TenantContext, device_id: str) -> dict:
    from bramley.library import service as library

    device = get_or_raise(db, ctx, device_id)
    return {"device_id": device.id, "parameters": library.device_parameters(db, ctx, device.id)}


def status(db: Session, ctx: TenantContext, device_id: str) -> dict:
    from bramley.library import service as library

    device = get_or_raise(db, ctx, device_id)
    return {"device_id": device.id, "library_items": library.device_status_items(db, ctx, device.id),
            "parameters": library.device_parameters(db, ctx, device.id)}


# --- what managed devices report (called by the MDM and agent doors) ------------------------------------

DEVICE_COLUMNS = {"device_name", "model", "model_identifier", "os_version", "os_build", "supplemental_build_version",
                  "supplemental_os_version_extra", "serial_number", "udid", "mac_address", "supervised",
                  "filevault_enabled", "mdm_enabled", "is_removed", "is_missing", "lost_mode_status",
                  "agent_installed", "agent_version"}


def get_by_udid(db: Session, ctx: TenantContext, udid: str) -> Device | None:
    return db.scalar(select(Device).where(Device.tenant_id == ctx.tenant_id, Device.udid == udid).limit(1))


def enroll(db: Session, ctx: TenantContext, *, udid: str, serial_number: str, platform: str, **columns) -> Device:
    """The device record an enrollment belongs to. Re-enrolling (same UDID or serial) keeps its history."""
    device = get_by_udid(db, ctx, udid) or (get_by_serial(db, ctx, serial_number) if serial_number else None)
    now = utcnow()
    if device is None:
        spec = NewDevice(serial_number=serial_number or udid, platform=platform, udid=udid, first_enrollment=now,
                         last_enrollment=now, last_check_in=now,
                         **{k: v for k, v in columns.items() if k in NewDevice.__dataclass_fields__})
        return create(db, ctx, spec)
    device.udid, device.last_enrollment, device.last_check_in = udid, now, now
    device.is_removed, device.is_missing = False, False
    if serial_number:
        device.serial_number = serial_number
    for key, value in columns.items():
        if key in DEVICE_COLUMNS and value not in (None, ""):
            setattr(device, key, value)
    save(db, ctx, device)
    audit.record(db, ctx, action="update", target_type="device", target_id=device.id,
                 new_state={"re_enrolled": True})
    return device


def report(db: Session, ctx: TenantContext, device_id: str, *, columns: dict | None = None,
           details: dict | None = None, apps: list | None = None) -> Device:
    """Apply what the device reported: columns, merged details sections, the app list."""
    device = get_or_raise(db, ctx, device_id)
    for key, value in (columns or {}).items():
        if key in DEVICE_COLUMNS:
            setattr(device, key, value)
    if details is not None or apps is not None:
        inventory = db.get(DeviceInventory, device.pk)
        if inventory is None:
            inventory = DeviceInventory(device_pk=device.pk, tenant_id=ctx.tenant_id, details={}, apps=[])
            db.add(inventory)
        if details:
            inventory.details = {**(inventory.details or {}), **details}
        if apps is not None:
            inventory.apps = apps
    save(db, ctx, device)
    return device


def inventory_section(db: Session, ctx: TenantContext, device_id: str, section: str):
    device = get_or_raise(db, ctx, device_id)
    inventory = db.get(DeviceInventory, device.pk)
    return (inventory.details or {}).get(section) if inventory else None


_SEEN_DOCS = RawStatement(
    "SELECT id, doc FROM devices WHERE tenant_id = :tenant AND id IN (SELECT value FROM json_each(:ids))",
    postgresql="SELECT id, doc FROM devices WHERE tenant_id = :tenant AND id IN "
               "(SELECT json_array_elements_text(:ids::json))")
# On PostgreSQL one statement for all the documents (a JSON object of id -> document), not a round trip per device.
# SQLite runs in-process, where one UPDATE per device by its key costs less: it joins an UPDATE ... FROM a table
# function by scanning the tenant's devices.
_SEEN = RawStatement("UPDATE devices SET last_check_in = :now, updated_at = :now, is_missing = :missing, doc = :doc "
                     "WHERE tenant_id = :tenant AND id = :device")
_SEEN_ALL_PG = RawStatement(
    "UPDATE devices SET last_check_in = :now, updated_at = :now, is_missing = :missing, doc = r.value "
    "FROM json_each_text(:docs::json) AS r WHERE devices.tenant_id = :tenant AND devices.id = r.key")


def seen(db: Session, ctx: TenantContext, device_ids: list[str]) -> None:
    """Authenticated device requests: last_check_in moves and a missing device is found again.

    Every check-in of the fleet passes here (the device door marks a turn's devices at once), so the stored list
    documents get their two changed fields patched (orjson keeps key order) on the driver's cursor, one query to
    read them and one batch to write them, instead of each row being loaded and re-rendered."""
    ids = sorted(set(device_ids))
    if not ids:
        return
    now = utcnow()
    rows = fetch_all(db, _SEEN_DOCS, {"tenant": ctx.tenant_id, "ids": orjson.dumps(ids).decode()})
    stamp, when = render.iso_z(now), bound(db, Device.last_check_in, now)
    docs = {}
    for device_id, text in rows:
        try:
            doc = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or "last_check_in" not in doc:
            device = get(db, ctx, device_id)  # no usable document: render it whole
            device.last_check_in = device.updated_at = now
            device.is_missing = False
            device.doc = render.device_json(device, _stored_tags(device))
            continue
        doc["last_check_in"], doc["is_missing"] = stamp, False
        docs[device_id] = orjson.dumps(doc).decode()
    if docs and dialect_of(db) == "postgresql":
        execute(db, _SEEN_ALL_PG, {"tenant": ctx.tenant_id, "now": when, "missing": False,
                                   "docs": orjson.dumps(docs).decode()})
    elif docs:
        execute_many(db, _SEEN, [{"tenant": ctx.tenant_id, "device": device_id, "now": when, "missing": False,
                                  "doc": doc} for device_id, doc in docs.items()])

def _stored_tags(device: Device) -> list[str]:
    try:
        listed = orjson.loads(device.doc).get("tags") if device.doc else []
    except orjson.JSONDecodeError:
        listed = None
    return listed if isinstance(listed, list) else []


def platforms_for(db: Session, ctx: TenantContext, device_ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(device_ids), 5000):
        chunk = device_ids[start:start + 5000]
        out.update(db.execute(select(Device.id, Device.platform).where(Device.tenant_id == ctx.tenant_id,
                                                                       Device.id.in_(chunk))).all())
    return out


# --- the Bramley agent and device trust (called by the trust domain) ----------------------------------------

def agent_report(db: Session, ctx: TenantContext, device_id: str, *, installed: bool, version: str = "") -> Device:
    """The agent checked in (installed) or is being uninstalled: its columns, its own check-in time and install
    date in the details, and last_check_in (the agent reporting is the device reporting). One re-render."""
    device = get_or_raise(db, ctx, device_id)
    now = utcnow()
    details: dict = {"agent_last_check_in": render.iso_z(now)} if installed else {"agent_install_date": ""}
    if installed and not device.agent_installed:
        details["agent_install_date"] = render.spaced_seconds(now)
    device.last_check_in, device.is_missing = now, False
    return report(db, ctx, device.id, columns={"agent_installed": installed, "agent_version": version if installed
                                               else ""}, details=details)


@dataclass(frozen=True)
class Posture:
    """The columns the device-trust rule reads."""

    device_id: str
    serial_number: str
    device_name: str
    platform: str
    last_check_in: datetime | None
    agent_installed: bool
    agent_version: str
    mdm_enabled: bool
    is_removed: bool


_POSTURE_COLUMNS = (Device.id, Device.serial_number, Device.device_name, Device.platform, Device.last_check_in,
                    Device.agent_installed, Device.agent_version, Device.mdm_enabled, Device.is_removed)


def postures(db: Session, ctx: TenantContext, *, serial_numbers: list[str] | None = None,
             device_ids: list[str] | None = None, trusted_since: datetime | None = None,
             trusted: bool | None = None, limit: int | None = None, offset: int = 0,
             with_count: bool = False) -> tuple[int | None, list[Posture]]:
    """Devices as the trust rule sees them, in list order. `trusted` filters on the rule's columns all holding
    (checked in since `trusted_since`, agent and MDM profile installed, not removed), or not all holding."""
    clauses: list = [Device.tenant_id == ctx.tenant_id]
    if serial_numbers is not None:
        clauses.append(Device.serial_number.in_(serial_numbers))
    if device_ids is not None:
        clauses.append(Device.id.in_([d for d in device_ids if is_uuid(d)]))
    if trusted is not None:
        from sqlalchemy import and_, not_

        holds = and_(Device.last_check_in.is_not(None), Device.last_check_in >= trusted_since,
                     Device.agent_installed.is_(True), Device.mdm_enabled.is_(True), Device.is_removed.is_(False))
        clauses.append(holds if trusted else not_(holds))
    total = db.scalar(select(func.count()).select_from(Device).where(*clauses)) if with_count else None
    query = select(*_POSTURE_COLUMNS).where(*clauses).order_by(Device.pk)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = db.execute(query).all()
    return total, [Posture(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6] or "", bool(r[7]), bool(r[8]))
                   for r in rows]


def by_serials(db: Session, ctx: TenantContext, serial_numbers: list[str]) -> dict[str, Device]:
    """Managed devices by serial number (ADE links its records to them); the newest record wins a duplicate."""
    wanted = list(dict.fromkeys(s for s in serial_numbers if s))
    found: dict[str, Device] = {}
    for start in range(0, len(wanted), 5000):
        for device in db.scalars(select(Device).where(Device.tenant_id == ctx.tenant_id,
                                                      Device.serial_number.in_(wanted[start:start + 5000]))
                                 .order_by(Device.pk)):
            found[device.serial_number] = device
    return found
