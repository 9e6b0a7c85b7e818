"""Wire shapes of the device routes (reference §4.1-4.3); they drive the OpenAPI document."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class DevicePatch(BaseModel):
    """Update Device: any subset. `user` is a UUID, the legacy numeric id, or null to clear."""

    model_config = ConfigDict(extra="ignore")
    blueprint_id: str | None = None
    user: str | int | None = None
    asset_tag: str | None = Field(None, max_length=255)
    tags: list[str] | None = None


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
    content: str = Field(min_length=1, max_length=100_000)


class NoteDeleted(BaseModel):
    note_id: str
    deleted_at: str
