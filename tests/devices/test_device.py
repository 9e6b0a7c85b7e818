"""One device: GET, the Update Device PATCH, DELETE, details and the status sub-resources (reference §3.1, §4.1-4.3)."""
from __future__ import annotations

import re

from bramley.devices import service as devices
from bramley.users import service as users

DETAIL_SECTIONS = ["general", "mdm", "activation_lock", "filevault", "lost_mode", "automated_device_enrollment",
                   "kandji_agent", "hardware_overview", "volumes", "network", "recovery_information", "users",
                   "installed_profiles", "apple_business_manager", "security_information", "cellular", "tags"]
GENERAL_FIELDS = ["device_id", "device_name", "last_enrollment", "first_enrollment", "model", "platform", "os_version",
                  "supplemental_build_version", "supplemental_os_version_extra", "system_version", "boot_volume",
                  "time_since_boot", "last_user", "asset_tag", "assigned_user", "blueprint_name", "blueprint_uuid"]
SPACED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _devices(client, tenant, query: str = "") -> list[dict]:
    return client.get(f"/api/v1/devices{query}", headers=tenant.auth).json()


def _one(client, tenant, query: str = "") -> dict:
    return _devices(client, tenant, query)[0]


def _blueprints(client, tenant) -> list[dict]:
    return client.get("/api/v1/blueprints", headers=tenant.auth).json()["results"]


def _users(client, tenant) -> list[dict]:
    return client.get("/api/v1/users", headers=tenant.auth).json()["results"]


def _listed(client, tenant, device_id: str) -> dict:
    return _one(client, tenant, f"?device_id={device_id}")


# --- GET ---------------------------------------------------------------------------------------------------

def test_get_device_is_the_same_object_as_in_the_list(client, tenant):
    for listed in _devices(client, tenant, "?limit=5"):
        r = client.get(f"/api/v1/devices/{listed['device_id']}", headers=tenant.auth)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == listed
        assert list(r.json()) == list(listed)


def test_get_device_with_trailing_slash_works(client, tenant):
    device = _one(client, tenant)
    assert client.get(f"/api/v1/devices/{device['device_id']}/", headers=tenant.auth).json() == device


def test_unknown_or_malformed_device_id_is_404(client, tenant):
    for device_id in ("0b7a5a3e-1111-4222-8333-944455556666", "not-a-uuid", "12345"):
        r = client.get(f"/api/v1/devices/{device_id}", headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_another_tenants_device_is_404(client, tenant, make_tenant):
    other = make_tenant(devices=1)
    device = _one(client, other)
    assert client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).status_code == 404
    assert client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": "x"},
                        headers=tenant.auth).status_code == 404
    assert client.delete(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).status_code == 404
    assert _listed(client, other, device["device_id"])["asset_tag"] == device["asset_tag"]


# --- PATCH -------------------------------------------------------------------------------------------------

def test_patch_moves_device_to_another_blueprint(client, tenant):
    device = _one(client, tenant)
    target = next(b for b in _blueprints(client, tenant) if b["id"] != device["blueprint_id"])
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"blueprint_id": target["id"]},
                     headers=tenant.auth)
    assert r.status_code == 200
    assert r.json()["blueprint_id"] == target["id"] and r.json()["blueprint_name"] == target["name"]
    assert _listed(client, tenant, device["device_id"]) == r.json()
    details = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth).json()
    assert details["general"]["blueprint_uuid"] == target["id"]
    assert details["general"]["blueprint_name"] == target["name"]


def test_patch_returns_the_whole_updated_device_in_list_field_order(client, tenant):
    device = _one(client, tenant)
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": "BR-1"}, headers=tenant.auth)
    assert r.status_code == 200
    assert r.json() == {**device, "asset_tag": "BR-1"}
    assert list(r.json()) == list(device)


def test_patch_user_by_uuid_assigns_user(client, tenant):
    device = _one(client, tenant)
    user = next(u for u in _users(client, tenant) if device["user"] is None or u["id"] != device["user"]["id"])
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": user["id"]}, headers=tenant.auth)
    assert r.status_code == 200
    expected = {"email": user["email"], "name": user["name"], "id": user["id"], "is_archived": False}
    assert r.json()["user"] == expected
    assert _listed(client, tenant, device["device_id"])["user"] == expected
    details = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth).json()
    assert details["general"]["assigned_user"] == expected


