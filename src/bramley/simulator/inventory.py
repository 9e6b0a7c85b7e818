"""What a simulated device reports about itself: DeviceInformation queries (only those asked for),
SecurityInfo (with the PRK enveloped to the escrow certificate), app, profile and certificate lists."""
from __future__ import annotations

from typing import Any

from bramley.simulator.device import DeviceState
from bramley.simulator.results import NOT_SUPPORTED, Context, ack, error

def _queries(state: DeviceState) -> dict[str, Any]:
    s = state
    q: dict[str, Any] = {
        "UDID": s.udid, "DeviceName": s.device_name, "OSVersion": s.os_version, "BuildVersion": s.build_version,
        "ModelName": s.model_family, "Model": s.product_name if s.is_mac else f"M{s.serial_number[:4]}LL/A",
        "ProductName": s.product_name, "SerialNumber": s.serial_number, "IsSupervised": s.supervised,
        "DeviceCapacity": s.capacity_gb, "AvailableDeviceCapacity": s.available_gb, "WiFiMAC": s.wifi_mac,
        "BluetoothMAC": s.bluetooth_mac, "IsActivationLockEnabled": s.activation_lock,
        "IsDeviceLocatorServiceEnabled": s.activation_lock, "IsCloudBackupEnabled": False,
        "AwaitingConfiguration": False, "IsMultiUser": False, "EASDeviceIdentifier": s.udid.replace("-", "")[:32],
        "MDMOptions": {"ActivationLockAllowedWhileSupervised": s.supervised},
    }
    if s.is_mac:
        q.update({"HostName": s.host_name, "LocalHostName": s.local_host_name, "IsAppleSilicon": s.apple_silicon,
                  "PINRequiredForEraseDevice": not s.apple_silicon, "PINRequiredForDeviceLock": True,
                  "SystemIntegrityProtectionEnabled": True})
        if s.ethernet_mac:
            q["EthernetMAC"] = s.ethernet_mac
    if s.is_ios:
        q.update({"IsMDMLostModeEnabled": s.lost_mode, "BatteryLevel": s.battery_level,
                  "IsDoNotDisturbInEffect": False, "IsRoaming": False})
        if s.platform == "iPhone":
            q.update({"IMEI": s.imei, "PhoneNumber": s.phone_number, "CellularTechnology": 3,
                      "ModemFirmwareVersion": "1.50.04"})
    return q


def device_information(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    available = _queries(state)
    return ack(QueryResponses={k: available[k] for k in cmd["Queries"] if isinstance(k, str) and k in available})


def security_info(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    s = state
    info: dict[str, Any] = {"ManagementStatus": {"EnrolledViaDEP": False, "UserApprovedEnrollment": True,
                                                 "IsUserEnrollment": False,
                                                 "IsActivationLockManageable": s.supervised}}
    if s.is_ios:
        info.update({"HardwareEncryptionCaps": 3, "PasscodePresent": s.passcode_present,
                     "PasscodeCompliant": True, "PasscodeCompliantWithProfiles": True})
    if s.is_mac:
        info.update({
            "FDE_Enabled": s.filevault, "FDE_HasPersonalRecoveryKey": bool(s.filevault and s.prk),
            "FDE_HasInstitutionalRecoveryKey": False, "SystemIntegrityProtectionEnabled": True,
            "FirewallSettings": {"FirewallEnabled": s.firewall, "BlockAllIncoming": False, "StealthMode": False},
            "SecureBoot": {"SecureBootLevel": "full", "ExternalBootLevel": "disallowed"},
            "RemoteDesktopEnabled": s.remote_desktop, "AuthenticatedRootVolumeEnabled": True,
            "BootstrapTokenAllowedForAuthentication": "allowed" if s.bootstrap_token else "not supported",
            "IsRecoveryLockEnabled": False,
        })
        envelope = s.prk_envelope()
        if envelope is not None:
            info["FDE_PersonalRecoveryKeyCMS"] = envelope
            info["FDE_PersonalRecoveryKeyDeviceKey"] = s.serial_number
    return ack(SecurityInfo=info)


def installed_applications(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    state.finish_installs()
    wanted = cmd.get("Identifiers")
    managed_only = bool(cmd.get("ManagedAppsOnly", False))
    apps = [a for a in state.apps if (not wanted or a.identifier in wanted) and (a.managed or not managed_only)]
    return ack(InstalledApplicationList=[a.as_reported() for a in apps])


def profile_list(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    return ack(ProfileList=[p.as_reported() for p in state.profiles])


def certificate_list(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    return ack(CertificateList=[{"CommonName": cn, "Data": der, "IsIdentity": identity}
                                for cn, der, identity in state.certificates])


def bypass_code(state: DeviceState, cmd: dict, ctx: Context) -> dict:
    if not state.bypass_code:
        return error(NOT_SUPPORTED, "The bypass code is no longer available.")
    return ack(ActivationLockBypassCode=state.bypass_code)
