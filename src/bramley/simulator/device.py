"""What a simulated Apple device is (reference §11.2): hardware, OS, names, users, apps, profiles and the
security state commands act on. Pure data plus the few things the device derives itself (PRK envelope,
bypass code). No HTTP here (`agent.py` talks to the server) and no command logic (`handlers.py`).

Hardware and OS releases come from the demo catalogue, so simulated and seeded fleets look alike.
"""
from __future__ import annotations

import os
import plistlib
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from bramley.demo import catalog

PLATFORMS = ("Mac", "iPhone", "iPad", "AppleTV")
# CLI spellings → platform names as the device API reports them.
PLATFORM_ALIASES = {"mac": "Mac", "macos": "Mac", "iphone": "iPhone", "ios": "iPhone", "ipad": "iPad",
                    "ipados": "iPad", "tv": "AppleTV", "appletv": "AppleTV", "tvos": "AppleTV"}
# A "mixed" fleet: mostly Macs and iPhones, as a typical company's.
MIXED_WEIGHTS = (("Mac", 50), ("iPhone", 30), ("iPad", 15), ("AppleTV", 5))
# Probability that a device of the platform is supervised (ADE or Apple Configurator) when not told.
SUPERVISED_SHARE = {"Mac": 0.5, "iPhone": 0.8, "iPad": 0.8, "AppleTV": 1.0}

_SERIAL_ALPHABET = "BCDFGHJKLMNPQRTVWXYZ0123456789"
# Apple's bypass-code alphabet (reference §9.5) and its 5-5-4-4-4-4 grouping.
_BYPASS_ALPHABET = "0123456789ACDEFGHJKLMNPQRTUVWXYZ"
_PRK_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
TV_APPS = [("YouTube", "com.google.ios.youtube", "19.45.4", "Google"),
           ("Zoom Rooms", "us.zoom.zoomrooms", "6.2.5", "Zoom")]
AGENT_APP = ("Bramley Agent", "dev.bramley.agent", "1.0.0", "Bramley")


def platform_name(value: str) -> str:
    """`mac`, `iphone`, `ipad`, `tv` (any case) or an exact platform name → the platform name."""
    if value in PLATFORMS:
        return value
    try:
        return PLATFORM_ALIASES[value.lower()]
    except KeyError:
        raise ValueError(f"unknown platform {value!r} (mac, iphone, ipad, tv or mixed)") from None


@dataclass
class UserAccount:
    short_name: str
    long_name: str
    uid: int
    guid: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    is_admin: bool = False
    locked: bool = False  # too many wrong passwords: UnlockUserAccount clears it


@dataclass
class App:
    name: str
    identifier: str
    version: str
    vendor: str
    size: int
    managed: bool = False

    def as_reported(self) -> dict:
        return {"Name": self.name, "Identifier": self.identifier, "ShortVersion": self.version,
                "Version": self.version, "BundleSize": self.size, "DynamicSize": 0, "IsValidated": True,
                "Installing": False, "AppStoreVendable": not self.managed, "DeviceBasedVPP": False,
                "BetaApp": False, "AdHocCodeSigned": False, "HasUpdateAvailable": False}


@dataclass
class Profile:
    """An installed configuration profile as ProfileList reports it."""

    identifier: str
    uuid: str
    display_name: str
    organization: str
    payload_types: list[str]
    managed: bool
    installed_at: datetime
    raw: dict = field(default_factory=dict, repr=False)

    def as_reported(self) -> dict:
        return {"PayloadIdentifier": self.identifier, "PayloadUUID": self.uuid,
                "PayloadDisplayName": self.display_name, "PayloadOrganization": self.organization,
                "PayloadVersion": 1, "PayloadRemovalDisallowed": False, "IsEncrypted": False,
                "IsManaged": self.managed, "HasRemovalPasscode": False, "InstallDate": self.installed_at,
                "PayloadContent": [{"PayloadType": t} for t in self.payload_types]}