def test_patch_user_accepts_legacy_int_and_numeric_string(client, tenant):
    device = _one(client, tenant)
    a, b = _users(client, tenant)[:2]
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": int(a["deprecated_user_id"])},
                     headers=tenant.auth)
    assert r.status_code == 200 and r.json()["user"]["id"] == a["id"]
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": b["deprecated_user_id"]},
                     headers=tenant.auth)
    assert r.status_code == 200 and r.json()["user"]["id"] == b["id"]


def test_patch_user_null_unassigns(client, tenant):
    device = next(d for d in _devices(client, tenant) if d["user"] is not None)
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": None}, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["user"] is None
    assert _listed(client, tenant, device["device_id"])["user"] is None
    assert client.get(f"/api/v1/devices?user_id={device['user']['id']}&device_id={device['device_id']}",
                      headers=tenant.auth).text == "[]"


def test_patch_asset_tag_null_reads_back_as_empty_string(client, tenant):
    device = _one(client, tenant)
    client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": "BR-7"}, headers=tenant.auth)
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": None}, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["asset_tag"] == ""
    assert _listed(client, tenant, device["device_id"])["asset_tag"] == ""


def test_patch_tags_sets_names_and_empty_list_clears(client, tenant):
    device = _one(client, tenant)
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"tags": ["Zeta", "Alpha"]}, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["tags"] == ["Alpha", "Zeta"]
    assert _listed(client, tenant, device["device_id"])["tags"] == ["Alpha", "Zeta"]
    assert [d["device_id"] for d in _devices(client, tenant, "?tag_name=Zeta")] == [device["device_id"]]
    details = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth).json()
    assert details["tags"] == ["Alpha", "Zeta"]
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"tags": []}, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["tags"] == []
    assert _listed(client, tenant, device["device_id"])["tags"] == []


def test_patch_leaves_fields_it_was_not_given_alone(client, tenant):
    device = next(d for d in _devices(client, tenant) if d["user"] is not None and d["tags"])
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": "ONLY-THIS"}, headers=tenant.auth)
    assert r.json()["user"] == device["user"] and r.json()["tags"] == device["tags"]
    assert r.json()["blueprint_id"] == device["blueprint_id"]


def test_patch_unknown_blueprint_is_field_error_and_changes_nothing(client, tenant):
    device = _one(client, tenant)
    missing = "0b7a5a3e-1111-4222-8333-944455556666"
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": "NEW", "blueprint_id": missing},
                     headers=tenant.auth)
    assert r.status_code == 400
    assert r.json() == {"blueprint_id": [f'Invalid pk "{missing}" - object does not exist.']}
    assert _listed(client, tenant, device["device_id"]) == device


def test_patch_unknown_user_is_field_error_and_changes_nothing(client, tenant):
    device = _one(client, tenant)
    target = next(b for b in _blueprints(client, tenant) if b["id"] != device["blueprint_id"])
    for ref in ("0b7a5a3e-1111-4222-8333-944455556666", 999999, "999999"):
        r = client.patch(f"/api/v1/devices/{device['device_id']}",
                         json={"blueprint_id": target["id"], "tags": ["Brand New"], "user": ref}, headers=tenant.auth)
        assert r.status_code == 400
        assert r.json() == {"user": [f'Invalid pk "{ref}" - object does not exist.']}
    assert _listed(client, tenant, device["device_id"]) == device
    assert client.get("/api/v1/tags?search=Brand New", headers=tenant.auth).json()["count"] == 0


def test_patch_with_wrong_types_is_field_error(client, tenant):
    device = _one(client, tenant)
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"tags": "Finance"}, headers=tenant.auth)
    assert r.status_code == 400 and list(r.json()) == ["tags"]
    assert _listed(client, tenant, device["device_id"]) == device


# --- DELETE ------------------------------------------------------------------------------------------------

def test_delete_device_is_204_then_404_and_gone_from_list(client, tenant):
    device = _one(client, tenant)
    r = client.delete(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth)
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).status_code == 404
    assert client.delete(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).status_code == 404
    assert client.get(f"/api/v1/devices?device_id={device['device_id']}", headers=tenant.auth).text == "[]"
    assert len(_devices(client, tenant)) == 39


# --- details -----------------------------------------------------------------------------------------------

