"""Each card's outputs as typed models, named after the card's fields.

A field's Python name is the card field in snake case (`Status Code` → `status_code`); `model.card()` gives the
card's own names (`{"Status Code": 200}`). Values are read from the wire names of the reference, leniently, so
the same models read a real Iru tenant and Bramley: `""` for "none" becomes None, timestamps in any of the
reference's formats become datetimes (an unknown format stays text rather than failing the call), detail flags
sent as "True"/"Yes" become booleans, and fields a card does not name are kept (`model.model_extra`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, AliasPath, BaseModel, BeforeValidator, ConfigDict, Field


def _blank(value):
    return None if value == "" else value


def _blank_or_str(value):
    if value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _flag(value):
    if value == "" or value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "1", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "0", "off"):
        return False
    return value


Timestamp = Annotated[datetime | str | None, Field(union_mode="left_to_right"), BeforeValidator(_blank)]
Text = Annotated[str | None, BeforeValidator(_blank_or_str)]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
Count = Annotated[int | None, BeforeValidator(_blank)]


def card(name: str, wire: str | AliasPath | AliasChoices | None = None, default: Any = None) -> Any:
    """A model field under the card's name `name`, read from the wire name `wire` (default: the field's own name)."""
    if wire is None:
        return Field(default, serialization_alias=name)
    return Field(default, serialization_alias=name, validation_alias=wire)


class CardModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    def card(self) -> dict[str, Any]:
        """The outputs under the card's field names, as the Okta card shows them."""
        return self.model_dump(mode="json", by_alias=True)

    def plain(self) -> dict[str, Any]:
        """The outputs under their snake-case names (what `--json` prints)."""
        return self.model_dump(mode="json")


# --- devices ---------------------------------------------------------------------------------------------------

# The device list is the hot path (a stream reads the whole fleet): its fields are plain types checked in
# pydantic-core, with Python only where the wire's "" must become None (user, timestamps).
Str = str | None
Bool = bool | None


class DeviceUser(CardModel):
    email: Str = card("Email")
    name: Str = card("Name")
    user_id: Annotated[str | None, BeforeValidator(_blank_or_str)] = card("User ID", "id")
    is_archived: Bool = card("Is Archived")


def _user(value):
    return None if value in ("", {}) else value


class Device(CardModel):
    """A device as List Devices and Get Device (basic details) output it. Text fields keep the API's "" for
    "none" (asset_tag, agent_version on iOS, …); an unassigned user and a never-seen check-in are None."""

    device_id: str = card("Device ID")
    device_name: Str = card("Device Name")
    model: Str = card("Model")
    serial_number: Str = card("Serial Number")
    platform: Str = card("Platform")
    os_version: Str = card("OS Version")
    supplemental_build_version: Str = None
    supplemental_os_version_extra: Str = None
    last_check_in: Timestamp = card("Last Check-in")
    user: Annotated[DeviceUser | None, BeforeValidator(_user)] = card("User")
    asset_tag: Str = card("Asset Tag")
    blueprint_id: Str = card("Blueprint ID")
    mdm_enabled: Bool = card("MDM Enabled")
    agent_installed: Bool = card("Agent Installed")
    is_missing: Bool = card("Is Missing")
    is_removed: Bool = card("Is Removed")
    agent_version: Str = card("Agent Version")
    first_enrollment: Timestamp = card("First Enrollment")
    last_enrollment: Timestamp = card("Last Enrollment")
    blueprint_name: Str = card("Blueprint Name")
    lost_mode_status: Str = None
    tags: list[str] = []


