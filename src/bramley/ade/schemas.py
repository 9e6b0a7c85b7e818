"""Wire shapes of the ADE routes (reference §4.4), for the OpenAPI document. Replies are built in render.py."""
from __future__ import annotations

from pydantic import BaseModel


class BlueprintRef(BaseModel):
    id: str
    name: str
    icon: str
    color: str


class Defaults(BaseModel):
    email: str
    phone: str


class DeviceCounts(BaseModel):
    Mac: int
    iPad: int
    iPhone: int
    AppleTV: int
    total: int


class Integration(BaseModel):
    id: str
    blueprint: BlueprintRef | None
    access_token_expiry: str | None
    server_name: str
    server_uuid: str
    admin_id: str
    org_name: str
    org_email: str
    org_phone: str
    org_address: str
    org_type: str
    stoken_file_name: str
    last_device_sync: str | None
    defaults: Defaults
    days_left: int
    status: str
    status_reason: str | None
    status_received_at: str | None
    device_counts: DeviceCounts
    use_blueprint_routing: bool


class IntegrationPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Integration]


class DepAccount(BaseModel):
    id: str
    server_name: str


class MDMDevice(BaseModel):
    id: str
    enrolled_at: str | None
    name: str
    enrollment_status: int
    deferred_install: bool
    is_missing: bool
    is_removed: bool


class ADEDevice(BaseModel):
    blueprint_id: str | None
    mdm_device: MDMDevice | None
    user_id: str | None
    dep_account: DepAccount
    asset_tag: str | None
    color: str
    description: str
    device_assigned_by: str
    device_assigned_date: str | None
    device_family: str
    model: str
    os: str
    profile_assign_time: str | None
    profile_push_time: str | None
    profile_status: str
    serial_number: str
    id: str
    last_assignment_status: str | None
    failed_assignment_attempts: int
    assignment_status_received_at: str | None
    tags: list[str]
    use_blueprint_routing: bool
    blueprint: str | None
    user: str | None


class ADEDevicePage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[ADEDevice]
