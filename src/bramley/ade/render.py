"""ADE Integration and ADE device JSON as Iru emits them (field order, per-field timestamp formats). Pure."""
from __future__ import annotations

from datetime import datetime

from bramley.db.base import utcnow


def seconds_z(dt: datetime | None) -> str | None:
    """`2023-06-15T00:06:08Z`: access_token_expiry and the dates Apple reports for a device."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def micro_z(dt: datetime | None) -> str | None:
    """`2022-07-18T15:56:34.567587Z`: our own timestamps (last_device_sync, status and enrollment times)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


def days_left(expiry: datetime | None, now: datetime | None = None) -> int:
    if expiry is None:
        return 0
    return max(0, (expiry - (now or utcnow())).days)


def blueprint_ref(bp) -> dict | None:
    return None if bp is None else {"id": bp.id, "name": bp.name, "icon": bp.icon, "color": bp.color}


def integration(row, bp, counts: dict[str, int]) -> dict:
    return {
        "id": row.id,
        "blueprint": None if row.use_blueprint_routing else blueprint_ref(bp),
        "access_token_expiry": seconds_z(row.access_token_expiry),
        "server_name": row.server_name,
        "server_uuid": row.server_uuid,
        "admin_id": row.admin_id,
        "org_name": row.org_name,
        "org_email": row.org_email,
        "org_phone": row.org_phone,
        "org_address": row.org_address,
        "org_type": row.org_type,
        "stoken_file_name": row.stoken_file_name,
        "last_device_sync": micro_z(row.last_device_sync),
        "defaults": {"email": row.email, "phone": row.phone},
        "days_left": days_left(row.access_token_expiry),
        "status": row.status,
        "status_reason": row.status_reason,
        "status_received_at": micro_z(row.status_received_at),
        "device_counts": counts,
        "use_blueprint_routing": bool(row.use_blueprint_routing),
    }


def mdm_device(device) -> dict | None:
    """The managed device a record enrolled as (matched by serial), or None while it awaits enrollment."""
    if device is None:
        return None
    return {
        "id": device.id,
        "enrolled_at": micro_z(device.first_enrollment or device.last_enrollment or device.created_at),
        "name": device.device_name,
        # Iru's enrollment state code; 4 is the value seen on enrolled devices (unverified beyond that).
        "enrollment_status": 4 if device.mdm_enabled and not device.is_removed else 0,
        "deferred_install": False,
        "is_missing": bool(device.is_missing),
        "is_removed": bool(device.is_removed),
    }


def device(row, server_name: str, managed) -> dict:
    return {
        "blueprint_id": row.blueprint_id,
        "mdm_device": mdm_device(managed),
        "user_id": row.user_id,
        "dep_account": {"id": row.integration_id, "server_name": server_name},
        "asset_tag": row.asset_tag,
        "color": row.color,
        "description": row.description,
        "device_assigned_by": row.device_assigned_by,
        "device_assigned_date": seconds_z(row.device_assigned_date),
        "device_family": row.device_family,
        "model": row.model,
        "os": row.os,
        "profile_assign_time": seconds_z(row.profile_assign_time),
        "profile_push_time": seconds_z(row.profile_push_time),
        "profile_status": row.profile_status,
        "serial_number": row.serial_number,
        "id": row.id,
        "last_assignment_status": row.last_assignment_status,
        "failed_assignment_attempts": row.failed_assignment_attempts or 0,
        "assignment_status_received_at": micro_z(row.assignment_status_received_at),
        "tags": [],
        "use_blueprint_routing": bool(row.use_blueprint_routing),
        # Older callers read the ids under these names (reference §6 rule 19).
        "blueprint": row.blueprint_id,
        "user": row.user_id,
    }
