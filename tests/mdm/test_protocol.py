"""Decoding check-ins and results from real-shaped plists; bad plists are ProtocolErrors (the door's 400)."""
from __future__ import annotations

import plistlib

import pytest

from bramley.mdm.protocol import (
    Authenticate, CheckOut, DeclarativeManagement, ProtocolError, SetBootstrapToken, TokenUpdate, decode_checkin,
    decode_report, encode_command,
)

UDID = "00008103-000D45A11E38001E"


def plist(**kw) -> bytes:
    return plistlib.dumps(kw)


def test_mac_authenticate_keeps_apple_fields():
    msg = decode_checkin(plist(MessageType="Authenticate", Topic="com.apple.mgmt.External.x", UDID=UDID,
                               SerialNumber="C02ZK0XXMD6T", Model="MacBookPro18,2", ModelName="MacBook Pro",
                               ProductName="MacBookPro18,2", OSVersion="15.1.1", BuildVersion="24B91",
                               DeviceName="Ada's MacBook Pro"))
    assert isinstance(msg, Authenticate)
    assert msg.identity.enrollment_id == UDID and msg.serial_number == "C02ZK0XXMD6T"
    assert msg.os_version == "15.1.1" and msg.device_name == "Ada's MacBook Pro"


def test_token_update_user_channel_and_unlock_token():
    msg = decode_checkin(plist(MessageType="TokenUpdate", Topic="t", UDID=UDID, Token=b"\x01" * 32,
                               PushMagic="MAGIC", UnlockToken=b"unlock", UserID="ABC-123", UserShortName="ada"))
    assert isinstance(msg, TokenUpdate)
    assert msg.identity.enrollment_id == f"{UDID}:ABC-123" and msg.unlock_token == b"unlock"
    shared = decode_checkin(plist(MessageType="TokenUpdate", Topic="t", UDID=UDID, Token=b"\x01" * 32,
                                  PushMagic="M", UserID="FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", UserShortName="kid"))
    assert shared.identity.enrollment_id == f"{UDID}:kid"


def test_other_checkins_decode():
    assert isinstance(decode_checkin(plist(MessageType="CheckOut", Topic="t", UDID=UDID)), CheckOut)
    sbt = decode_checkin(plist(MessageType="SetBootstrapToken", UDID=UDID, BootstrapToken=b"tok"))
    assert isinstance(sbt, SetBootstrapToken) and sbt.token == b"tok"
    dm = decode_checkin(plist(MessageType="DeclarativeManagement", UDID=UDID, Endpoint="status", Data=b"{}"))
    assert isinstance(dm, DeclarativeManagement) and dm.endpoint == "status"


@pytest.mark.parametrize("body", [
    b"", b"not a plist", b"<?xml version='1.0'?><plist><array/></plist>",
    plistlib.dumps({"MessageType": "Authenticate", "UDID": UDID}),  # no Topic
    plistlib.dumps({"MessageType": "TokenUpdate", "UDID": UDID, "Topic": "t", "Token": "not-data", "PushMagic": "m"}),
    plistlib.dumps({"MessageType": "Nonsense", "UDID": UDID}),
    plistlib.dumps({"MessageType": "CheckOut", "Topic": "t"}),  # no UDID
    plistlib.dumps({"MessageType": 5, "UDID": UDID}),
])
def test_malformed_checkins_are_protocol_errors(body):
    with pytest.raises(ProtocolError):
        decode_checkin(body)


def test_reports():
    idle = decode_report(plist(UDID=UDID, Status="Idle"))
    assert idle.status == "Idle" and idle.command_uuid == ""
    err = decode_report(plist(UDID=UDID, Status="Error", CommandUUID="C1",
                              ErrorChain=[{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain"}]))
    assert err.error_chain[0]["ErrorCode"] == 12021
    for bad in (plist(UDID=UDID), plist(UDID=UDID, Status="Acknowledged"), plist(UDID=UDID, Status="Maybe"),
                plist(UDID=UDID, Status="Error", CommandUUID="C", ErrorChain="x")):
        with pytest.raises(ProtocolError):
            decode_report(bad)


def test_encoded_command_is_apple_shaped():
    body = plistlib.loads(encode_command("ABC", "DeviceLock", {"PIN": "123456"}))
    assert body == {"CommandUUID": "ABC", "Command": {"RequestType": "DeviceLock", "PIN": "123456"}}
