"""The simulated device on its own: what it answers to each command (reference §11.2's table)."""
from __future__ import annotations

import plistlib
import random
import re
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from bramley.demo import catalog
from bramley.mdm import pki
from bramley.simulator import handlers
from bramley.simulator.device import PLATFORMS, new_device
from bramley.simulator.swarm import plan_platforms


def command(request_type: str, **keys) -> dict:
    return {"CommandUUID": str(uuid.uuid4()).upper(), "Command": {"RequestType": request_type, **keys}}


def answer(state, request_type: str, ctx: handlers.Context | None = None, **keys) -> dict:
    return handlers.respond(state, command(request_type, **keys), ctx or handlers.Context(rng=random.Random(0)))


def codes(result: dict) -> list[int]:
    return [e["ErrorCode"] for e in result.get("ErrorChain", [])]


@pytest.fixture
def rng():
    return random.Random(42)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_new_devices_look_like_real_hardware(platform, rng):
    state = new_device(platform, rng)
    models = {"Mac": catalog.MACS, "iPhone": catalog.IPHONES, "iPad": catalog.IPADS, "AppleTV": catalog.APPLE_TVS}
    assert (state.model_name, state.product_name) in {(m[0], m[1]) for m in models[platform]}
    assert re.fullmatch(r"[A-Z0-9]{10}", state.serial_number)
    hardware_uuid = r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[0-9A-F]{4}-[0-9A-F]{12}"
    assert re.fullmatch(hardware_uuid if platform == "Mac" else r"[0-9A-F]{8}-[0-9A-F]{16}", state.udid)
    assert state.apps and state.device_name and state.os_version and state.build_version
    assert bool(state.users) == (platform == "Mac")


def test_cli_platform_names_and_a_mixed_fleet_has_every_platform(rng):
    assert plan_platforms("tv", 2, rng) == ["AppleTV", "AppleTV"]
    assert plan_platforms("iphone", 1, rng) == ["iPhone"]
    assert set(plan_platforms("mixed", 4, rng)) == set(PLATFORMS)
    with pytest.raises(ValueError):
        plan_platforms("windows", 1, rng)


def test_unknown_request_type_is_error_12021(rng):
    result = answer(new_device("mac", rng), "MakeCoffee")
    assert result["Status"] == "Error" and codes(result) == [handlers.UNKNOWN_REQUEST]
    assert result["ErrorChain"][0]["ErrorDomain"] == "MCMDMErrorDomain"


@pytest.mark.parametrize("platform,request_type,keys", [
    ("iphone", "ClearPasscode", {}),
    ("iphone", "ClearPasscode", {"UnlockToken": "not data"}),
    ("mac", "DeviceInformation", {}),
    ("mac", "Settings", {"Settings": "DeviceName"}),
    ("mac", "UnlockUserAccount", {}),
    ("mac", "InstallEnterpriseApplication", {}),
    ("mac", "DeviceLock", {"PIN": "12345"}),
])
def test_missing_or_mistyped_keys_are_command_format_errors(platform, request_type, keys, rng):
    state = new_device(platform, rng, supervised=True)
    assert answer(state, request_type, **keys)["Status"] == "CommandFormatError"


@pytest.mark.parametrize("platform,supervised,request_type", [
    ("iphone", False, "RestartDevice"),
    ("iphone", False, "EnableLostMode"),
    ("mac", True, "EnableLostMode"),
    ("tv", True, "DeviceLock"),
    ("mac", True, "ClearPasscode"),
    ("iphone", True, "EnableRemoteDesktop"),
    ("iphone", True, "UnlockUserAccount"),
    ("mac", False, "ActivationLockBypassCode"),
])
def test_platform_and_supervision_gates_answer_error(platform, supervised, request_type, rng):
    state = new_device(platform, rng, supervised=supervised)
    result = answer(state, request_type, Message="x", UnlockToken=b"x", UserName="x")
    assert result["Status"] == "Error" and codes(result)


def test_user_channel_and_access_rights_gates(rng):
    state = new_device("mac", rng)
    user = handlers.Context(user_channel=True)
    assert answer(state, "EraseDevice", user)["Status"] == "Error"
    assert answer(state, "ProfileList", user)["Status"] == "Acknowledged"
    no_erase = handlers.Context(access_rights=8191 & ~8)
    assert codes(answer(state, "EraseDevice", no_erase)) == [handlers.NO_RIGHTS]


def test_clear_passcode_needs_the_unlock_token_from_token_update(rng):
    state = new_device("iphone", rng, passcode=True)
    state.unlock_token = b"token-from-enrollment"
    assert answer(state, "ClearPasscode", UnlockToken=b"someone else's")["Status"] == "Error"
    assert state.passcode_present
    assert answer(state, "ClearPasscode", UnlockToken=b"token-from-enrollment")["Status"] == "Acknowledged"
    assert not state.passcode_present


def test_lost_mode_sound_and_location_need_lost_mode(rng):
    state = new_device("iphone", rng, supervised=True)
    assert codes(answer(state, "PlayLostModeSound")) == [12067]
    assert codes(answer(state, "DeviceLocation")) == [12067]
    assert answer(state, "EnableLostMode")["Status"] == "CommandFormatError"  # Message or PhoneNumber
    assert answer(state, "EnableLostMode", Message="Call IT", Footnote="Acme")["Status"] == "Acknowledged"
    assert state.lost_mode and state.lost_message == "Call IT"
    assert answer(state, "PlayLostModeSound")["Status"] == "Acknowledged" and state.sound_played == 1
    located = answer(state, "DeviceLocation")
    assert (located["Latitude"], located["Longitude"]) == state.location and located["Timestamp"].endswith("Z")
    info = answer(state, "DeviceInformation", Queries=["IsMDMLostModeEnabled"])
    assert info["QueryResponses"] == {"IsMDMLostModeEnabled": True}
    state.location = None
    assert codes(answer(state, "DeviceLocation")) == [12068]
    assert answer(state, "DisableLostMode")["Status"] == "Acknowledged" and not state.lost_mode