def _timestamp(value):
    """A wire timestamp as Device reads it: "" → None, either reference format → datetime, else the text."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            return value
    return value


def _bool(value):
    return value if value is None or type(value) is bool else _flag(value)


class DeviceRecord:
    """One device of a List Devices stream: the Device fields over the record as it arrived, converted when read.

    A fleet streams at the speed of the JSON: no model is built per device unless asked for. Reading a field gives
    what Device gives (a datetime for a timestamp, a DeviceUser for the user, None for "" where Device has it);
    `to_device()` validates the whole record into a Device; `card()` / `plain()` are Device's.
    """

    __slots__ = ("raw", "_device")

    def __init__(self, raw: dict):
        self.raw = raw
        self._device: Device | None = None

    def to_device(self) -> Device:
        if self._device is None:
            self._device = Device.model_validate(self.raw)
        return self._device

    def card(self) -> dict[str, Any]:
        return self.to_device().card()

    def plain(self) -> dict[str, Any]:
        return self.to_device().plain()

    @property
    def user(self) -> DeviceUser | None:
        value = self.raw.get("user")
        return None if value in (None, "", {}) else DeviceUser.model_validate(value)

    def __eq__(self, other) -> bool:
        if isinstance(other, DeviceRecord):
            return self.raw == other.raw
        return isinstance(other, Device) and self.to_device() == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"DeviceRecord(device_id={self.raw.get('device_id')!r}, device_name={self.raw.get('device_name')!r})"


def _record_field(name: str, convert=None) -> property:
    if convert is None:
        return property(lambda self: self.raw.get(name), doc=f"Device.{name}")
    return property(lambda self: convert(self.raw.get(name)), doc=f"Device.{name}")


for _name in Device.model_fields:
    if _name == "user":
        continue
    assert not hasattr(DeviceRecord, _name), f"DeviceRecord.{_name} would hide a Device field"
    if _name in ("last_check_in", "first_enrollment", "last_enrollment"):
        setattr(DeviceRecord, _name, _record_field(_name, _timestamp))
    elif _name in ("mdm_enabled", "agent_installed", "is_missing", "is_removed"):
        setattr(DeviceRecord, _name, _record_field(_name, _bool))
    elif _name == "tags":
        setattr(DeviceRecord, _name, _record_field(_name, lambda v: list(v or [])))
    else:
        setattr(DeviceRecord, _name, _record_field(_name))


class UpdatedUser(CardModel):
    user_email: Text = card("User Email", "email")
    user_name: Text = card("User Name", "name")
    user_id: Text = card("User ID", "id")
    user_is_archived: Flag = card("User is Archived", "is_archived")


class UpdatedDevice(Device):
    """Update Device's output: the device after the change, with the card's own user field names."""

    status: int = card("Status", default=200)
    user: Annotated[UpdatedUser | None, BeforeValidator(_user)] = card("User")


class DeviceGeneral(CardModel):
    device_id: Text = card("Device ID")
    device_name: Text = card("Device Name")
    last_enrollment: Timestamp = card("Last Enrollment")
    first_enrollment: Timestamp = card("First Enrollment")
    model: Text = card("Model")
    platform: Text = card("Platform")
    os_version: Text = card("OS Version")
    system_version: Text = card("System Version")
    boot_volume: Text = card("Boot Volume")
    time_since_boot: Text = card("Time Since Boot")
    last_user: Text = card("Last User")
    asset_tag: Text = card("Asset Tag")
    assigned_user: Annotated[DeviceUser | str | None, BeforeValidator(_user)] = card("Assigned User")
    blueprint_name: Text = card("Blueprint Name")
    blueprint_uuid: Text = card("Blueprint UUID")


class DeviceMdm(CardModel):
    mdm_enabled: Flag = card("MDM Enabled")
    supervised: Flag = card("Supervised")
    install_date: Timestamp = card("Install Date")
    last_check_in: Timestamp = card("Last Check-in")
    mdm_enabled_user: Any = card("MDM-enabled User")


class ActivationLock(CardModel):
    bypass_code_failed: Flag = card("Bypass Code Failed")
    user_activation_lock_enabled: Flag = card("User Activation Lock Enabled")
    device_activation_lock_enabled: Flag = card("Device Activation Lock Enabled")
    activation_lock_allowed_while_supervised: Flag = card("Activation Lock Allowed While Supervised")
    activation_lock_supported: Flag = card("Activation Lock Supported")


class FileVault(CardModel):
    filevault_enabled: Flag = card("FileVault Enabled")
    filevault_recovery_key_type: Text = card("FileVault Recovery Key Type", "filevault_recoverykey_type")
    filevault_personal_recovery_key_escrowed: Flag = card("FileVault Personal Recovery Key Escrowed",
                                                          "filevault_prk_escrowed")
    filevault_next_rotation: Timestamp = card("FileVault Next Rotation")
    filevault_regeneration_required: Flag = card("FileVault Regeneration Required", "filevault_regen_required")


class AutomatedDeviceEnrollment(CardModel):
    auto_enroll_eligible: Flag = card("Auto Enroll Eligible")
    auto_enrolled: Flag = card("Auto Enrolled")


class KandjiAgent(CardModel):
    agent_installed: Flag = card("Agent Installed")
    install_date: Timestamp = card("Install Date")
    last_check_in: Timestamp = card("Last Check-in")
    agent_version: Text = card("Agent Version")


class HardwareOverview(CardModel):
    model_name: Text = card("Model Name")
    model_identifier: Text = card("Model Identifier")
    processor_name: Text = card("Processor Name")
    processor_speed: Text = card("Processor Speed")
    number_of_processors: Text = card("Number of Processors")
    total_number_of_cores: Text = card("Total Number of Cores")
    memory: Text = card("Memory")
    udid: Text = card("UDID", AliasChoices("udid", "uuid"))
    serial_number: Text = card("Serial Number")


class Network(CardModel):
    local_hostname: Text = card("Local Hostname")
    mac_address: Text = card("MAC Address")
    ip_address: Text = card("IP Address")
    public_ip: Text = card("Public IP")


class RecoveryInformation(CardModel):
    recovery_lock_enabled: Flag = card("Recovery Lock Enabled")
    firmware_password_exists: Flag = card("Firmware Password Exists",
                                          AliasChoices("firmware_password_exist", "firmware_password_exists"))
    firmware_password_pending: Flag = card("Firmware Password Pending")
    password_rotation_scheduled: Timestamp = card("Password Rotation Scheduled")


class DeviceUsers(CardModel):
    regular_users: list[dict[str, Any]] = card("Regular Users", default=[])
    system_users: list[dict[str, Any]] = card("System Users", default=[])


class AppleBusinessManager(CardModel):
    model: Text = card("Model")
    color: Text = card("Color")
    description: Text = card("Description")
    serial_number: Text = card("Serial Number")
    device_family: Text = card("Device Family")
    os: Text = card("OS")
    device_assigned_date: Timestamp = card("Device Assigned Date")
    device_assigned_by: Text = card("Device Assigned By")


def _empty_section(value):
    return {} if value in (None, "", []) else value


class Section:
    """`Section[Model]`: a details section; the API sends `{}` (or, on some devices, "") for an empty one."""

    def __class_getitem__(cls, model):
        return Annotated[model | None, BeforeValidator(_empty_section)]


class DeviceDetails(CardModel):
    """Get Device with the Full details option: the card's sections and fields."""

    general: Section[DeviceGeneral] = card("General")
    mdm: Section[DeviceMdm] = card("MDM")
    activation_lock: Section[ActivationLock] = card("Activation Lock")
    filevault: Section[FileVault] = card("FileVault")
    automated_device_enrollment: Section[AutomatedDeviceEnrollment] = card("Automated Device Enrollment")
    kandji_agent: Section[KandjiAgent] = card("Kandji Agent")
    hardware_overview: Section[HardwareOverview] = card("Hardware Overview")
    volumes: list[dict[str, Any]] = card("Volumes", default=[])
    network: Section[Network] = card("Network")
    recovery_information: Section[RecoveryInformation] = card("Recovery Information")
    users: Section[DeviceUsers] = card("Users")
    installed_profiles: list[dict[str, Any]] = card("Installed Profiles", default=[])
    apple_business_manager: Section[AppleBusinessManager] = card("Apple Business Manager")
    apple_remote_desktop_turned_on: Flag = card("Apple Remote Desktop Turned On",
                                               AliasPath("security_information", "remote_desktop_enabled"))


