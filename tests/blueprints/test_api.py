"""Blueprints: list (envelope B), get, create (JSON, urlencoded, multipart), update, delete, library items (§3.4, §4.4)."""
from __future__ import annotations

import re

BLUEPRINT_FIELDS = ["id", "name", "icon", "color", "description", "params", "computers_count",
                    "missing_computers_count", "enrollment_code", "type"]
SEEDED = ["Standard Mac", "Engineering Mac", "Corporate iPhone", "Shared iPad", "Conference Room"]
MISSING = "0b7a5a3e-1111-4222-8333-944455556666"


def _list(client, tenant, query: str = "") -> dict:
    r = client.get(f"/api/v1/blueprints{query}", headers=tenant.auth)
    assert r.status_code == 200
    return r.json()


def _by_name(client, tenant, name: str) -> dict:
    return next(b for b in _list(client, tenant)["results"] if b["name"] == name)


def _create(client, tenant, **body) -> dict:
    r = client.post("/api/v1/blueprints", json={"enrollment_code": {"is_active": True}, **body}, headers=tenant.auth)
    assert r.status_code == 201, r.text
    return r.json()


def _devices(client, tenant, query: str = "") -> list[dict]:
    return client.get(f"/api/v1/devices{query}", headers=tenant.auth).json()


def _library_item_ids(client, tenant) -> list[str]:
    device = _devices(client, tenant, "?limit=1")[0]
    items = client.get(f"/api/v1/devices/{device['device_id']}/library-items", headers=tenant.auth).json()
    return sorted(i["item_id"] for i in items["library_items"])


def _events(client, tenant, target_id: str) -> list[dict]:
    results = client.get("/api/v1/audit/events?sort_by=occurred_at", headers=tenant.auth).json()["results"]
    return [e for e in results if e["target_id"] == target_id]


# --- list and get ------------------------------------------------------------------------------------------

def test_list_is_envelope_b_with_blueprint_fields(client, tenant):
    body = _list(client, tenant)
    assert list(body) == ["count", "next", "previous", "results"]
    assert body["count"] == 5 and body["next"] is None and body["previous"] is None
    assert [b["name"] for b in body["results"]] == SEEDED
    for bp in body["results"]:
        assert list(bp) == BLUEPRINT_FIELDS
        assert list(bp["enrollment_code"]) == ["code", "is_active"]
        assert re.fullmatch(r"\d{6}", bp["enrollment_code"]["code"])
        assert bp["type"] == "classic" and bp["params"] == {}


def test_counts_match_the_device_list(client, tenant):
    for bp in _list(client, tenant)["results"]:
        devices = _devices(client, tenant, f"?blueprint_id={bp['id']}")
        assert bp["computers_count"] == len(devices)
        assert bp["missing_computers_count"] == sum(d["is_missing"] for d in devices)
    assert sum(b["computers_count"] for b in _list(client, tenant)["results"]) == 40


def test_next_and_previous_are_absolute_urls_on_the_request_host(client, tenant):
    base = "https://mdm.example.org:8443/api/v1/blueprints"
    first = client.get(f"{base}?limit=2&source=okta", headers=tenant.auth).json()
    assert first["count"] == 5 and len(first["results"]) == 2
    assert first["next"] == f"{base}?limit=2&source=okta&offset=2" and first["previous"] is None
    second = client.get(first["next"], headers=tenant.auth).json()
    assert second["previous"] == f"{base}?limit=2&source=okta"
    assert second["next"] == f"{base}?limit=2&source=okta&offset=4"
    last = client.get(second["next"], headers=tenant.auth).json()
    assert last["next"] is None and last["previous"] == f"{base}?limit=2&source=okta&offset=2"
    names = [b["name"] for page in (first, second, last) for b in page["results"]]
    assert names == SEEDED


def test_offset_stepping_as_irusdk_does_covers_every_blueprint_once(client, tenant):
    first = _list(client, tenant, "?limit=3&offset=0")
    rest = _list(client, tenant, f"?limit={len(first['results'])}&offset=3")
    assert first["count"] == rest["count"] == 5
    assert [b["name"] for b in first["results"] + rest["results"]] == SEEDED