@dataclass
class DeviceState:
    platform: str
    model_name: str  # marketing name: "MacBook Air (M1, 2020)"
    model_family: str  # DeviceInformation ModelName: "MacBook Air", "iPhone"
    product_name: str  # model identifier: "MacBookAir10,1"
    os_version: str
    build_version: str
    serial_number: str
    udid: str
    device_name: str
    supervised: bool
    apple_silicon: bool = False
    host_name: str = ""
    local_host_name: str = ""
    wifi_mac: str = ""
    ethernet_mac: str = ""
    bluetooth_mac: str = ""
    capacity_gb: float = 256.0
    available_gb: float = 120.0
    battery_level: float | None = None
    imei: str = ""
    phone_number: str = ""
    users: list[UserAccount] = field(default_factory=list)
    apps: list[App] = field(default_factory=list)
    pending_apps: list[App] = field(default_factory=list)  # acknowledged installs not finished yet
    profiles: list[Profile] = field(default_factory=list)
    certificates: list[tuple[str, bytes, bool]] = field(default_factory=list)  # (CommonName, DER, IsIdentity)
    # Lost mode (supervised iOS) and the location it reports.
    lost_mode: bool = False
    lost_message: str = ""
    lost_phone: str = ""
    lost_footnote: str = ""
    location: tuple[float, float] | None = None
    sound_played: int = 0
    # Lock and passcode.
    locked: bool = False
    lock_pin: str | None = None
    lock_message: str = ""
    passcode_present: bool = False
    unlock_token: bytes | None = None
    # FileVault: the PRK is enveloped to the escrow certificate when a profile installed one.
    filevault: bool = False
    prk: str = ""
    escrow_cert: x509.Certificate | None = field(default=None, repr=False)
    bypass_code: str | None = None
    remote_desktop: bool = False
    bootstrap_token: bytes | None = None
    activation_lock: bool = False
    firewall: bool = True
    # Power and lifecycle.
    powered_off: bool = False
    locked_after_boot: bool = False
    erased: bool = False
    erase_pin: str | None = None
    restarts: int = 0
    # What the device did, newest last: (RequestType, Status). Tests read it; it is never sent.
    history: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_ios(self) -> bool:
        return self.platform in ("iPhone", "iPad")

    @property
    def is_mac(self) -> bool:
        return self.platform == "Mac"

    def user(self, short_name: str) -> UserAccount | None:
        return next((u for u in self.users if u.short_name == short_name), None)

    def finish_installs(self) -> None:
        """Acknowledged app installs land (real devices download after acknowledging)."""
        for app in self.pending_apps:
            self.apps = [a for a in self.apps if a.identifier != app.identifier] + [app]
        self.pending_apps.clear()

    def prk_envelope(self) -> bytes | None:
        """FDE_PersonalRecoveryKeyCMS: the PRK as a plist, CMS-enveloped (AES) to the escrow certificate."""
        if not (self.filevault and self.prk and self.escrow_cert is not None):
            return None
        plain = plistlib.dumps({"RecoveryKey": self.prk})
        return (pkcs7.PKCS7EnvelopeBuilder().set_data(plain).add_recipient(self.escrow_cert)
                .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))

    def apply_profile(self, profile: dict, *, managed: bool = True, now: datetime | None = None) -> Profile:
        """Install a configuration profile: record it, and let FileVault and escrow payloads take effect."""
        content = [p for p in profile.get("PayloadContent", []) if isinstance(p, dict)]
        by_uuid = {p.get("PayloadUUID"): p for p in content}
        for item in content:
            kind = item.get("PayloadType")
            if kind == "com.apple.MCX.FileVault2" and self.is_mac and item.get("Enable", "On") == "On":
                self.filevault = True
                self.prk = self.prk or new_prk()
            elif kind == "com.apple.security.FDERecoveryKeyEscrow" and self.is_mac:
                cert_payload = by_uuid.get(item.get("EncryptCertPayloadUUID"))
                if cert_payload and isinstance(cert_payload.get("PayloadContent"), bytes):
                    self.escrow_cert = load_cert(cert_payload["PayloadContent"])
        record = Profile(identifier=str(profile.get("PayloadIdentifier", "")),
                         uuid=str(profile.get("PayloadUUID", "")),
                         display_name=str(profile.get("PayloadDisplayName", "")),
                         organization=str(profile.get("PayloadOrganization", "")),
                         payload_types=[str(p.get("PayloadType", "")) for p in content], managed=managed,
                         installed_at=(now or datetime.now(timezone.utc)).replace(microsecond=0, tzinfo=None),
                         raw=profile)
        self.profiles = [p for p in self.profiles if p.identifier != record.identifier] + [record]
        return record

    def wipe(self, rng: random.Random) -> None:
        """EraseDevice: back to factory state (same hardware, serial and UDID); enrollment is gone."""
        self.erased = True
        self.profiles.clear()
        self.certificates.clear()
        self.pending_apps.clear()
        self.apps = default_apps(self.platform, rng)
        self.lost_mode, self.lost_message, self.lost_phone, self.lost_footnote = False, "", "", ""
        self.locked, self.lock_pin, self.passcode_present, self.unlock_token = False, None, False, None
        self.filevault, self.prk, self.escrow_cert = False, "", None
        self.remote_desktop, self.bootstrap_token, self.bypass_code = False, None, None
        self.device_name = {"Mac": "Macintosh", "AppleTV": "Apple TV"}.get(self.platform, self.platform)
        self.host_name = self.local_host_name = "" if not self.is_mac else "macintosh"
        if self.is_mac:
            self.users = []


# --- making devices ------------------------------------------------------------------------------------