def test_device_information_answers_only_what_was_asked(rng):
    state = new_device("mac", rng)
    result = answer(state, "DeviceInformation", Queries=["SerialNumber", "OSVersion", "NoSuchQuery"])
    assert result["QueryResponses"] == {"SerialNumber": state.serial_number, "OSVersion": state.os_version}


def test_lock_records_the_pin_and_erase_acknowledges_before_wiping(rng):
    mac = new_device("mac", rng)
    assert answer(mac, "DeviceLock", Message="Lost")["Status"] == "Error"  # a Mac needs a PIN
    assert answer(mac, "DeviceLock", PIN="204816", Message="Lost")["Status"] == "Acknowledged"
    assert (mac.locked, mac.lock_pin) == (True, "204816")
    assert answer(mac, "EraseDevice", PIN="112233")["Status"] == "Acknowledged"
    assert mac.erase_pin == "112233" and not mac.erased  # the agent wipes once the ack is sent
    mac.wipe(rng)
    assert mac.erased and not mac.profiles and not mac.users and not mac.locked


def test_set_name_per_item_status_and_supervision(rng):
    mac = new_device("mac", rng)
    result = answer(mac, "Settings", Settings=[{"Item": "DeviceName", "DeviceName": "SALES-MBP-07"},
                                               {"Item": "HostName", "HostName": "sales-mbp-07"}])
    assert [s["Status"] for s in result["Settings"]] == ["Acknowledged", "Acknowledged"]
    assert (mac.device_name, mac.local_host_name) == ("SALES-MBP-07", "sales-mbp-07")
    phone = new_device("iphone", rng, supervised=False)
    refused = answer(phone, "Settings", Settings=[{"Item": "DeviceName", "DeviceName": "x"}])
    assert refused["Status"] == "Acknowledged" and refused["Settings"][0]["Status"] == "Error"
    assert phone.device_name != "x"


def test_not_now_by_chance_spares_urgent_commands(rng):
    state = new_device("iphone", rng, supervised=True)
    always = handlers.Context(rng=rng, not_now_probability=1.0)
    assert answer(state, "InstalledApplicationList", always)["Status"] == "NotNow"
    assert answer(state, "DeviceLock", always)["Status"] == "Acknowledged"
    once = handlers.Context(rng=rng, not_now_next=1)
    assert answer(state, "ProfileList", once)["Status"] == "NotNow"
    assert answer(state, "ProfileList", once)["Status"] == "Acknowledged"
    state.locked_after_boot = True
    assert answer(state, "ProfileList")["Status"] == "NotNow"
    assert answer(state, "EraseDevice")["Status"] == "Acknowledged"


def test_agent_install_is_acknowledged_before_the_app_appears(rng):
    mac = new_device("mac", rng)
    assert answer(mac, "InstallEnterpriseApplication",
                  ManifestURL="https://mdm.example.com/agent/manifest.plist")["Status"] == "Acknowledged"
    assert "dev.bramley.agent" not in {a.identifier for a in mac.apps}
    listed = answer(mac, "InstalledApplicationList")["InstalledApplicationList"]
    assert "dev.bramley.agent" in {a["Identifier"] for a in listed}


def _escrow_profile(cert: x509.Certificate) -> bytes:
    cert_uuid = str(uuid.uuid4()).upper()
    payloads = [
        {"PayloadType": "com.apple.MCX.FileVault2", "PayloadUUID": str(uuid.uuid4()), "Enable": "On",
         "UseRecoveryKey": True, "ShowRecoveryKey": False},
        {"PayloadType": "com.apple.security.pkcs1", "PayloadUUID": cert_uuid,
         "PayloadContent": cert.public_bytes(serialization.Encoding.DER)},
        {"PayloadType": "com.apple.security.FDERecoveryKeyEscrow", "PayloadUUID": str(uuid.uuid4()),
         "Location": "Acme IT", "EncryptCertPayloadUUID": cert_uuid},
    ]
    return plistlib.dumps({"PayloadType": "Configuration", "PayloadIdentifier": "com.acme.filevault",
                           "PayloadUUID": str(uuid.uuid4()), "PayloadVersion": 1, "PayloadContent": payloads})


def test_filevault_key_is_enveloped_to_the_escrow_certificate_a_profile_installed(rng):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = pki.build_escrow_cert("acme", key)
    mac = new_device("mac", rng)
    mac.filevault, mac.prk = False, ""
    assert "FDE_PersonalRecoveryKeyCMS" not in answer(mac, "SecurityInfo")["SecurityInfo"]
    assert answer(mac, "InstallProfile", Payload=_escrow_profile(cert))["Status"] == "Acknowledged"
    info = answer(mac, "SecurityInfo")["SecurityInfo"]
    assert info["FDE_Enabled"] and info["FDE_HasPersonalRecoveryKey"]
    plain = pkcs7.pkcs7_decrypt_der(info["FDE_PersonalRecoveryKeyCMS"], cert, key, [])
    assert plistlib.loads(plain) == {"RecoveryKey": mac.prk}
    assert re.fullmatch(r"([A-Z0-9]{4}-){5}[A-Z0-9]{4}", mac.prk)
    assert "com.acme.filevault" in {p["PayloadIdentifier"] for p in answer(mac, "ProfileList")["ProfileList"]}
