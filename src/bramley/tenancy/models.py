from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, UTCDateTime, new_uuid, utcnow


class Tenant(Base):
    """A customer. Its id is the tenant_id every other row carries."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    subdomain: Mapped[str] = mapped_column(String(63), unique=True)
    region: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
