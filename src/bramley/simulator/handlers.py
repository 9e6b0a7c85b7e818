"""How a simulated device answers each MDM command (reference §11.2's table). Pure: state in, result dict out.

Order of checks, as a device does it: an unknown RequestType is `Error` 12021; a channel, platform,
supervision or AccessRights gate that fails is `Error` with an ErrorChain; missing or mistyped keys are
`CommandFormatError`; then a `NotNow` if the device is busy (locked after boot, or the configured chance);
then the command runs against the state. Error codes besides 12021/12067/12068 are illustrative.
"""
from __future__ import annotations

import plistlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bramley.simulator.device import AGENT_APP, App, DeviceState
from bramley.simulator.inventory import (
    bypass_code, certificate_list, device_information, installed_applications, profile_list, security_info,
)
from bramley.simulator.results import (  # noqa: F401 - the answer vocabulary, re-exported for callers
    BAD_UNLOCK_TOKEN, DOMAIN, LOCATION_UNKNOWN, NO_RIGHTS, NOT_IN_LOST_MODE, NOT_SUPERVISED, NOT_SUPPORTED,
    UNKNOWN_REQUEST, UNKNOWN_USER, Context, ack, error, format_error,
)

ALL = frozenset({"Mac", "iPhone", "iPad", "AppleTV"})
IOS = frozenset({"iPhone", "iPad"})
MAC = frozenset({"Mac"})
# Commands a device runs even while locked after boot (a NotNow would defeat their purpose).
URGENT = frozenset({"DeviceLock", "EraseDevice", "ClearPasscode", "EnableLostMode", "DisableLostMode",
                    "PlayLostModeSound", "DeviceLocation", "RestartDevice", "ShutDownDevice", "DeviceInformation"})


@dataclass(frozen=True)
class Spec:
    run: Callable[[DeviceState, dict, Context], dict]
    platforms: frozenset = ALL
    supervised: frozenset = frozenset()  # platforms where it needs supervision
    required: tuple[tuple[str, type | tuple], ...] = ()
    right: int = 0  # AccessRights bit
    user_channel: bool = False  # also valid on a user channel


# --- lock, erase, power ----------------------------------------------------------------------------------


