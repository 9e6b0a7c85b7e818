"""What each acknowledged command teaches us: inventory, secrets, lost mode, removal (Zentral's handler idea)."""
from __future__ import annotations

import logging
import plistlib
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.devices import service as devices
from bramley.devices.render import iso_z, spaced
from bramley.mdm import queue
from bramley.mdm.commands import INVENTORY_QUERIES
from bramley.mdm.models import Enrollment
from bramley.mdm.protocol import Report
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.mdm")


def enqueue_initial(db: Session, ctx: TenantContext, enrollment: Enrollment) -> None:
    targets = [queue.Target(enrollment.id, enrollment.device_id)]
    queue.enqueue(db, ctx, targets, "DeviceInformation", {"Queries": INVENTORY_QUERIES}, priority=10)
    for request_type in ("SecurityInfo", "InstalledApplicationList", "ProfileList", "CertificateList"):
        queue.enqueue(db, ctx, targets, request_type, {}, priority=5)


def _command_fields(db: Session, ctx: TenantContext, command_uuid: str) -> dict:
    payload = queue.command_payload(db, ctx, command_uuid)
    return plistlib.loads(payload).get("Command", {}) if payload else {}


def _gb(value) -> str:
    return f"{float(value):.2f} GB" if isinstance(value, (int, float)) else ""


def _device_information(db, ctx, enrollment, raw: dict) -> None:
    q = raw.get("QueryResponses")
    if not isinstance(q, dict):
        return
    columns = {}
    for key, column in (("DeviceName", "device_name"), ("OSVersion", "os_version"), ("BuildVersion", "os_build"),
                        ("SerialNumber", "serial_number"), ("SupplementalBuildVersion", "supplemental_build_version"),
                        ("SupplementalOSVersionExtra", "supplemental_os_version_extra")):
        if isinstance(q.get(key), str) and q[key]:
            columns[column] = q[key]
    if isinstance(q.get("IsSupervised"), bool):
        columns["supervised"] = q["IsSupervised"]
    mac = q.get("WiFiMAC") or q.get("EthernetMAC")
    if isinstance(mac, str):
        columns["mac_address"] = mac
    if isinstance(q.get("IsMDMLostModeEnabled"), bool):
        columns["lost_mode_status"] = "ENABLED" if q["IsMDMLostModeEnabled"] else ""
    details: dict = {}
    capacity, available = q.get("DeviceCapacity"), q.get("AvailableDeviceCapacity")
    if isinstance(capacity, (int, float)) and capacity > 0 and isinstance(available, (int, float)):
        details["volumes"] = [{"name": "Macintosh HD" if enrollment.udid and q.get("HostName") else "Data",
                               "format": "APFS", "percent_used": f"{round(100 * (1 - available / capacity))}%",
                               "identifier": "disk3s1", "capacity": _gb(capacity), "available": _gb(available),
                               "encrypted": ""}]
    if isinstance(q.get("LocalHostName"), str):
        details["network"] = {"local_hostname": q["LocalHostName"], "mac_address": mac or "",
                              "ip_address": "", "public_ip": ""}
    device = devices.report(db, ctx, enrollment.device_id, columns=columns, details=details or None)
    if columns.get("supervised") and device.platform != "AppleTV":
        # The bypass code is only readable within 15 days of supervision: fetch it now, once.
        from bramley.secrets import service as secrets

        have = secrets.get(db, ctx, owner_type="device", owner_id=device.id, kind="bypass_code_device",
                           audited=False)
        if have is None and "ActivationLockBypassCode" not in queue.pending_types(db, ctx, enrollment.id):
            queue.enqueue(db, ctx, [queue.Target(enrollment.id, enrollment.device_id)], "ActivationLockBypassCode", {})


