"""Tags: list with search (B envelope), create, rename, delete; devices follow (reference §3.7)."""
from __future__ import annotations

MISSING = "0b7a5a3e-1111-4222-8333-944455556666"


def _tags(client, tenant, query: str = "") -> dict:
    r = client.get(f"/api/v1/tags{query}", headers=tenant.auth)
    assert r.status_code == 200
    return r.json()


def _create(client, tenant, name: str) -> dict:
    r = client.post("/api/v1/tags", json={"name": name}, headers=tenant.auth)
    assert r.status_code == 201, r.text
    return r.json()


def _tag_device(client, tenant, names: list[str]) -> str:
    device_id = client.get("/api/v1/devices?limit=1", headers=tenant.auth).json()[0]["device_id"]
    r = client.patch(f"/api/v1/devices/{device_id}", json={"tags": names}, headers=tenant.auth)
    assert r.status_code == 200
    return device_id


def _device_tags(client, tenant, device_id: str) -> list[str]:
    return client.get(f"/api/v1/devices?device_id={device_id}", headers=tenant.auth).json()[0]["tags"]


def test_list_is_b_envelope_of_id_and_name_sorted_by_name(client, make_tenant):
    t = make_tenant()
    created = [_create(client, t, n) for n in ("Remote", "Finance", "Lab")]
    body = _tags(client, t)
    assert list(body) == ["count", "next", "previous", "results"]
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None
    assert body["results"] == sorted(created, key=lambda x: x["name"])
    assert all(list(tag) == ["id", "name"] and isinstance(tag["id"], str) for tag in body["results"])


def test_empty_tenant_has_empty_tag_list(client, make_tenant):
    assert _tags(client, make_tenant()) == {"count": 0, "next": None, "previous": None, "results": []}


def test_search_is_case_insensitive_contains(client, make_tenant):
    t = make_tenant()
    for name in ("Finance", "Finance EU", "Lab"):
        _create(client, t, name)
    assert [x["name"] for x in _tags(client, t, "?search=fin")["results"]] == ["Finance", "Finance EU"]
    assert _tags(client, t, "?search=nope")["results"] == []


def test_paging_follows_next(client, make_tenant):
    t = make_tenant()
    for i in range(5):
        _create(client, t, f"T{i}")
    first = _tags(client, t, "?limit=2")
    assert first["count"] == 5 and first["next"] == "http://testserver/api/v1/tags?limit=2&offset=2"
    names, url = [], "/api/v1/tags?limit=2"
    while url:
        body = client.get(url, headers=t.auth).json()
        names += [x["name"] for x in body["results"]]
        url = body["next"]
    assert names == [f"T{i}" for i in range(5)]


def test_create_is_201_and_duplicate_or_blank_is_400(client, make_tenant):
    t = make_tenant()
    tag = _create(client, t, "Loaner")
    assert list(tag) == ["id", "name"] and tag["name"] == "Loaner"
    r = client.post("/api/v1/tags", json={"name": "Loaner"}, headers=t.auth)
    assert r.status_code == 400 and r.json() == {"name": ["tag with this name already exists."]}
    for body in ({"name": ""}, {"name": "   "}, {}):
        r = client.post("/api/v1/tags", json=body, headers=t.auth)
        assert r.status_code == 400 and list(r.json()) == ["name"], body
    assert _tags(client, t)["results"] == [tag]


def test_rename_updates_device_tags_in_the_list(client, tenant):
    device_id = _tag_device(client, tenant, ["Alpha Tag", "Zeta Tag"])
    alpha = _tags(client, tenant, "?search=Alpha Tag")["results"][0]
    r = client.patch(f"/api/v1/tags/{alpha['id']}", json={"name": "Omega Tag"}, headers=tenant.auth)
    assert r.status_code == 200 and r.json() == {"id": alpha["id"], "name": "Omega Tag"}
    assert _device_tags(client, tenant, device_id) == ["Omega Tag", "Zeta Tag"]
    assert [d["device_id"] for d in client.get("/api/v1/devices?tag_name=Omega Tag", headers=tenant.auth).json()] == [
        device_id]
    assert client.get("/api/v1/devices?tag_name=Alpha Tag", headers=tenant.auth).text == "[]"
    details = client.get(f"/api/v1/devices/{device_id}/details", headers=tenant.auth).json()
    assert details["tags"] == ["Omega Tag", "Zeta Tag"]


def test_rename_to_an_existing_name_is_400(client, tenant):
    a, b = _create(client, tenant, "First"), _create(client, tenant, "Second")
    r = client.patch(f"/api/v1/tags/{a['id']}", json={"name": "Second"}, headers=tenant.auth)
    assert r.status_code == 400 and r.json() == {"name": ["tag with this name already exists."]}
    assert _tags(client, tenant, "?search=First")["results"] == [a]
    assert client.patch(f"/api/v1/tags/{b['id']}", json={"name": "Second"}, headers=tenant.auth).status_code == 200


def test_delete_is_204_and_devices_lose_the_tag(client, tenant):
    device_id = _tag_device(client, tenant, ["Doomed", "Kept"])
    doomed = _tags(client, tenant, "?search=Doomed")["results"][0]
    r = client.delete(f"/api/v1/tags/{doomed['id']}", headers=tenant.auth)
    assert r.status_code == 204 and r.content == b""
    assert _device_tags(client, tenant, device_id) == ["Kept"]
    assert _tags(client, tenant, "?search=Doomed")["count"] == 0
    assert client.delete(f"/api/v1/tags/{doomed['id']}", headers=tenant.auth).status_code == 404


def test_unknown_or_foreign_tag_is_404(client, tenant, make_tenant):
    other = make_tenant()
    theirs = _create(client, other, "Theirs")
    for tag_id in (MISSING, "nope", theirs["id"]):
        r = client.patch(f"/api/v1/tags/{tag_id}", json={"name": "x"}, headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}
        assert client.delete(f"/api/v1/tags/{tag_id}", headers=tenant.auth).status_code == 404
    assert _tags(client, other)["results"] == [theirs]


def test_tag_writes_are_audited_with_the_token(client, tenant):
    token, token_id = tenant.make_token(all_access=True, description="Tagger")
    auth = {"Authorization": f"Bearer {token}"}
    tag = client.post("/api/v1/tags", json={"name": "Audited"}, headers=auth).json()
    client.patch(f"/api/v1/tags/{tag['id']}", json={"name": "Audited 2"}, headers=auth)
    client.delete(f"/api/v1/tags/{tag['id']}", headers=auth)
    events = [e for e in client.get("/api/v1/audit/events?sort_by=occurred_at", headers=tenant.auth).json()["results"]
              if e["target_id"] == tag["id"]]
    assert [(e["action"], e["new_state"]) for e in events] == [
        ("create", {"name": "Audited"}), ("update", {"name": "Audited 2"}), ("delete", {"name": "Audited 2"})]
    for e in events:
        assert (e["actor_id"], e["actor_type"], e["target_type"]) == (token_id, "API token", "tag")
        assert e["metadata"]["actor_name"] == "Tagger"
