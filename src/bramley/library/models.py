from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, UTCDateTime, new_uuid, utcnow

BigID = BigInteger().with_variant(Integer(), "sqlite")


class LibraryItem(Base):
    """A library item (custom app, profile, script, ...) of a tenant."""

    __tablename__ = "library_items"
    __table_args__ = (Index("ix_library_items_tenant", "tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BlueprintLibraryItem(Base):
    __tablename__ = "blueprint_library_items"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    blueprint_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    assignment_node_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class DeviceItemStatus(Base):
    """The state of one library item (or, with kind='parameter', one parameter) on one device."""

    __tablename__ = "device_item_status"
    __table_args__ = (
        UniqueConstraint("tenant_id", "device_id", "kind", "item_id"),
        Index("ix_device_item_status_item", "tenant_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    device_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # library_item | parameter
    item_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64), default="")
    category: Mapped[str] = mapped_column(String(128), default="")
    subcategory: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(32))
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    last_audit_run: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_audit_log: Mapped[str] = mapped_column(Text, default="")
    control_log: Mapped[str] = mapped_column(Text, default="")
    control_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rules_present: Mapped[bool] = mapped_column(Boolean, default=False)
