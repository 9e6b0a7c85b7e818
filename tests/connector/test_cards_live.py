"""Every card end to end: connector → live `bramley serve` over HTTP → MDM queue → push (mock APNs) → simulated
device fetches and answers → the device's state and the API's command list show the outcome."""
from __future__ import annotations

import uuid

import pytest

from bramley.connector import (ApiError, AuthenticationFailed, InvalidInput, NotFound, PermissionMissing,
                               connect)
from bramley.users import service as users
from tests.connector.conftest import committed, found, seeded_tenant
from tests.simulator.fleet import filevault_profile, standard_devices

NOT_ALLOWED = "Command is not allowed for current device"


@pytest.fixture(scope="module")
def devices(sim):
    """Listening devices shared by the module; tests that end a device enroll their own."""
    enrolled = sim(standard_devices)
    ids = {name: sim(lambda f, d=device: f.device_id(d)) for name, device in enrolled.items()}
    return enrolled, ids


@pytest.fixture(scope="module")
def kandji(sim, server):
    with connect(server, sim.tenant.token) as connector:
        yield connector


def acknowledged(sim, device, request_type: str, status: int = 3) -> None:
    sim(lambda f: f.acknowledged(device, request_type, status))


def commands(sim, device) -> list[dict]:
    return sim(lambda f: f.commands(device))


def enroll(sim, platform: str, **kwargs):
    device = sim(lambda f: f.enrolled(platform, **kwargs))
    return device, sim(lambda f: f.device_id(device))


# --- connection ----------------------------------------------------------------------------------------------------

def test_connection_validates_the_token_on_creation(server, sim):
    with connect(server, sim.tenant.token) as ok:
        assert ok.connection.base_url == server
    with pytest.raises(AuthenticationFailed) as bad:
        connect(server, str(uuid.uuid4()))
    assert "401" in str(bad.value) and "Connection" in str(bad.value)
    no_list, _ = sim.tenant.make_token([("GET", "/api/v1/devices/{device_id}")])
    with pytest.raises(PermissionMissing) as refused:
        connect(server, no_list)
    assert "GET /api/v1/devices (Devices › Device Information › Device list)" in str(refused.value)
    assert no_list not in str(refused.value)


def test_a_missing_permission_is_named_and_nothing_is_sent(server, sim, devices):
    d, ids = devices
    token, _ = sim.tenant.make_token([("GET", "/api/v1/devices")])
    before = len(commands(sim, d["mac"]))
    with connect(server, token) as limited:
        assert limited.list_devices("first") is not None  # what it may do, it does
        with pytest.raises(PermissionMissing) as refused:
            limited.lock_device(ids["mac"])
        with pytest.raises(PermissionMissing) as secret:
            limited.get_unlock_pin(ids["mac"])
    text = str(refused.value)
    assert text == (f"Lock Device (device {ids['mac']}): 403 the API token lacks the permission "
                    "POST /api/v1/devices/{device_id}/action/lock (Devices › Device Actions › Lock device)")
    assert refused.value.as_dict()["missing_permission"] == "POST /api/v1/devices/{device_id}/action/lock"
    assert "GET /api/v1/devices/{device_id}/secrets/unlockpin" in str(secret.value)
    assert len(commands(sim, d["mac"])) == before


def test_another_tenants_device_is_notfound(kandji, make_tenant, server):
    other = make_tenant(devices=1)
    with connect(server, other.token) as theirs:
        their_device = theirs.list_devices("first").device_id
    with pytest.raises(NotFound) as missing:
        kandji.get_device(their_device)
    assert str(missing.value).startswith(f"Get Device (device {their_device}): 404")


# --- device commands ------------------------------------------------------------------------------------------------

