"""Blueprint assignment by group: ordered rules; user change, membership change and enrollment move devices,
each move audited with its rule; a blueprint set by hand stays unless the rule says to override it."""
from __future__ import annotations

import json

import pytest

from bramley.devices import service as devices
from bramley.mdm import service as mdm
from bramley.mdm.protocol import Authenticate, Identity
from tests.conftest import run_cli
from tests.scim.conftest import Directory, new_integration

RULES = "/blueprint-assignment-rules"


@pytest.fixture
def setup(client, make_tenant):
    """A seeded tenant, its SCIM directory, two fresh blueprints and a device with no user."""
    tenant = make_tenant(devices=6)
    token, integration_id = new_integration(tenant)
    d = Directory(client, tenant, token, integration_id)
    api = lambda method, path, **kw: client.request(method, f"/api/v1{path}", headers=tenant.auth, **kw)  # noqa
    bps = {name: api("POST", "/blueprints", json={"name": name, "enrollment_code": {"is_active": True}}).json()["id"]
           for name in ("Engineering Macs", "Sales Macs")}
    device = next(x for x in api("GET", "/devices").json() if x["user"] is not None)
    api("PATCH", f"/devices/{device['device_id']}", json={"user": None})
    return d, api, bps, device["device_id"]


def _blueprint(api, device_id: str) -> str:
    return api("GET", f"/devices/{device_id}").json()["blueprint_id"]


