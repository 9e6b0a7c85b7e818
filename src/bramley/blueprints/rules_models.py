from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, UTCDateTime, new_uuid, utcnow


class AssignmentRule(Base):
    """"Members of group G get blueprint B", evaluated in `position` order: the first matching rule wins."""

    __tablename__ = "blueprint_assignment_rules"
    __table_args__ = (Index("ix_blueprint_assignment_rules_tenant_order", "tenant_id", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[str] = mapped_column(String(36))
    blueprint_id: Mapped[str] = mapped_column(String(36))
    # False: a device whose blueprint an admin set by hand keeps it. True: the rule wins anyway.
    override_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BlueprintSource(Base):
    """How a device got its current blueprint: by hand ("manual") or by a rule. No row: enrollment/default."""

    __tablename__ = "device_blueprint_sources"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(8))
    rule_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
