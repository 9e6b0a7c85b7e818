"""Directory users in the Iru API: SCIM-provisioned users keep Iru's wire shape, archive on active=false without
losing their devices, and are the `user` of the devices they are assigned to."""
from __future__ import annotations

from urllib.parse import quote

from tests.scim.conftest import ENTERPRISE, USER, Directory, new_integration
from tests.users.test_api import USER_FIELDS


def _directory(client, tenant) -> Directory:
    token, integration_id = new_integration(tenant)
    return Directory(client, tenant, token, integration_id)


def test_scim_user_has_the_iru_shape(client, make_tenant):
    tenant = make_tenant()
    d = _directory(client, tenant)
    made = d.create_user("ada@corp.example", name={"givenName": "Ada", "familyName": "Lovelace"}, title="CTO",
                         emails=[{"value": "ada.l@corp.example", "type": "work", "primary": True}],
                         **{"schemas": [USER, ENTERPRISE], ENTERPRISE: {"department": "R&D"}})
    user = client.get(f"/api/v1/users/{made['id']}", headers=tenant.auth).json()
    assert list(user) == USER_FIELDS
    assert user["name"] == "Ada Lovelace" and user["email"] == "ada.l@corp.example"
    assert user["department"] == "R&D" and user["job_title"] == "CTO"
    assert user["active"] is True and user["archived"] is False and user["device_count"] == 0
    assert user["integration"] == {"id": "1", "name": "Okta", "uuid": d.integration_id, "type": "scim"}
    assert user["deprecated_user_id"].isdigit()
    display = d.create_user("bob@corp.example", displayName="Bobby B")
    assert client.get(f"/api/v1/users/{display['id']}", headers=tenant.auth).json()["name"] == "Bobby B"


def test_deactivation_archives_the_user_and_their_devices_keep_them(client, make_tenant):
    tenant = make_tenant(devices=4)
    d = _directory(client, tenant)
    made = d.create_user("leaver@corp.example", displayName="Leaver")
    device = client.get("/api/v1/devices", headers=tenant.auth).json()[0]
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": made["id"]}, headers=tenant.auth)
    assert r.json()["user"] == {"email": "leaver@corp.example", "name": "Leaver", "id": made["id"],
                                "is_archived": False}
    d.patch(f"/Users/{made['id']}", {"op": "replace", "path": "active", "value": False})
    user = client.get(f"/api/v1/users/{made['id']}", headers=tenant.auth).json()
    assert user["archived"] is True and user["active"] is False and user["device_count"] == 1
    got = client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).json()
    assert got["user"]["id"] == made["id"] and got["user"]["is_archived"] is True
    listed = client.get("/api/v1/devices?user_id=" + made["id"], headers=tenant.auth).json()
    assert [x["device_id"] for x in listed] == [device["device_id"]] and listed[0]["user"]["is_archived"] is True
    archived = client.get("/api/v1/users?archived=true", headers=tenant.auth).json()["results"]
    assert [u["id"] for u in archived] == [made["id"]]
    d.patch(f"/Users/{made['id']}", {"op": "replace", "path": "active", "value": True})
    assert client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).json()["user"][
        "is_archived"] is False


def test_profile_changes_reach_the_device_user_object(client, make_tenant):
    tenant = make_tenant(devices=2)
    d = _directory(client, tenant)
    made = d.create_user("rename@corp.example", displayName="Old Name")
    device = client.get("/api/v1/devices", headers=tenant.auth).json()[0]
    client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": made["id"]}, headers=tenant.auth)
    d.patch(f"/Users/{made['id']}", {"op": "replace", "value": {"displayName": "New Name",
                                                                 "emails": [{"value": "new@corp.example",
                                                                             "primary": True}]}})
    got = client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth).json()["user"]
    assert got["name"] == "New Name" and got["email"] == "new@corp.example"
    assert client.get("/api/v1/devices?user_email=new@corp", headers=tenant.auth).json()[0]["device_id"] == \
        device["device_id"]


def test_update_device_accepts_the_legacy_id_of_a_scim_user(client, make_tenant):
    tenant = make_tenant(devices=2)
    d = _directory(client, tenant)
    made = d.create_user("legacy@corp.example")
    legacy = client.get(f"/api/v1/users/{made['id']}", headers=tenant.auth).json()["deprecated_user_id"]
    device = client.get("/api/v1/devices", headers=tenant.auth).json()[0]
    r = client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": int(legacy)}, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["user"]["id"] == made["id"]


def test_scim_delete_keeps_the_devices_unassigned(client, make_tenant):
    tenant = make_tenant(devices=2)
    d = _directory(client, tenant)
    made = d.create_user("deleted@corp.example")
    device = client.get("/api/v1/devices", headers=tenant.auth).json()[0]
    client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": made["id"]}, headers=tenant.auth)
    assert d.delete(f"/Users/{made['id']}").status_code == 204
    got = client.get(f"/api/v1/devices/{device['device_id']}", headers=tenant.auth)
    assert got.status_code == 200 and got.json()["user"] is None
    assert client.get(f"/api/v1/users/{made['id']}", headers=tenant.auth).status_code == 404


def test_seeded_users_are_directory_users_an_idp_can_adopt(client, make_tenant):
    tenant = make_tenant(devices=5)
    d = _directory(client, tenant)
    seeded = client.get("/api/v1/users", headers=tenant.auth).json()["results"][0]
    found = d.get("/Users?filter=" + quote(f'userName eq "{seeded["email"].upper()}"')).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == seeded["id"]
    assert found["Resources"][0]["active"] is True
    r = d.put(f"/Users/{seeded['id']}", {"schemas": [USER], "userName": seeded["email"], "displayName": "Adopted",
                                         "active": True})
    assert r.status_code == 200
    assert client.get(f"/api/v1/users/{seeded['id']}", headers=tenant.auth).json()["name"] == "Adopted"


def test_seed_twice_does_not_collide_on_user_names(client, make_tenant):
    from bramley.demo.seed import seed

    tenant = make_tenant(devices=3)
    with tenant.db.unit_of_work() as s:
        seed(s, tenant.ctx(s), devices_count=3, audited=False)
    users = client.get("/api/v1/users", headers=tenant.auth).json()["results"]
    emails = {u["email"] for u in users}
    assert len(users) == 2 * len(emails)  # the same people twice, allowed (no userName for the second copies)