def test_lock_device_returns_the_pin_the_mac_received(kandji, sim, devices):
    d, ids = devices
    out = kandji.lock_device(ids["mac"], message="Return to IT")
    assert out.status_code == 200 and len(out.pin) == 6 and out.pin.isdigit()
    assert out.card() == {"PIN": out.pin, "Status Code": 200}
    acknowledged(sim, d["mac"], "DeviceLock")
    mac = d["mac"].state
    assert (mac.locked, mac.lock_pin, mac.lock_message) == (True, out.pin, "Return to IT")
    assert kandji.get_unlock_pin(ids["mac"]).card() == {"PIN": out.pin}
    phone = kandji.lock_device(ids["unsupervised"])
    assert (phone.status_code, phone.pin) == (200, None)
    acknowledged(sim, d["unsupervised"], "DeviceLock")
    assert d["unsupervised"].state.locked


def test_clear_passcode_on_an_iphone_and_a_400_on_a_mac(kandji, sim, devices):
    d, ids = devices
    assert d["phone"].state.passcode_present
    assert kandji.clear_passcode(ids["phone"]).status_code == 200
    acknowledged(sim, d["phone"], "ClearPasscode")
    assert not d["phone"].state.passcode_present
    with pytest.raises(ApiError) as refused:
        kandji.clear_passcode(ids["mac"])
    assert (refused.value.status_code, refused.value.card, refused.value.device_id) == (400, "Clear Passcode",
                                                                                        ids["mac"])
    assert str(refused.value) == f"Clear Passcode (device {ids['mac']}): 400 {NOT_ALLOWED}"


def test_blank_push_wakes_the_device(kandji, sim, devices):
    d, ids = devices
    before = d["tv"].exchanges
    assert kandji.send_mdm_blank_push(ids["tv"]).card() == {"Status Code": 200}
    sim(lambda f: d["tv"].until(lambda dev: dev.exchanges > before))


def test_update_inventory_and_restart(kandji, sim, devices):
    d, ids = devices
    ipad = d["ipad"]
    assert kandji.update_inventory(ids["ipad"]).status_code == 200
    acknowledged(sim, ipad, "DeviceInformation")
    restarts = ipad.state.restarts
    assert kandji.restart_device(ids["ipad"]).status_code == 200
    sim(lambda f: ipad.until(lambda dev: dev.state.restarts == restarts + 1))
    acknowledged(sim, ipad, "RestartDevice")
    with pytest.raises(ApiError) as refused:
        kandji.shutdown_device(ids["tv"])
    assert refused.value.status_code == 400 and refused.value.card == "Shutdown Device"


def test_shutdown_device(kandji, sim):
    phone, phone_id = enroll(sim, "iphone", supervised=True)
    assert kandji.shutdown_device(phone_id).status_code == 200
    sim(lambda f: phone.until(lambda dev: dev.state.powered_off))
    acknowledged(sim, phone, "ShutDownDevice")


def test_set_device_name_renames_the_device(kandji, sim, devices):
    d, ids = devices
    assert kandji.set_device_name(ids["mac"], "SALES MBP 07").status_code == 200
    acknowledged(sim, d["mac"], "Settings")
    assert d["mac"].state.device_name == "SALES MBP 07"
    assert kandji.get_device(ids["mac"]).device_name == "SALES MBP 07"
    with pytest.raises(InvalidInput):
        kandji.set_device_name(ids["mac"], "  ")


def test_unlock_user_account(kandji, sim, devices):
    d, ids = devices
    account = d["mac"].state.users[0]
    account.locked = True
    assert kandji.unlock_user_account(ids["mac"], account.short_name).status_code == 200
    acknowledged(sim, d["mac"], "UnlockUserAccount")
    assert not account.locked
    with pytest.raises(ApiError) as refused:
        kandji.unlock_user_account(ids["phone"], "someone")
    assert refused.value.status_code == 400