def test_name_filter_is_case_insensitive_contains(client, tenant):
    assert [b["name"] for b in _list(client, tenant, "?name=mac")["results"]] == ["Standard Mac", "Engineering Mac"]
    body = _list(client, tenant, "?name=Shared iPad")  # the Get Blueprint (by name) card
    assert body["count"] == 1 and body["results"][0]["name"] == "Shared iPad"
    assert _list(client, tenant, "?name=nothing like this") == {"count": 0, "next": None, "previous": None,
                                                                 "results": []}


def test_id_and_id_in_filters(client, tenant):
    a, b, *_ = _list(client, tenant)["results"]
    assert _list(client, tenant, f"?id={a['id']}")["results"] == [a]
    assert _list(client, tenant, f"?id__in={a['id']},{b['id']},{MISSING}")["results"] == [a, b]
    assert _list(client, tenant, "?id=not-a-uuid")["count"] == 0


def test_get_blueprint_by_id_matches_list_entry(client, tenant):
    bp = _list(client, tenant)["results"][0]
    r = client.get(f"/api/v1/blueprints/{bp['id']}/", headers=tenant.auth)
    assert r.status_code == 200 and r.json() == bp
    for bad in (MISSING, "nope"):
        r = client.get(f"/api/v1/blueprints/{bad}", headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_other_tenants_blueprints_are_invisible(client, tenant, make_tenant):
    other = make_tenant(devices=1)
    theirs = _list(client, other)["results"][0]
    assert client.get(f"/api/v1/blueprints/{theirs['id']}", headers=tenant.auth).status_code == 404
    assert _list(client, tenant, f"?id={theirs['id']}")["count"] == 0


# --- create ------------------------------------------------------------------------------------------------

def test_create_from_json_is_201_with_defaults_and_random_code(client, tenant):
    r = client.post("/api/v1/blueprints", json={"name": "Kiosk", "enrollment_code": {"is_active": True}},
                    headers=tenant.auth)
    assert r.status_code == 201
    bp = r.json()
    assert list(bp) == BLUEPRINT_FIELDS
    assert re.fullmatch(r"\d{6}", bp["enrollment_code"]["code"]) and bp["enrollment_code"]["is_active"] is True
    assert {k: bp[k] for k in BLUEPRINT_FIELDS if k not in ("id", "enrollment_code")} == {
        "name": "Kiosk", "icon": "ss-files", "color": "aqua-800", "description": "", "params": {},
        "computers_count": 0, "missing_computers_count": 0, "type": "classic"}
    assert client.get(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth).json() == bp


def test_create_keeps_given_fields(client, tenant):
    bp = _create(client, tenant, name="Lab", color="red-500", icon="ss-flask", description="Lab Macs",
                 type="map", enrollment_code={"code": "424242", "is_active": False})
    assert (bp["color"], bp["icon"], bp["description"], bp["type"]) == ("red-500", "ss-flask", "Lab Macs", "map")
    assert bp["enrollment_code"] == {"code": "424242", "is_active": False}


def test_create_from_urlencoded_dotted_keys(client, tenant):
    r = client.post("/api/v1/blueprints", data={"name": "Form BP", "enrollment_code.is_active": "true",
                                                "enrollment_code.code": "111222", "description": "from a form"},
                    headers=tenant.auth)
    assert r.status_code == 201, r.text
    assert r.json()["enrollment_code"] == {"code": "111222", "is_active": True}
    assert r.json()["description"] == "from a form"
    r = client.post("/api/v1/blueprints", data={"name": "Form BP 2", "enrollment_code.is_active": "False"},
                    headers=tenant.auth)
    assert r.status_code == 201 and r.json()["enrollment_code"]["is_active"] is False


def test_create_from_multipart(client, tenant):
    r = client.post("/api/v1/blueprints", files={"name": (None, "Multipart BP"),
                                                 "enrollment_code.is_active": (None, "True")}, headers=tenant.auth)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Multipart BP" and r.json()["enrollment_code"]["is_active"] is True
    assert re.fullmatch(r"\d{6}", r.json()["enrollment_code"]["code"])


def test_random_codes_differ(client, tenant):
    codes = {_create(client, tenant, name=f"R{i}")["enrollment_code"]["code"] for i in range(5)}
    assert len(codes) > 1


def test_create_without_required_fields_is_field_error(client, tenant):
    r = client.post("/api/v1/blueprints", json={"name": "No code"}, headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"enrollment_code.is_active": ["This field is required."]}
    r = client.post("/api/v1/blueprints", json={"enrollment_code": {"is_active": True}}, headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"name": ["This field is required."]}
    r = client.post("/api/v1/blueprints", data={"name": "x", "enrollment_code.is_active": "maybe"},
                    headers=tenant.auth)
    assert r.status_code == 400 and list(r.json()) == ["enrollment_code.is_active"]
    assert _list(client, tenant)["count"] == 5


def test_duplicate_name_is_400_on_name(client, tenant):
    r = client.post("/api/v1/blueprints", json={"name": "Standard Mac", "enrollment_code": {"is_active": True}},
                    headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"name": ["blueprint with this name already exists."]}
    assert _list(client, tenant)["count"] == 5


def test_create_with_source_copies_that_blueprints_library_items(client, tenant):
    source = _by_name(client, tenant, "Standard Mac")
    item_ids = _library_item_ids(client, tenant)[:2]
    for item_id in item_ids:
        client.post(f"/api/v1/blueprints/{source['id']}/assign-library-item", json={"library_item_id": item_id},
                    headers=tenant.auth)
    copy = _create(client, tenant, name="Standard Mac (copy)", source={"type": "blueprint", "id": source["id"]})
    assert copy["id"] != source["id"] and copy["params"] == source["params"]
    items = client.get(f"/api/v1/blueprints/{copy['id']}/list-library-items", headers=tenant.auth).json()
    assert sorted(i["id"] for i in items["results"]) == sorted(item_ids)
    # The copy gets no devices, and the source keeps its own.
    assert copy["computers_count"] == 0
    assert _by_name(client, tenant, "Standard Mac")["computers_count"] == source["computers_count"]


def test_create_with_source_from_urlencoded_dotted_keys(client, tenant):
    source = _by_name(client, tenant, "Shared iPad")
    r = client.post("/api/v1/blueprints", data={"name": "iPad copy", "enrollment_code.is_active": "true",
                                                "source.type": "blueprint", "source.id": source["id"]},
                    headers=tenant.auth)
    assert r.status_code == 201, r.text


def test_source_of_other_type_is_rule_violation(client, tenant):
    source = _create(client, tenant, name="Map source", type="map")
    r = client.post("/api/v1/blueprints", json={"name": "Classic copy", "enrollment_code": {"is_active": True},
                                                "source": {"type": "blueprint", "id": source["id"]}},
                    headers=tenant.auth)
    assert r.status_code == 400 and r.json() == ["Blueprint type does not match the source blueprint type"]
    assert _list(client, tenant, "?name=Classic copy")["count"] == 0


def test_unknown_source_blueprint_is_field_error(client, tenant):
    r = client.post("/api/v1/blueprints", json={"name": "Orphan", "enrollment_code": {"is_active": True},
                                                "source": {"type": "blueprint", "id": MISSING}},
                    headers=tenant.auth)
    assert r.status_code == 400 and list(r.json()) == ["source.id"]


# --- update ------------------------------------------------------------------------------------------------

def test_patch_rename_shows_in_devices_blueprint_name(client, tenant):
    bp = _by_name(client, tenant, "Standard Mac")
    r = client.patch(f"/api/v1/blueprints/{bp['id']}", json={"name": "Company Mac"}, headers=tenant.auth)
    assert r.status_code == 200
    assert r.json() == {**bp, "name": "Company Mac"}
    devices = _devices(client, tenant, f"?blueprint_id={bp['id']}")
    assert devices and {d["blueprint_name"] for d in devices} == {"Company Mac"}
    details = client.get(f"/api/v1/devices/{devices[0]['device_id']}/details", headers=tenant.auth).json()
    assert details["general"]["blueprint_name"] == "Company Mac"


def test_patch_enrollment_code_from_urlencoded_dotted_keys(client, tenant):
    bp = _by_name(client, tenant, "Shared iPad")
    r = client.patch(f"/api/v1/blueprints/{bp['id']}", data={"enrollment_code.code": "654321",
                                                             "enrollment_code.is_active": "false"},
                     headers=tenant.auth)
    assert r.status_code == 200
    assert r.json()["enrollment_code"] == {"code": "654321", "is_active": False}
    assert r.json()["name"] == "Shared iPad"
    assert client.get(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth).json() == r.json()


def test_patch_to_an_existing_name_is_400_and_changes_nothing(client, tenant):
    bp = _by_name(client, tenant, "Standard Mac")
    r = client.patch(f"/api/v1/blueprints/{bp['id']}", json={"name": "Shared iPad", "description": "x"},
                     headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"name": ["blueprint with this name already exists."]}
    assert client.get(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth).json() == bp


def test_map_blueprint_ignores_color_and_icon(client, tenant):
    bp = _create(client, tenant, name="Map", type="map")
    r = client.patch(f"/api/v1/blueprints/{bp['id']}", json={"color": "red-500", "icon": "ss-x", "description": "d"},
                     headers=tenant.auth)
    assert r.status_code == 200
    assert (r.json()["color"], r.json()["icon"], r.json()["description"]) == (bp["color"], bp["icon"], "d")


def test_patch_unknown_blueprint_is_404(client, tenant):
    r = client.patch(f"/api/v1/blueprints/{MISSING}", json={"name": "x"}, headers=tenant.auth)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


# --- delete ------------------------------------------------------------------------------------------------

def test_deleting_blueprint_unassigns_its_devices(client, tenant):
    bp = _by_name(client, tenant, "Corporate iPhone")
    assigned = [d["device_id"] for d in _devices(client, tenant, f"?blueprint_id={bp['id']}")]
    assert assigned
    r = client.delete(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth)
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth).status_code == 404
    assert client.delete(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth).status_code == 404
    assert _list(client, tenant)["count"] == 4
    for device_id in assigned:
        device = client.get(f"/api/v1/devices/{device_id}", headers=tenant.auth).json()
        assert device["blueprint_id"] is None and device["blueprint_name"] == ""
    assert client.get(f"/api/v1/devices?blueprint_id={bp['id']}", headers=tenant.auth).text == "[]"