# --- device actions and their outputs ----------------------------------------------------------------------------

class StatusOutput(CardModel):
    """An MDM command card's output."""

    status_code: int = card("Status Code")


class PinOutput(StatusOutput):
    """Lock Device / Erase Device: the 6-digit PIN for a Mac (None for other devices)."""

    pin: str | None = card("PIN")


class RemoteDesktopOutput(StatusOutput):
    body: str | None = card("Body")


class LostModeOutput(CardModel):
    """Turn On/Off Lost Mode, Play Lost Mode Sound, Update Lost Mode Location."""

    device_id: str = card("Device ID")
    device_name: Text = card("Device Name")
    serial_number: Text = card("Serial Number")
    platform: Text = card("Platform")
    user_email: Text = card("User Email")
    status_code: int = card("Status Code")
    message: Text = card("Message")


# --- notes, apps, library items, secrets ------------------------------------------------------------------------

class Note(CardModel):
    note_id: Text = card("Note ID")
    content: Text = card("Content")
    author: Text = card("Author")
    created_at: Timestamp = card("Created At")
    updated_at: Timestamp = card("Updated At")


class NoteOutput(StatusOutput):
    note: Note = card("Note")


class NotesOutput(CardModel):
    notes: list[Note] = card("Notes", default=[])


class AppsOutput(CardModel):
    apps: list[dict[str, Any]] = card("Apps", default=[])