def test_manage_apple_remote_desktop(kandji, sim, devices):
    d, ids = devices
    mac = d["mac"]
    out = kandji.manage_apple_remote_desktop(ids["mac"], "on")
    assert out.card() == {"Status Code": 200, "Body": None}
    sim(lambda f: mac.until(lambda dev: dev.state.remote_desktop is True))
    sim(lambda f: f.settled(mac))
    assert kandji.get_device(ids["mac"], "full").apple_remote_desktop_turned_on is True
    kandji.manage_apple_remote_desktop(ids["mac"], False)
    sim(lambda f: mac.until(lambda dev: dev.state.remote_desktop is False))
    with pytest.raises(ApiError) as refused:
        kandji.manage_apple_remote_desktop(ids["ipad"], "on")
    assert (refused.value.status_code, refused.value.message) == (400, NOT_ALLOWED)


def test_reinstall_kandji_agent(kandji, sim, devices):
    d, ids = devices
    assert kandji.reinstall_kandji_agent(ids["mac"]).status_code == 200
    acknowledged(sim, d["mac"], "InstallEnterpriseApplication")
    with pytest.raises(ApiError):
        kandji.reinstall_kandji_agent(ids["ipad"])


def test_lost_mode_on_sound_location_off(kandji, sim, devices):
    d, ids = devices
    phone = d["phone"]
    with pytest.raises(ApiError) as not_lost:
        kandji.play_lost_mode_sound(ids["phone"])
    assert not_lost.value.message == "Device is not in lost mode."
    with pytest.raises(InvalidInput):
        kandji.turn_on_lost_mode(ids["phone"])
    on = kandji.turn_on_lost_mode(ids["phone"], lock_message="Please call", phone_number="+1 555 0100",
                                  footnote="Acme IT")
    record = kandji.get_device(ids["phone"])
    assert on.card() == {"Device ID": ids["phone"], "Device Name": record.device_name,
                         "Serial Number": phone.state.serial_number, "Platform": "iPhone", "User Email": None,
                         "Status Code": 200, "Message": "Please call"}
    acknowledged(sim, phone, "EnableLostMode")
    assert phone.state.lost_mode and phone.state.lost_message == "Please call"
    assert kandji.play_lost_mode_sound(ids["phone"]).status_code == 200
    acknowledged(sim, phone, "PlayLostModeSound")
    assert phone.state.sound_played == 1
    assert kandji.update_lost_mode_location(ids["phone"]).status_code == 200
    acknowledged(sim, phone, "DeviceLocation")
    assert kandji.turn_off_lost_mode(ids["phone"]).platform == "iPhone"
    acknowledged(sim, phone, "DisableLostMode")
    assert not phone.state.lost_mode
    with pytest.raises(ApiError) as unsupervised:
        kandji.turn_on_lost_mode(ids["unsupervised"], lock_message="x")
    assert unsupervised.value.status_code == 400 and unsupervised.value.card == "Turn On Lost Mode"


def test_erase_device_with_the_cards_numeric_pin(kandji, sim):
    mac, mac_id = enroll(sim, "mac")
    phone, phone_id = enroll(sim, "iphone", supervised=True)
    with pytest.raises(InvalidInput):
        kandji.erase_device(mac_id, pin=12345678)
    with pytest.raises(InvalidInput):
        kandji.erase_device(mac_id)  # a Mac needs its PIN: refused before anything is sent
    assert kandji.erase_device(mac_id, pin=246810).card() == {"PIN": "246810", "Status Code": 200}
    assert kandji.erase_device(phone_id, preserve_data_plan=False, disallow_proximity_setup=True).pin is None
    for device in (mac, phone):
        sim(lambda f, dev=device: dev.until(lambda x: x.state.erased))
    assert mac.state.erase_pin == "246810"
    assert [c["request_type"] for c in commands(sim, mac)].count("EraseDevice") == 1
    assert committed(lambda: kandji.get_device(mac_id), lambda device: device.is_removed).is_removed is True


# --- device reads ------------------------------------------------------------------------------------------------

