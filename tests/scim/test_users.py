"""/Users: create, read, list, filter, page, replace, patch, delete; uniqueness, ETags, attribute selection."""
from __future__ import annotations

import re

import pytest

from tests.scim.conftest import ENTERPRISE, LIST, PATCH, USER, assert_error

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_create_returns_201_the_full_user_and_its_location(directory):
    r = directory.post("/Users", {
        "schemas": [USER, ENTERPRISE], "userName": "ada@example.com", "externalId": "00u1",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "displayName": "Ada L", "title": "Engineer", "active": True,
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        ENTERPRISE: {"department": "R&D", "employeeNumber": "701984", "manager": {"value": "m-1"}}})
    assert r.status_code == 201, r.text
    user = r.json()
    assert r.headers["location"] == user["meta"]["location"] == f"http://testserver/api/v1/scim/Users/{user['id']}"
    assert r.headers["etag"] == user["meta"]["version"] == 'W/"1"'
    assert user["schemas"] == [USER, ENTERPRISE]
    assert user["userName"] == "ada@example.com" and user["externalId"] == "00u1"
    assert user["name"] == {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"}
    assert user["emails"] == [{"value": "ada@example.com", "type": "work", "primary": True}]
    assert user[ENTERPRISE] == {"employeeNumber": "701984", "department": "R&D", "manager": {"value": "m-1"}}
    assert user["active"] is True and user["title"] == "Engineer" and user["displayName"] == "Ada L"
    assert ISO.match(user["meta"]["created"]) and user["meta"]["resourceType"] == "User"
    assert directory.get(f"/Users/{user['id']}").json() == user


def test_values_come_back_exactly_as_sent(directory):
    user = directory.create_user("MiXeD.Case@Example.COM", externalId="CaseExact-ID", name={"givenName": "ÅSA"})
    got = directory.get(f"/Users/{user['id']}").json()
    assert got["userName"] == "MiXeD.Case@Example.COM" and got["externalId"] == "CaseExact-ID"
    assert got["name"] == {"givenName": "ÅSA"}


def test_okta_local_addresses_are_accepted(directory):
    user = directory.create_user("test.user@okta.local", emails=[{"value": "test.user@okta.local", "type": "work"}])
    assert user["emails"][0]["value"] == "test.user@okta.local"


def test_read_only_input_is_ignored_on_create(directory):
    user = directory.create_user("ro@example.com", id="chosen-by-client", meta={"version": "x"},
                                 groups=[{"value": "g"}], password="1mz050nq", roles=[], locale="en-US")
    assert user["id"] != "chosen-by-client" and "groups" not in user and "password" not in user
    assert user["meta"]["version"] == 'W/"1"'


@pytest.mark.parametrize("taken", ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.com"])
def test_username_is_unique_ignoring_case(directory, taken):
    directory.create_user("ada@example.com")
    r = directory.post("/Users", {"schemas": [USER], "userName": taken})
    body = assert_error(r, 409, "uniqueness")
    assert taken in body["detail"]
    assert directory.get("/Users").json()["totalResults"] == 1


def test_renaming_onto_a_taken_username_is_409_and_changes_nothing(directory):
    directory.create_user("ada@example.com")
    bob = directory.create_user("bob@example.com", displayName="Bob")
    r = directory.patch(f"/Users/{bob['id']}", {"op": "replace", "path": "userName", "value": "ADA@example.com"},
                        {"op": "replace", "path": "displayName", "value": "Robert"})
    assert_error(r, 409, "uniqueness")
    assert directory.get(f"/Users/{bob['id']}").json() == bob


def test_deactivated_users_stay_readable_and_listable(directory):
    user = directory.create_user("leaver@example.com")
    r = directory.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    assert r.status_code == 200 and r.json()["active"] is False
    assert directory.get(f"/Users/{user['id']}").json()["active"] is False
    listed = directory.get('/Users?filter=userName eq "leaver@example.com"').json()
    assert listed["totalResults"] == 1 and listed["Resources"][0]["active"] is False
    assert directory.get("/Users?filter=active eq false").json()["totalResults"] == 1


def test_put_replaces_every_attribute_and_clears_the_omitted(directory):
    user = directory.create_user("put@example.com", displayName="Old", title="Boss", externalId="e1",
                                 emails=[{"value": "put@example.com", "type": "work"}])
    r = directory.put(f"/Users/{user['id']}", {"schemas": [USER], "id": "ignored", "userName": "put@example.com",
                                               "name": {"givenName": "New"}, "active": True,
                                               "meta": {"resourceType": "User"}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["id"] == user["id"] and got["name"] == {"givenName": "New"}
    for cleared in ("displayName", "title", "externalId", "emails"):
        assert cleared not in got
    assert got["meta"]["version"] == 'W/"2"'


def test_put_without_active_keeps_the_status(directory):
    user = directory.create_user("keep@example.com", active=False)
    r = directory.put(f"/Users/{user['id']}", {"schemas": [USER], "userName": "keep@example.com", "title": "X"})
    assert r.status_code == 200 and r.json()["active"] is False


def test_put_and_patch_of_unknown_users_are_404_and_create_nothing(directory):
    missing = "6c1c1f0e-0000-4000-8000-2a0d6b5d8f11"
    assert_error(directory.put(f"/Users/{missing}", {"schemas": [USER], "userName": "x@example.com"}), 404)
    assert_error(directory.patch(f"/Users/{missing}", {"op": "replace", "path": "active", "value": False}), 404)
    assert_error(directory.delete(f"/Users/{missing}"), 404)
    assert_error(directory.get("/Users/not-a-uuid"), 404)
    assert directory.get("/Users").json()["totalResults"] == 0


def test_patch_add_replace_remove(directory):
    user = directory.create_user("p@example.com", emails=[{"value": "p@example.com", "type": "work"}])
    path = f"/Users/{user['id']}"
    r = directory.patch(path, {"op": "add", "path": "emails", "value": [{"value": "home@example.com",
                                                                         "type": "home"}]},
                        {"op": "add", "value": {"title": "CTO", "name.givenName": "Pat"}},
                        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Sales"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert [e["type"] for e in got["emails"]] == ["work", "home"]
    assert got["title"] == "CTO" and got["name"] == {"givenName": "Pat"} and got[ENTERPRISE] == {"department": "Sales"}
    r = directory.patch(path, {"op": "remove", "path": 'emails[type eq "home"]'}, {"op": "remove", "path": "title"})
    got = r.json()
    assert got["emails"] == [{"value": "p@example.com", "type": "work"}] and "title" not in got
    assert got["meta"]["version"] == 'W/"3"'


def test_patch_is_atomic(directory):
    user = directory.create_user("atomic@example.com", title="Before")
    r = directory.patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "After"},
                        {"op": "remove", "path": "userName"})
    assert_error(r, 400, "mutability")
    assert directory.get(f"/Users/{user['id']}").json()["title"] == "Before"


def test_patch_with_no_change_keeps_the_version(directory):
    user = directory.create_user("same@example.com", title="T")
    r = directory.patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "T"})
    assert r.json()["meta"]["version"] == 'W/"1"'


def test_patch_response_honours_attributes(directory):
    user = directory.create_user("attrs@example.com", title="T")
    r = directory.patch(f"/Users/{user['id']}?attributes=title", {"op": "replace", "path": "title", "value": "U"})
    assert r.status_code == 200 and r.json() == {"schemas": [USER], "id": user["id"], "title": "U"}


def test_delete_removes_the_user_from_reads_and_lists(directory):
    user = directory.create_user("gone@example.com")
    r = directory.delete(f"/Users/{user['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_error(directory.get(f"/Users/{user['id']}"), 404)
    assert directory.get("/Users").json()["totalResults"] == 0


# --- ETags ---------------------------------------------------------------------------------------------------

def test_etags_guard_writes_and_spare_reads(directory):
    user = directory.create_user("etag@example.com")
    path = f"/Users/{user['id']}"
    r = directory.get(path, headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304 and r.headers["etag"] == 'W/"1"'
    op = {"op": "replace", "path": "title", "value": "v2"}
    assert_error(directory.patch(path, op, headers={"If-Match": 'W/"7"'}), 412)
    r = directory.patch(path, op, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    assert directory.get(path, headers={"If-None-Match": 'W/"1"'}).status_code == 200
    assert_error(directory.put(path, {"schemas": [USER], "userName": "etag@example.com"},
                               headers={"If-Match": 'W/"1"'}), 412)
    assert_error(directory.delete(path, headers={"If-Match": '"1"'}), 412)
    assert directory.delete(path, headers={"If-Match": "*"}).status_code == 204


# --- lists ---------------------------------------------------------------------------------------------------

def _names(body) -> list[str]:
    return [u["userName"] for u in body["Resources"]]


def test_pagination_is_stable_one_based_with_integer_counters(directory):
    made = [directory.create_user(f"u{i:02d}@example.com")["userName"] for i in range(7)]
    seen = []
    for start in (1, 4, 7):
        body = directory.get(f"/Users?startIndex={start}&count=3").json()
        assert body["totalResults"] == 7 and body["startIndex"] == start
        assert isinstance(body["itemsPerPage"], int)
        seen += _names(body)
    assert seen == made
    assert _names(directory.get("/Users?startIndex=0&count=2").json()) == made[:2]  # below 1 means 1
    assert _names(directory.get("/Users?startIndex=-5&count=2").json()) == made[:2]
    empty = directory.get("/Users?count=0").json()
    assert empty["totalResults"] == 7 and empty["itemsPerPage"] == 0 and empty["Resources"] == []
    assert directory.get("/Users?count=-3").json()["Resources"] == []
    past = directory.get("/Users?startIndex=100").json()
    assert past["totalResults"] == 7 and past["Resources"] == []
    assert len(directory.get("/Users?count=100000").json()["Resources"]) == 7


def test_count_is_clamped_to_max_results(directory, client):
    from bramley.scim import operations

    q = operations.page_query(None, None, "5000", None, None)
    assert q.count == 200


def test_bad_paging_numbers_are_400(directory):
    assert_error(directory.get("/Users?startIndex=abc"), 400, "invalidValue")
    assert_error(directory.get("/Users?count=1.5"), 400, "invalidValue")


def test_attributes_and_excluded_attributes(directory):
    user = directory.create_user("sel@example.com", name={"givenName": "Sel", "familyName": "Ect"},
                                 emails=[{"value": "sel@example.com", "type": "work"}],
                                 **{"schemas": [USER, ENTERPRISE], ENTERPRISE: {"department": "Ops"}})
    only = directory.get(f"/Users/{user['id']}?attributes=userName,name.givenName,{ENTERPRISE}:department").json()
    assert only == {"schemas": [USER, ENTERPRISE], "id": user["id"], "userName": "sel@example.com",
                    "name": {"givenName": "Sel"}, ENTERPRISE: {"department": "Ops"}}
    without = directory.get(f"/Users/{user['id']}?excludedAttributes=emails,meta,name.familyName").json()
    assert "emails" not in without and "meta" not in without and without["name"] == {"givenName": "Sel"}
    assert without["id"] == user["id"] and without["schemas"]
    listed = directory.get("/Users?attributes=USERNAME").json()["Resources"]
    assert listed == [{"schemas": [USER, ENTERPRISE], "id": user["id"], "userName": "sel@example.com"}]


def test_users_show_their_groups(directory):
    ada = directory.create_user("ada@example.com")
    eng = directory.create_group("Engineering", [ada["id"]])
    got = directory.get(f"/Users/{ada['id']}").json()
    assert got["groups"] == [{"value": eng["id"], "$ref": f"http://testserver/api/v1/scim/Groups/{eng['id']}",
                              "display": "Engineering"}]
    assert "groups" not in directory.get(f"/Users/{ada['id']}?excludedAttributes=groups").json()


def test_search_endpoints(directory):
    ada = directory.create_user("ada@example.com")
    directory.create_user("bob@example.com")
    group = directory.create_group("Ops")
    search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
    r = directory.post("/Users/.search", {"schemas": [search], "filter": 'userName sw "ADA"',
                                          "attributes": ["userName"]})
    assert r.status_code == 200
    assert r.json()["Resources"] == [{"schemas": [USER], "id": ada["id"], "userName": "ada@example.com"}]
    everything = directory.post("/.search", {"schemas": [search], "count": 10}).json()
    assert everything["schemas"] == [LIST] and everything["totalResults"] == 3
    assert [x["id"] for x in everything["Resources"]][-1] == group["id"]
    page = directory.post("/.search", {"schemas": [search], "startIndex": 3, "count": 1}).json()
    assert [x["id"] for x in page["Resources"]] == [group["id"]]
    named = directory.post("/.search", {"schemas": [search], "filter": 'displayName eq "ops"'}).json()
    assert [x["id"] for x in named["Resources"]] == [group["id"]]
    assert_error(directory.post("/.search", {"schemas": [search], "filter": "bogus pr"}), 400, "invalidFilter")
    assert_error(directory.post("/Users/.search", {"filter": "userName pr"}), 400, "invalidSyntax")
    assert_error(directory.get("/.search"), 405)


def test_patch_path_case_and_op_case_are_ignored(directory):
    user = directory.create_user("case@example.com")
    r = directory.request("PATCH", f"/Users/{user['id']}", json={
        "schemas": [PATCH.upper().replace("URN", "urn")],
        "Operations": [{"op": "REPLACE", "path": "DisplayName", "value": "Shouty"}]})
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Shouty"
