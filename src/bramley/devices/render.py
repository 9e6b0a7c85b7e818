"""Device JSON exactly as Iru emits it (field order, per-field timestamp formats). Pure: no DB."""
from __future__ import annotations

from datetime import datetime

import orjson


def iso_z(dt: datetime | None) -> str | None:
    """`2024-07-23T14:11:37.150080Z` (last_check_in, notes, library items, users)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


def spaced(dt: datetime | None) -> str | None:
    """`2024-01-26 16:15:36.087016+00:00` (first_/last_enrollment, details mdm dates)."""
    return dt.isoformat(sep=" ", timespec="microseconds") if dt else None


def spaced_seconds(dt: datetime | None) -> str | None:
    """`2024-06-17 11:32:35+00:00` (details kandji_agent.install_date)."""
    return dt.isoformat(sep=" ", timespec="seconds") if dt else None


def user_object(device) -> dict | None:
    if not device.user_id:
        return None
    return {"email": device.user_email, "name": device.user_name, "id": device.user_id,
            "is_archived": bool(device.user_archived)}


def device_dict(device, tag_names: list[str], legacy_empty: bool = False) -> dict:
    empty = "" if legacy_empty else None
    user = user_object(device)
    return {
        "device_id": device.id,
        "device_name": device.device_name,
        "model": device.model,
        "serial_number": device.serial_number,
        "platform": device.platform,
        "os_version": device.os_version,
        "supplemental_build_version": device.supplemental_build_version or "",
        "supplemental_os_version_extra": device.supplemental_os_version_extra or "",
        "last_check_in": iso_z(device.last_check_in) or empty,
        "user": user if user is not None else empty,
        "asset_tag": device.asset_tag or "",
        "blueprint_id": device.blueprint_id,
        "mdm_enabled": bool(device.mdm_enabled),
        "agent_installed": bool(device.agent_installed),
        "is_missing": bool(device.is_missing),
        "is_removed": bool(device.is_removed),
        "agent_version": device.agent_version or "",
        "first_enrollment": spaced(device.first_enrollment) or empty,
        "last_enrollment": spaced(device.last_enrollment) or empty,
        "blueprint_name": device.blueprint_name or "",
        "lost_mode_status": device.lost_mode_status or "",
        "tags": sorted(tag_names),
    }


def device_json(device, tag_names: list[str], legacy_empty: bool = False) -> str:
    return orjson.dumps(device_dict(device, tag_names, legacy_empty)).decode()


def flag(value) -> str:
    """Details flags stay the strings "True"/"False" (reference §6 rule 21)."""
    return "True" if value else "False"


def details_dict(device, inventory: dict, tag_names: list[str], legacy_empty: bool = False) -> dict:
    base = device_dict(device, tag_names, legacy_empty)
    general_extra = inventory.get("general", {})
    is_mac = device.platform == "Mac"
    return {
        "general": {
            "device_id": device.id,
            "device_name": device.device_name,
            "last_enrollment": base["last_enrollment"],
            "first_enrollment": base["first_enrollment"],
            "model": device.model,
            "platform": device.platform,
            "os_version": device.os_version,
            "supplemental_build_version": base["supplemental_build_version"],
            "supplemental_os_version_extra": base["supplemental_os_version_extra"],
            "system_version": f"{device.os_version} ({device.os_build})" if device.os_build else device.os_version,
            "boot_volume": general_extra.get("boot_volume", "Macintosh HD" if is_mac else ""),
            "time_since_boot": general_extra.get("time_since_boot", ""),
            "last_user": general_extra.get("last_user", ""),
            "asset_tag": base["asset_tag"],
            "assigned_user": base["user"],
            "blueprint_name": base["blueprint_name"],
            "blueprint_uuid": device.blueprint_id,
        },
        "mdm": {
            "mdm_enabled": flag(device.mdm_enabled),
            "supervised": flag(device.supervised),
            "install_date": base["first_enrollment"],
            "last_check_in": spaced(device.last_check_in) or base["last_check_in"],
            "mdm_enabled_user": inventory.get("mdm_enabled_user", []),
        },
        "activation_lock": inventory.get("activation_lock", {}),
        "filevault": inventory.get("filevault", {}),
        "lost_mode": inventory.get("lost_mode", {}),
        "automated_device_enrollment": inventory.get("automated_device_enrollment", {}),
        "kandji_agent": {
            "agent_installed": flag(device.agent_installed),
            "install_date": inventory.get("agent_install_date", ""),
            # Until the agent reports its own check-in, the device's stands in (ISO Z, as the agent's is).
            "last_check_in": inventory.get("agent_last_check_in")
            or ((iso_z(device.last_check_in) or "") if device.agent_installed else ""),
            "agent_version": device.agent_version or "",
        },
        "hardware_overview": inventory.get("hardware_overview", {}),
        "volumes": inventory.get("volumes", []),
        "network": inventory.get("network", {}),
        "recovery_information": inventory.get("recovery_information", {}),
        "users": inventory.get("users", {"regular_users": [], "system_users": []}),
        "installed_profiles": inventory.get("installed_profiles", []),
        "apple_business_manager": inventory.get("apple_business_manager", {}),
        "security_information": inventory.get("security_information", {}),
        "cellular": inventory.get("cellular", {}),
        "tags": base["tags"],
    }