def test_details_has_every_section_in_order(client, tenant):
    for platform in ("Mac", "iPhone"):
        device = _one(client, tenant, f"?platform={platform}")
        r = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth)
        assert r.status_code == 200
        body = r.json()
        assert list(body) == DETAIL_SECTIONS
        assert list(body["general"]) == GENERAL_FIELDS
        assert list(body["mdm"]) == ["mdm_enabled", "supervised", "install_date", "last_check_in",
                                     "mdm_enabled_user"]
        assert list(body["kandji_agent"]) == ["agent_installed", "install_date", "last_check_in", "agent_version"]
        assert set(body["users"]) == {"regular_users", "system_users"}


def test_details_flags_are_strings_not_booleans(client, tenant):
    device = next(d for d in _devices(client, tenant, "?platform=Mac") if d["agent_installed"] and d["mdm_enabled"])
    body = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth).json()
    assert body["mdm"]["mdm_enabled"] == "True"
    assert body["mdm"]["supervised"] in ("True", "False")
    assert body["kandji_agent"]["agent_installed"] == "True"
    assert body["volumes"][0]["encrypted"] == "Yes"
    ios = _one(client, tenant, "?platform=iPhone")
    body = client.get(f"/api/v1/devices/{ios['device_id']}/details", headers=tenant.auth).json()
    assert body["kandji_agent"]["agent_installed"] == "False"


def test_details_general_matches_the_device(client, tenant):
    device = next(d for d in _devices(client, tenant, "?platform=Mac")
                  if d["user"] and d["last_check_in"] and d["agent_installed"])
    body = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth).json()
    general = body["general"]
    for field in ("device_id", "device_name", "model", "platform", "os_version", "asset_tag", "blueprint_name",
                  "first_enrollment", "last_enrollment"):
        assert general[field] == device[field]
    assert general["assigned_user"] == device["user"]
    assert general["blueprint_uuid"] == device["blueprint_id"]
    assert general["system_version"].startswith(device["os_version"] + " (")
    assert body["tags"] == device["tags"]
    # Each timestamp keeps its own format (§2.3): mdm dates are space-separated, the agent's ISO Z.
    assert SPACED.match(body["mdm"]["install_date"]) and SPACED.match(body["mdm"]["last_check_in"])
    assert ISO_Z.match(body["kandji_agent"]["last_check_in"])
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00$", body["kandji_agent"]["install_date"])
    assert body["hardware_overview"]["serial_number"] == device["serial_number"]


def test_details_of_unknown_device_is_404(client, tenant):
    r = client.get("/api/v1/devices/0b7a5a3e-1111-4222-8333-944455556666/details", headers=tenant.auth)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


# --- apps, library items, parameters, status ---------------------------------------------------------------

APP_FIELDS = {"app_id", "app_name", "bundle_id", "bundle_size", "app_store_vendable", "device_based_vpp", "source",
              "process", "signature", "creation_date", "modification_date", "path", "version"}


def test_apps_envelope_lists_string_fields(client, tenant):
    device = _one(client, tenant, "?platform=Mac")
    r = client.get(f"/api/v1/devices/{device['device_id']}/apps", headers=tenant.auth)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["device_id", "apps"] and body["device_id"] == device["device_id"]
    assert body["apps"]
    for app in body["apps"]:
        assert set(app) == APP_FIELDS and all(isinstance(v, str) for v in app.values())


def test_device_without_inventory_has_empty_sections_and_no_apps(client, tenant):
    with tenant.db.unit_of_work() as s:
        tv = devices.create(s, tenant.ctx(s), devices.NewDevice(serial_number="TVNOINVENTORY", platform="AppleTV",
                                                                model="Apple TV 4K"))
        device_id = tv.id
    assert client.get(f"/api/v1/devices/{device_id}/apps", headers=tenant.auth).json() == {
        "device_id": device_id, "apps": []}
    body = client.get(f"/api/v1/devices/{device_id}/details", headers=tenant.auth).json()
    assert list(body) == DETAIL_SECTIONS
    assert body["lost_mode"] == {} and body["network"] == {} and body["volumes"] == []
    assert body["general"]["assigned_user"] is None and body["general"]["blueprint_uuid"] is None
    assert body["kandji_agent"] == {"agent_installed": "False", "install_date": "", "last_check_in": "",
                                    "agent_version": ""}
    for sub, key in (("library-items", "library_items"), ("parameters", "parameters")):
        assert client.get(f"/api/v1/devices/{device_id}/{sub}", headers=tenant.auth).json() == {
            "device_id": device_id, key: []}