def test_get_device_basic_and_full(kandji, sim, devices):
    d, ids = devices
    basic = kandji.get_device(ids["ipad"])
    assert (basic.device_id, basic.platform, basic.serial_number) == (ids["ipad"], "iPad",
                                                                      d["ipad"].state.serial_number)
    assert basic.mdm_enabled is True and basic.is_removed is False
    assert basic.card()["Serial Number"] == d["ipad"].state.serial_number
    full = kandji.get_device(ids["ipad"], details="full")
    assert full.general.device_id == ids["ipad"] and full.general.platform == "iPad"
    assert full.mdm.mdm_enabled is True and full.mdm.supervised is True  # "True" on the wire
    assert full.card()["MDM"]["MDM Enabled"] is True
    with pytest.raises(InvalidInput):
        kandji.get_device(ids["ipad"], details="everything")


def test_apps_library_items_and_notes(kandji, sim, devices):
    d, ids = devices
    sim(lambda f: f.settled(d["mac"]))
    apps = kandji.list_device_apps(ids["mac"]).apps
    assert apps and {"bundle_id", "app_name"} <= set(apps[0])
    assert isinstance(kandji.list_device_library_items(ids["mac"]).items_list, list)
    created = kandji.create_note(ids["mac"], "Handed to Ana on <b>Monday</b>")
    assert created.status_code == 201 and created.note.content == "Handed to Ana on <b>Monday</b>"
    assert created.card()["Note"]["Content"] == created.note.content
    notes = committed(lambda: kandji.list_device_notes(ids["mac"]).notes,
                      lambda found: created.note.note_id in {n.note_id for n in found})
    assert created.note.note_id in {n.note_id for n in notes}


def test_activation_lock_bypass_codes_and_filevault_key(kandji, sim, devices):
    d, ids = devices
    codes = kandji.get_activation_lock_bypass_codes(ids["mac"])
    assert d["mac"].state.bypass_code in (codes.user_based_activation_lock_bypass_code,
                                          codes.device_based_activation_lock_bypass_code)
    assert set(codes.card()) == {"User-Based Activation Lock Bypass Code", "Device-Based Activation Lock Bypass Code"}
    mac, mac_id = enroll(sim, "mac")
    mac.state.filevault, mac.state.prk = False, ""
    assert kandji.get_filevault_recovery_key(mac_id).key is None

    def install(s, ctx):  # no card installs a FileVault profile: queued as the MDM core would
        from bramley.mdm import pki, queue
        from bramley.mdm.actions import device_enrollment

        enrollment = device_enrollment(s, ctx, mac_id)
        queue.enqueue(s, ctx, [queue.Target(enrollment.id, enrollment.device_id)], "InstallProfile",
                      {"Payload": filevault_profile(pki.escrow_cert(s, ctx))}, priority=20)

    sim(lambda f: f.write(install))
    kandji.update_inventory(mac_id)

    async def escrowed(f):
        await f.eventually(lambda: _has_key(kandji, mac_id), what="the escrowed key")
    sim(escrowed)
    assert kandji.get_filevault_recovery_key(mac_id).card() == {"Key": mac.state.prk}


async def _has_key(kandji, device_id) -> bool:
    import asyncio

    return (await asyncio.to_thread(kandji.get_filevault_recovery_key, device_id)).key is not None


# --- Update Device, Blueprints -------------------------------------------------------------------------------------

def _user(sim, name: str, email: str):
    def create(s, ctx):
        user = users.create(s, ctx, name=name, email=email)
        return user.id, user.deprecated_user_id
    return sim(lambda f: f.write(create))