def load_cert(data: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        return x509.load_pem_x509_certificate(data)


def new_serial(rng: random.Random) -> str:
    return "".join(rng.choice(_SERIAL_ALPHABET) for _ in range(10))


def new_udid(platform: str, rng: random.Random) -> str:
    if platform == "Mac":  # the hardware UUID
        return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
    # Newer iPhone/iPad/Apple TV UDIDs: ECID-style 8-16 hex digits.
    return f"{rng.getrandbits(32):08X}-{rng.getrandbits(64):016X}"


def new_prk(rng: random.Random | None = None) -> str:
    pick = rng.choice if rng else (lambda s: s[os.urandom(1)[0] % len(s)])
    return "-".join("".join(pick(_PRK_ALPHABET) for _ in range(4)) for _ in range(6))


def new_bypass_code(rng: random.Random) -> str:
    chars = "".join(rng.choice(_BYPASS_ALPHABET) for _ in range(26))
    groups, start = [], 0
    for size in (5, 5, 4, 4, 4, 4):
        groups.append(chars[start:start + size])
        start += size
    return "-".join(groups)


def _mac_address(rng: random.Random) -> str:
    return ":".join(f"{b:02x}" for b in [rng.choice((0x3c, 0xa4, 0xf0, 0x8c)), *rng.randbytes(5)])


def default_apps(platform: str, rng: random.Random) -> list[App]:
    source = {"Mac": catalog.MAC_APPS, "AppleTV": TV_APPS}.get(platform, catalog.IOS_APPS)
    chosen = [a for a in source if a[0] == "Safari" or rng.random() < 0.75] or list(source[:1])
    return [App(name, ident, version, vendor, rng.randrange(20, 900) * 1_000_000)
            for name, ident, version, vendor in chosen]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def new_device(platform: str, rng: random.Random | None = None, *, supervised: bool | None = None,
               passcode: bool | None = None) -> DeviceState:
    """A plausible device of `platform` (Mac, iPhone, iPad, AppleTV or a CLI alias)."""
    rng = rng or random.Random()
    platform = platform_name(platform)
    first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
    apple_silicon = False
    if platform == "Mac":
        model, ident, processor, _memory = rng.choice(catalog.MACS)
        family = model.split(" (")[0]
        os_version, build = rng.choice(catalog.MACOS)
        apple_silicon = processor.startswith("Apple")
    elif platform == "iPhone":
        model, ident = rng.choice(catalog.IPHONES)
        family = "iPhone"
        os_version, build = rng.choice(catalog.IOS)
    elif platform == "iPad":
        model, ident = rng.choice(catalog.IPADS)
        family = "iPad"
        os_version, build = rng.choice(catalog.IPADOS)
    else:
        model, ident = rng.choice(catalog.APPLE_TVS)
        family = "Apple TV"
        os_version, build = rng.choice(catalog.TVOS)
    if supervised is None:
        supervised = rng.random() < SUPERVISED_SHARE[platform]
    possessive = f"{first}'s"
    name = f"{possessive} {family}" if platform != "AppleTV" else f"{rng.choice(catalog.DEPARTMENTS)} Room TV"
    capacity = rng.choice((128.0, 256.0, 512.0, 1024.0)) if platform != "AppleTV" else 64.0
    state = DeviceState(
        platform=platform, model_name=model, model_family=family, product_name=ident, os_version=os_version,
        build_version=build, serial_number=new_serial(rng), udid=new_udid(platform, rng), device_name=name,
        supervised=supervised, apple_silicon=apple_silicon, wifi_mac=_mac_address(rng),
        bluetooth_mac=_mac_address(rng), capacity_gb=capacity,
        available_gb=round(capacity * rng.uniform(0.15, 0.8), 2), apps=default_apps(platform, rng),
        location=(round(rng.uniform(25.0, 60.0), 6), round(rng.uniform(-123.0, 15.0), 6)),
    )
    if platform == "Mac":
        short = f"{first}{last}".lower().replace(" ", "").replace("-", "")[:20]
        state.users = [UserAccount(short, f"{first} {last}", 501, is_admin=True),
                       UserAccount("itadmin", "IT Admin", 502, is_admin=True)]
        state.host_name = _slug(f"{first}s-{family}").lower() + ".local"
        state.local_host_name = _slug(f"{first}s-{family}")
        state.ethernet_mac = _mac_address(rng) if "mini" in model or "Studio" in model or "iMac" in model else ""
        state.filevault = rng.random() < 0.85
        state.prk = new_prk(rng) if state.filevault else ""
        state.bootstrap_token = rng.randbytes(32)
    if platform in ("iPhone", "iPad"):
        state.battery_level = round(rng.uniform(0.1, 1.0), 2)
        state.passcode_present = rng.random() < 0.9 if passcode is None else passcode
        if platform == "iPhone":
            state.imei = "35 " + " ".join(f"{rng.randrange(10**6):06d}"[i:i + 2] for i in (0, 2, 4)) + \
                f" {rng.randrange(10**6):06d} {rng.randrange(10)}"
            state.phone_number = f"+1 (555) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
    if supervised and platform != "AppleTV":
        state.bypass_code = new_bypass_code(rng)
        state.activation_lock = platform != "Mac"
    return state
