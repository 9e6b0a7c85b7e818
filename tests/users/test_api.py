"""Users: cursor-paged list (envelope D), get, delete (reference §3.7, §4.6)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from bramley.users import service as users

USER_FIELDS = ["active", "archived", "created_at", "department", "deprecated_user_id", "email", "id", "integration",
               "job_title", "name", "device_count", "updated_at"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MISSING = "0b7a5a3e-1111-4222-8333-944455556666"


def _page(client, tenant, query: str = "") -> dict:
    r = client.get(f"/api/v1/users{query}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return r.json()


def _walk(client, tenant, query: str) -> list[list[dict]]:
    """Follow `next` as given until it is null; the pages seen."""
    pages, url = [], f"/api/v1/users{query}"
    while url:
        body = client.get(url, headers=tenant.auth).json()
        pages.append(body["results"])
        url = body["next"]
        assert len(pages) < 100
    return pages


def _add_users(tenant, count: int, **fields) -> list[str]:
    with tenant.db.unit_of_work() as s:
        created = users.create_many(s, tenant.ctx(s), [users.NewUser(name=f"Extra {i}", email=f"extra{i}@example.org",
                                                                     **fields) for i in range(count)])
        return [u.id for u in created]


def test_list_is_envelope_d_without_count(client, tenant):
    body = _page(client, tenant)
    assert list(body) == ["next", "previous", "results"]
    assert body["next"] is None and body["previous"] is None
    assert len(body["results"]) == 30


def test_user_fields_and_types(client, tenant):
    for user in _page(client, tenant)["results"]:
        assert list(user) == USER_FIELDS
        assert isinstance(user["active"], bool) and isinstance(user["archived"], bool)
        assert isinstance(user["deprecated_user_id"], str) and user["deprecated_user_id"].isdigit()
        assert isinstance(user["device_count"], int)
        assert user["integration"] is None
        assert ISO_Z.match(user["created_at"]) and ISO_Z.match(user["updated_at"])
        assert isinstance(user["id"], str) and isinstance(user["email"], str) and isinstance(user["name"], str)


def test_integration_is_an_object_with_a_string_id(client, tenant):
    uid = "f4c7b6a1-0000-4000-8000-0000000000aa"
    with tenant.db.unit_of_work() as s:
        user = users.create(s, tenant.ctx(s), name="Okta Person", email="okta.person@example.com",
                            integration={"id": 42, "name": "Okta", "uuid": uid, "type": "okta"})
        user_id = user.id
    body = client.get(f"/api/v1/users/{user_id}", headers=tenant.auth).json()
    assert body["integration"] == {"id": "42", "name": "Okta", "uuid": uid, "type": "okta"}
    assert [u["id"] for u in _page(client, tenant, f"?integration_id={uid}")["results"]] == [user_id]
    assert _page(client, tenant, f"?integration_id={MISSING}")["results"] == []


def test_device_count_matches_the_device_list(client, tenant):
    for user in _page(client, tenant)["results"]:
        devices = client.get(f"/api/v1/devices?user_id={user['id']}", headers=tenant.auth).json()
        assert user["device_count"] == len(devices)
    assert sum(u["device_count"] for u in _page(client, tenant)["results"]) == sum(
        d["user"] is not None for d in client.get("/api/v1/devices", headers=tenant.auth).json())


def test_get_user_is_the_same_object_as_in_the_list(client, tenant):
    listed = _page(client, tenant)["results"][3]
    r = client.get(f"/api/v1/users/{listed['id']}/", headers=tenant.auth)
    assert r.status_code == 200 and r.json() == listed
    for bad in (MISSING, "not-a-uuid", listed["deprecated_user_id"]):
        r = client.get(f"/api/v1/users/{bad}", headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_cursor_walks_every_user_exactly_once(client, tenant):
    everyone = [u["id"] for u in _page(client, tenant)["results"]]
    pages = _walk(client, tenant, "?sizePerPage=7")
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    assert [u["id"] for p in pages for u in p] == everyone


def test_next_carries_the_cursor_in_its_query_on_the_request_host(client, tenant):
    body = client.get("https://mdm.example.org:8443/api/v1/users?sizePerPage=10&source=irusdk",
                      headers=tenant.auth).json()
    parts = urlsplit(body["next"])
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "mdm.example.org:8443", "/api/v1/users")
    query = parse_qs(parts.query)
    assert query["sizePerPage"] == ["10"] and query["source"] == ["irusdk"] and query["cursor"]
    # irusdk replays only the query of `next` on its own path.
    second = client.get(f"/api/v1/users?{parts.query}", headers=tenant.auth).json()
    assert len(second["results"]) == 10
    assert not {u["id"] for u in second["results"]} & {u["id"] for u in body["results"]}


def test_previous_leads_back_to_the_earlier_page(client, tenant):
    first = _page(client, tenant, "?sizePerPage=10")
    second = client.get(first["next"], headers=tenant.auth).json()
    assert second["previous"] is not None
    back = client.get(second["previous"], headers=tenant.auth).json()
    assert back["results"] == first["results"]


def test_page_size_is_300_and_size_per_page_is_capped_there(client, make_tenant):
    t = make_tenant()
    _add_users(t, 310)
    for query in ("", "?sizePerPage=1000"):
        pages = _walk(client, t, query)
        assert [len(p) for p in pages] == [300, 10]
        assert len({u["id"] for p in pages for u in p}) == 310


def test_size_per_page_below_one_is_field_error(client, tenant):
    r = client.get("/api/v1/users?sizePerPage=0", headers=tenant.auth)
    assert r.status_code == 400 and list(r.json()) == ["sizePerPage"]


def test_bad_cursor_is_field_error(client, tenant):
    for cursor in ("garbage!", "Zm9v"):
        r = client.get(f"/api/v1/users?cursor={cursor}", headers=tenant.auth)
        assert r.status_code == 400 and r.json() == {"cursor": ["Invalid cursor."]}


def test_email_filter_is_case_insensitive_contains(client, tenant):
    target = _page(client, tenant)["results"][0]
    fragment = target["email"].split("@")[0][1:5].upper()
    results = _page(client, tenant, f"?email={fragment}")["results"]
    assert target["id"] in [u["id"] for u in results]
    assert all(fragment.lower() in u["email"].lower() for u in results)
    assert _page(client, tenant, "?email=nobody-has-this")["results"] == []


def test_id_filter(client, tenant):
    target = _page(client, tenant)["results"][5]
    assert _page(client, tenant, f"?id={target['id']}")["results"] == [target]


def test_archived_filter(client, tenant):
    everyone = _page(client, tenant)["results"]
    with tenant.db.unit_of_work() as s:
        users.archive(s, tenant.ctx(s), everyone[2]["id"])
    archived = _page(client, tenant, "?archived=true")["results"]
    assert [u["id"] for u in archived] == [everyone[2]["id"]] and archived[0]["archived"] is True
    active = _page(client, tenant, "?archived=False")["results"]
    assert [u["id"] for u in active] == [u["id"] for u in everyone if u["id"] != everyone[2]["id"]]


def test_other_tenants_users_are_invisible(client, tenant, make_tenant):
    other = make_tenant(devices=2)
    theirs = _page(client, other)["results"][0]
    assert client.get(f"/api/v1/users/{theirs['id']}", headers=tenant.auth).status_code == 404
    assert client.delete(f"/api/v1/users/{theirs['id']}", headers=tenant.auth).status_code == 404
    assert theirs["id"] not in [u["id"] for u in _page(client, tenant)["results"]]


def test_deleting_user_with_devices_is_refused(client, tenant):
    user = next(u for u in _page(client, tenant)["results"] if u["device_count"])
    r = client.delete(f"/api/v1/users/{user['id']}", headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"detail": "User still assigned to one or more devices."}
    assert client.get(f"/api/v1/users/{user['id']}", headers=tenant.auth).json() == user


def test_deleting_user_without_devices_is_204_then_404(client, tenant):
    token, token_id = tenant.make_token(all_access=True, description="Offboarding")
    user_id = _add_users(tenant, 1)[0]
    r = client.delete(f"/api/v1/users/{user_id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/api/v1/users/{user_id}", headers=tenant.auth).status_code == 404
    assert client.delete(f"/api/v1/users/{user_id}", headers=tenant.auth).status_code == 404
    events = [e for e in client.get("/api/v1/audit/events", headers=tenant.auth).json()["results"]
              if e["target_id"] == user_id and e["action"] == "delete"]
    assert len(events) == 1
    assert (events[0]["actor_id"], events[0]["actor_type"], events[0]["target_type"]) == (
        token_id, "API token", "user")
    assert events[0]["metadata"]["actor_name"] == "Offboarding"


def test_user_can_be_deleted_once_its_devices_are_unassigned(client, tenant):
    user = next(u for u in _page(client, tenant)["results"] if u["device_count"])
    for device in client.get(f"/api/v1/devices?user_id={user['id']}", headers=tenant.auth).json():
        client.patch(f"/api/v1/devices/{device['device_id']}", json={"user": None}, headers=tenant.auth)
    assert client.get(f"/api/v1/users/{user['id']}", headers=tenant.auth).json()["device_count"] == 0
    assert client.delete(f"/api/v1/users/{user['id']}", headers=tenant.auth).status_code == 204
