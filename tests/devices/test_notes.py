"""Device notes: create, list, get, update, delete (reference §3.1, Note in §4.3)."""
from __future__ import annotations

import re

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MISSING = "0b7a5a3e-1111-4222-8333-944455556666"


def _device_id(client, tenant, index: int = 0) -> str:
    return client.get("/api/v1/devices", headers=tenant.auth).json()[index]["device_id"]


def _auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_create_note_is_201_with_note_object_and_token_as_author(client, tenant):
    device_id = _device_id(client, tenant)
    token, _ = tenant.make_token(all_access=True, description="Helpdesk script")
    r = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "Screen <b>cracked</b>"},
                    headers=_auth(token))
    assert r.status_code == 201
    note = r.json()
    assert list(note) == ["note_id", "created_at", "updated_at", "author", "content"]
    assert note["author"] == "Helpdesk script"
    assert note["content"] == "Screen <b>cracked</b>"  # HTML is kept as given
    assert ISO_Z.match(note["created_at"]) and note["created_at"] == note["updated_at"]


def test_list_notes_is_a_bare_array_oldest_first(client, tenant):
    device_id = _device_id(client, tenant)
    assert client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth).text == "[]"
    first = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "one"}, headers=tenant.auth).json()
    second = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "two"}, headers=tenant.auth).json()
    r = client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth)
    assert r.status_code == 200 and r.json() == [first, second]


def test_notes_belong_to_their_device(client, tenant):
    a, b = _device_id(client, tenant, 0), _device_id(client, tenant, 1)
    note = client.post(f"/api/v1/devices/{a}/notes", json={"content": "only on a"}, headers=tenant.auth).json()
    assert client.get(f"/api/v1/devices/{b}/notes", headers=tenant.auth).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        r = client.request(method, f"/api/v1/devices/{b}/notes/{note['note_id']}", json={"content": "x"},
                           headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}, method
    assert client.get(f"/api/v1/devices/{a}/notes/{note['note_id']}", headers=tenant.auth).json() == note


def test_get_note_returns_it(client, tenant):
    device_id = _device_id(client, tenant)
    note = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "hi"}, headers=tenant.auth).json()
    r = client.get(f"/api/v1/devices/{device_id}/notes/{note['note_id']}/", headers=tenant.auth)
    assert r.status_code == 200 and r.json() == note


def test_update_note_changes_content_and_updated_at(client, tenant):
    device_id = _device_id(client, tenant)
    note = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "old"}, headers=tenant.auth).json()
    r = client.patch(f"/api/v1/devices/{device_id}/notes/{note['note_id']}", json={"content": "new"},
                     headers=tenant.auth)
    assert r.status_code == 200
    updated = r.json()
    assert updated["content"] == "new" and updated["note_id"] == note["note_id"]
    assert updated["created_at"] == note["created_at"] and updated["updated_at"] > note["updated_at"]
    assert client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth).json() == [updated]


def test_delete_note_is_200_with_note_id_and_deleted_at(client, tenant):
    device_id = _device_id(client, tenant)
    note = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "bye"}, headers=tenant.auth).json()
    r = client.delete(f"/api/v1/devices/{device_id}/notes/{note['note_id']}", headers=tenant.auth)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["note_id", "deleted_at"] and body["note_id"] == note["note_id"]
    assert ISO_Z.match(body["deleted_at"])
    assert client.get(f"/api/v1/devices/{device_id}/notes/{note['note_id']}", headers=tenant.auth).status_code == 404
    assert client.delete(f"/api/v1/devices/{device_id}/notes/{note['note_id']}",
                         headers=tenant.auth).status_code == 404
    assert client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth).json() == []


def test_blank_or_missing_content_is_field_error(client, tenant):
    device_id = _device_id(client, tenant)
    for body in ({}, {"content": ""}, {"content": "   "}):
        r = client.post(f"/api/v1/devices/{device_id}/notes", json=body, headers=tenant.auth)
        assert r.status_code == 400 and list(r.json()) == ["content"], body
    assert client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth).json() == []


def test_notes_of_unknown_device_or_note_are_404(client, tenant):
    device_id = _device_id(client, tenant)
    r = client.post(f"/api/v1/devices/{MISSING}/notes", json={"content": "x"}, headers=tenant.auth)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}
    for note_id in (MISSING, "not-a-uuid"):
        r = client.get(f"/api/v1/devices/{device_id}/notes/{note_id}", headers=tenant.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_deleting_device_removes_its_notes(client, tenant):
    device_id = _device_id(client, tenant)
    client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "x"}, headers=tenant.auth)
    assert client.delete(f"/api/v1/devices/{device_id}", headers=tenant.auth).status_code == 204
    assert client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth).status_code == 404


def test_note_writes_are_audited_with_the_token(client, tenant):
    token, token_id = tenant.make_token(all_access=True, description="Notes bot")
    device_id = _device_id(client, tenant)
    note = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "a"}, headers=_auth(token)).json()
    client.patch(f"/api/v1/devices/{device_id}/notes/{note['note_id']}", json={"content": "b"}, headers=_auth(token))
    client.delete(f"/api/v1/devices/{device_id}/notes/{note['note_id']}", headers=_auth(token))
    events = [e for e in client.get("/api/v1/audit/events?sort_by=occurred_at", headers=tenant.auth).json()["results"]
              if e["target_id"] == note["note_id"]]
    assert [e["action"] for e in events] == ["create", "update", "delete"]
    for e in events:
        assert (e["actor_id"], e["actor_type"], e["target_type"]) == (token_id, "API token", "device_note")
        assert e["metadata"]["actor_name"] == "Notes bot"
        assert e["new_state"]["device_id"] == device_id


def test_a_write_is_committed_before_its_reply_is_sent(live_server, make_tenant):
    """A script that creates then reads back must always see what it created (against a real server: an
    in-process client waits for the whole request, commit included, and could not tell)."""
    import httpx

    t = make_tenant(devices=1)
    with httpx.Client(base_url=live_server, headers=t.auth, timeout=30) as http:
        device_id = http.get("/api/v1/devices").json()[0]["device_id"]
        for i in range(40):
            note = http.post(f"/api/v1/devices/{device_id}/notes", json={"content": f"note {i}"}).json()
            listed = {n["note_id"] for n in http.get(f"/api/v1/devices/{device_id}/notes").json()}
            assert note["note_id"] in listed, f"note {i} was not visible right after its 201"
