"""The connector against Iru-shaped responses recorded in the reference, on the US and EU hosts: which host and
headers it sends, how it reads every shape, how it pages, retries, and reports errors."""
from __future__ import annotations

import email.utils
import json
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs

import httpx
import pytest

from bramley.connector import (ApiError, AuthenticationFailed, Connection, ConnectionFailed, Connector, InvalidInput,
                               NotFound, PermissionMissing, RateLimited, ServerError, connect)
from tests.connector.iru_recorded import (ADE_ID, ADE_INTEGRATION, BLUEPRINT, BLUEPRINT_ID, LEGACY_USER, MAC,
                                          MAC_DETAILS, MAC_ID, PHONE, PHONE_ID, TOKEN, FakeTenant, ade_device, reply)

US, EU = "accuhive.api.kandji.io", "accuhive.api.eu.kandji.io"


class FakeClock:
    """sleep() advances monotonic(): retries wait without the test waiting."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def kandji_on(tenant: FakeTenant, domain: str | None = None, clock: FakeClock | None = None, **options) -> Connector:
    clock = clock or FakeClock()
    return connect(domain or tenant.host, TOKEN, transport=tenant.transport(), sleep=clock.sleep,
                   clock=clock.monotonic, **options)


@pytest.fixture
def us() -> FakeTenant:
    return FakeTenant(US)


# --- hosts and the validation call ------------------------------------------------------------------------------

@pytest.mark.parametrize("domain, host", [
    ("accuhive.api.kandji.io", US),
    ("accuhive.api.eu.kandji.io", EU),
    ("https://accuhive.api.eu.kandji.io/", EU),
    ("https://accuhive.api.kandji.io/api/v1", US),
    ("  Accuhive.API.Kandji.io ", US),
    ("accuhive.api.iru.com", "accuhive.api.iru.com"),
    ("accuhive.api.eu.iru.com", "accuhive.api.eu.iru.com"),
    ("accuhive", US),
])
def test_the_connection_validates_on_the_tenants_api_host(domain, host):
    tenant = FakeTenant(host)
    with kandji_on(tenant, domain) as kandji:
        assert kandji.connection.base_url == f"https://{host}" and kandji.connection.tenant == "accuhive"
    [validation] = tenant.requests
    assert str(validation.url) == f"https://{host}/api/v1/devices?limit=1"
    assert validation.headers["Authorization"] == f"Bearer {TOKEN}"
    assert validation.headers["Accept"] == "application/json"
    assert validation.headers["User-Agent"].startswith("bramley-connector/")


def test_a_bare_subdomain_takes_the_eu_host_with_region_eu():
    tenant = FakeTenant(EU)
    with kandji_on(tenant, "accuhive", region="eu") as kandji:
        assert kandji.connection.base_url == f"https://{EU}"


@pytest.mark.parametrize("domain, base", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://mdm.example.com:8443/", "https://mdm.example.com:8443"),
    ("mdm.example.com", "https://mdm.example.com"),
    ("https://example.com/bramley/api/v1/", "https://example.com/bramley"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("accuhive.clients.us-1.kandji.io", "https://accuhive.clients.us-1.kandji.io"),
])
def test_any_base_url(domain, base):
    from bramley.connector import base_url_for

    assert base_url_for(domain) == base


@pytest.mark.parametrize("domain, message", [
    ("", "the domain is empty"),
    ("accuhive.kandji.io", "accuhive.kandji.io is the web app; the API domain is accuhive.api.kandji.io"),
    ("accuhive.eu.kandji.io", "the API domain is accuhive.api.eu.kandji.io"),
    ("ftp://accuhive.api.kandji.io", "scheme must be http or https"),
    ("https://user:pw@accuhive.api.kandji.io", "put the token in --token"),
    ("https://accuhive.api.kandji.io/?x=1", "no query string"),
    ("https://bad host", "no valid host name"),
    ("https://accuhive.api.kandji.io:port", "bad port"),
])
def test_bad_domains_are_refused_before_any_call(domain, message):
    with pytest.raises(InvalidInput) as refused:
        Connection(domain, TOKEN, validate=False)
    assert message in str(refused.value)


def test_a_refused_token_is_reported_and_never_echoed(us):
    with pytest.raises(AuthenticationFailed) as refused:
        connect(US, "wrong-token", transport=us.transport())
    assert str(refused.value).startswith("Connection: 401 the API token was refused")
    assert "wrong-token" not in str(refused.value) and "wrong-token" not in repr(refused.value)
    with pytest.raises(InvalidInput):
        Connection(US, "  ", validate=False)
    with pytest.raises(InvalidInput):
        Connection(US, "abc\r\nX-Evil: 1", validate=False)
    connection = Connection(US, TOKEN, validate=False, transport=us.transport())
    assert TOKEN not in repr(connection) and TOKEN not in repr(Connector(connection))


def test_a_token_without_the_device_list_permission_is_named(us):
    us.on("GET", "/api/v1/devices", reply(403, {"detail": "You do not have permission to perform this action."}))
    with pytest.raises(PermissionMissing) as refused:
        connect(US, TOKEN, transport=us.transport())
    assert str(refused.value) == ("Connection: 403 the API token lacks the permission GET /api/v1/devices "
                                  "(Devices › Device Information › Device list)")


def test_a_host_that_is_not_the_api_is_reported(us):
    us.on("GET", "/api/v1/devices", lambda r: httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(ConnectionFailed) as wrong:
        connect(US, TOKEN, transport=us.transport())
    assert "not an Iru device list" in str(wrong.value)


# --- reading the recorded shapes -----------------------------------------------------------------------------------

def test_devices_read_every_recorded_shape(us):
    us.devices = [MAC, PHONE, LEGACY_USER]
    with kandji_on(us) as kandji:
        mac, phone, legacy = kandji.list_devices("first-200")
    assert mac.last_check_in == datetime(2024, 7, 23, 14, 11, 37, 150080, tzinfo=timezone.utc)
    assert mac.first_enrollment == datetime(2024, 1, 26, 16, 15, 36, 87016, tzinfo=timezone.utc)
    assert (mac.user.email, mac.user.user_id, mac.tags) == ("ana@accuhive.com", MAC["user"]["id"], ["eng"])
    assert (phone.user, phone.last_check_in, phone.asset_tag, phone.agent_version) == (None, None, "", "")
    assert legacy.user.user_id == "29360"  # the 2022 integer id
    card = mac.card()
    assert card["Device ID"] == MAC_ID and card["Last Check-in"] == "2024-07-23T14:11:37.150080Z"
    assert card["User"] == {"Email": "ana@accuhive.com", "Name": "Ana Lima", "User ID": MAC["user"]["id"],
                            "Is Archived": False}
    assert str(us.requests[-1].url) == f"https://{US}/api/v1/devices?limit=200&offset=0"


def test_a_streamed_record_reads_as_the_device_model(us):
    from bramley.connector.models import Device, DeviceRecord

    us.devices = [MAC, PHONE, LEGACY_USER]
    with kandji_on(us) as kandji:
        records = list(kandji.list_devices("stream"))
    assert all(isinstance(r, DeviceRecord) for r in records)
    for record, raw in zip(records, us.devices):
        model = Device.model_validate(raw)
        assert {name: getattr(record, name) for name in Device.model_fields} == {
            name: getattr(model, name) for name in Device.model_fields}
        assert record.to_device() == model and record == model and record.card() == model.card()
    assert records[1].user is None and records[1].last_check_in is None  # "" on the wire
    assert records[2].user.user_id == "29360"


def test_full_details_read_string_flags_and_renamed_fields(us):
    us.on("GET", f"/api/v1/devices/{MAC_ID}/details", reply(200, MAC_DETAILS))
    with kandji_on(us) as kandji:
        details = kandji.get_device(MAC_ID, details="full")
    assert (details.mdm.mdm_enabled, details.mdm.supervised, details.kandji_agent.agent_installed) == (True, False,
                                                                                                      True)
    assert details.filevault.filevault_recovery_key_type == "Personal"
    assert details.filevault.filevault_personal_recovery_key_escrowed is True
    assert details.recovery_information.firmware_password_exists is False
    assert details.hardware_overview.udid == "0000FE00-1234-5678-9ABC-DEF012345678"
    assert details.general.assigned_user.email == "ana@accuhive.com"
    assert details.apple_remote_desktop_turned_on is None and details.apple_business_manager is not None
    assert details.volumes[0]["encrypted"] == "Yes"
    card = details.card()
    assert card["FileVault"]["FileVault Personal Recovery Key Escrowed"] is True
    assert card["Hardware Overview"]["UDID"] == details.hardware_overview.udid
    assert card["Installed Profiles"][0]["install_date"] == "2024-05-13 20:09:23 +0000"  # kept as sent


def test_secrets_notes_apps_library_items(us):
    base = f"/api/v1/devices/{MAC_ID}"
    us.on("GET", f"{base}/secrets/bypasscode", reply(200, {"user_based_albc": None,
                                                           "device_based_albc": "H1JM-1AAA-2BBB-3CCC-4DDD-5EEE"}))
    us.on("GET", f"{base}/secrets/filevaultkey", reply(200, {"key": "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"}))
    us.on("GET", f"{base}/secrets/unlockpin", reply(200, {"pin": None}))
    note = {"note_id": "n1", "created_at": "2024-07-23T14:11:37.150080Z", "updated_at": "2024-07-23T14:11:37.150080Z",
            "author": "api", "content": "<p>Handed over</p>"}
    us.on("GET", f"{base}/notes", reply(200, [note]))
    us.on("POST", f"{base}/notes", reply(201, note))
    us.on("GET", f"{base}/apps", reply(200, {"device_id": MAC_ID, "apps": [{"app_name": "Safari", "bundle_id":
                                                                           "com.apple.Safari"}]}))
    us.on("GET", f"{base}/library-items", reply(200, {"device_id": MAC_ID, "library_items": [{"id": 1, "status":
                                                                                              "PASS"}]}))
    with kandji_on(us) as kandji:
        codes = kandji.get_activation_lock_bypass_codes(MAC_ID)
        assert codes.card() == {"User-Based Activation Lock Bypass Code": None,
                                "Device-Based Activation Lock Bypass Code": "H1JM-1AAA-2BBB-3CCC-4DDD-5EEE"}
        assert kandji.get_filevault_recovery_key(MAC_ID).key == "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"
        assert kandji.get_unlock_pin(MAC_ID).pin is None
        created = kandji.create_note(MAC_ID, "<p>Handed over</p>")
        assert (created.status_code, created.note.note_id) == (201, "n1")
        assert json.loads(us.requests[-1].content) == {"content": "<p>Handed over</p>"}
        assert us.requests[-1].headers["Content-Type"] == "application/json"
        assert [n.content for n in kandji.list_device_notes(MAC_ID).notes] == ["<p>Handed over</p>"]
        assert kandji.list_device_apps(MAC_ID).card() == {"Apps": [{"app_name": "Safari",
                                                                    "bundle_id": "com.apple.Safari"}]}
        assert kandji.list_device_library_items(MAC_ID).items_list == [{"id": 1, "status": "PASS"}]


def test_actions_send_the_references_bodies(us):
    sent = {}

    def record(status, body=None):
        def handler(request):
            sent[request.url.path.rsplit("/", 1)[-1]] = json.loads(request.content) if request.content else None
            return reply(status, body)
        return handler

    for name in ("blankpush", "restart", "setname", "unlockaccount", "remotedesktop", "erase", "shutdown",
                 "updateinventory", "reinstallagent", "clearpasscode"):
        us.on("POST", f"/api/v1/devices/{PHONE_ID}/action/{name}", record(200))
    us.on("POST", f"/api/v1/devices/{MAC_ID}/action/lock", record(200, {"PIN": "123456"}))
    us.on("POST", f"/api/v1/devices/{PHONE_ID}/action/lock", record(200))
    with kandji_on(us) as kandji:
        assert kandji.lock_device(MAC_ID).card() == {"PIN": "123456", "Status Code": 200}
        assert kandji.lock_device(PHONE_ID, message="Lost", phone_number="+1 555").pin is None
        assert sent["lock"] == {"Message": "Lost", "PhoneNumber": "+1 555"}
        kandji.erase_device(PHONE_ID, pin="012345", preserve_data_plan=True, disallow_proximity_setup=False)
        assert sent["erase"] == {"PIN": "012345", "PreserveDataPlan": True, "DisallowProximitySetup": False}
        assert kandji.erase_device(PHONE_ID, pin=12345).pin == "012345"  # the card's Number keeps its zeros
        us.on("GET", f"/api/v1/devices/{MAC_ID}", reply(200, MAC))
        us.on("GET", f"/api/v1/devices/{PHONE_ID}", reply(200, PHONE))
        with pytest.raises(InvalidInput) as no_pin:
            kandji.erase_device(MAC_ID)  # the card: a Mac must be given its PIN
        assert "is a Mac: give its PIN" in str(no_pin.value)
        assert kandji.erase_device(PHONE_ID, preserve_data_plan=False).pin is None
        assert sent["erase"] == {"PreserveDataPlan": False}
        kandji.restart_device(PHONE_ID, notify_user=True)
        assert sent["restart"] == {"RebuildKernelCache": False, "NotifyUser": True}
        kandji.set_device_name(PHONE_ID, "Kiosk 1")
        kandji.unlock_user_account(PHONE_ID, "ana")
        kandji.manage_apple_remote_desktop(PHONE_ID, "Disable")
        assert (sent["setname"], sent["unlockaccount"], sent["remotedesktop"]) == (
            {"DeviceName": "Kiosk 1"}, {"UserName": "ana"}, {"EnableRemoteDesktop": False})
        for card in (kandji.send_mdm_blank_push, kandji.shutdown_device, kandji.update_inventory,
                     kandji.reinstall_kandji_agent, kandji.clear_passcode):
            assert card(PHONE_ID).status_code == 200
        with pytest.raises(InvalidInput):
            kandji.erase_device(MAC_ID, pin="12a456")
        with pytest.raises(InvalidInput):
            kandji.manage_apple_remote_desktop(MAC_ID, "maybe")
        with pytest.raises(InvalidInput):
            kandji.lock_device("../blueprints")
    assert not any("blueprints" in p for p in us.paths())
    assert f"POST /api/v1/devices/{MAC_ID}/action/erase" not in us.paths()


@pytest.mark.parametrize("body, message", [
    ("Command is not allowed for current device", "Command is not allowed for current device"),  # bare string
    (["Device is not in lost mode."], "Device is not in lost mode."),  # business rule
    ({"PIN": ["PIN must be 6 digits."]}, "PIN: PIN must be 6 digits."),  # field validation
    ({"non_field_errors": ["Message or PhoneNumber is required."]}, "Message or PhoneNumber is required."),
    ({"detail": "User still assigned to one or more devices."}, "User still assigned to one or more devices."),
    ({"message": "API rate limit exceeded"}, "API rate limit exceeded"),
])
def test_refusals_name_the_card_the_device_and_the_status(us, body, message):
    us.on("POST", f"/api/v1/devices/{MAC_ID}/action/clearpasscode", reply(400, body))
    with kandji_on(us) as kandji, pytest.raises(ApiError) as refused:
        kandji.clear_passcode(MAC_ID)
    assert str(refused.value) == f"Clear Passcode (device {MAC_ID}): 400 {message}"
    assert refused.value.as_dict() == {"card": "Clear Passcode", "device_id": MAC_ID, "status_code": 400,
                                       "message": message, "body": body}


def test_lost_mode_cards_describe_the_device_and_read_it_first(us):
    us.on("GET", f"/api/v1/devices/{MAC_ID}", reply(200, MAC))
    us.on("POST", f"/api/v1/devices/{MAC_ID}/action/enablelostmode", reply(200))
    us.on("POST", f"/api/v1/devices/{MAC_ID}/action/disablelostmode", reply(200, "Disable lost mode already pending"))
    with kandji_on(us) as kandji:
        on = kandji.turn_on_lost_mode(MAC_ID, phone_number="+1 555 0100")
        assert on.card() == {"Device ID": MAC_ID, "Device Name": "Ana's MacBook Pro", "Serial Number": "C02XL0GHJGH5",
                             "Platform": "Mac", "User Email": "ana@accuhive.com", "Status Code": 200,
                             "Message": "+1 555 0100"}
        assert json.loads(us.requests[-1].content) == {"PhoneNumber": "+1 555 0100"}
        assert kandji.turn_off_lost_mode(MAC_ID).message == "Disable lost mode already pending"
    us.on("GET", f"/api/v1/devices/{MAC_ID}", reply(403, {"detail": "You do not have permission."}))
    with kandji_on(us) as kandji, pytest.raises(PermissionMissing) as refused:
        kandji.play_lost_mode_sound(MAC_ID)
    assert "GET /api/v1/devices/{device_id} (Devices › Device Information › Device ID)" in str(refused.value)
    assert not any(p.endswith("playlostmodesound") for p in us.paths())


def test_update_device_sends_the_cards_inputs(us):
    def patch(request):
        body = json.loads(request.content)
        return reply(200, {**MAC, "asset_tag": body.get("asset_tag", ""), "blueprint_id": body.get("blueprint_id")})

    us.on("PATCH", f"/api/v1/devices/{MAC_ID}", patch)
    with kandji_on(us) as kandji:
        out = kandji.update_device(MAC_ID, blueprint_id=BLUEPRINT_ID, kandji_user_id=29360, asset_tag="IT-7")
        assert json.loads(us.requests[-1].content) == {"blueprint_id": BLUEPRINT_ID, "user": 29360,
                                                       "asset_tag": "IT-7"}
        assert (out.status, out.asset_tag, out.user.user_email) == (200, "IT-7", "ana@accuhive.com")
        assert out.card()["User"] == {"User Email": "ana@accuhive.com", "User Name": "Ana Lima",
                                      "User ID": MAC["user"]["id"], "User is Archived": False}


# --- blueprints and ADE ----------------------------------------------------------------------------------------------

def _envelope(request: httpx.Request, records: list, page_size: int, *, by_page: bool) -> httpx.Response:
    query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
    if by_page:
        page = int(query.get("page", 1))
        start, size = (page - 1) * page_size, page_size
        more = f"https://accuhive.kandji.io{request.url.path}?page={page + 1}"  # the web-app host, as seen live
    else:
        start, size = int(query.get("offset", 0)), min(int(query.get("limit", 300)), page_size)
        more = f"https://{request.url.host}{request.url.path}?limit={size}&offset={start + size}"
    chunk = records[start:start + size]
    return reply(200, {"count": len(records), "next": more if start + size < len(records) else None,
                       "previous": None, "results": chunk})


def test_blueprints_create_get_list(us):
    blueprints = [{**BLUEPRINT, "id": f"bp-{i}", "name": f"Blueprint {i}"} for i in range(450)] + [BLUEPRINT]
    us.on("GET", "/api/v1/blueprints", lambda r: _envelope(
        r, [b for b in blueprints if parse_qs(r.url.query.decode()).get("name", [""])[0] in b["name"]], 300,
        by_page=False))
    us.on("GET", f"/api/v1/blueprints/{BLUEPRINT_ID}", reply(200, BLUEPRINT))
    us.on("POST", "/api/v1/blueprints", lambda r: reply(201, {**BLUEPRINT, "name": parse_qs(r.content.decode())
                                                                ["name"][0]}))
    with kandji_on(us) as kandji:
        created = kandji.create_blueprint("Sales", False, color="aqua-800")
        post = us.requests[-1]
        assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert parse_qs(post.content.decode()) == {"name": ["Sales"], "enrollment_code.is_active": ["false"],
                                                   "color": ["aqua-800"]}
        assert (created.status_code, created.blueprint["name"]) == (201, "Sales")
        got = kandji.get_blueprint(BLUEPRINT_ID)
        assert (got.count, got.missing, got.enrollment_code, got.enrollment_code_is_active) == (42, 1, "123456", True)
        assert kandji.get_blueprint(blueprint_name="Engineering").id == BLUEPRINT_ID
        with pytest.raises(NotFound):
            kandji.get_blueprint(BLUEPRINT_ID, "Sales")
        with pytest.raises(InvalidInput):
            kandji.get_blueprint()
        first = kandji.list_blueprints("first-200")
        assert len(first.results) == 200 and first.card()["Record Count"] is None
        assert "limit=200" in str(us.requests[-1].url)
        names = []
        stream = kandji.list_blueprints("stream", helper=lambda b, ctx: names.append(ctx + b["name"]), context="> ")
        result = stream.run()
    assert result.card() == {"Results": None, "Record Count": 451} and names[-1] == "> Engineering"
    assert stream.total == 451  # the envelope's count: what a progress bar shows as its end


def test_ade_cards_follow_next_on_the_api_host(us):
    devices = [ade_device(i, enrolled=i % 3 != 0) for i in range(700)]
    us.on("GET", f"/api/v1/integrations/apple/ade/{ADE_ID}", reply(200, ADE_INTEGRATION))
    us.on("GET", "/api/v1/integrations/apple/ade", lambda r: _envelope(r, [ADE_INTEGRATION], 300, by_page=True))
    us.on("GET", f"/api/v1/integrations/apple/ade/{ADE_ID}/devices",
          lambda r: _envelope(r, devices, 300, by_page=True))
    with kandji_on(us) as kandji:
        integration = kandji.get_ade_integration(ADE_ID)
        assert integration.card() == {
            "ADE Token ID": ADE_ID, "Default Blueprint ID": BLUEPRINT_ID, "Default Blueprint Name": "Engineering",
            "Default Blueprint Color": "aqua-800", "Default Blueprint Icon": "ss-files",
            "Access Token Expiry": "2025-03-01T00:00:00Z", "Server Name": "Accuhive ABM",
            "Server UUID": "A1B2C3D4E5F6", "Organization Name": "Accuhive", "Organization Email": "it@accuhive.com",
            "Organization Phone": "+1 555 0100", "Stoken File Name": "accuhive.p7m",
            "Last Device Sync": "2024-07-23T14:00:00Z", "Default Email": "it@accuhive.com",
            "Default Phone": "+1 555 0101", "Days Left": 221, "Status": "SUCCESS", "Status Reason": None,
            "Status Received At": "2024-07-23T14:00:00Z", "Apple TV Device Count": 2, "iPad Device Count": 12,
            "iPhone Device Count": 30, "Mac Device Count": 40, "Total Device Count": 84,
            "admin_id": "admin@accuhive.com", "org_address": "1 Hive Way", "org_type": "edu"}
        assert kandji.list_ade_integrations().results == [ADE_INTEGRATION]
        first = kandji.list_ade_devices(ADE_ID)  # First 300 Records
        assert [d["id"] for d in first.results] == [f"ade-{i}" for i in range(300)]
        awaiting = []
        stream = kandji.list_ade_devices(ADE_ID, "stream",
                                         helper=lambda d, ctx: d["mdm_device"] is None and awaiting.append(d["id"]))
        assert stream.run().record_count == 700 and len(awaiting) == len([i for i in range(700) if i % 3 == 0])
        assert stream.total == 700
        with pytest.raises(InvalidInput):
            kandji.get_ade_integration("../devices")
    pages = [str(r.url) for r in us.requests if r.url.path.endswith(f"{ADE_ID}/devices")]
    # `next` named the web app's host: the connector replayed its query on the API host, with the same token.
    assert all(p.startswith(f"https://{US}/api/v1/integrations/apple/ade/{ADE_ID}/devices?page=") for p in pages)
    assert pages[-3:] == [f"https://{US}/api/v1/integrations/apple/ade/{ADE_ID}/devices?page={n}" for n in (1, 2, 3)]


# --- List Devices paging ---------------------------------------------------------------------------------------------

def test_stream_pages_by_offset_until_an_empty_page(us):
    us.devices = [{**MAC, "device_id": f"d{i:04d}"} for i in range(650)]
    with kandji_on(us) as kandji:
        seen = []
        stream = kandji.list_devices("stream", platform="Mac", helper=lambda d, ctx: seen.append(ctx),
                                     context={"run": 1})
        ids = [d.device_id for d in stream]
    assert ids == [f"d{i:04d}" for i in range(650)] and seen == [{"run": 1}] * 650
    # Each page is asked for as soon as the previous one arrived, guessing it was full (900); the short page at
    # 600 corrects the guess (650), whose empty answer ends the stream.
    assert [str(r.url) for r in us.requests[1:]] == [
        f"https://{US}/api/v1/devices?platform=Mac&limit=300&offset={n}" for n in (0, 300, 600, 900, 650)]


def test_a_server_that_ignores_offset_is_stopped_not_looped(us):
    us.devices = [{**MAC, "device_id": f"d{i}"} for i in range(300)]
    us.on("GET", "/api/v1/devices", lambda r: reply(200, us.devices))  # the same page whatever the offset
    with kandji_on(us, validate=False) as kandji, pytest.raises(ApiError) as stuck:
        list(kandji.list_devices("stream"))
    assert "ignored `offset`" in str(stuck.value) and len(us.requests) <= 3  # first page, its copy, one ahead


# --- retries and rate limits ------------------------------------------------------------------------------------------

def _sequence(*responses):
    answers = list(responses)

    def handler(request):
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return handler


def test_429_waits_retry_after_and_holds_back_later_calls(us):
    clock = FakeClock()
    us.on("POST", f"/api/v1/devices/{MAC_ID}/action/lock", _sequence(
        reply(429, {"message": "API rate limit exceeded"}, {"Retry-After": "2"}), reply(200, {"PIN": "123456"})))
    with kandji_on(us, clock=clock) as kandji:
        assert kandji.lock_device(MAC_ID).pin == "123456"  # a 429 was refused before it ran: POST retried too
        assert clock.slept == [2.0]
        http_date = email.utils.formatdate(time.time() + 30, usegmt=True)
        us.on("GET", "/api/v1/devices", _sequence(reply(429, None, {"Retry-After": http_date}), reply(200, [MAC])))
        assert kandji.list_devices("first").device_id == MAC_ID
        assert 25 <= clock.slept[-1] <= 31
        us.on("GET", "/api/v1/devices", _sequence(reply(429, None, {"Retry-After": "3600"}), reply(200, [MAC])))
        kandji.list_devices("first")
        assert clock.slept[-1] == 60.0  # capped
        us.on("GET", "/api/v1/devices", _sequence(reply(429), reply(200, [MAC])))
        kandji.list_devices("first")
        assert clock.slept[-1] == 1.0  # no Retry-After: one second
        us.on("GET", "/api/v1/devices", reply(429, {"message": "API rate limit exceeded"}, {"Retry-After": "1"}))
        with pytest.raises(RateLimited) as limited:
            kandji.list_devices("first")
    assert str(limited.value) == "List Devices: 429 API rate limit exceeded"


def test_rate_limit_remaining_zero_paces_the_next_call(us):
    clock = FakeClock()
    us.on("GET", "/api/v1/devices", reply(200, [MAC], {"RateLimit-Remaining": "0", "RateLimit-Reset": "1"}))
    with kandji_on(us, clock=clock) as kandji:
        clock.slept.clear()
        kandji.list_devices("first")
        assert clock.slept == [1.0]  # the validation call used up the window


def test_5xx_and_timeouts_are_retried_on_idempotent_calls_only(us):
    clock = FakeClock()
    with kandji_on(us, clock=clock, max_retries=3, backoff_base=0.5, backoff_cap=1.5) as kandji:
        us.on("GET", f"/api/v1/devices/{MAC_ID}", _sequence(reply(502), httpx.ReadTimeout("slow"), reply(503),
                                                            reply(200, MAC)))
        clock.slept.clear()
        assert kandji.get_device(MAC_ID).device_id == MAC_ID
        assert len(clock.slept) == 3
        assert all(0 <= wait <= cap for wait, cap in zip(clock.slept, (0.5, 1.0, 1.5)))  # capped, jittered

        us.on("GET", f"/api/v1/devices/{MAC_ID}", reply(500, {"detail": "boom"}))
        before = len(us.requests)
        with pytest.raises(ServerError) as failed:
            kandji.get_device(MAC_ID)
        assert len(us.requests) - before == 4 and str(failed.value) == f"Get Device (device {MAC_ID}): 500 boom"

        us.on("POST", f"/api/v1/devices/{MAC_ID}/action/erase", reply(503))
        before = len(us.requests)
        with pytest.raises(ServerError):
            kandji.erase_device(MAC_ID, pin="123456")  # may have been queued: never sent twice
        assert len(us.requests) - before == 1

        us.on("POST", f"/api/v1/devices/{MAC_ID}/action/shutdown", _sequence(httpx.ReadTimeout("slow"), reply(200)))
        before = len(us.requests)
        with pytest.raises(ConnectionFailed) as lost:
            kandji.shutdown_device(MAC_ID)
        assert len(us.requests) - before == 1 and "Shutdown Device (device" in str(lost.value)

        us.on("POST", f"/api/v1/devices/{MAC_ID}/action/restart",
              _sequence(httpx.ConnectError("refused"), reply(200)))
        assert kandji.restart_device(MAC_ID).status_code == 200  # never reached the API: safe to send again


# --- Custom API Action -----------------------------------------------------------------------------------------------

def test_custom_api_action_on_the_recorded_api(us):
    def echo(request):
        return reply(200, {"query": parse_qs(request.url.query.decode()), "extra": request.headers.get("X-Source"),
                           "auth": request.headers["Authorization"] == f"Bearer {TOKEN}",
                           "body": json.loads(request.content) if request.content else None},
                     {"X-Total-Count": "2"})

    us.on("POST", "/api/v1/tags", echo)
    us.on("GET", "/api/v1/devices", echo)
    with kandji_on(us, validate=False) as kandji:
        result = kandji.custom_api_action("GET", "/api/v1/devices?platform=Mac", query={"limit": 5},
                                          headers={"X-Source": "okta", "Authorization": "Bearer other"})
        assert result.status_code == 200 and result.headers["x-total-count"] == "2"
        assert result.body == {"query": {"platform": ["Mac"], "limit": ["5"]}, "extra": "okta", "auth": True,
                               "body": None}
        posted = kandji.custom_api_action("POST", "tags", body={"name": "lab"})
        assert posted.body["body"] == {"name": "lab"} and posted.body["auth"] is True
        assert us.requests[-1].headers["Content-Type"] == "application/json"
        missing = kandji.custom_api_action("GET", "/nothing/here")
        assert missing.card() == {"Status Code": 404, "Headers": dict(missing.headers),
                                  "Body": {"detail": "Not found."}}
        for bad in ("https://evil.example.com/api/v1/devices", "//evil.example.com/devices"):
            with pytest.raises(InvalidInput):
                kandji.custom_api_action("GET", bad)
    assert all(r.url.host == US for r in us.requests)


def test_plain_http_beyond_this_machine_is_flagged():
    from bramley.connector.domains import is_plain_http_to_remote

    assert is_plain_http_to_remote("http://10.0.0.5:8080") and is_plain_http_to_remote("http://mdm.example.com")
    assert not any(is_plain_http_to_remote(u) for u in ("http://127.0.0.1:8080", "http://localhost:8080",
                                                         "http://[::1]:8080", "https://mdm.example.com"))