def test_blueprint_cards(kandji):
    name = f"Sales {uuid.uuid4().hex[:6]}"
    created = kandji.create_blueprint(name, True, enrollment_code="424242", color="aqua-800", icon="ss-files",
                                      description="Sales Macs")
    assert created.status_code == 201 and created.blueprint["name"] == name
    blueprint_id = created.blueprint["id"]
    by_id = committed(lambda: found(lambda: kandji.get_blueprint(blueprint_id)), bool)
    assert by_id.card() == {"Status Code": 200, "ID": blueprint_id, "Name": name, "Icon": "ss-files",
                            "Color": "aqua-800", "Description": "Sales Macs", "Parameters": {}, "Count": 0,
                            "Missing": 0, "Enrollment Code": "424242", "Enrollment Code Is Active": True,
                            "Alerts Count": None, "type": "classic"}  # fields the card lacks keep wire names
    assert kandji.get_blueprint(blueprint_name=name).id == blueprint_id
    assert kandji.get_blueprint(blueprint_id, name).id == blueprint_id
    with pytest.raises(NotFound) as missing:
        kandji.get_blueprint(blueprint_name=name[:-1])  # contains-matches are not the Blueprint asked for
    assert "No Blueprint is named" in str(missing.value)
    with pytest.raises(ApiError) as duplicate:
        kandji.create_blueprint(name, False)
    assert duplicate.value.status_code == 400 and duplicate.value.card == "Create Blueprint"
    listed = kandji.list_blueprints().results
    assert name in {b["name"] for b in listed}
    seen = []
    stream = kandji.list_blueprints("stream", helper=lambda b, ctx: seen.append((b["name"], ctx)), context="ctx-1")
    assert stream.run().record_count == len(listed) and (name, "ctx-1") in seen


def test_update_device_assigns_user_blueprint_and_asset_tag(kandji, sim, devices):
    d, ids = devices
    user_id, legacy_id = _user(sim, "Ana Lima", f"ana.{uuid.uuid4().hex[:6]}@example.com")
    blueprint = kandji.create_blueprint(f"Field {uuid.uuid4().hex[:6]}", True).blueprint
    committed(lambda: found(lambda: kandji.get_blueprint(blueprint["id"])), bool)
    out = kandji.update_device(ids["tv"], blueprint_id=blueprint["id"], kandji_user_id=user_id, asset_tag="IT-0042")
    assert (out.status, out.blueprint_id, out.blueprint_name, out.asset_tag) == (200, blueprint["id"],
                                                                                 blueprint["name"], "IT-0042")
    assert out.user.user_id == user_id and out.user.user_name == "Ana Lima"
    assert {"Status", "User"} <= set(out.card()) and out.card()["User"]["User Email"].startswith("ana.")
    # The card types Kandji User ID as a Number: the legacy id works too.
    other_id, other_legacy = _user(sim, "Bo Chen", f"bo.{uuid.uuid4().hex[:6]}@example.com")
    assert kandji.update_device(ids["tv"], kandji_user_id=int(other_legacy)).user.user_id == other_id
    with pytest.raises(InvalidInput):
        kandji.update_device(ids["tv"])


# --- List Devices ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fleet_650(app, server):
    tenant = seeded_tenant(app, 650)
    with connect(server, tenant.token) as connector:
        everyone = list(connector.list_devices("stream"))
        yield connector, everyone


def test_list_devices_result_sets(fleet_650):
    kandji, everyone = fleet_650
    assert len(everyone) == 650 and len({d.device_id for d in everyone}) == 650
    first = kandji.list_devices("first")
    assert first.device_id == everyone[0].device_id
    assert [d.device_id for d in kandji.list_devices("first-200")] == [d.device_id for d in everyone[:200]]
    calls = []
    stream = kandji.list_devices("stream", helper=lambda device, context: calls.append((device.device_id, context)),
                                 context={"flow": "offboarding"})
    assert stream.run().record_count == 650
    assert calls == [(d.device_id, {"flow": "offboarding"}) for d in everyone]
    assert kandji.list_devices("first", serial_number="NO-SUCH-SERIAL") is None
    assert kandji.list_devices("first-200", serial_number="NO-SUCH-SERIAL") == []
    with pytest.raises(InvalidInput):
        kandji.list_devices("first-300")
    with pytest.raises(InvalidInput):
        kandji.list_devices("first", colour="red")


def test_list_devices_stream_is_lazy(fleet_650):
    kandji, everyone = fleet_650
    stream = kandji.list_devices("stream")
    taken = [d.device_id for _, d in zip(range(5), stream)]
    assert taken == [d.device_id for d in everyone[:5]] and stream.record_count == 5