def _rule(api, group_id: str, blueprint_id: str, **extra) -> dict:
    r = api("POST", RULES, json={"group_id": group_id, "blueprint_id": blueprint_id, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_device_user_change_applies_the_first_matching_rule_and_audits_it(setup):
    d, api, bps, device_id = setup
    ada = d.create_user("ada@example.com")
    eng = d.create_group("Engineering", [ada["id"]])
    rule = _rule(api, eng["id"], bps["Engineering Macs"])
    assert rule["position"] == 1 and rule["group_name"] == "Engineering"
    assert rule["blueprint_name"] == "Engineering Macs"
    r = api("PATCH", f"/devices/{device_id}", json={"user": ada["id"]})
    assert r.status_code == 200 and r.json()["blueprint_id"] == bps["Engineering Macs"]
    assert r.json()["blueprint_name"] == "Engineering Macs"
    events = [e for e in api("GET", "/audit/events").json()["results"]
              if e["target_id"] == device_id and e["metadata"].get("assignment_rule_id")]
    assert len(events) == 1
    assert events[0]["metadata"]["assignment_rule_id"] == rule["id"]
    assert events[0]["metadata"]["reason"] == "device_user_changed"
    assert events[0]["new_state"] == {"blueprint_id": bps["Engineering Macs"]}


def test_membership_changes_move_the_users_devices(setup):
    d, api, bps, device_id = setup
    bob = d.create_user("bob@example.com")
    api("PATCH", f"/devices/{device_id}", json={"user": bob["id"]})
    before = _blueprint(api, device_id)
    sales = d.create_group("Sales")
    _rule(api, sales["id"], bps["Sales Macs"])
    assert _blueprint(api, device_id) == before  # a new rule alone moves nothing
    d.patch(f"/Groups/{sales['id']}", {"op": "add", "path": "members", "value": [{"value": bob["id"]}]})
    assert _blueprint(api, device_id) == bps["Sales Macs"]
    reasons = [e["metadata"].get("reason") for e in api("GET", "/audit/events").json()["results"]
               if e["target_id"] == device_id]
    assert "group_membership_changed" in reasons


def test_rules_are_ordered_and_can_be_reordered(setup):
    d, api, bps, device_id = setup
    cy = d.create_user("cy@example.com")
    eng, sales = d.create_group("Engineering", [cy["id"]]), d.create_group("Sales", [cy["id"]])
    first = _rule(api, eng["id"], bps["Engineering Macs"])
    second = _rule(api, sales["id"], bps["Sales Macs"])
    api("PATCH", f"/devices/{device_id}", json={"user": cy["id"]})
    assert _blueprint(api, device_id) == bps["Engineering Macs"]
    moved = api("PATCH", f"{RULES}/{second['id']}", json={"position": 1})
    assert moved.status_code == 200 and moved.json()["position"] == 1
    assert [r["id"] for r in api("GET", RULES).json()] == [second["id"], first["id"]]
    assert api("POST", f"{RULES}/apply").json() == {"devices_moved": 1}
    assert _blueprint(api, device_id) == bps["Sales Macs"]
    # Leaving every matching group leaves the blueprint where it is.
    d.patch(f"/Groups/{sales['id']}", {"op": "remove", "path": "members"})
    assert _blueprint(api, device_id) == bps["Engineering Macs"]  # the next rule still matches
    d.delete(f"/Groups/{eng['id']}")
    assert _blueprint(api, device_id) == bps["Engineering Macs"]


def test_blueprint_set_by_hand_wins_unless_the_rule_overrides(setup):
    d, api, bps, device_id = setup
    ada = d.create_user("ada@example.com")
    eng = d.create_group("Engineering")
    rule = _rule(api, eng["id"], bps["Engineering Macs"])
    api("PATCH", f"/devices/{device_id}", json={"user": ada["id"], "blueprint_id": bps["Sales Macs"]})
    assert _blueprint(api, device_id) == bps["Sales Macs"]
    d.patch(f"/Groups/{eng['id']}", {"op": "add", "path": "members", "value": [{"value": ada["id"]}]})
    assert _blueprint(api, device_id) == bps["Sales Macs"]  # the admin's choice stands
    api("PATCH", f"{RULES}/{rule['id']}", json={"override_manual": True})
    assert api("POST", f"{RULES}/apply").json() == {"devices_moved": 1}
    assert _blueprint(api, device_id) == bps["Engineering Macs"]


def test_enrollment_applies_the_rule(setup):
    d, api, bps, device_id = setup
    ada = d.create_user("ada@example.com")
    api("PATCH", f"/devices/{device_id}", json={"user": ada["id"]})
    eng = d.create_group("Engineering")
    with d.tenant.db.unit_of_work() as s:  # membership arrives before the rule: nothing moves yet
        ctx = d.tenant.ctx(s)
        device = devices.get(s, ctx, device_id)
        udid, serial = device.udid, device.serial_number
    d.patch(f"/Groups/{eng['id']}", {"op": "add", "path": "members", "value": [{"value": ada["id"]}]})
    _rule(api, eng["id"], bps["Engineering Macs"])
    assert _blueprint(api, device_id) != bps["Engineering Macs"]
    with d.tenant.db.unit_of_work() as s:  # the device enrolls again (MDM Authenticate)
        mdm.authenticate(s, d.tenant.ctx(s), "ab" * 32, Authenticate(Identity(udid=udid), topic="",
                                                                         serial_number=serial))
    assert _blueprint(api, device_id) == bps["Engineering Macs"]
    reasons = [e["metadata"].get("reason") for e in api("GET", "/audit/events").json()["results"]
               if e["target_id"] == device_id]
    assert "enrollment" in reasons


def test_rule_changes_are_audited_and_validated(setup):
    d, api, bps, device_id = setup
    eng = d.create_group("Engineering")
    rule = _rule(api, eng["id"], bps["Engineering Macs"])
    assert api("POST", RULES, json={"group_id": "00000000-0000-4000-8000-000000000000",
                                    "blueprint_id": bps["Sales Macs"]}).json() == {
        "group_id": ['Invalid pk "00000000-0000-4000-8000-000000000000" - object does not exist.']}
    assert api("POST", RULES, json={"group_id": eng["id"]}).status_code == 400
    assert api("PATCH", f"{RULES}/{rule['id']}", json={"bogus": 1}).status_code == 400
    assert api("PATCH", f"{RULES}/{rule['id']}", json={"position": 0}).status_code == 400
    assert api("GET", f"{RULES}/not-a-uuid").status_code == 404
    assert api("DELETE", f"{RULES}/{rule['id']}").status_code == 204
    assert api("GET", RULES).json() == []
    events = [(e["action"], e["target_type"]) for e in api("GET", "/audit/events").json()["results"]
              if e["target_id"] == rule["id"]]
    assert ("create", "blueprint_assignment_rule") in events and ("delete", "blueprint_assignment_rule") in events


def test_other_tenants_rules_are_invisible(setup, make_tenant, client):
    d, api, bps, device_id = setup
    rule = _rule(api, d.create_group("Engineering")["id"], bps["Engineering Macs"])
    other = make_tenant()
    assert client.get(f"/api/v1{RULES}", headers=other.auth).json() == []
    assert client.get(f"/api/v1{RULES}/{rule['id']}", headers=other.auth).status_code == 404
    assert client.delete(f"/api/v1{RULES}/{rule['id']}", headers=other.auth).status_code == 404


def test_cli_adds_lists_applies_and_deletes_rules(setup, settings):
    d, api, bps, device_id = setup
    sub = d.tenant.subdomain
    ada = d.create_user("ada@example.com")
    d.create_group("Engineering", [ada["id"]])
    api("PATCH", f"/devices/{device_id}", json={"user": ada["id"]})
    added = json.loads(run_cli(settings, "blueprint-rules", "add", "--tenant", sub, "--group", "engineering",
                               "--blueprint", "Engineering Macs", "--json").stdout)
    assert added["group_name"] == "Engineering" and added["position"] == 1
    listed = json.loads(run_cli(settings, "blueprint-rules", "list", "--tenant", sub, "--json").stdout)
    assert [r["id"] for r in listed] == [added["id"]]
    assert "1 devices moved" in run_cli(settings, "blueprint-rules", "apply", "--tenant", sub).stdout
    assert _blueprint(api, device_id) == bps["Engineering Macs"]
    run_cli(settings, "blueprint-rules", "delete", added["id"], "--tenant", sub)
    assert api("GET", RULES).json() == []
    bad = run_cli(settings, "blueprint-rules", "add", "--tenant", sub, "--group", "nope", "--blueprint", "x",
                  check=False)
    assert bad.returncode == 1 and "no group" in bad.stderr
