"""ADE tables: the tenant's key pair for server tokens, one row per ABM/ASM "MDM server", its devices."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, UTCDateTime, new_uuid, utcnow

BigID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only autoincrements an INTEGER PRIMARY KEY


class ADEKey(Base):
    """The certificate admins upload to Apple Business Manager; its private key is in secrets (tenant, ade_key)."""

    __tablename__ = "ade_keys"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ADEIntegration(Base):
    """One server token (an MDM server in ABM/ASM). The OAuth credentials are in secrets (ade_integration, id).

    `cursor`/`phase` are the sync worker's place in Apple's device feed (reference §9.4): `fetch` pages through
    every device, then `sync` reads changes since.
    """

    __tablename__ = "ade_integrations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "server_uuid"),
        Index("ix_ade_integrations_tenant_order", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    blueprint_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    use_blueprint_routing: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str] = mapped_column(String(64), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    # From Apple's GET /account.
    server_name: Mapped[str] = mapped_column(String(255), default="")
    server_uuid: Mapped[str] = mapped_column(String(64))
    admin_id: Mapped[str] = mapped_column(String(320), default="")
    org_name: Mapped[str] = mapped_column(String(255), default="")
    org_email: Mapped[str] = mapped_column(String(320), default="")
    org_phone: Mapped[str] = mapped_column(String(64), default="")
    org_address: Mapped[str] = mapped_column(Text, default="")
    org_type: Mapped[str] = mapped_column(String(32), default="")
    org_id: Mapped[str] = mapped_column(String(64), default="")
    stoken_file_name: Mapped[str] = mapped_column(String(255), default="")
    access_token_expiry: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_device_sync: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="SUCCESS")  # SUCCESS | BROKEN
    status_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Apple's code, e.g. FORBIDDEN
    status_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The sync worker's state.
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    phase: Mapped[str] = mapped_column(String(8), default="fetch")
    fetch_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The enrollment profile defined at Apple (None: define one at the next sync) and where it sends devices.
    profile_uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    profile_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ADEDevice(Base):
    """A device Apple assigned to one of the tenant's MDM servers. `deleted_at`: Apple removed it (not MDM)."""

    __tablename__ = "ade_devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_ade_devices_tenant_id"),
        UniqueConstraint("tenant_id", "integration_id", "serial_number",
                         name="uq_ade_devices_tenant_id_integration_serial"),
        Index("ix_ade_devices_tenant_integration", "tenant_id", "integration_id", "deleted_at", "pk"),
        Index("ix_ade_devices_tenant_pk", "tenant_id", "pk"),
        Index("ix_ade_devices_tenant_serial", "tenant_id", "serial_number"),
        Index("ix_ade_devices_tenant_blueprint", "tenant_id", "blueprint_id"),
        Index("ix_ade_devices_tenant_user", "tenant_id", "user_id"),
        Index("ix_ade_devices_tenant_assign", "tenant_id", "integration_id", "needs_assignment", "pk"),
    )

    pk: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    id: Mapped[str] = mapped_column(String(36), default=new_uuid)
    integration_id: Mapped[str] = mapped_column(String(36))
    serial_number: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    color: Mapped[str] = mapped_column(String(64), default="")
    asset_tag: Mapped[str | None] = mapped_column(String(255), nullable=True)
    device_family: Mapped[str] = mapped_column(String(32), default="")
    os: Mapped[str] = mapped_column(String(32), default="")
    device_assigned_by: Mapped[str] = mapped_column(String(320), default="")
    device_assigned_date: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    profile_status: Mapped[str] = mapped_column(String(16), default="empty")
    profile_uuid: Mapped[str] = mapped_column(String(64), default="")
    profile_assign_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    profile_push_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Ours, not Apple's: where the device goes when it enrolls.
    blueprint_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    use_blueprint_routing: Mapped[bool] = mapped_column(Boolean, default=False)
    # Profile assignment bookkeeping.
    needs_assignment: Mapped[bool] = mapped_column(Boolean, default=False)
    last_assignment_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    failed_assignment_attempts: Mapped[int] = mapped_column(Integer, default=0)
    assignment_status_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # last listed by a fetch
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
