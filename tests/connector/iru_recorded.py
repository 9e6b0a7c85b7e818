"""Iru-shaped responses as the reference records them (iru-api.md §2-§4), and a fake tenant that serves them.

The fake answers only on the tenant's own API host, so a test also proves which host the connector called.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx

TOKEN = "8c4b5f6e-3d2a-4b1c-9e8f-7a6b5c4d3e2f"  # real tokens are UUID-shaped
MAC_ID = "2b3d4c6f-7e8f-4a1b-9c2d-3e4f5a6b7c8d"
PHONE_ID = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8e"
ADE_ID = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"
BLUEPRINT_ID = "4e7c1b5a-2d3f-4e6a-9b8c-7d6e5f4a3b2c"

# §4.1: framework field order, "" for none, ISO Z check-in, space-separated enrollment dates.
MAC = {
    "device_id": MAC_ID, "device_name": "Ana's MacBook Pro", "model": "MacBook Pro (14-inch, 2023)",
    "serial_number": "C02XL0GHJGH5", "platform": "Mac", "os_version": "14.4.1", "supplemental_build_version": "",
    "supplemental_os_version_extra": "", "last_check_in": "2024-07-23T14:11:37.150080Z",
    "user": {"email": "ana@accuhive.com", "name": "Ana Lima", "id": "e5c1a7b2-4d3f-4a6e-9b8c-1d2e3f4a5b6c",
             "is_archived": False},
    "asset_tag": "", "blueprint_id": BLUEPRINT_ID, "mdm_enabled": True, "agent_installed": True, "is_missing": False,
    "is_removed": False, "agent_version": "4.3.1", "first_enrollment": "2024-01-26 16:15:36.087016+00:00",
    "last_enrollment": "2024-01-26 16:15:36.087016+00:00", "blueprint_name": "Engineering", "lost_mode_status": "",
    "tags": ["eng"],
}
# An iPhone never checked in and never assigned: "" where the real API writes it; a 2022-era int user id elsewhere.
PHONE = {
    **MAC, "device_id": PHONE_ID, "device_name": "iPhone", "model": "iPhone 15", "serial_number": "F17ZQ3MLN72J",
    "platform": "iPhone", "os_version": "17.4", "last_check_in": "", "user": "", "agent_installed": False,
    "agent_version": "", "blueprint_name": "Phones", "tags": [],
}
LEGACY_USER = {**MAC, "device_id": "legacy", "user": {"email": "bo@accuhive.com", "name": "Bo", "id": 29360,
                                                      "is_archived": False}}

# §4.2: flags as strings, empty sections as {}.
MAC_DETAILS = {
    "general": {"device_id": MAC_ID, "device_name": "Ana's MacBook Pro", "last_enrollment": MAC["last_enrollment"],
                "first_enrollment": MAC["first_enrollment"], "model": MAC["model"], "platform": "Mac",
                "os_version": "14.4.1", "supplemental_build_version": "", "supplemental_os_version_extra": "",
                "system_version": "14.4.1 (23E224)", "boot_volume": "Macintosh HD", "time_since_boot": "1 month ago",
                "last_user": "ana", "asset_tag": "", "assigned_user": MAC["user"], "blueprint_name": "Engineering",
                "blueprint_uuid": BLUEPRINT_ID},
    "mdm": {"mdm_enabled": "True", "supervised": "False", "install_date": "2024-01-26 16:15:36.087016+00:00",
            "last_check_in": "2024-07-23 14:11:37.150080+00:00", "mdm_enabled_user": ["ana"]},
    "activation_lock": {"bypass_code_failed": False, "user_activation_lock_enabled": False,
                        "device_activation_lock_enabled": True, "activation_lock_allowed_while_supervised": True,
                        "activation_lock_supported": True},
    "filevault": {"filevault_enabled": True, "filevault_recoverykey_type": "Personal", "filevault_prk_escrowed": True,
                  "filevault_next_rotation": "2024-10-21 00:00:00+00:00", "filevault_regen_required": False},
    "lost_mode": {},
    "automated_device_enrollment": {"auto_enroll_eligible": True, "auto_enrolled": True},
    "kandji_agent": {"agent_installed": "True", "install_date": "2024-06-17 11:32:35+00:00",
                     "last_check_in": "2024-07-23T14:11:37.150080Z", "agent_version": "4.3.1"},
    "hardware_overview": {"model_name": "MacBook Pro", "model_identifier": "Mac15,3", "processor_name": "Apple M3",
                          "processor_speed": "", "number_of_processors": "1", "total_number_of_cores": "8",
                          "memory": "16 GB", "udid": "0000FE00-1234-5678-9ABC-DEF012345678",
                          "serial_number": "C02XL0GHJGH5"},
    "volumes": [{"name": "Macintosh HD", "format": "APFS", "percent_used": "19%", "identifier": "disk3s1s1",
                 "capacity": "494.38 GB", "available": "400.12 GB", "encrypted": "Yes"}],
    "network": {"local_hostname": "anas-mbp", "mac_address": "a4:83:e7:12:34:56", "ip_address": "10.0.1.23",
                "public_ip": "203.0.113.7"},
    "recovery_information": {"recovery_lock_enabled": False, "firmware_password_exist": False,
                             "firmware_password_pending": False, "password_rotation_scheduled": None},
    "users": {"regular_users": [{"username": "ana", "uid": "501", "path": "/Users/ana", "admin": "Yes",
                                 "name": "Ana Lima"}], "system_users": []},
    "installed_profiles": [{"name": "Wi-Fi", "uuid": "6a7b", "verified": "verified", "identifier": "com.kandji.wifi",
                            "organization": "Accuhive", "payload_types": ["com.apple.wifi.managed"],
                            "install_date": "2024-05-13 20:09:23 +0000"}],
    "apple_business_manager": {},
    "security_information": {"remote_desktop_enabled": None},
    "cellular": {},
    "tags": ["eng"],
}

BLUEPRINT = {"id": BLUEPRINT_ID, "name": "Engineering", "icon": "ss-files", "color": "aqua-800",
             "description": "Engineering Macs", "params": {}, "computers_count": 42, "missing_computers_count": 1,
             "enrollment_code": {"code": "123456", "is_active": True}, "type": "classic"}

ADE_INTEGRATION = {
    "id": ADE_ID, "blueprint": {"id": BLUEPRINT_ID, "name": "Engineering", "icon": "ss-files", "color": "aqua-800"},
    "access_token_expiry": "2025-03-01T00:00:00Z", "server_name": "Accuhive ABM", "server_uuid": "A1B2C3D4E5F6",
    "admin_id": "admin@accuhive.com", "org_name": "Accuhive", "org_email": "it@accuhive.com",
    "org_phone": "+1 555 0100", "org_address": "1 Hive Way", "org_type": "edu", "stoken_file_name": "accuhive.p7m",
    "last_device_sync": "2024-07-23T14:00:00.000000Z", "defaults": {"email": "it@accuhive.com", "phone": "+1 555 0101"},
    "days_left": 221, "status": "SUCCESS", "status_reason": None, "status_received_at": "2024-07-23T14:00:00Z",
    "device_counts": {"Mac": 40, "iPad": 12, "iPhone": 30, "AppleTV": 2, "total": 84},
}


def ade_device(n: int, enrolled: bool) -> dict:
    return {"id": f"ade-{n}", "serial_number": f"C02ADE{n:05d}", "model": "MacBook Air", "description": "MBA 13",
            "color": "MIDNIGHT", "asset_tag": None, "device_family": "Mac", "os": "OSX", "blueprint_id": BLUEPRINT_ID,
            "user_id": None, "tags": [], "dep_account": {"id": ADE_ID, "server_name": "Accuhive ABM"},
            "mdm_device": {"id": f"mdm-{n}", "enrolled_at": "2024-02-01T10:00:00Z", "name": "MBA",
                           "enrollment_status": 1, "deferred_install": False, "is_missing": False,
                           "is_removed": False} if enrolled else None,
            "device_assigned_by": "admin@accuhive.com", "device_assigned_date": "2024-01-10T00:00:00Z",
            "profile_status": "pushed" if enrolled else "assigned", "profile_assign_time": "2024-01-10T00:00:00Z",
            "profile_push_time": None, "last_assignment_status": "SUCCESS", "failed_assignment_attempts": 0,
            "assignment_status_received_at": "2024-01-10T00:00:00Z", "use_blueprint_routing": False}


# Production rate-limit headers (§2.1) and the compact JSON the API writes.
RATE_HEADERS = {"RateLimit-Limit": "50", "RateLimit-Remaining": "49", "RateLimit-Reset": "1",
                "X-RateLimit-Limit-Second": "50", "X-RateLimit-Remaining-Second": "49",
                "X-RateLimit-Limit-Hour": "10000", "X-RateLimit-Remaining-Hour": "9996"}


def reply(status: int, body=None, headers: dict | None = None) -> httpx.Response:
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return httpx.Response(status, content=content,
                          headers={"Content-Type": "application/json", **RATE_HEADERS, **(headers or {})})


class FakeTenant:
    """Routes (method, path) → handler(request) on one API host; records every request."""

    def __init__(self, host: str):
        self.host = host
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []
        self.on("GET", "/api/v1/devices", self.device_list)
        self.devices = [MAC, PHONE]

    def on(self, method: str, path: str, handler) -> None:
        self.routes[(method, path)] = handler if callable(handler) else (lambda request, r=handler: r)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host != self.host or request.url.scheme != "https":
            raise httpx.ConnectError(f"no route to {request.url.scheme}://{request.url.host}", request=request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return reply(401, {"detail": "Authentication credentials were not provided."})
        handler = self.routes.get((request.method, request.url.path.rstrip("/") or "/"))
        if handler is None:
            return reply(404, {"detail": "Not found."})
        return handler(request)

    def device_list(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        limit, offset = int(query.get("limit", ["300"])[0]), int(query.get("offset", ["0"])[0])
        return reply(200, self.devices[offset:offset + min(limit, 300)])

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]
