"""Wire shapes of the device routes (reference §4.1-4.3); they drive the OpenAPI document."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bramley.apiutil import Text


class DeviceUser(BaseModel):
    email: str | None
    name: str | None
    id: str | None
    is_archived: bool


class Device(BaseModel):
    device_id: str
    device_name: str
    model: str
    serial_number: str
    platform: str
    os_version: str
    supplemental_build_version: str
    supplemental_os_version_extra: str
    last_check_in: str | None
    user: DeviceUser | str | None
    asset_tag: str
    blueprint_id: str | None
    mdm_enabled: bool
    agent_installed: bool
    is_missing: bool
    is_removed: bool
    agent_version: str
    first_enrollment: str | None
    last_enrollment: str | None
    blueprint_name: str
    lost_mode_status: str
    tags: list[str]


class DeviceListFilters(BaseModel):
    """List Devices query filters (devices.api validates the raw query with DeviceListQuery in one step)."""

    asset_tag: Text | None = None
    blueprint_id: Text | None = None
    device_id: Text | None = None
    device_name: Text | None = None
    filevault_enabled: bool | None = None
    mac_address: Text | None = None
    model: Text | None = None
    os_version: Text | None = None
    platform: Text | None = None
    serial_number: Text | None = None
    tag_name: Text | None = None
    tag_name_in: Text | None = None
    tag_id: Text | None = None
    tag_id_in: Text | None = None
    user: Text | None = None
    user_email: Text | None = None
    user_email_exact: Text | None = None
    user_id: Text | None = None
    user_name: Text | None = None


class DeviceListQuery(DeviceListFilters):
    limit: int | None = Field(None, description="Page size; values above 300 are clamped to 300.")
    offset: int | None = Field(None, ge=0)
    ordering: Text | None = None


class DevicePatch(BaseModel):
    """Update Device: any subset. `user` is a UUID, the legacy numeric id, or null to clear."""

    model_config = ConfigDict(extra="ignore")
    blueprint_id: Text | None = None
    user: Text | int | None = None
    asset_tag: Text | None = Field(None, max_length=255)
    tags: list[Text] | None = None


class DeviceDetails(BaseModel):
    general: dict[str, Any]
    mdm: dict[str, Any]
    activation_lock: dict[str, Any]
    filevault: dict[str, Any]
    lost_mode: dict[str, Any]
    automated_device_enrollment: dict[str, Any]
    kandji_agent: dict[str, Any]
    hardware_overview: dict[str, Any]
    volumes: list[dict[str, Any]]
    network: dict[str, Any]
    recovery_information: dict[str, Any]
    users: dict[str, Any]
    installed_profiles: list[dict[str, Any]]
    apple_business_manager: dict[str, Any]
    security_information: dict[str, Any]
    cellular: dict[str, Any]
    tags: list[str]


class DeviceApps(BaseModel):
    device_id: str
    apps: list[dict[str, Any]]


class DeviceLibraryItems(BaseModel):
    device_id: str
    library_items: list[dict[str, Any]]


class DeviceParameters(BaseModel):
    device_id: str
    parameters: list[dict[str, Any]]


class DeviceStatus(BaseModel):
    device_id: str
    library_items: list[dict[str, Any]]
    parameters: list[dict[str, Any]]


class Note(BaseModel):
    note_id: str
    created_at: str
    updated_at: str
    author: str
    content: str


class NoteIn(BaseModel):
    content: Text = Field(min_length=1, max_length=100_000)


class NoteDeleted(BaseModel):
    note_id: str
    deleted_at: str
