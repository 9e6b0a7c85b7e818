"""Trust state kept by the server: the per-tenant window, and each device's last verdict (for audit)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, utcnow
from bramley.trust.rules import DEFAULT_WINDOW_DAYS


class TrustSettings(Base):
    """One row per tenant that changed its window or was evaluated; absent means the defaults."""

    __tablename__ = "trust_settings"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    window_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_WINDOW_DAYS)
    # The first tenant-wide evaluation stores verdicts without auditing them (a baseline, not a change).
    baseline_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_sweep_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrustVerdict(Base):
    """The verdict last recorded for a device: what a new evaluation is compared with to find changes.

    The API never reads it (it evaluates live, so it is never stale); sweeps and agent check-ins write it.
    """

    __tablename__ = "trust_verdicts"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    verified: Mapped[bool] = mapped_column(Boolean)
    failed_rules: Mapped[list] = mapped_column(JSONType, default=list)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
