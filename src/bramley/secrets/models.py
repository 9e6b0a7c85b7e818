from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, UTCDateTime, utcnow


class TenantKey(Base):
    """A tenant's data key, wrapped (AES-GCM) by the master key. Rotation re-wraps; values are re-encrypted."""

    __tablename__ = "tenant_keys"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(16))  # which master key wrapped it (first 8 bytes of its hash, hex)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Secret(Base):
    """One encrypted value. AAD = tenant, owner type, owner id and kind, so a ciphertext cannot be moved."""

    __tablename__ = "secrets"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_type: Mapped[str] = mapped_column(String(32), primary_key=True)  # device, tenant, enrollment, ...
    owner_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(48), primary_key=True)  # filevault_prk, unlock_pin, scep_ca_key, ...
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
