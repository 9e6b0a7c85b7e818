"""MDM protocol state: PKI, enrollments, identity bindings, the command queue and its history, push settings."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, utcnow

BigID = BigInteger().with_variant(Integer(), "sqlite")


class TenantPKI(Base):
    """The tenant's device-identity CA and FileVault escrow certificate (private keys live in `secrets`)."""

    __tablename__ = "mdm_tenant_pki"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ca_cert_pem: Mapped[str] = mapped_column(Text)
    escrow_cert_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EnrollmentToken(Base):
    """One-time values: enrollment codes guarding GET /mdm/enroll, and SCEP challenges minted per profile."""

    __tablename__ = "mdm_enrollment_tokens"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # enroll_code | scep_challenge
    blueprint_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IssuedCertificate(Base):
    """Every identity certificate our SCEP CA issued (serial, subject, validity) for revocation and renewal."""

    __tablename__ = "mdm_issued_certs"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex
    cert_sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Enrollment(Base):
    """A channel: the device channel (id = UDID) or a user channel (id = UDID:UserID), as NanoMDM normalises."""

    __tablename__ = "mdm_enrollments"
    __table_args__ = (
        Index("ix_mdm_enrollments_device", "tenant_id", "device_id"),
        Index("ix_mdm_enrollments_parent", "tenant_id", "parent_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(36))  # the Iru device_id in the devices domain
    parent_id: Mapped[str | None] = mapped_column(String(160), nullable=True)  # device channel of a user channel
    type: Mapped[str] = mapped_column(String(16))  # device | user
    udid: Mapped[str] = mapped_column(String(64))
    user_short_name: Mapped[str] = mapped_column(String(255), default="")
    topic: Mapped[str] = mapped_column(String(255), default="")
    push_magic: Mapped[str] = mapped_column(String(128), default="")
    token_hex: Mapped[str] = mapped_column(String(256), default="")
    push_invalid: Mapped[bool] = mapped_column(Boolean, default=False)  # APNs said the token is dead
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    token_update_tally: Mapped[int] = mapped_column(Integer, default=0)
    awaiting_configuration: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set when the device said NotNow to a command; cleared when an Idle offers those again (migration 0010).
    deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set when the device acknowledged a DeviceLock; cleared by its next exchange (it was unlocked to make it).
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    authenticated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_authenticate: Mapped[dict] = mapped_column(JSONType, default=dict)  # size-capped, for debugging
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CertAuth(Base):
    """sha256(identity cert DER) → enrollment. One hash, one enrollment; renewals add rows."""

    __tablename__ = "mdm_cert_auth"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cert_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Command(Base):
    """A command body, shared by every enrollment it was queued for (bulk enqueue writes one row here)."""

    __tablename__ = "mdm_commands"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    command_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # XML plist of the whole {CommandUUID, Command}
    action: Mapped[str] = mapped_column(String(48), default="")  # the API action name that made it, if any
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class QueuedCommand(Base):
    """The hot queue: only pending work. Rows leave on a final status (history keeps the outcome)."""

    __tablename__ = "mdm_queue"
    __table_args__ = (
        Index("ix_mdm_queue_command", "tenant_id", "command_uuid"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    command_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_type: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sent | not_now
    not_now_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)



# In hand-out order (migration 0009): the next command is the first entry, not the top of a sort.
Index("ix_mdm_queue_next", QueuedCommand.tenant_id, QueuedCommand.enrollment_id, QueuedCommand.priority.desc(),
      QueuedCommand.created_at, QueuedCommand.command_uuid)

class CommandHistory(Base):
    """Outcome of each command per enrollment, kept for the /commands API and trimmed by retention."""

    __tablename__ = "mdm_command_history"
    __table_args__ = (
        UniqueConstraint("tenant_id", "enrollment_id", "command_uuid"),
        Index("ix_mdm_command_history_device", "tenant_id", "device_id", "created_at"),
        Index("ix_mdm_command_history_created", "created_at")  # compaction (see migration 0009),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    device_id: Mapped[str] = mapped_column(String(36))
    enrollment_id: Mapped[str] = mapped_column(String(160))
    command_uuid: Mapped[str] = mapped_column(String(36))
    request_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))  # Acknowledged | Error | CommandFormatError | NotNow | ...
    error_chain: Mapped[list] = mapped_column(JSONType, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PushCertificate(Base):
    """The tenant's APNs MDM push certificate (one topic per tenant); key in `secrets`, or token auth."""

    __tablename__ = "mdm_push_certs"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    auth_type: Mapped[str] = mapped_column(String(16), default="certificate")  # certificate | token
    cert_pem: Mapped[str] = mapped_column(Text, default="")
    key_id: Mapped[str] = mapped_column(String(32), default="")  # token auth
    team_id: Mapped[str] = mapped_column(String(32), default="")
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
