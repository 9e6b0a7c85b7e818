"""The Okta (AIW custom app and OIN style) and Microsoft Entra request sequences of the reference, replayed."""
from __future__ import annotations

from urllib.parse import quote

from tests.scim.conftest import ENTERPRISE, GROUP, LIST, PATCH, USER, assert_error

OKTA_UA = {"User-Agent": "Okta SCIM Client 1.0.0"}


def test_okta_custom_app_sequence(directory, client):
    d = directory
    # 1. Test Connector Configuration.
    probe = d.get("/Users?startIndex=1&count=2", headers=OKTA_UA)
    assert probe.status_code == 200 and probe.json()["Resources"] == []
    # 2. Lookup on assignment: no match.
    lookup = "/Users?filter=" + quote('userName eq "test.user@okta.local"') + "&startIndex=1&count=100"
    assert d.get(lookup, headers=OKTA_UA).json() == {"schemas": [LIST], "totalResults": 0, "startIndex": 1,
                                                     "itemsPerPage": 0, "Resources": []}
    # 3. Create.
    created = d.post("/Users", {
        "schemas": [USER], "userName": "test.user@okta.local", "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7", "groups": [],
        "password": "1mz050nq", "active": True}, headers=OKTA_UA)
    assert created.status_code == 201
    user = created.json()
    assert "password" not in user and user["id"] and user["meta"]["resourceType"] == "User"
    # 4. A retried create is a 409 with a string status.
    dup = d.post("/Users", {"schemas": [USER], "userName": "test.user@okta.local"}, headers=OKTA_UA)
    assert assert_error(dup, 409, "uniqueness")["status"] == "409"
    # 5-6. Read, then PUT the profile back with a change.
    read = d.get(f"/Users/{user['id']}", headers=OKTA_UA).json()
    body = {**read, "name": {"givenName": "Test", "familyName": "Userson"}, "displayName": "Test Userson",
            "meta": {"resourceType": "User"}}
    put = d.put(f"/Users/{user['id']}", body, headers=OKTA_UA)
    assert put.status_code == 200 and put.json()["name"]["familyName"] == "Userson"
    # 7. Deactivate with a full PUT, then reactivate.
    off = d.put(f"/Users/{user['id']}", {**put.json(), "active": False}, headers=OKTA_UA)
    assert off.status_code == 200 and off.json()["active"] is False
    assert d.get(lookup, headers=OKTA_UA).json()["totalResults"] == 1  # still found by the lookup
    on = d.put(f"/Users/{user['id']}", {**off.json(), "active": True}, headers=OKTA_UA)
    assert on.json()["active"] is True
    # 8. Import pages.
    assert d.get("/Users?startIndex=1&count=100").json()["totalResults"] == 1
    assert d.get("/Users?startIndex=101&count=100").json()["Resources"] == []
    # 9. Push a group: lookup, then create.
    assert d.get("/Groups?filter=" + quote('displayName eq "Engineering"') + "&startIndex=1&count=100").json()[
        "totalResults"] == 0
    group = d.post("/Groups", {"schemas": [GROUP], "displayName": "Engineering", "members": []}).json()
    assert group["displayName"] == "Engineering" and group["meta"]["resourceType"] == "Group"
    # 10. AIW group update: PUT with the full state.
    r = d.put(f"/Groups/{group['id']}", {"schemas": [GROUP], "id": group["id"], "displayName": "Engineering",
                                         "members": [{"value": user["id"], "display": "test.user@okta.local"}]})
    assert r.status_code == 200 and [m["value"] for m in r.json()["members"]] == [user["id"]]
    # 12. Unlink the push group with "delete the group in the target app": the user survives.
    assert d.delete(f"/Groups/{group['id']}").status_code == 204
    assert d.get(f"/Users/{user['id']}").json()["userName"] == "test.user@okta.local"


def test_okta_oin_style_patches(directory):
    d = directory
    user = d.create_user("oin@okta.local")
    other = d.create_user("other@okta.local")
    r = d.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    assert r.status_code == 200 and r.json()["active"] is False
    r = d.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": True}})
    assert r.json()["active"] is True
    group = d.create_group("Engineering", [other["id"]])
    rename = d.patch(f"/Groups/{group['id']}", {"op": "replace", "value": {"id": group["id"],
                                                                           "displayName": "Engineering EU"}})
    assert rename.status_code == 200 and rename.json()["displayName"] == "Engineering EU"
    swap = d.patch(f"/Groups/{group['id']}",
                   {"op": "remove", "path": f'members[value eq "{other["id"]}"]'},
                   {"op": "add", "path": "members", "value": [{"value": user["id"], "display": "oin@okta.local"}]})
    assert [m["value"] for m in swap.json()["members"]] == [user["id"]]
    full = d.patch(f"/Groups/{group['id']}", {"op": "replace", "path": "members",
                                              "value": [{"value": user["id"]}, {"value": other["id"]}]})
    assert len(full.json()["members"]) == 2