def _six_digits(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 6 and value.isdigit()


def device_lock(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    pin = cmd.get("PIN")
    if pin is not None and not _six_digits(pin):
        return format_error()
    if state.is_mac and pin is None:
        return error(NOT_SUPPORTED, "A PIN is required to lock this Mac.")
    state.locked, state.lock_pin, state.lock_message = True, pin, str(cmd.get("Message", ""))
    if state.is_ios:
        return ack(MessageResult="DeviceInLostMode" if state.lost_mode else "Success")
    return ack()


def erase_device(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    pin = cmd.get("PIN")
    if pin is not None and not _six_digits(pin):
        return format_error()
    # Acknowledged first; the agent then wipes the state and drops the enrollment (no CheckOut).
    state.erase_pin = pin
    return ack()


def restart_device(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    state.restarts += 1
    return ack()


def shut_down_device(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    return ack()


def clear_passcode(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if state.unlock_token is None or cmd["UnlockToken"] != state.unlock_token:
        return error(BAD_UNLOCK_TOKEN, "The unlock token is invalid.")
    state.passcode_present = False
    state.locked = False
    return ack()


def unlock_user_account(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    user = state.user(cmd["UserName"])
    if user is None:
        return error(UNKNOWN_USER, f"The user {cmd['UserName']} does not exist.")
    user.locked = False
    return ack()


def delete_user(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if cmd.get("DeleteAllUsers"):
        state.users = [u for u in state.users if u.is_admin]
        return ack()
    user = state.user(str(cmd.get("UserName", "")))
    if user is None:
        return error(UNKNOWN_USER, f"The user {cmd.get('UserName')} does not exist.")
    state.users.remove(user)
    return ack()


# --- lost mode --------------------------------------------------------------------------------------------


def enable_lost_mode(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if not cmd.get("Message") and not cmd.get("PhoneNumber"):
        return format_error()
    state.lost_mode = True
    state.lost_message = str(cmd.get("Message", ""))
    state.lost_phone = str(cmd.get("PhoneNumber", ""))
    state.lost_footnote = str(cmd.get("Footnote", ""))
    return ack()


def disable_lost_mode(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    state.lost_mode = False
    state.lost_message = state.lost_phone = state.lost_footnote = ""
    return ack()


def play_lost_mode_sound(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if not state.lost_mode:
        return error(NOT_IN_LOST_MODE, "The device is not in lost mode.")
    state.sound_played += 1
    return ack()


def device_location(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if not state.lost_mode:
        return error(NOT_IN_LOST_MODE, "The device is not in lost mode.")
    if state.location is None:
        return error(LOCATION_UNKNOWN, "The device location is unknown.")
    lat, lon = state.location
    return ack(Latitude=lat, Longitude=lon, HorizontalAccuracy=round(ctx.rng.uniform(5, 65), 1),
               VerticalAccuracy=round(ctx.rng.uniform(3, 20), 1), Altitude=round(ctx.rng.uniform(0, 300), 1),
               Speed=0.0, Course=-1.0, Timestamp=ctx.now().strftime("%Y-%m-%dT%H:%M:%SZ"))


# --- settings, remote desktop, apps, profiles -------------------------------------------------------------


def _setting(state: DeviceState, item: dict) -> dict:
    kind = item.get("Item")
    if kind == "DeviceName" and isinstance(item.get("DeviceName"), str):
        if state.is_ios and not state.supervised:
            return {"Item": kind, "Status": "Error", **error(NOT_SUPERVISED, "Requires supervision.")}
        state.device_name = item["DeviceName"]
        return {"Item": kind, "Status": "Acknowledged"}
    if kind == "HostName" and isinstance(item.get("HostName"), str) and state.is_mac:
        state.host_name = item["HostName"]
        state.local_host_name = item["HostName"].removesuffix(".local")
        return {"Item": kind, "Status": "Acknowledged"}
    if kind == "MDMOptions" and isinstance(item.get("MDMOptions"), dict):
        return {"Item": kind, "Status": "Acknowledged"}
    if kind in ("PersonalHotspot", "DataRoaming", "VoiceRoaming") and state.platform == "iPhone" \
            and isinstance(item.get("Enabled"), bool):
        return {"Item": kind, "Status": "Acknowledged"}
    return {"Item": kind, "Status": "Error", **error(NOT_SUPPORTED, f"Setting {kind!r} is not supported.")}


def settings(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if not all(isinstance(i, dict) for i in cmd["Settings"]):
        return format_error()
    return ack(Settings=[_setting(state, item) for item in cmd["Settings"]])


def enable_remote_desktop(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    state.remote_desktop = True
    return ack()


def disable_remote_desktop(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    state.remote_desktop = False
    return ack()


def install_enterprise_application(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    manifest_url, manifest = cmd.get("ManifestURL"), cmd.get("Manifest")
    if not (isinstance(manifest_url, str) and manifest_url) and not isinstance(manifest, dict):
        return format_error()
    # Acknowledged before the download; the app shows up in a later InstalledApplicationList.
    name, ident, version, vendor = AGENT_APP
    if isinstance(manifest, dict):
        meta = (manifest.get("items") or [{}])[0].get("metadata", {})
        name, ident = meta.get("title", name), meta.get("bundle-identifier", ident)
        version = meta.get("bundle-version", version)
    state.pending_apps.append(App(name, ident, version, vendor, 48_000_000, managed=True))
    return ack()


def install_profile(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    from bramley.simulator.scep_client import parse_profile

    try:
        profile = parse_profile(cmd["Payload"])
    except Exception:  # not a profile: the device reports an installation error
        return error(4001, "The profile could not be read.", domain="MCProfileErrorDomain")
    if not isinstance(profile, dict) or profile.get("PayloadType") != "Configuration":
        return error(4001, "The profile could not be read.", domain="MCProfileErrorDomain")
    state.apply_profile(profile, now=ctx.now())
    return ack()


def remove_profile(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    before = len(state.profiles)
    state.profiles = [p for p in state.profiles if p.identifier != cmd["Identifier"]]
    if len(state.profiles) == before:
        return error(1001, "The profile is not installed.", domain="MCProfileErrorDomain")
    return ack()


def rotate_filevault_key(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    from bramley.simulator.device import load_cert, new_prk

    if not state.filevault:
        return error(NOT_SUPPORTED, "FileVault is off.")
    unlock = cmd.get("FileVaultUnlock") or {}
    if unlock.get("Password") not in (None, state.prk):
        return error(BAD_UNLOCK_TOKEN, "The current recovery key is wrong.")
    state.prk = new_prk(ctx.rng)
    cert = load_cert(cmd["ReplyEncryptionCertificate"])
    envelope = (pkcs7.PKCS7EnvelopeBuilder().set_data(plistlib.dumps({"RecoveryKey": state.prk}))
                .add_recipient(cert).encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    return ack(RotateResult={"EncryptedNewRecoveryKey": envelope})


def nothing(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    return ack()


SPECS: dict[str, Spec] = {
    "DeviceInformation": Spec(device_information, required=(("Queries", list),), right=16, user_channel=True),
    "SecurityInfo": Spec(security_info, right=1024),
    "InstalledApplicationList": Spec(installed_applications, right=256, user_channel=True),
    "ProfileList": Spec(profile_list, right=1, user_channel=True),
    "CertificateList": Spec(certificate_list, right=1, user_channel=True),
    "ActivationLockBypassCode": Spec(bypass_code, platforms=ALL - {"AppleTV"}, supervised=ALL, right=1024),
    "ClearActivationLockBypassCode": Spec(nothing, platforms=ALL - {"AppleTV"}, supervised=ALL),
    "DeviceLock": Spec(device_lock, platforms=ALL - {"AppleTV"}, right=4),
    "EraseDevice": Spec(erase_device, right=8),
    "RestartDevice": Spec(restart_device, supervised=IOS | {"AppleTV"}, right=4),
    "ShutDownDevice": Spec(shut_down_device, platforms=ALL - {"AppleTV"}, supervised=IOS, right=4),
    "ClearPasscode": Spec(clear_passcode, platforms=IOS, required=(("UnlockToken", bytes),), right=4),
    "UnlockUserAccount": Spec(unlock_user_account, platforms=MAC, required=(("UserName", str),)),
    "DeleteUser": Spec(delete_user, platforms=MAC | {"iPad"}),
    "EnableLostMode": Spec(enable_lost_mode, platforms=IOS, supervised=IOS),
    "DisableLostMode": Spec(disable_lost_mode, platforms=IOS, supervised=IOS),
    "PlayLostModeSound": Spec(play_lost_mode_sound, platforms=IOS, supervised=IOS),
    "DeviceLocation": Spec(device_location, platforms=IOS, supervised=IOS),
    "Settings": Spec(settings, required=(("Settings", list),), right=2048, user_channel=True),
    "EnableRemoteDesktop": Spec(enable_remote_desktop, platforms=MAC),
    "DisableRemoteDesktop": Spec(disable_remote_desktop, platforms=MAC),
    "InstallEnterpriseApplication": Spec(install_enterprise_application, platforms=MAC, right=4096),
    "InstallProfile": Spec(install_profile, required=(("Payload", bytes),), right=2, user_channel=True),
    "RemoveProfile": Spec(remove_profile, required=(("Identifier", str),), right=2, user_channel=True),
    "RotateFileVaultKey": Spec(rotate_filevault_key, platforms=MAC,
                               required=(("KeyType", str), ("ReplyEncryptionCertificate", bytes))),
    "DeviceConfigured": Spec(nothing),
    "RefreshCellularPlans": Spec(nothing, platforms=frozenset({"iPhone", "iPad"}),
                                 required=(("eSIMServerURL", str),)),
    "ScheduleOSUpdateScan": Spec(nothing, platforms=ALL - {"AppleTV"}),
}


def _gate(state: DeviceState, request_type: str, spec: Spec, ctx: Context) -> dict | None:
    if ctx.user_channel and not spec.user_channel:
        return error(NOT_SUPPORTED, f"{request_type} is not supported on the user channel.")
    if state.platform not in spec.platforms:
        return error(NOT_SUPPORTED, f"{request_type} is not supported on this device.")
    if state.platform in spec.supervised and not state.supervised:
        return error(NOT_SUPERVISED, f"{request_type} requires a supervised device.")
    if spec.right and not ctx.access_rights & spec.right:
        return error(NO_RIGHTS, f"The MDM payload lacks the rights for {request_type}.")
    return None


def _well_formed(cmd: dict, spec: Spec) -> bool:
    for key, kind in spec.required:
        value = cmd.get(key)
        if value is None or not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            return False
    return True


def _not_now(state: DeviceState, request_type: str, ctx: Context) -> bool:
    if request_type in URGENT:
        return False
    if state.locked_after_boot:
        return True
    if ctx.not_now_next > 0:
        ctx.not_now_next -= 1
        return True
    return ctx.not_now_probability > 0 and ctx.rng.random() < ctx.not_now_probability


def respond(state: DeviceState, command: dict, ctx: Context) -> dict:
    """The result body keys (Status, ErrorChain, response keys) for one `{CommandUUID, Command}` plist."""
    cmd = command.get("Command")
    if not isinstance(cmd, dict) or not isinstance(cmd.get("RequestType"), str):
        result = format_error()
        state.history.append(("", result["Status"]))
        return result
    request_type = cmd["RequestType"]
    spec = SPECS.get(request_type)
    if spec is None:
        result = error(UNKNOWN_REQUEST, f"Unknown command {request_type!r}.")
    else:
        result = _gate(state, request_type, spec, ctx)
        if result is None and not _well_formed(cmd, spec):
            result = format_error()
        if result is None and _not_now(state, request_type, ctx):
            result = {"Status": "NotNow"}
        if result is None:
            result = spec.run(state, cmd, ctx)
    state.history.append((request_type, result["Status"]))
    return result
