"""The SCIM request log: every request, who sent it, what it changed (redacted), queryable by API."""
from __future__ import annotations

import json

from tests.scim.conftest import USER

API = "/api/v1/integrations/scim/requests"


def _log(client, tenant, query: str = "") -> list[dict]:
    r = client.get(f"{API}{query}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_why_is_this_user_archived(client, directory):
    user = directory.create_user("leaver@example.com", password="s3cret-pass")
    directory.patch(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Chef"})
    directory.patch(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
    history = _log(client, directory.tenant, f"?resource_id={user['id']}")
    assert [(h["method"], h["status"]) for h in history] == [("PATCH", 200), ("PATCH", 200), ("POST", 201)]
    newest = history[0]
    assert newest["integration_id"] == directory.integration_id
    assert newest["path"] == f"/api/v1/scim/Users/{user['id']}" and newest["resource_type"] == "User"
    assert newest["summary"] == {"changed": ["active"], "userName": "leaver@example.com", "active": False}
    assert history[1]["summary"]["changed"] == ["title"]
    assert "s3cret-pass" not in json.dumps(history)
    # The Iru user list agrees.
    listed = client.get(f"/api/v1/users/{user['id']}", headers=directory.tenant.auth).json()
    assert listed["archived"] is True and listed["active"] is False


def test_reads_and_refusals_are_logged_too(client, directory):
    directory.get('/Users?filter=userName eq "nobody@example.com"')
    directory.post("/Users", {"schemas": [USER], "userName": 5})
    entries = _log(client, directory.tenant)
    assert entries[0]["method"] == "POST" and entries[0]["status"] == 400
    assert entries[0]["summary"]["error"]["scimType"] == "invalidValue"
    assert entries[1]["method"] == "GET" and entries[1]["status"] == 200 and entries[1]["summary"] == {"results": 0}


def test_filters_and_paging(client, directory):
    for i in range(5):
        directory.create_user(f"u{i}@example.com")
    first = client.get(f"{API}?limit=2&method=post", headers=directory.tenant.auth).json()
    assert len(first["results"]) == 2 and first["previous"] is None and first["next"]
    second = client.get(first["next"], headers=directory.tenant.auth).json()
    assert len(second["results"]) == 2
    assert not {e["id"] for e in first["results"]} & {e["id"] for e in second["results"]}
    back = client.get(second["previous"], headers=directory.tenant.auth).json()
    assert back["results"] == first["results"]
    assert _log(client, directory.tenant, "?status=409") == []
    assert len(_log(client, directory.tenant, f"?integration_id={directory.integration_id}")) == 5
    assert client.get(f"{API}?cursor=garbage", headers=directory.tenant.auth).status_code == 400


def test_other_tenants_never_see_the_log(client, directory, make_tenant):
    directory.create_user("a@example.com")
    other = make_tenant()
    assert _log(client, other) == []


def test_a_rolled_back_write_is_logged_as_a_failure_only(client, directory):
    directory.create_user("dup@example.com")
    directory.post("/Users", {"schemas": [USER], "userName": "DUP@example.com"})
    entries = _log(client, directory.tenant, "?status=409")
    assert len(entries) == 1 and entries[0]["summary"]["error"]["scimType"] == "uniqueness"
    assert client.get("/api/v1/users", headers=directory.tenant.auth).json()["results"][0]["email"] == \
        "dup@example.com"