def test_device_can_be_moved_back_after_its_blueprint_is_deleted(client, tenant):
    bp = _by_name(client, tenant, "Standard Mac")
    device_id = _devices(client, tenant, f"?blueprint_id={bp['id']}")[0]["device_id"]
    client.delete(f"/api/v1/blueprints/{bp['id']}", headers=tenant.auth)
    target = _by_name(client, tenant, "Engineering Mac")
    r = client.patch(f"/api/v1/devices/{device_id}", json={"blueprint_id": target["id"]}, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["blueprint_name"] == "Engineering Mac"


# --- library items -----------------------------------------------------------------------------------------

def test_list_library_items_is_envelope_b_of_id_and_name(client, tenant):
    bp = _by_name(client, tenant, "Standard Mac")
    url = f"/api/v1/blueprints/{bp['id']}/list-library-items"
    assert client.get(url, headers=tenant.auth).json() == {"count": 0, "next": None, "previous": None,
                                                           "results": []}
    item_ids = _library_item_ids(client, tenant)
    for item_id in item_ids:
        client.post(f"/api/v1/blueprints/{bp['id']}/assign-library-item", json={"library_item_id": item_id},
                    headers=tenant.auth)
    body = client.get(url, headers=tenant.auth).json()
    assert body["count"] == 5 and sorted(i["id"] for i in body["results"]) == item_ids
    assert all(list(i) == ["id", "name"] for i in body["results"])
    page = client.get(f"{url}?limit=2", headers=tenant.auth).json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["next"] == f"http://testserver{url}?limit=2&offset=2"


def test_assign_and_remove_return_every_item_id_the_blueprint_holds(client, tenant):
    bp = _by_name(client, tenant, "Standard Mac")
    a, b = _library_item_ids(client, tenant)[:2]
    r = client.post(f"/api/v1/blueprints/{bp['id']}/assign-library-item", json={"library_item_id": a},
                    headers=tenant.auth)
    assert r.status_code == 200 and r.json() == [a]
    r = client.post(f"/api/v1/blueprints/{bp['id']}/assign-library-item", json={"library_item_id": b},
                    headers=tenant.auth)
    assert r.status_code == 200 and r.json() == sorted([a, b])
    r = client.post(f"/api/v1/blueprints/{bp['id']}/remove-library-item", json={"library_item_id": a},
                    headers=tenant.auth)
    assert r.status_code == 200 and r.json() == [b]


def test_assignment_errors_are_bare_strings(client, tenant):
    classic = _by_name(client, tenant, "Standard Mac")
    item = _library_item_ids(client, tenant)[0]
    node = "5f0e1f47-0000-4000-8000-000000000001"

    def call(bp, action, body):
        return client.post(f"/api/v1/blueprints/{bp['id']}/{action}-library-item", json=body, headers=tenant.auth)

    r = call(classic, "remove", {"library_item_id": item})
    assert r.status_code == 400 and r.json() == "Library Item does not exist on Blueprint"
    call(classic, "assign", {"library_item_id": item})
    r = call(classic, "assign", {"library_item_id": item})
    assert r.status_code == 400 and r.json() == "Library Item already exists on Blueprint"
    r = call(classic, "assign", {"library_item_id": item, "assignment_node_id": node})
    assert r.status_code == 400 and r.json() == "assignment_node_id cannot be provided for Classic Blueprint"

    mapped = _create(client, tenant, name="Map BP", type="map")
    r = call(mapped, "assign", {"library_item_id": item})
    assert r.status_code == 400 and r.json() == "Must provide assignment_node_id for Assignment Map Blueprint"
    r = call(mapped, "remove", {"library_item_id": item, "assignment_node_id": node})
    assert r.status_code == 400 and r.json() == "Library Item does not exist in Assignment Node"
    assert call(mapped, "assign", {"library_item_id": item, "assignment_node_id": node}).json() == [item]
    r = call(mapped, "assign", {"library_item_id": item, "assignment_node_id": node})
    assert r.status_code == 400 and r.json() == "Library Item already exists in Assignment Node"


def test_assign_unknown_library_item_is_field_error(client, tenant):
    bp = _by_name(client, tenant, "Standard Mac")
    r = client.post(f"/api/v1/blueprints/{bp['id']}/assign-library-item", json={"library_item_id": MISSING},
                    headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"library_item_id": ["Library Item not found."]}
    r = client.post(f"/api/v1/blueprints/{MISSING}/assign-library-item", json={"library_item_id": MISSING},
                    headers=tenant.auth)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


# --- audit -------------------------------------------------------------------------------------------------

def test_blueprint_writes_are_audited_with_the_token(client, tenant):
    token, token_id = tenant.make_token(all_access=True, description="Blueprint sync")
    auth = {"Authorization": f"Bearer {token}"}
    bp = client.post("/api/v1/blueprints", json={"name": "Audited", "enrollment_code": {"is_active": True}},
                     headers=auth).json()
    item = _library_item_ids(client, tenant)[0]
    client.patch(f"/api/v1/blueprints/{bp['id']}", json={"name": "Audited 2"}, headers=auth)
    client.post(f"/api/v1/blueprints/{bp['id']}/assign-library-item", json={"library_item_id": item}, headers=auth)
    client.post(f"/api/v1/blueprints/{bp['id']}/remove-library-item", json={"library_item_id": item}, headers=auth)
    client.delete(f"/api/v1/blueprints/{bp['id']}", headers=auth)
    events = _events(client, tenant, bp["id"])
    assert [(e["action"], e["target_component"]) for e in events] == [
        ("create", ""), ("update", ""), ("update", "library_items"), ("update", "library_items"), ("delete", "")]
    for e in events:
        assert (e["actor_id"], e["actor_type"], e["target_type"]) == (token_id, "API token", "blueprint")
        assert e["metadata"]["actor_name"] == "Blueprint sync"
    assert events[0]["new_state"]["name"] == "Audited" and events[1]["new_state"]["name"] == "Audited 2"
