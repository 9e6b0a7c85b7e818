"""Bad input at the SCIM door: a SCIM error with the right scimType and status, never a 500, nothing half-written."""
from __future__ import annotations

import pytest

from tests.scim.conftest import BASE, ENTERPRISE, GROUP, PATCH, USER, assert_error


def raw(d, method: str, path: str, content: bytes | str):
    return d.client.request(method, BASE + path, content=content, headers=d.headers)


@pytest.mark.parametrize("content", [b"{", b"not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe{}", b"null"])
def test_malformed_bodies_are_invalid_syntax(directory, content):
    assert_error(raw(directory, "POST", "/Users", content), 400, "invalidSyntax")
    user = directory.create_user(f"m{len(content)}-{content[:1].hex()}@example.com")
    assert_error(raw(directory, "PATCH", f"/Users/{user['id']}", content), 400, "invalidSyntax")
    assert_error(raw(directory, "PUT", f"/Users/{user['id']}", content), 400, "invalidSyntax")


@pytest.mark.parametrize("schemas", [None, [], [GROUP], ["urn:example:nothing"], "not-a-list", [1]])
def test_a_body_that_does_not_name_the_resource_schema_is_refused(directory, schemas):
    body = {"userName": "s@example.com"} if schemas is None else {"schemas": schemas, "userName": "s@example.com"}
    assert_error(directory.post("/Users", body), 400, "invalidSyntax")
    assert directory.get("/Users").json()["totalResults"] == 0


def test_patch_must_be_a_patch_op(directory):
    user = directory.create_user("p@example.com")
    r = directory.request("PATCH", f"/Users/{user['id']}", json={"schemas": [USER], "Operations": []})
    assert_error(r, 400, "invalidSyntax")
    r = directory.request("PATCH", f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": "replace"})
    assert_error(r, 400, "invalidSyntax")
    r = directory.request("PATCH", f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": ["x"]})
    assert_error(r, 400, "invalidSyntax")


@pytest.mark.parametrize("body", [
    {"userName": 42},
    {"userName": ["a"]},
    {"userName": "ok@example.com", "active": "maybe"},
    {"userName": "ok@example.com", "active": 3},
    {"userName": "ok@example.com", "name": "Ada"},
    {"userName": "ok@example.com", "emails": "ada@example.com"},
    {"userName": "ok@example.com", "emails": [{"value": 5}]},
    {"userName": "ok@example.com", "emails": [{"value": "a@b.c", "primary": "sometimes"}]},
    {"userName": "ok@example.com", ENTERPRISE: "R&D"},
    {"userName": "ok@example.com", ENTERPRISE: {"manager": 7}},
    {"userName": "x" * 256},
    {"userName": ""},
    {"userName": "   "},
    {},
])
def test_wrong_types_and_missing_user_name_are_invalid_value(directory, body):
    assert_error(directory.post("/Users", {"schemas": [USER, ENTERPRISE], **body}), 400, "invalidValue")
    assert directory.get("/Users").json()["totalResults"] == 0


def test_nul_characters_are_refused(directory):
    assert_error(directory.post("/Users", {"schemas": [USER], "userName": "nul\u0000@example.com"}), 400,
                 "invalidValue")


@pytest.mark.parametrize("operation,scim_type", [
    ({"op": "replace", "path": "active", "value": "sometimes"}, "invalidValue"),
    ({"op": "replace", "path": "name", "value": 5}, "invalidValue"),
    ({"op": "explode", "path": "title", "value": "x"}, "invalidValue"),
    ({"op": "remove"}, "noTarget"),
    ({"op": "replace", "path": "emails[type eq", "value": "x"}, "invalidPath"),
    ({"op": "replace", "path": "id", "value": "6c1c1f0e-0000-4000-8000-2a0d6b5d8f11"}, "mutability"),
    ({"op": "replace", "value": {"meta": {"version": "9"}}}, "mutability"),
    ({"op": "add", "path": "groups", "value": [{"value": "g"}]}, "mutability"),
    ({"op": "remove", "path": "userName"}, "mutability"),
])
def test_bad_patch_operations_change_nothing(directory, operation, scim_type):
    user = directory.create_user("atomic@example.com", title="Before")
    ops = [{"op": "replace", "path": "title", "value": "After"}, operation]
    assert_error(directory.patch(f"/Users/{user['id']}", *ops), 400, scim_type)
    assert directory.get(f"/Users/{user['id']}").json() == directory.get(f"/Users/{user['id']}").json()
    got = directory.get(f"/Users/{user['id']}").json()
    assert got["title"] == "Before" and got["meta"]["version"] == 'W/"1"'


def test_changing_an_immutable_member_value_is_a_mutability_error(directory):
    a, b = directory.create_user("a@example.com"), directory.create_user("b@example.com")
    group = directory.create_group("G", [a["id"]])
    r = directory.patch(f"/Groups/{group['id']}", {"op": "replace", "path": f'members[value eq "{a["id"]}"].value',
                                                   "value": b["id"]})
    assert_error(r, 400, "mutability")
    assert [m["value"] for m in directory.get(f"/Groups/{group['id']}").json()["members"]] == [a["id"]]


def test_group_bodies(directory):
    for body in ({"schemas": [GROUP]}, {"schemas": [GROUP], "displayName": ""},
                 {"schemas": [GROUP], "displayName": 5}, {"schemas": [GROUP], "displayName": "G", "members": "x"},
                 {"schemas": [GROUP], "displayName": "G", "members": [{"display": "no value"}]}):
        assert_error(directory.post("/Groups", body), 400, "invalidValue")
    assert directory.get("/Groups").json()["totalResults"] == 0


def test_a_failing_request_leaves_no_partial_group(directory):
    a = directory.create_user("a@example.com")
    directory.create_group("Taken")
    group = directory.create_group("Mine")
    r = directory.patch(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": a["id"]}]},
                        {"op": "replace", "path": "displayName", "value": "TAKEN"})
    assert_error(r, 409, "uniqueness")
    got = directory.get(f"/Groups/{group['id']}").json()
    assert "members" not in got and got["displayName"] == "Mine"
    assert "groups" not in directory.get(f"/Users/{a['id']}").json()


def test_oversized_and_odd_query_values_never_500(directory):
    for query in ("?count=99999999999999999999", "?startIndex=99999999999999999999", "?attributes=%00",
                  "?excludedAttributes=,,,", "?filter=" + "(" * 300 + 'userName eq "a"' + ")" * 300):
        r = directory.get("/Users" + query)
        assert r.status_code in (200, 400), (query, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/scim+json")
