"""Device actions (POST /api/v1/devices/{id}/action/<name>) as MDM commands. Pure: no DB, no HTTP.

Each action says which platforms accept it (Iru: otherwise 400 "Command is not allowed for current device"),
validates its card's body (case-exact keys) and builds the MDM command(s) it sends.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bramley.errors import InvalidField

APPLE = ("Mac", "iPhone", "iPad", "AppleTV")
IOS = ("iPhone", "iPad")
MAC = ("Mac",)

INVENTORY_QUERIES = [
    "DeviceName", "OSVersion", "BuildVersion", "ModelName", "Model", "ProductName", "SerialNumber", "UDID",
    "IsSupervised", "IsMDMLostModeEnabled", "WiFiMAC", "EthernetMAC", "DeviceCapacity", "AvailableDeviceCapacity",
    "IsAppleSilicon", "IsActivationLockEnabled", "HostName", "LocalHostName", "SupplementalBuildVersion",
    "SupplementalOSVersionExtra", "PINRequiredForEraseDevice", "PINRequiredForDeviceLock",
]
INVENTORY_REQUESTS = ["DeviceInformation", "SecurityInfo", "InstalledApplicationList", "ProfileList",
                      "CertificateList"]


@dataclass
class DeviceFacts:
    """What an action needs to know about its target."""

    platform: str
    supervised: bool
    lost_mode: bool
    has_unlock_token: bool


@dataclass
class Planned:
    """Commands to enqueue, the reply body (None = empty 200) and secrets to keep."""

    commands: list[tuple[str, dict[str, Any]]]
    reply: dict | None = None
    store_pin: str | None = None
    push_only: bool = False
    lost_mode_status: str | None = None


def _bool(body: dict, key: str, default: bool | None = None) -> bool | None:
    value = body.get(key, default)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidField({key: ["Must be a valid boolean."]})


def _text(body: dict, key: str, required: bool = False, max_len: int = 1024) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise InvalidField({key: ["This field is required."]})
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidField({key: ["Not a valid string."]})
    return value


def six_digit_pin() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def _pin(body: dict) -> str | None:
    """The erase card sends PIN as a number; the API takes a 6-character string or a 6-digit int."""
    value = body.get("PIN")
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidField({"PIN": ["PIN must be 6 digits."]})
    if isinstance(value, int):
        value = f"{value:06d}" if 0 <= value < 10**6 else str(value)
    if not isinstance(value, str) or len(value) != 6 or not value.isdigit():
        raise InvalidField({"PIN": ["PIN must be 6 digits."]})
    return value


def plan_blankpush(body, facts) -> Planned:
    return Planned([], push_only=True)


def plan_clearpasscode(body, facts) -> Planned:
    # The UnlockToken itself is added by the service from the escrowed TokenUpdate value.
    return Planned([("ClearPasscode", {})])


def plan_deleteuser(body, facts) -> Planned:
    delete_all = _bool(body, "DeleteAllUsers", False)
    user = _text(body, "UserName", required=not delete_all, max_len=255)
    fields: dict[str, Any] = {"ForceDeletion": bool(_bool(body, "ForceDeletion", False))}
    if delete_all:
        fields["DeleteAllUsers"] = True
    else:
        fields["UserName"] = user
    return Planned([("DeleteUser", fields)])


def plan_erase(body, facts) -> Planned:
    fields: dict[str, Any] = {}
    pin = None
    if facts.platform == "Mac":
        pin = _pin(body) or six_digit_pin()
        fields["PIN"] = pin
    elif facts.platform in IOS:
        fields["PreserveDataPlan"] = bool(_bool(body, "PreserveDataPlan", True))
        fields["DisallowProximitySetup"] = bool(_bool(body, "DisallowProximitySetup", False))
        rts = body.get("ReturnToService")
        if rts is not None:
            if not isinstance(rts, dict) or "Enabled" not in rts:
                raise InvalidField({"ReturnToService": ["Enabled is required."]})
            if _bool(rts, "Enabled"):
                fields["ReturnToService"] = {"Enabled": True}
    return Planned([("EraseDevice", fields)], store_pin=pin)


def plan_lock(body, facts) -> Planned:
    fields: dict[str, Any] = {}
    message = _text(body, "Message", max_len=1024)
    phone = _text(body, "PhoneNumber", max_len=64)
    if message:
        fields["Message"] = message
    if phone:
        fields["PhoneNumber"] = phone
    if facts.platform == "Mac":
        pin = six_digit_pin()
        fields["PIN"] = pin
        return Planned([("DeviceLock", fields)], reply={"PIN": pin}, store_pin=pin)
    return Planned([("DeviceLock", fields)])


def plan_reinstallagent(body, facts) -> Planned:
    # ManifestURL is filled by the service from settings (it knows the server's public URL).
    return Planned([("InstallEnterpriseApplication", {"InstallAsManaged": True, "ManagementFlags": 1})])


def plan_remotedesktop(body, facts) -> Planned:
    enable = _bool(body, "EnableRemoteDesktop")
    if enable is None:
        raise InvalidField({"EnableRemoteDesktop": ["This field is required."]})
    return Planned([("EnableRemoteDesktop" if enable else "DisableRemoteDesktop", {})])


def plan_renewmdmprofile(body, facts) -> Planned:
    # The profile bytes are filled by the service (a fresh enrollment profile of the tenant).
    return Planned([("InstallProfile", {})])


def plan_restart(body, facts) -> Planned:
    fields: dict[str, Any] = {}
    if facts.platform == "Mac":
        fields["NotifyUser"] = bool(_bool(body, "NotifyUser", False))
        if _bool(body, "RebuildKernelCache", False):
            fields["RebuildKernelCache"] = True
    return Planned([("RestartDevice", fields)])


def plan_setname(body, facts) -> Planned:
    name = _text(body, "DeviceName", required=True, max_len=255)
    items: list[dict[str, Any]] = [{"Item": "DeviceName", "DeviceName": name}]
    if facts.platform == "Mac":
        host = "".join(c if c.isalnum() else "-" for c in name).strip("-").lower() or "mac"
        items.append({"Item": "HostName", "HostName": host})
    return Planned([("Settings", {"Settings": items})])


def plan_shutdown(body, facts) -> Planned:
    return Planned([("ShutDownDevice", {})])


def plan_unlockaccount(body, facts) -> Planned:
    return Planned([("UnlockUserAccount", {"UserName": _text(body, "UserName", required=True, max_len=255)})])


def plan_updateinventory(body, facts) -> Planned:
    requests = INVENTORY_REQUESTS if facts.platform != "AppleTV" else ["DeviceInformation", "SecurityInfo"]
    return Planned([(r, {"Queries": INVENTORY_QUERIES} if r == "DeviceInformation" else
                     {"ManagedAppsOnly": False} if r == "InstalledApplicationList" else {}) for r in requests])


def plan_dailycheckin(body, facts) -> Planned:
    return Planned([("DeviceInformation", {"Queries": INVENTORY_QUERIES})])


def plan_enablelostmode(body, facts) -> Planned:
    message = _text(body, "Message")
    phone = _text(body, "PhoneNumber", max_len=64)
    footnote = _text(body, "Footnote")
    if not message and not phone:
        raise InvalidField({"non_field_errors": ["Message or PhoneNumber is required."]})
    fields = {k: v for k, v in (("Message", message), ("PhoneNumber", phone), ("Footnote", footnote)) if v}
    return Planned([("EnableLostMode", fields)], lost_mode_status="PENDING")


def plan_disablelostmode(body, facts) -> Planned:
    return Planned([("DisableLostMode", {})])


def plan_playlostmodesound(body, facts) -> Planned:
    return Planned([("PlayLostModeSound", {})])


def plan_updatelocation(body, facts) -> Planned:
    return Planned([("DeviceLocation", {})])


def plan_refreshcellularplans(body, facts) -> Planned:
    return Planned([("RefreshCellularPlans", {"eSIMServerURL": _text(body, "eSIMServerURL", required=True)})])


def _toggle(item: str):
    def plan(body, facts) -> Planned:
        enabled = _bool(body, "Enabled")
        if enabled is None:
            raise InvalidField({"Enabled": ["This field is required."]})
        return Planned([("Settings", {"Settings": [{"Item": item, "Enabled": enabled}]})])
    return plan


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    platforms: tuple[str, ...]
    plan: Callable[[dict, DeviceFacts], Planned]
    supervised: bool = False
    lost_mode: bool = False  # only while the device is in lost mode
    unlock_token: bool = False
    exclusive: bool = True  # refuse while the same command is pending ("Command already running")
    extra: dict = field(default_factory=dict)


ACTIONS: dict[str, Action] = {a.name: a for a in [
    Action("blankpush", "Send blank push", APPLE, plan_blankpush, exclusive=False),
    Action("clearpasscode", "Clear passcode", IOS, plan_clearpasscode, unlock_token=True),
    Action("deleteuser", "Delete user", ("Mac", "iPad"), plan_deleteuser),
    Action("erase", "Erase device", APPLE, plan_erase),
    Action("lock", "Lock device", ("Mac", "iPhone", "iPad"), plan_lock),
    Action("reinstallagent", "Reinstall agent", MAC, plan_reinstallagent),
    Action("remotedesktop", "Remote desktop", MAC, plan_remotedesktop),
    Action("renewmdmprofile", "Renew MDM profile", APPLE, plan_renewmdmprofile),
    Action("restart", "Restart device", APPLE, plan_restart),
    Action("setname", "Set device name", APPLE, plan_setname),
    Action("shutdown", "Shutdown device", ("Mac", "iPhone", "iPad"), plan_shutdown),
    Action("unlockaccount", "Unlock user account", MAC, plan_unlockaccount),
    Action("updateinventory", "Update inventory", APPLE, plan_updateinventory, exclusive=False),
    Action("dailycheckin", "Daily check-in", APPLE, plan_dailycheckin, exclusive=False),
    Action("enablelostmode", "Enable lost mode", IOS, plan_enablelostmode, supervised=True),
    Action("disablelostmode", "Disable lost mode", IOS, plan_disablelostmode),
    Action("playlostmodesound", "Play lost mode sound", IOS, plan_playlostmodesound, lost_mode=True),
    Action("updatelocation", "Update lost mode location", IOS, plan_updatelocation, lost_mode=True),
    Action("refreshcellularplans", "Refresh cellular plans", IOS, plan_refreshcellularplans),
    Action("togglepersonalhotspot", "Toggle personal hotspot", IOS, _toggle("PersonalHotspot")),
    Action("toggledataroaming", "Toggle data roaming", IOS, _toggle("DataRoaming")),
    # Android only upstream: present so callers get Iru's 400 rather than a 404.
    Action("resetworkprofilepasscode", "Reset work profile passcode", (), plan_blankpush),
]}
