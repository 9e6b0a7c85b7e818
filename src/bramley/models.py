"""Every table, imported in one place for Alembic and the tests."""
from bramley.ade.models import ADEDevice, ADEIntegration, ADEKey
from bramley.audit.models import AuditEvent
from bramley.auth.models import ApiToken
from bramley.blueprints.models import Blueprint
from bramley.blueprints.rules_models import AssignmentRule, BlueprintSource
from bramley.db.base import Base
from bramley.devices.models import Device, DeviceInventory, DeviceNote, DevicePositionCounter, DeviceTag
from bramley.jobs.models import Job
from bramley.library.models import BlueprintLibraryItem, DeviceItemStatus, LibraryItem
from bramley.mdm.models import (
    CertAuth, Command, CommandHistory, Enrollment, EnrollmentToken, IssuedCertificate, PushCertificate, QueuedCommand,
    TenantPKI,
)
from bramley.scim.models import ScimIntegration, ScimRequest
from bramley.secrets.models import Secret, TenantKey
from bramley.tags.models import Tag
from bramley.tenancy.models import Tenant
from bramley.trust.models import TrustSettings, TrustVerdict
from bramley.users.models import DirectoryGroup, GroupMember, User, UserEmail

__all__ = [
    "Base", "Tenant", "ApiToken", "AuditEvent", "User", "UserEmail", "DirectoryGroup", "GroupMember", "Blueprint",
    "AssignmentRule", "BlueprintSource", "Tag", "Device", "DeviceInventory", "DeviceNote", "DevicePositionCounter",
    "DeviceTag", "LibraryItem", "BlueprintLibraryItem", "DeviceItemStatus", "Secret", "TenantKey", "CertAuth",
    "Command", "CommandHistory", "Enrollment", "EnrollmentToken", "IssuedCertificate", "PushCertificate",
    "QueuedCommand", "TenantPKI", "Job", "ScimIntegration", "ScimRequest", "TrustSettings", "TrustVerdict",
    "ADEDevice", "ADEIntegration", "ADEKey",
]