def _security_info(db, ctx, enrollment, raw: dict) -> None:
    info = raw.get("SecurityInfo")
    if not isinstance(info, dict):
        return
    columns: dict = {}
    details: dict = {}
    if isinstance(info.get("FDE_Enabled"), bool):
        columns["filevault_enabled"] = info["FDE_Enabled"]
        details["filevault"] = {
            "filevault_enabled": info["FDE_Enabled"],
            "filevault_recoverykey_type": "Personal" if info.get("FDE_HasPersonalRecoveryKey") else "",
            "filevault_prk_escrowed": False, "filevault_next_rotation": "", "filevault_regen_required": False}
    if isinstance(info.get("RemoteDesktopEnabled"), bool):
        details["security_information"] = {"remote_desktop_enabled": info["RemoteDesktopEnabled"]}
    if isinstance(info.get("IsRecoveryLockEnabled"), bool):
        details["recovery_information"] = {"recovery_lock_enabled": info["IsRecoveryLockEnabled"],
                                           "firmware_password_exist": False, "firmware_password_pending": False,
                                           "password_rotation_scheduled": "", "password_has_been_set": False}
    status = info.get("ManagementStatus")
    if isinstance(status, dict):
        details["automated_device_enrollment"] = {"auto_enroll_eligible": bool(status.get("EnrolledViaDEP")),
                                                  "auto_enrolled": bool(status.get("EnrolledViaDEP"))}
    cms = info.get("FDE_PersonalRecoveryKeyCMS")
    if isinstance(cms, bytes) and cms:
        prk = _decrypt_prk(db, ctx, cms)
        if prk:
            from bramley.secrets import service as secrets

            secrets.put(db, ctx, owner_type="device", owner_id=enrollment.device_id, kind="filevault_prk", value=prk)
            details.setdefault("filevault", {})["filevault_prk_escrowed"] = True
    devices.report(db, ctx, enrollment.device_id, columns=columns, details=details or None)