def test_list_devices_filters(fleet_650):
    kandji, everyone = fleet_650

    def ids(**filters):
        return {d.device_id for d in kandji.list_devices("stream", **filters)}

    with_user = [d for d in everyone if d.user]
    target = with_user[7]
    email = target.user.email
    same_user = {d.device_id for d in with_user if d.user.email == email}
    # The contains/exact pair: part of the address matches many users, the whole address only one.
    assert ids(user_email="@example.com") == {d.device_id for d in with_user}
    assert ids(user_email_exact=email) == same_user
    assert ids(user_email_exact=email.split("@")[0]) == set()
    assert ids(user_email=email.split("@")[0]) >= same_user
    assert ids(user_name=target.user.name) >= same_user
    assert ids(kandji_user_id=target.user.user_id) == same_user
    assert ids(device_id=target.device_id) == {target.device_id}
    assert target.device_id in ids(device_name=target.device_name)
    assert ids(serial_number=target.serial_number) == {target.device_id}
    assert target.device_id in ids(asset_tag=target.asset_tag)
    assert ids(platform="iPad") == {d.device_id for d in everyone if d.platform == "iPad"}
    assert target.device_id in ids(model=target.model)
    assert target.device_id in ids(os_version=target.os_version)
    assert ids(blueprint_id=target.blueprint_id) == {d.device_id for d in everyone
                                                     if d.blueprint_id == target.blueprint_id}
    assert ids(platform=target.platform, blueprint_id=target.blueprint_id) == {
        d.device_id for d in everyone if d.platform == target.platform and d.blueprint_id == target.blueprint_id}


def test_list_devices_by_mac_address(kandji, sim, devices):
    # On simulated devices: the address is the one the device reported in its inventory.
    _, ids = devices
    sim(lambda f: f.settled(devices[0]["mac"]))
    address = kandji.get_device(ids["mac"], "full").network.mac_address
    assert address == devices[0]["mac"].state.wifi_mac
    assert [d.device_id for d in kandji.list_devices("stream", mac_address=address)] == [ids["mac"]]
    assert kandji.list_devices("first", mac_address=address.lower()).device_id == ids["mac"]


# --- Custom API Action ------------------------------------------------------------------------------------------------

def test_custom_api_action(kandji, devices):
    _, ids = devices
    listed = kandji.custom_api_action("GET", "/devices?limit=2", query={"offset": 1})
    assert listed.status_code == 200 and len(listed.body) == 2
    assert listed.headers["content-type"] == "application/json"
    assert set(listed.card()) == {"Status Code", "Headers", "Body"}
    # Authorization is the connector's: a header given here cannot replace it.
    ipads = kandji.custom_api_action("get", "/devices", query={"platform": "iPad"},
                                     headers={"Authorization": "Bearer nope", "X-Request-Source": "okta"})
    assert ipads.status_code == 200 and {d["platform"] for d in ipads.body} == {"iPad"}
    note = kandji.custom_api_action("POST", f"/devices/{ids['tv']}/notes", body={"content": "via custom"})
    assert (note.status_code, note.body["content"]) == (201, "via custom")
    gone = committed(lambda: kandji.custom_api_action("DELETE", f"/devices/{ids['tv']}/notes/{note.body['note_id']}"),
                     lambda result: result.status_code != 404)
    assert gone.status_code == 200 and gone.body["note_id"] == note.body["note_id"]
    missing = kandji.custom_api_action("GET", "/devices/00000000-0000-4000-8000-000000000000")
    assert (missing.status_code, missing.body) == (404, {"detail": "Not found."})  # reported, not raised
    with pytest.raises(InvalidInput):
        kandji.custom_api_action("GET", "https://elsewhere.example.com/api/v1/devices")
    with pytest.raises(InvalidInput):
        kandji.custom_api_action("TRACE", "/devices")