class LibraryItemsOutput(CardModel):
    items_list: list[dict[str, Any]] = card("Items List", default=[])


class BypassCodes(CardModel):
    user_based_activation_lock_bypass_code: Text = card("User-Based Activation Lock Bypass Code", "user_based_albc")
    device_based_activation_lock_bypass_code: Text = card("Device-Based Activation Lock Bypass Code",
                                                          "device_based_albc")


class FileVaultKey(CardModel):
    key: Text = card("Key")


class UnlockPin(CardModel):
    pin: Text = card("PIN")


# --- blueprints -------------------------------------------------------------------------------------------------

class Blueprint(CardModel):
    """Get Blueprint's outputs (Status Code is filled by the card)."""

    status_code: int = card("Status Code", default=200)
    id: str = card("ID")
    name: Text = card("Name")
    icon: Text = card("Icon")
    color: Text = card("Color")
    description: Text = card("Description")
    parameters: dict[str, Any] | list[Any] | None = card("Parameters", "params")
    count: Count = card("Count", "computers_count")
    missing: Count = card("Missing", "missing_computers_count")
    enrollment_code: Text = card("Enrollment Code", AliasPath("enrollment_code", "code"))
    enrollment_code_is_active: Flag = card("Enrollment Code Is Active", AliasPath("enrollment_code", "is_active"))
    # The wire name of the card's "Alerts Count" is not documented (reference §4.4); read when it shows up.
    alerts_count: Count = card("Alerts Count", AliasChoices("alerts_count", "alert_count"))


class CreatedBlueprint(StatusOutput):
    blueprint: dict[str, Any] = card("Blueprint")


class ListResult(CardModel):
    """First N Records: the records; Stream All Records: how many the helper saw."""

    results: list[Any] | None = card("Results")
    record_count: int | None = card("Record Count")


# --- Automated Device Enrollment ----------------------------------------------------------------------------------

class AdeIntegration(CardModel):
    """Get ADE Integration's outputs, flattened from the integration object (reference §4.4)."""

    id: Text = card("ADE Token ID")
    default_blueprint_id: Text = card("Default Blueprint ID", AliasPath("blueprint", "id"))
    default_blueprint_name: Text = card("Default Blueprint Name", AliasPath("blueprint", "name"))
    default_blueprint_color: Text = card("Default Blueprint Color", AliasPath("blueprint", "color"))
    default_blueprint_icon: Text = card("Default Blueprint Icon", AliasPath("blueprint", "icon"))
    access_token_expiry: Timestamp = card("Access Token Expiry")
    server_name: Text = card("Server Name")
    server_uuid: Text = card("Server UUID")
    organization_name: Text = card("Organization Name", "org_name")
    organization_email: Text = card("Organization Email", "org_email")
    organization_phone: Text = card("Organization Phone", "org_phone")
    stoken_file_name: Text = card("Stoken File Name")
    last_device_sync: Timestamp = card("Last Device Sync")
    default_email: Text = card("Default Email", AliasPath("defaults", "email"))
    default_phone: Text = card("Default Phone", AliasPath("defaults", "phone"))
    days_left: Count = card("Days Left")
    status: Text = card("Status")
    status_reason: Text = card("Status Reason")
    status_received_at: Text = card("Status Received At")
    apple_tv_device_count: Count = card("Apple TV Device Count", AliasPath("device_counts", "AppleTV"))
    ipad_device_count: Count = card("iPad Device Count", AliasPath("device_counts", "iPad"))
    iphone_device_count: Count = card("iPhone Device Count", AliasPath("device_counts", "iPhone"))
    mac_device_count: Count = card("Mac Device Count", AliasPath("device_counts", "Mac"))
    total_device_count: Count = card("Total Device Count", AliasPath("device_counts", "total"))


# --- Custom API Action ---------------------------------------------------------------------------------------------

class CustomResult(CardModel):
    status_code: int = card("Status Code")
    headers: dict[str, str] = card("Headers")
    body: Any = card("Body")
