"""/Groups: push, rename, membership (PUT and PATCH), delete keeping users, uniqueness, member filters."""
from __future__ import annotations

from tests.scim.conftest import GROUP, assert_error


def _members(body) -> list[str]:
    return sorted(m["value"] for m in body.get("members", []))


def test_create_with_members_and_read_back(directory):
    ada, bob = directory.create_user("ada@example.com"), directory.create_user("bob@example.com")
    r = directory.post("/Groups", {"schemas": [GROUP], "displayName": "Engineering", "externalId": "okta-g1",
                                   "members": [{"value": ada["id"], "display": "ada@example.com", "type": "User"},
                                               {"value": bob["id"]}]})
    assert r.status_code == 201, r.text
    group = r.json()
    assert r.headers["location"].endswith(f"/Groups/{group['id']}") and group["externalId"] == "okta-g1"
    assert group["meta"]["resourceType"] == "Group" and group["meta"]["version"] == 'W/"1"'
    by_id = {m["value"]: m for m in group["members"]}
    assert by_id[ada["id"]] == {"value": ada["id"], "$ref": f"http://testserver/api/v1/scim/Users/{ada['id']}",
                                "type": "User", "display": "ada@example.com"}
    assert directory.get(f"/Groups/{group['id']}").json() == group


def test_display_name_is_unique_ignoring_case(directory):
    directory.create_group("Engineering")
    assert_error(directory.post("/Groups", {"schemas": [GROUP], "displayName": "ENGINEERING"}), 409, "uniqueness")
    other = directory.create_group("Sales")
    r = directory.patch(f"/Groups/{other['id']}", {"op": "replace", "path": "displayName", "value": "engineering"})
    assert_error(r, 409, "uniqueness")


def test_lookup_by_display_name_and_excluded_members(directory):
    ada = directory.create_user("ada@example.com")
    group = directory.create_group("Engineering", [ada["id"]])
    found = directory.get('/Groups?excludedAttributes=members&filter=displayName eq "engineering"').json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == group["id"]
    assert "members" not in found["Resources"][0]
    assert "members" not in directory.get(f"/Groups/{group['id']}?excludedAttributes=members").json()
    assert directory.get('/Groups?filter=displayName eq "Nope"').json()["totalResults"] == 0


def test_put_replaces_the_member_set_exactly(directory):
    a, b, c = (directory.create_user(f"{n}@example.com") for n in "abc")
    group = directory.create_group("Team", [a["id"], b["id"]])
    r = directory.put(f"/Groups/{group['id']}", {"schemas": [GROUP], "id": group["id"], "displayName": "Team",
                                                 "members": [{"value": b["id"]}, {"value": c["id"]}]})
    assert r.status_code == 200 and _members(r.json()) == sorted([b["id"], c["id"]])
    assert r.json()["meta"]["version"] == 'W/"2"'


def test_patch_rename_with_id_remove_and_add_in_one_request(directory):
    a, b = directory.create_user("a@example.com"), directory.create_user("b@example.com")
    group = directory.create_group("Engineering", [a["id"]])
    r = directory.patch(f"/Groups/{group['id']}",
                        {"op": "replace", "value": {"id": group["id"], "displayName": "Engineering EU"}},
                        {"op": "remove", "path": f'members[value eq "{a["id"]}"]'},
                        {"op": "add", "path": "members", "value": [{"value": b["id"], "display": "b@example.com"}]})
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Engineering EU" and _members(r.json()) == [b["id"]]


def test_patch_with_another_id_is_a_mutability_error(directory):
    group = directory.create_group("Engineering")
    r = directory.patch(f"/Groups/{group['id']}", {"op": "replace", "value": {"id": "someone-else",
                                                                              "displayName": "X"}})
    assert_error(r, 400, "mutability")
    assert directory.get(f"/Groups/{group['id']}").json()["displayName"] == "Engineering"


def test_full_member_push_replace_and_remove_all(directory):
    users = [directory.create_user(f"m{i}@example.com")["id"] for i in range(4)]
    group = directory.create_group("All", users[:2])
    r = directory.patch(f"/Groups/{group['id']}", {"op": "replace", "path": "members",
                                                   "value": [{"value": u} for u in users[1:]]})
    assert _members(r.json()) == sorted(users[1:])
    r = directory.patch(f"/Groups/{group['id']}", {"op": "remove", "path": "members"})
    assert "members" not in r.json()


def test_adding_an_existing_member_is_a_no_op(directory):
    a = directory.create_user("a@example.com")
    group = directory.create_group("G", [a["id"]])
    r = directory.patch(f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": a["id"]}]})
    assert r.status_code == 200 and _members(r.json()) == [a["id"]] and r.json()["meta"]["version"] == 'W/"1"'


def test_unknown_member_ids_are_dropped_not_fatal(directory):
    a = directory.create_user("a@example.com")
    r = directory.post("/Groups", {"schemas": [GROUP], "displayName": "G", "members": [
        {"value": a["id"]}, {"value": "00000000-0000-4000-8000-000000000000"}, {"value": "not-a-uuid"}]})
    assert r.status_code == 201 and _members(r.json()) == [a["id"]]


def test_nested_groups_are_refused(directory):
    inner = directory.create_group("Inner")
    r = directory.post("/Groups", {"schemas": [GROUP], "displayName": "Outer",
                                   "members": [{"value": inner["id"], "type": "Group"}]})
    assert_error(r, 400, "invalidValue")


def test_deleting_a_group_keeps_its_users(directory):
    a = directory.create_user("a@example.com")
    group = directory.create_group("Pushed", [a["id"]])
    assert directory.delete(f"/Groups/{group['id']}").status_code == 204
    assert_error(directory.get(f"/Groups/{group['id']}"), 404)
    user = directory.get(f"/Users/{a['id']}").json()
    assert user["userName"] == "a@example.com" and "groups" not in user
    assert directory.get("/Groups").json()["totalResults"] == 0


def test_deleting_a_user_takes_them_out_of_groups(directory):
    a, b = directory.create_user("a@example.com"), directory.create_user("b@example.com")
    group = directory.create_group("G", [a["id"], b["id"]])
    assert directory.delete(f"/Users/{a['id']}").status_code == 204
    got = directory.get(f"/Groups/{group['id']}").json()
    assert _members(got) == [b["id"]] and got["meta"]["version"] == 'W/"2"'


def test_member_filters(directory):
    a, b = directory.create_user("a@example.com"), directory.create_user("b@example.com")
    g1 = directory.create_group("One", [a["id"]])
    directory.create_group("Two", [b["id"]])
    hit = directory.get(f'/Groups?filter=members[value eq "{a["id"]}"]').json()
    assert [g["id"] for g in hit["Resources"]] == [g1["id"]]
    assert directory.get(f'/Groups?filter=members.value eq "{b["id"]}" and displayName eq "One"').json()[
        "totalResults"] == 0
    users_in_one = directory.get(f'/Users?filter=groups.value eq "{g1["id"]}"').json()
    assert [u["id"] for u in users_in_one["Resources"]] == [a["id"]]
    assert directory.get('/Users?filter=groups[display eq "two"]').json()["Resources"][0]["id"] == b["id"]


def test_group_display_name_cannot_be_removed(directory):
    group = directory.create_group("Keep")
    assert_error(directory.patch(f"/Groups/{group['id']}", {"op": "remove", "path": "displayName"}), 400,
                 "mutability")
    assert directory.get(f"/Groups/{group['id']}").json()["displayName"] == "Keep"