def _decrypt_prk(db, ctx, cms: bytes) -> str | None:
    """The PRK arrives CMS-enveloped to the tenant's escrow certificate."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    from bramley.mdm import pki

    try:
        cert, key = pki.escrow_cert(db, ctx), pki.load_escrow_key(db, ctx)
        plain = pkcs7.pkcs7_decrypt_der(cms, cert, key, [])
    except Exception:  # a wrong cipher or key must not fail the whole result; it is logged (without the data)
        log.warning("could not decrypt a FileVault recovery key for tenant %s", ctx.subdomain)
        return None
    try:
        parsed = plistlib.loads(plain)
        if isinstance(parsed, dict) and isinstance(parsed.get("RecoveryKey"), str):
            return parsed["RecoveryKey"]
    except Exception:  # not a plist: the key itself
        pass
    return plain.decode(errors="replace").strip()


def _apps(db, ctx, enrollment, raw: dict) -> None:
    items = raw.get("InstalledApplicationList")
    if not isinstance(items, list):
        return
    apps = []
    for i, app in enumerate(a for a in items if isinstance(a, dict)):
        apps.append({
            "app_id": str(i + 1), "app_name": str(app.get("Name", "")), "bundle_id": str(app.get("Identifier", "")),
            "bundle_size": str(app.get("BundleSize", "")), "app_store_vendable": "",
            "device_based_vpp": "", "source": str(app.get("Source", "")), "process": "", "signature": "",
            "creation_date": "", "modification_date": "", "path": str(app.get("Path", "")),
            "version": str(app.get("ShortVersion") or app.get("Version") or ""),
        })
    devices.report(db, ctx, enrollment.device_id, apps=apps)
    from bramley.trust import service as trust  # (imported here: trust reads devices, which mdm also feeds)

    trust.apps_reported(db, ctx, enrollment.device_id, {a["bundle_id"] for a in apps})


def _profiles(db, ctx, enrollment, raw: dict) -> None:
    items = raw.get("ProfileList")
    if not isinstance(items, list):
        return
    profiles = []
    for p in (x for x in items if isinstance(x, dict)):
        installed = p.get("InstallDate")
        profiles.append({
            "name": str(p.get("PayloadDisplayName", "")), "uuid": str(p.get("PayloadUUID", "")),
            "verified": "verified" if p.get("IsManaged") else "unverified",
            "identifier": str(p.get("PayloadIdentifier", "")), "organization": str(p.get("PayloadOrganization", "")),
            "payload_types": [c.get("PayloadType", "") for c in p.get("PayloadContent", []) if isinstance(c, dict)],
            "install_date": installed.strftime("%Y-%m-%d %H:%M:%S +0000") if isinstance(installed, datetime) else "",
        })
    devices.report(db, ctx, enrollment.device_id, details={"installed_profiles": profiles})


def _certificates(db, ctx, enrollment, raw: dict) -> None:
    items = raw.get("CertificateList")
    if not isinstance(items, list):
        return
    certs = [{"common_name": str(c.get("CommonName", "")), "identity_certificate": bool(c.get("IsIdentity"))}
             for c in items if isinstance(c, dict)]
    devices.report(db, ctx, enrollment.device_id, details={"certificates": certs})


def _bypass_code(db, ctx, enrollment, raw: dict) -> None:
    code = raw.get("ActivationLockBypassCode")
    if isinstance(code, str) and code:  # keep the last non-empty value
        from bramley.secrets import service as secrets

        secrets.put(db, ctx, owner_type="device", owner_id=enrollment.device_id, kind="bypass_code_device",
                    value=code)


def _lost_mode(db, ctx, enrollment, changes: dict) -> None:
    current = devices.inventory_section(db, ctx, enrollment.device_id, "lost_mode") or {}
    devices.report(db, ctx, enrollment.device_id, details={"lost_mode": {**current, **changes}})


def handle_result(db: Session, ctx: TenantContext, enrollment, outcome: queue.Outcome, report: Report) -> None:
    """Record what a finished command's answer says. `enrollment` is the channel it ran on (`service.Channel`:
    id, device_id, udid, type, enabled); an erase turns the channel off, in the database and on it."""
    kind, raw = outcome.request_type, report.raw
    now = utcnow()
    if report.status != "Acknowledged":
        if kind == "EnableLostMode":
            devices.report(db, ctx, enrollment.device_id, columns={"lost_mode_status": "ERROR"})
        return
    if enrollment.type != "device":
        return
    if kind == "DeviceInformation":
        _device_information(db, ctx, enrollment, raw)
    elif kind == "SecurityInfo":
        _security_info(db, ctx, enrollment, raw)
    elif kind == "InstalledApplicationList":
        _apps(db, ctx, enrollment, raw)
    elif kind == "ProfileList":
        _profiles(db, ctx, enrollment, raw)
    elif kind == "CertificateList":
        _certificates(db, ctx, enrollment, raw)
    elif kind == "ActivationLockBypassCode":
        _bypass_code(db, ctx, enrollment, raw)
    elif kind == "DeviceLock":
        db.execute(update(Enrollment).where(Enrollment.tenant_id == ctx.tenant_id, Enrollment.id == enrollment.id)
                   .values(locked_at=now))
    elif kind == "EraseDevice":
        # The device wipes itself without a CheckOut: this channel is over.
        enrollment.enabled = False
        db.execute(update(Enrollment).where(Enrollment.tenant_id == ctx.tenant_id, Enrollment.id == enrollment.id)
                   .values(enabled=False))
        queue.deactivate(db, ctx, [enrollment.id], reason="Erased")
        devices.report(db, ctx, enrollment.device_id, columns={"mdm_enabled": False, "is_removed": True})
    elif kind == "EnableLostMode":
        fields = _command_fields(db, ctx, outcome.command_uuid)
        devices.report(db, ctx, enrollment.device_id, columns={"lost_mode_status": "ENABLED"})
        _lost_mode(db, ctx, enrollment, {
            "lost_mode_status": "ENABLED", "enabled_by": "", "enable_status_at": spaced(now),
            "lock_screen_message": fields.get("Message", ""), "lock_screen_phone_number": fields.get("PhoneNumber", ""),
            "lock_screen_footnote": fields.get("Footnote", ""), "disable_status": "", "disabled_by": "",
            "disable_status_at": ""})
    elif kind == "DisableLostMode":
        devices.report(db, ctx, enrollment.device_id, columns={"lost_mode_status": ""})
        _lost_mode(db, ctx, enrollment, {"lost_mode_status": "DISABLED", "disable_status": "SUCCESS",
                                         "disable_status_at": spaced(now)})
    elif kind == "DeviceLocation":
        lat, lon = raw.get("Latitude"), raw.get("Longitude")
        if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
            _lost_mode(db, ctx, enrollment, {"last_location_status": "SUCCESS", "last_location_status_at": spaced(now),
                                             "last_location": {"latitude": str(lat), "longitude": str(lon)},
                                             "last_location_at": iso_z(now)})
    elif kind == "PlayLostModeSound":
        _lost_mode(db, ctx, enrollment, {"sound_status": "SUCCESS", "sound_status_at": spaced(now)})
    elif kind == "Settings":
        # The per-item statuses say which settings took (an unsupervised iPhone refuses DeviceName).
        answers = raw.get("Settings") if isinstance(raw.get("Settings"), list) else []
        refused = {r.get("Item") for r in answers if isinstance(r, dict) and r.get("Status") == "Error"}
        for item in _command_fields(db, ctx, outcome.command_uuid).get("Settings", []):
            if item.get("Item") == "DeviceName" and item.get("DeviceName") and "DeviceName" not in refused:
                devices.report(db, ctx, enrollment.device_id, columns={"device_name": item["DeviceName"]})
    elif kind in ("EnableRemoteDesktop", "DisableRemoteDesktop"):
        devices.report(db, ctx, enrollment.device_id,
                       details={"security_information": {"remote_desktop_enabled": kind == "EnableRemoteDesktop"}})
