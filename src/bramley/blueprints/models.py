from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, new_uuid, utcnow


class Blueprint(Base):
    __tablename__ = "blueprints"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_blueprints_tenant_order", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(255))
    icon: Mapped[str] = mapped_column(String(64), default="ss-files")
    color: Mapped[str] = mapped_column(String(64), default="aqua-800")
    description: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    enrollment_code: Mapped[str] = mapped_column(String(32))
    enrollment_code_active: Mapped[bool] = mapped_column(Boolean, default=True)
    type: Mapped[str] = mapped_column(String(16), default="classic")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
