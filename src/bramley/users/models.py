from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, new_uuid, utcnow


class User(Base):
    """A directory user (from an identity provider over SCIM, or created by the seed).

    `user_name_key` is the case-folded userName: the unique index on it keeps `Ada@x` and `ada@x` one user on
    SQLite and PostgreSQL alike, and serves `userName eq` lookups. The SCIM value itself is stored as sent.
    """

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "deprecated_user_id"),
        Index("ix_users_tenant_email", "tenant_id", "email"),
        Index("ix_users_tenant_order", "tenant_id", "created_at", "id"),
        Index("ux_users_tenant_user_name", "tenant_id", "user_name_key", unique=True),
        Index("ix_users_tenant_external_id", "tenant_id", "external_id"),
        Index("ix_users_tenant_integration", "tenant_id", "integration_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    # The legacy integer id Iru still emits as a string, and the Update Device card sends as a Number.
    deprecated_user_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    department: Mapped[str | None] = mapped_column(String(255), nullable=True)
    job_title: Mapped[str | None] = mapped_column(String(255), nullable=True)
    integration: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # SCIM (migration 0004). NULL user_name: a user no directory named (several may share an email).
    user_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_name_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    formatted_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    given_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    middle_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    employee_number: Mapped[str | None] = mapped_column(String(255), nullable=True)
    manager_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    integration_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # SCIM `active` as the directory last set it (NULL: never set, or removed); False archives the user.
    scim_active: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Bumped on every change a directory can see: the SCIM ETag and meta.version.
    version: Mapped[int] = mapped_column(Integer, default=1)


class UserEmail(Base):
    """One of a user's SCIM emails, in the order sent. `value_key` (lower-cased) serves `emails.value eq`."""

    __tablename__ = "user_emails"
    __table_args__ = (Index("ix_user_emails_tenant_value", "tenant_id", "value_key"),)

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(320))
    value_key: Mapped[str] = mapped_column(String(320))
    type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    primary: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class DirectoryGroup(Base):
    """A group pushed by an identity provider. Deleting it never deletes its members."""

    __tablename__ = "directory_groups"
    __table_args__ = (
        Index("ux_directory_groups_tenant_name", "tenant_id", "display_name_key", unique=True),
        Index("ix_directory_groups_tenant_order", "tenant_id", "created_at", "id"),
        Index("ix_directory_groups_tenant_external_id", "tenant_id", "external_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    tenant_id: Mapped[str] = mapped_column(String(36))
    display_name: Mapped[str] = mapped_column(String(255))
    display_name_key: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    integration_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GroupMember(Base):
    """Membership of a user in a group; `display` and `type` are kept as the directory sent them."""

    __tablename__ = "directory_group_members"
    __table_args__ = (Index("ix_directory_group_members_tenant_user", "tenant_id", "user_id"),)

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), ForeignKey("directory_groups.id", ondelete="CASCADE"),
                                          primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    display: Mapped[str | None] = mapped_column(String(255), nullable=True)
    type: Mapped[str | None] = mapped_column(String(16), nullable=True)
