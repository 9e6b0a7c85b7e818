"""A realistic demo fleet, written through the same services the API uses."""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bramley.blueprints import service as blueprints
from bramley.db.base import utcnow
from bramley.demo import catalog
from bramley.devices import service as devices
from bramley.devices.render import spaced_seconds
from bramley.library import service as library
from bramley.tenancy.context import TenantContext
from bramley.users import service as users

SERIAL_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
BATCH = 2000


def serial(rng: random.Random) -> str:
    return "".join(rng.choice(SERIAL_CHARS) for _ in range(10))


def mac_address(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def _platform(rng: random.Random) -> str:
    return rng.choices(["Mac", "iPhone", "iPad", "AppleTV"], weights=[55, 28, 12, 5])[0]


def _details(rng: random.Random, platform: str, ident: str, serial_number: str, udid: str, proc: str, mem: str,
             user_short: str, now: datetime, supervised: bool, mac: str) -> dict:
    is_mac = platform == "Mac"
    cap = rng.choice([256, 512, 1024]) if is_mac else rng.choice([64, 128, 256])
    used = rng.randint(12, 88)
    details: dict = {
        "general": {"time_since_boot": f"{rng.randint(1, 30)} days ago", "last_user": user_short if is_mac else "",
                    "boot_volume": "Macintosh HD" if is_mac else ""},
        "mdm_enabled_user": [user_short] if is_mac and user_short else [],
        "activation_lock": {"bypass_code_failed": False, "user_activation_lock_enabled": False,
                            "device_activation_lock_enabled": supervised,
                            "activation_lock_allowed_while_supervised": supervised, "activation_lock_supported": True},
        "filevault": ({"filevault_enabled": True, "filevault_recoverykey_type": "Personal",
                       "filevault_prk_escrowed": True, "filevault_next_rotation": "", "filevault_regen_required": False}
                      if is_mac else {}),
        "automated_device_enrollment": {"auto_enroll_eligible": supervised, "auto_enrolled": supervised},
        "hardware_overview": ({"model_name": "", "model_identifier": ident, "processor_name": proc,
                               "processor_speed": "", "number_of_processors": "1",
                               "total_number_of_cores": str(rng.choice([8, 10, 12])), "memory": mem, "udid": udid,
                               "serial_number": serial_number}
                              if is_mac else {"uuid": udid, "serial_number": serial_number, "model_identifier": ident}),
        "volumes": [{"name": "Macintosh HD" if is_mac else "Data", "format": "APFS", "percent_used": f"{used}%",
                     "identifier": "disk3s1", "capacity": f"{cap:.2f} GB",
                     "available": f"{cap * (100 - used) / 100:.2f} GB", "encrypted": "Yes" if is_mac else ""}],
        "network": {"local_hostname": f"{user_short or 'device'}-{serial_number[-4:]}".lower(),
                    "mac_address": mac, "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    "public_ip": f"203.0.113.{rng.randrange(1, 255)}"},
        "recovery_information": {"recovery_lock_enabled": False, "firmware_password_exist": False,
                                 "firmware_password_pending": False, "password_rotation_scheduled": "",
                                 "password_has_been_set": False} if is_mac else {},
        "users": {"regular_users": [{"username": user_short, "uid": "501", "path": f"/Users/{user_short}",
                                     "admin": "Yes", "name": user_short}] if is_mac and user_short else [],
                  "system_users": [{"username": "root", "uid": "0", "path": "/var/root", "admin": "Yes"}] if is_mac else []},
        "installed_profiles": [{"name": "MDM Profile", "uuid": udid, "verified": "verified",
                                "identifier": "com.kandji.profile.mdmprofile", "organization": "Bramley",
                                "payload_types": ["com.apple.mdm", "com.apple.security.scep"],
                                "install_date": (now - timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S +0000")}],
        "security_information": {"remote_desktop_enabled": False if is_mac else None},
        "agent_install_date": spaced_seconds(now - timedelta(days=30)) if is_mac else "",
    }
    return details


def _apps(rng: random.Random, platform: str) -> list[dict]:
    pool = catalog.MAC_APPS if platform == "Mac" else catalog.IOS_APPS if platform in ("iPhone", "iPad") else []
    out = []
    for i, (name, bundle, version, vendor) in enumerate(rng.sample(pool, k=min(len(pool), rng.randint(3, len(pool) or 1))) if pool else []):
        out.append({"app_id": str(i + 1), "app_name": name, "bundle_id": bundle,
                    "bundle_size": str(rng.randint(10_000_000, 900_000_000)), "app_store_vendable": "",
                    "device_based_vpp": "", "source": "App Store" if platform != "Mac" else vendor,
                    "process": name if platform == "Mac" else "", "signature": "", "creation_date": "",
                    "modification_date": "", "path": f"/Applications/{name}.app" if platform == "Mac" else "",
                    "version": version})
    return out


def seed(db: Session, ctx: TenantContext, *, devices_count: int, seed_value: int | None = None,
         progress: Callable[[int], None] | None = None, with_inventory: bool = True,
         audited: bool = True) -> dict:
    """Users, blueprints, library items and `devices_count` devices; some stale, missing or removed."""
    # Per-tenant by default: real serial numbers are unique across every tenant.
    rng = random.Random(seed_value if seed_value is not None else ctx.tenant_id)
    now = utcnow()
    bps = {}
    for name, icon, color, desc in catalog.BLUEPRINTS:
        bps[name] = blueprints.get_by_name(db, ctx, name) or blueprints.create(
            db, ctx, name=name, enrollment_code_active=True, icon=icon, color=color, description=desc)
    items = [library.create_item(db, ctx, name=n, type=t) for n, t in
             [("Google Chrome", "automatic-app"), ("FileVault", "profile"), ("Passcode", "profile"),
              ("Set Wallpaper", "custom-script"), ("macOS Updates", "macos-release")]]
    n_users = max(1, min(devices_count, max(5, devices_count * 3 // 4)))
    user_specs = []
    taken: set[str] = set()
    for i in range(n_users):
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        short = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
        email = f"{short}@example.com" if short not in taken else f"{short}{i}@example.com"
        taken.add(short)
        user_specs.append(users.NewUser(name=f"{first} {last}", email=email,
                                        department=rng.choice(catalog.DEPARTMENTS), job_title=rng.choice(catalog.TITLES)))
    user_rows = []
    for start in range(0, len(user_specs), BATCH):
        user_rows += users.create_many(db, ctx, user_specs[start:start + BATCH], audited=audited)
    done = 0
    while done < devices_count:
        batch = []
        for k in range(min(BATCH, devices_count - done)):
            platform = _platform(rng)
            if platform == "Mac":
                model, ident, proc, mem = rng.choice(catalog.MACS)
                os_v, build = rng.choice(catalog.MACOS)
                bp = bps["Engineering Mac" if rng.random() < 0.3 else "Standard Mac"]
            elif platform == "iPhone":
                (model, ident), (os_v, build), proc, mem = rng.choice(catalog.IPHONES), rng.choice(catalog.IOS), "", ""
                bp = bps["Corporate iPhone"]
            elif platform == "iPad":
                (model, ident), (os_v, build), proc, mem = rng.choice(catalog.IPADS), rng.choice(catalog.IPADOS), "", ""
                bp = bps["Shared iPad"]
            else:
                (model, ident), (os_v, build), proc, mem = rng.choice(catalog.APPLE_TVS), rng.choice(catalog.TVOS), "", ""
                bp = bps["Conference Room"]
            user = rng.choice(user_rows) if platform != "AppleTV" and rng.random() < 0.9 else None
            short = user.email.split("@")[0] if user else ""
            sn = serial(rng)
            udid = f"{rng.getrandbits(32):08X}-{rng.getrandbits(64):016X}"
            mac = mac_address(rng)  # one address: the list's mac_address filter and the details must agree
            enrolled = now - timedelta(days=rng.randint(1, 700), seconds=rng.randint(0, 86400))
            # Spread by position, not chance, so even a small demo fleet shows every state an admin meets.
            roll = ((done + k) * 37 % 100) / 100
            stale = roll < 0.08  # not seen for weeks
            missing = 0.08 <= roll < 0.11
            removed = 0.11 <= roll < 0.13
            last_seen = now - (timedelta(days=rng.randint(8, 90)) if stale or missing or removed
                               else timedelta(minutes=rng.randint(1, 60 * 24 * 3)))
            supervised = platform != "Mac" and rng.random() < 0.8 or platform == "Mac" and rng.random() < 0.6
            first_name = user.name.split()[0] if user else "Room"
            label = {"Mac": "MacBook" if "MacBook" in model else model.split(" (")[0],
                     "iPhone": "iPhone", "iPad": "iPad", "AppleTV": "Apple TV"}[platform]
            batch.append(devices.NewDevice(
                serial_number=sn, platform=platform, model=model, model_identifier=ident,
                device_name=f"{first_name}'s {label}", os_version=os_v, os_build=build, udid=udid,
                mac_address=mac, asset_tag=f"BR-{rng.randint(10000, 99999)}" if rng.random() < 0.5 else "",
                supervised=supervised, agent_installed=platform == "Mac" and not removed,
                agent_version="4.2.1" if platform == "Mac" and not removed else "",
                filevault_enabled=(rng.random() < 0.92) if platform == "Mac" else None,
                mdm_enabled=not removed, is_missing=missing, is_removed=removed,
                first_enrollment=enrolled, last_enrollment=enrolled + timedelta(days=rng.randint(0, 30)),
                last_check_in=last_seen, user_id=user.id if user else None, blueprint_id=bp.id,
                tag_names=tuple(rng.sample(["Finance", "Executive", "Loaner", "Remote", "Lab"], k=rng.randint(0, 2))),
                details=_details(rng, platform, ident, sn, udid, proc, mem, short, now, supervised, mac) if with_inventory else None,
                apps=_apps(rng, platform) if with_inventory else None,
            ))
        created = devices.create_many(db, ctx, batch, audited=audited)
        if with_inventory:
            for device in created[:200]:  # statuses for a sample keep large seeds quick
                for item in items:
                    library.set_device_status(db, ctx, device_id=device.id, kind="library_item", item_id=item.id,
                                              name=item.name, type=item.type,
                                              status=rng.choice(["PASS", "PASS", "PASS", "PENDING", "ERROR"]),
                                              reported_at=device.last_check_in)
                if device.platform == "Mac":
                    library.set_device_status(db, ctx, device_id=device.id, kind="parameter",
                                              item_id="a3b5d1e2-0000-4000-8000-000000000001",
                                              name="Enable Firewall", category="Security", subcategory="Firewall",
                                              status="PASS")
        db.flush()
        done += len(batch)
        if progress:
            progress(len(batch))
    return {"devices": devices_count, "users": len(user_rows), "blueprints": len(bps)}