LIBRARY_ITEM_FIELDS = ["id", "status", "reported_at", "log", "last_audit_run", "last_audit_log", "control_log",
                       "control_reported_at", "item_id", "name", "type", "computer", "blueprint", "rules_present"]


def test_library_items_envelope_and_fields(client, tenant):
    device = _one(client, tenant)
    r = client.get(f"/api/v1/devices/{device['device_id']}/library-items", headers=tenant.auth)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["device_id", "library_items"] and body["device_id"] == device["device_id"]
    assert len(body["library_items"]) == 5
    for item in body["library_items"]:
        assert list(item) == LIBRARY_ITEM_FIELDS
        assert isinstance(item["id"], int) and isinstance(item["rules_present"], bool)
        assert item["computer"] == {"id": device["device_id"], "name": device["device_name"]}
        assert item["blueprint"] == {"id": device["blueprint_id"], "name": device["blueprint_name"]}
        assert item["status"] in ("PASS", "PENDING", "ERROR")
        assert ISO_Z.match(item["reported_at"])
    assert {i["name"] for i in body["library_items"]} == {
        "Google Chrome", "FileVault", "Passcode", "Set Wallpaper", "macOS Updates"}


def test_parameters_are_listed_for_macs(client, tenant):
    mac = _one(client, tenant, "?platform=Mac")
    r = client.get(f"/api/v1/devices/{mac['device_id']}/parameters", headers=tenant.auth)
    assert r.status_code == 200
    assert r.json() == {"device_id": mac["device_id"], "parameters": [{
        "status": "PASS", "item_id": "a3b5d1e2-0000-4000-8000-000000000001", "name": "Enable Firewall",
        "category": "Security", "subcategory": "Firewall"}]}
    phone = _one(client, tenant, "?platform=iPhone")
    r = client.get(f"/api/v1/devices/{phone['device_id']}/parameters", headers=tenant.auth)
    assert r.json() == {"device_id": phone["device_id"], "parameters": []}


def test_status_combines_library_items_and_parameters(client, tenant):
    mac = _one(client, tenant, "?platform=Mac")
    r = client.get(f"/api/v1/devices/{mac['device_id']}/status", headers=tenant.auth)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["device_id", "library_items", "parameters"]
    items = client.get(f"/api/v1/devices/{mac['device_id']}/library-items", headers=tenant.auth).json()
    assert [(i["id"], i["item_id"], i["name"], i["status"]) for i in body["library_items"]] == [
        (i["id"], i["item_id"], i["name"], i["status"]) for i in items["library_items"]]
    for item in body["library_items"]:
        assert list(item) == ["id", "item_id", "name", "status", "reported_at", "type", "last_audit_log", "log"]
    params = client.get(f"/api/v1/devices/{mac['device_id']}/parameters", headers=tenant.auth).json()
    assert body["parameters"] == params["parameters"]


def test_sub_resources_of_unknown_device_are_404(client, tenant):
    for sub in ("apps", "library-items", "parameters", "status", "notes"):
        r = client.get(f"/api/v1/devices/0b7a5a3e-1111-4222-8333-944455556666/{sub}", headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}, sub


# --- audit -------------------------------------------------------------------------------------------------

def test_device_writes_are_audited_with_the_token(client, tenant):
    token, token_id = tenant.make_token(all_access=True, description="Okta workflow")
    auth = {"Authorization": f"Bearer {token}"}
    device = _one(client, tenant)
    client.patch(f"/api/v1/devices/{device['device_id']}", json={"asset_tag": "A-1"}, headers=auth)
    client.delete(f"/api/v1/devices/{device['device_id']}", headers=auth)
    events = [e for e in client.get("/api/v1/audit/events?sort_by=occurred_at", headers=auth).json()["results"]
              if e["target_id"] == device["device_id"]]
    assert [(e["action"], e["target_type"]) for e in events] == [("update", "device"), ("delete", "device")]
    for e in events:
        assert e["actor_id"] == token_id and e["actor_type"] == "API token"
        assert e["metadata"]["actor_name"] == "Okta workflow"
    assert events[0]["new_state"] == {"asset_tag": "A-1"}


def test_user_uuid_of_archived_user_shows_is_archived(client, tenant):
    device = next(d for d in _devices(client, tenant) if d["user"] is not None)
    with tenant.db.unit_of_work() as s:
        users.archive(s, tenant.ctx(s), device["user"]["id"])
    listed = _listed(client, tenant, device["device_id"])
    assert listed["user"]["is_archived"] is True
    assert client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).json() == listed

