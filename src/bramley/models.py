"""Every table, imported in one place for Alembic and the tests."""
from bramley.db.base import Base
from bramley.tenancy.models import Tenant
from bramley.auth.models import ApiToken
from bramley.audit.models import AuditEvent
from bramley.users.models import User
from bramley.blueprints.models import Blueprint
from bramley.tags.models import Tag
from bramley.devices.models import Device, DeviceInventory, DeviceNote, DeviceTag
from bramley.library.models import BlueprintLibraryItem, DeviceItemStatus, LibraryItem

__all__ = ["Base", "Tenant", "ApiToken", "AuditEvent", "User", "Blueprint", "Tag", "Device", "DeviceInventory",
           "DeviceNote", "DeviceTag", "LibraryItem", "BlueprintLibraryItem", "DeviceItemStatus"]
from bramley.secrets.models import Secret, TenantKey  # noqa: E402
from bramley.mdm.models import (  # noqa: E402
    CertAuth, Command, CommandHistory, Enrollment, EnrollmentToken, IssuedCertificate, PushCertificate, QueuedCommand,
    TenantPKI,
)
from bramley.jobs.models import Job  # noqa: E402

__all__ += ["Secret", "TenantKey", "CertAuth", "Command", "CommandHistory", "Enrollment", "EnrollmentToken",
            "IssuedCertificate", "PushCertificate", "QueuedCommand", "TenantPKI", "Job"]
