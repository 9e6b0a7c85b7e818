"""Apple MDM wire messages: pure decoding and encoding (no DB, no HTTP). Tested on real-shaped plists.

Check-ins arrive on the CheckInURL with a MessageType; command results on the ServerURL with a Status.
Keys keep Apple's spelling; Python names inside.
"""
from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 4 * 1024 * 1024
FINAL_STATUSES = ("Acknowledged", "Error", "CommandFormatError")
STATUSES = ("Idle", "NotNow", *FINAL_STATUSES)


class ProtocolError(ValueError):
    """The body is not a well-formed MDM message. The device door answers 400."""


def load_plist(body: bytes) -> dict[str, Any]:
    if not body:
        raise ProtocolError("empty body")
    if len(body) > MAX_BODY:
        raise ProtocolError("body too large")
    try:
        data = plistlib.loads(body)
    except Exception as exc:  # plistlib raises several types (InvalidFileException, ExpatError, ValueError...)
        raise ProtocolError(f"malformed plist: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ProtocolError("plist root is not a dictionary")
    return data


def _str(data: dict, key: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"missing {key}")
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{key} is not a string")
    return value


def _data(data: dict, key: str, required: bool = False) -> bytes | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"missing {key}")
        return None
    if not isinstance(value, bytes):
        raise ProtocolError(f"{key} is not data")
    return value


@dataclass
class Identity:
    """Who is talking: the device channel (UDID) or a user channel on it."""

    udid: str
    user_id: str = ""
    user_short_name: str = ""
    user_long_name: str = ""

    @property
    def enrollment_id(self) -> str:
        if not self.user_id:
            return self.udid
        # Shared iPad users share the all-F GUID, so they are told apart by short name (NanoMDM's rule).
        if self.user_id.upper() == "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF":
            return f"{self.udid}:{self.user_short_name}"
        return f"{self.udid}:{self.user_id}"

    @property
    def is_user_channel(self) -> bool:
        return bool(self.user_id)


def _identity(data: dict) -> Identity:
    udid = _str(data, "UDID") or _str(data, "EnrollmentID")
    if not udid:
        raise ProtocolError("missing UDID")
    return Identity(udid=udid, user_id=_str(data, "UserID") or _str(data, "EnrollmentUserID"),
                    user_short_name=_str(data, "UserShortName"), user_long_name=_str(data, "UserLongName"))


@dataclass
class Authenticate:
    identity: Identity
    topic: str
    serial_number: str = ""
    model: str = ""
    model_name: str = ""
    product_name: str = ""
    os_version: str = ""
    build_version: str = ""
    device_name: str = ""
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class TokenUpdate:
    identity: Identity
    topic: str
    token: bytes
    push_magic: str
    unlock_token: bytes | None = None
    awaiting_configuration: bool = False
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class CheckOut:
    identity: Identity
    topic: str
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class UserAuthenticate:
    identity: Identity
    digest_response: str = ""
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class SetBootstrapToken:
    identity: Identity
    token: bytes | None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class GetBootstrapToken:
    identity: Identity
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class DeclarativeManagement:
    identity: Identity
    endpoint: str
    data: bytes | None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class GetToken:
    identity: Identity
    service_type: str
    raw: dict = field(default_factory=dict, repr=False)


CheckinMessage = (Authenticate | TokenUpdate | CheckOut | UserAuthenticate | SetBootstrapToken | GetBootstrapToken
                  | DeclarativeManagement | GetToken)


def decode_checkin(body: bytes) -> CheckinMessage:
    data = load_plist(body)
    kind = _str(data, "MessageType", required=True)
    ident = _identity(data)
    if kind == "Authenticate":
        return Authenticate(ident, _str(data, "Topic", required=True), _str(data, "SerialNumber"), _str(data, "Model"),
                            _str(data, "ModelName"), _str(data, "ProductName"), _str(data, "OSVersion"),
                            _str(data, "BuildVersion"), _str(data, "DeviceName"), raw=data)
    if kind == "TokenUpdate":
        token = _data(data, "Token", required=True)
        awaiting = data.get("AwaitingConfiguration", False)
        if not isinstance(awaiting, bool):
            raise ProtocolError("AwaitingConfiguration is not a boolean")
        return TokenUpdate(ident, _str(data, "Topic", required=True), token, _str(data, "PushMagic", required=True),
                           _data(data, "UnlockToken"), awaiting, raw=data)
    if kind == "CheckOut":
        return CheckOut(ident, _str(data, "Topic"), raw=data)
    if kind == "UserAuthenticate":
        return UserAuthenticate(ident, _str(data, "DigestResponse"), raw=data)
    if kind == "SetBootstrapToken":
        return SetBootstrapToken(ident, _data(data, "BootstrapToken") or None, raw=data)
    if kind == "GetBootstrapToken":
        return GetBootstrapToken(ident, raw=data)
    if kind == "DeclarativeManagement":
        return DeclarativeManagement(ident, _str(data, "Endpoint", required=True), _data(data, "Data"), raw=data)
    if kind == "GetToken":
        return GetToken(ident, _str(data, "TokenServiceType", required=True), raw=data)
    raise ProtocolError(f"unknown MessageType {kind!r}")


@dataclass
class Report:
    """A PUT to the ServerURL: a command result, or Idle."""

    identity: Identity
    status: str
    command_uuid: str
    error_chain: list[dict]
    raw: dict = field(repr=False, default_factory=dict)


def decode_report(body: bytes) -> Report:
    data = load_plist(body)
    status = _str(data, "Status", required=True)
    if status not in STATUSES:
        raise ProtocolError(f"unknown Status {status!r}")
    command_uuid = _str(data, "CommandUUID")
    if status != "Idle" and not command_uuid:
        raise ProtocolError("missing CommandUUID")
    chain = data.get("ErrorChain") or []
    if not isinstance(chain, list) or not all(isinstance(e, dict) for e in chain):
        raise ProtocolError("ErrorChain is not a list of dictionaries")
    # Kept as JSON: Apple's entries hold codes and strings (ErrorCode, ErrorDomain, LocalizedDescription, ...);
    # any other value (data, dates, nested structures) is dropped.
    chain = [{str(k): v for k, v in e.items() if isinstance(v, (str, int, float, bool))} for e in chain]
    return Report(_identity(data), status, command_uuid, chain, raw=data)


def new_command_uuid() -> str:
    return str(uuid.uuid4()).upper()


def encode_command(command_uuid: str, request_type: str, fields: dict[str, Any]) -> bytes:
    return plistlib.dumps({"CommandUUID": command_uuid, "Command": {"RequestType": request_type, **fields}})


def encode_plist(value: dict) -> bytes:
    return plistlib.dumps(value)
