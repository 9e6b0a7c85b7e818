from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, new_uuid, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigID = BigInteger().with_variant(Integer(), "sqlite")


class Device(Base):
    """A managed device. Filtered columns are real columns; `doc` is the ready-serialized Iru JSON.

    The device list is the hottest read: it joins stored `doc` bytes instead of building a model per row,
    so every change to a device (or to its user, blueprint or tags) re-renders `doc` in the same transaction.
    """

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        Index("ix_devices_tenant_pk", "tenant_id", "pk"),
        Index("ix_devices_tenant_position", "tenant_id", "position"),
        Index("ix_devices_tenant_serial", "tenant_id", "serial_number", "pk"),
        Index("ix_devices_tenant_user_email", "tenant_id", "user_email", "pk"),
        Index("ix_devices_tenant_user", "tenant_id", "user_id"),
        Index("ix_devices_tenant_platform", "tenant_id", "platform", "pk"),
        Index("ix_devices_tenant_blueprint", "tenant_id", "blueprint_id", "pk"),
        Index("ix_devices_tenant_name", "tenant_id", "device_name"),
    )

    pk: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    # 1..N within the tenant, in pk order, with no gaps (a delete closes its gap): the default-ordered page at
    # any offset is then an index range (position > offset), where OFFSET would count past every earlier row.
    position: Mapped[int] = mapped_column(Integer)
    id: Mapped[str] = mapped_column(String(36), default=new_uuid)  # the Iru device_id
    serial_number: Mapped[str] = mapped_column(String(64))
    udid: Mapped[str] = mapped_column(String(64), default="")
    device_name: Mapped[str] = mapped_column(String(255), default="")
    model: Mapped[str] = mapped_column(String(255), default="")
    model_identifier: Mapped[str] = mapped_column(String(64), default="")
    platform: Mapped[str] = mapped_column(String(16))
    os_version: Mapped[str] = mapped_column(String(32), default="")
    os_build: Mapped[str] = mapped_column(String(32), default="")
    supplemental_build_version: Mapped[str] = mapped_column(String(32), default="")
    supplemental_os_version_extra: Mapped[str] = mapped_column(String(32), default="")
    last_check_in: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Copies of the user's fields so the list can filter on them without a join; kept in step by the service.
    user_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_archived: Mapped[bool] = mapped_column(Boolean, default=False)
    asset_tag: Mapped[str] = mapped_column(String(255), default="")
    blueprint_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    blueprint_name: Mapped[str] = mapped_column(String(255), default="")
    mdm_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    agent_installed: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_version: Mapped[str] = mapped_column(String(32), default="")
    is_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    is_removed: Mapped[bool] = mapped_column(Boolean, default=False)
    supervised: Mapped[bool] = mapped_column(Boolean, default=False)
    first_enrollment: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_enrollment: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lost_mode_status: Mapped[str] = mapped_column(String(32), default="")
    mac_address: Mapped[str] = mapped_column(String(32), default="")
    filevault_enabled: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    doc: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DevicePositionCounter(Base):
    """The last position handed out per tenant. Its row lock orders every insert and delete of the tenant's
    devices, so positions stay dense and in pk order when API workers write at the same time."""

    __tablename__ = "device_position_counters"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_position: Mapped[int] = mapped_column(Integer, default=0)


# SQLite's FTS5 trigram index over the substring-filtered columns (migration 0003; rowid = devices.pk). Kept
# out of Base.metadata: it is a virtual table made by raw SQL, and PostgreSQL uses trigram GIN indexes instead.
device_search = Table(
    "devices_search", MetaData(),
    Column("rowid", Integer, primary_key=True),
    Column("serial_number", Text),
    Column("user_email", Text),
)


class DeviceInventory(Base):
    """What the device reported (details sections, apps): read one device at a time, kept off the hot table."""

    __tablename__ = "device_inventory"

    device_pk: Mapped[int] = mapped_column(BigID, ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    details: Mapped[dict] = mapped_column(JSONType, default=dict)
    apps: Mapped[list] = mapped_column(JSONType, default=list)


class DeviceTag(Base):
    __tablename__ = "device_tags"
    __table_args__ = (Index("ix_device_tags_tag", "tenant_id", "tag_id", "device_pk"),)

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_pk: Mapped[int] = mapped_column(BigID, ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class DeviceNote(Base):
    __tablename__ = "device_notes"
    __table_args__ = (Index("ix_device_notes_device", "tenant_id", "device_id", "created_at"),)

    note_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    device_id: Mapped[str] = mapped_column(String(36))
    author: Mapped[str] = mapped_column(String(255), default="")
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
