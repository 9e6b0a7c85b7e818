from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, new_uuid, utcnow


class ScimIntegration(Base):
    """A directory integration (one IdP app): a name and a SCIM token, of which only the SHA-256 is kept."""

    __tablename__ = "scim_integrations"
    __table_args__ = (Index("ix_scim_integrations_tenant", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    # The small per-tenant number Iru shows as users[].integration.id.
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScimRequest(Base):
    """One SCIM request as the door saw it: who, what, the outcome, and a redacted summary of the change."""

    __tablename__ = "scim_requests"
    __table_args__ = (Index("ix_scim_requests_tenant_resource", "tenant_id", "resource_id", "id"),)

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(26), primary_key=True)  # ULID: sorts by time
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    integration_id: Mapped[str] = mapped_column(String(36))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(Integer)
    resource_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    summary: Mapped[dict] = mapped_column(JSONType, default=dict)