def test_entra_sequence_legacy_dialect(directory):
    d = directory
    # Test Connection: a random GUID lookup answers an empty list.
    probe = d.get("/Users?filter=" + quote('userName eq "5f2d2f5e-7d0c-4b8e-9a5b-2d8c0b1f7e11"'))
    assert probe.status_code == 200 and probe.json()["totalResults"] == 0
    # Matching by externalId and by work email.
    assert d.get("/Users?filter=" + quote('externalId eq "ada"')).json()["totalResults"] == 0
    created = d.post("/Users", {
        "schemas": [USER, ENTERPRISE], "externalId": "ada", "userName": "ada@corp.example", "active": True,
        "displayName": "Ada", "meta": {"resourceType": "User"}, "roles": [],
        "emails": [{"primary": True, "type": "work", "value": "ada@corp.example"}],
        "addresses": [{"type": "work", "country": "GB"}], "phoneNumbers": [{"type": "work", "value": "123"}],
        ENTERPRISE: {"department": "R&D", "manager": "2819c223-7f76-453a-919d-413861904646"}},
        headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    user = created.json()
    assert user[ENTERPRISE]["manager"] == {"value": "2819c223-7f76-453a-919d-413861904646"}
    assert "addresses" not in user and "roles" not in user
    hit = d.get("/Users?filter=" + quote('emails[type eq "work"].value eq "ADA@corp.example"')).json()
    assert [u["id"] for u in hit["Resources"]] == [user["id"]]
    assert d.get("/Users?filter=" + quote('externalId eq "ada" and userName eq "ada@corp.example"')).json()[
        "totalResults"] == 1
    # Update in the older style: capitalised ops, a string manager, a first work email created by path.
    bare = d.create_user("bare@corp.example")
    r = d.patch(f"/Users/{bare['id']}",
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "bare@corp.example"},
                {"op": "Replace", "path": "name.familyName", "value": "Lovelace"},
                {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": user["id"]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["emails"] == [{"value": "bare@corp.example", "type": "work"}]
    assert got["name"] == {"familyName": "Lovelace"} and got[ENTERPRISE]["manager"] == {"value": user["id"]}
    # Disable with a string boolean.
    off = d.patch(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert off.json()["active"] is False
    # Groups: ADSCIM schema URN ignored; lookups exclude members; legacy remove by value.
    adscim = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
    group = d.post("/Groups", {"schemas": [GROUP, adscim],
                               "displayName": "Sales", "externalId": "g-1", "members": []})
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    assert d.get(f"/Groups/{gid}?excludedAttributes=members").json()["displayName"] == "Sales"
    add = d.patch(f"/Groups/{gid}", {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user["id"]},
                                                                            {"$ref": None, "value": bare["id"]}]})
    assert len(add.json()["members"]) == 2
    legacy = d.patch(f"/Groups/{gid}", {"op": "Remove", "path": "members", "value": [{"value": bare["id"]}]})
    assert [m["value"] for m in legacy.json()["members"]] == [user["id"]]
    renamed = d.patch(f"/Groups/{gid}", {"op": "Replace", "path": "displayName", "value": "Sales EMEA"})
    assert renamed.json()["displayName"] == "Sales EMEA"
    # Empty Operations: a no-op 200.
    assert d.patch(f"/Users/{user['id']}").status_code == 200
    # Entra really deletes users.
    assert d.delete(f"/Users/{user['id']}").status_code == 204
    assert_error(d.get(f"/Users/{user['id']}"), 404)
    assert "members" not in d.get(f"/Groups/{gid}").json()


def test_entra_rfc_mode_pathless_replace_with_dotted_and_urn_keys(directory):
    user = directory.create_user("rfc@corp.example", name={"givenName": "R"})
    r = directory.patch(f"/Users/{user['id']}", {"op": "replace", "value": {
        "displayName": "Ada L", "name.givenName": "Ada", f"{ENTERPRISE}:employeeNumber": "701984",
        "active": False}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["displayName"] == "Ada L" and got["name"] == {"givenName": "Ada"} and got["active"] is False
    assert got[ENTERPRISE] == {"employeeNumber": "701984"}
    group = directory.create_group("RFC", [user["id"]])
    r = directory.patch(f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{user["id"]}"]'})
    assert "members" not in r.json()
    assert r.request.headers["content-type"].startswith("application/scim+json")
    assert PATCH in r.request.content.decode()
