"""Directory integrations: tokens shown once, stored hashed, rotatable; several per tenant; users tagged."""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from bramley.scim.models import ScimIntegration
from tests.conftest import run_cli
from tests.scim.conftest import BASE, Directory

API = "/api/v1/integrations/scim"


def test_create_shows_the_token_once_and_stores_only_its_hash(client, make_tenant, db):
    tenant = make_tenant()
    r = client.post(API, json={"name": "Okta"}, headers=tenant.auth)
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "Okta" and body["scim_url"] == "http://testserver/api/v1/scim" and body["token"]
    with db.unit_of_work() as s:
        row = s.scalar(select(ScimIntegration).where(ScimIntegration.id == body["id"]))
        assert row.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
        assert body["token"] not in json.dumps({c.name: str(getattr(row, c.name)) for c in row.__table__.columns})
    listed = client.get(API, headers=tenant.auth)
    assert listed.status_code == 200 and body["token"] not in listed.text
    assert [i["id"] for i in listed.json()] == [body["id"]] and "token" not in listed.json()[0]
    one = client.get(f"{API}/{body['id']}", headers=tenant.auth).json()
    assert "token" not in one and one["name"] == "Okta"


def test_blank_name_is_a_field_error(client, make_tenant):
    tenant = make_tenant()
    for bad in ({}, {"name": ""}, {"name": 5}):
        r = client.post(API, json=bad, headers=tenant.auth)
        assert r.status_code == 400 and "name" in r.json()


def test_rename_rotate_delete_are_audited(client, make_tenant):
    tenant = make_tenant()
    created = client.post(API, json={"name": "Okta"}, headers=tenant.auth).json()
    assert client.patch(f"{API}/{created['id']}", json={"name": "Okta prod"}, headers=tenant.auth).json()[
        "name"] == "Okta prod"
    rotated = client.post(f"{API}/{created['id']}/rotate", headers=tenant.auth).json()
    assert rotated["token"] != created["token"] and rotated["rotated_at"]
    assert client.delete(f"{API}/{created['id']}", headers=tenant.auth).status_code == 204
    assert client.get(f"{API}/{created['id']}", headers=tenant.auth).status_code == 404
    events = client.get("/api/v1/audit/events", headers=tenant.auth).json()["results"]
    mine = [(e["action"], e["new_state"]) for e in events if e["target_id"] == created["id"]]
    assert ("create", {"name": "Okta"}) in mine and ("delete", {"name": "Okta prod"}) in mine
    assert ("update", {"name": "Okta prod", "token_rotated": True}) in mine
    assert created["token"] not in json.dumps(events) and rotated["token"] not in json.dumps(events)


def test_other_tenants_integrations_are_invisible(client, make_tenant):
    mine, theirs = make_tenant(), make_tenant()
    created = client.post(API, json={"name": "Okta"}, headers=theirs.auth).json()
    assert client.get(API, headers=mine.auth).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        assert client.request(method, f"{API}/{created['id']}", json={"name": "x"},
                              headers=mine.auth).status_code == 404
    assert client.post(f"{API}/{created['id']}/rotate", headers=mine.auth).status_code == 404


def test_each_integration_tags_the_users_it_creates(client, make_tenant):
    tenant = make_tenant()
    okta = client.post(API, json={"name": "Okta"}, headers=tenant.auth).json()
    entra = client.post(API, json={"name": "Entra"}, headers=tenant.auth).json()
    for integration, name in ((okta, "o@example.com"), (entra, "e@example.com")):
        d = Directory(client, tenant, integration["token"], integration["id"])
        d.create_user(name)
    users = client.get("/api/v1/users", headers=tenant.auth).json()["results"]
    tags = {u["email"]: u["integration"] for u in users}
    assert tags["o@example.com"] == {"id": "1", "name": "Okta", "uuid": okta["id"], "type": "scim"}
    assert tags["e@example.com"] == {"id": "2", "name": "Entra", "uuid": entra["id"], "type": "scim"}
    only_entra = client.get(f"/api/v1/users?integration_id={entra['id']}", headers=tenant.auth).json()["results"]
    assert [u["email"] for u in only_entra] == ["e@example.com"]


def test_scim_routes_are_not_in_the_api_permission_catalogue(client):
    from bramley.auth.permissions import catalogue

    paths = {p.path for p in catalogue(client.app.routes)}
    assert not any(p.startswith(BASE) for p in paths)
    assert f"{API}/{{integration_id}}/rotate" in paths and "/api/v1/blueprint-assignment-rules" in paths


def test_cli_creates_lists_rotates_and_deletes(settings, make_tenant, client):
    tenant = make_tenant()
    created = json.loads(run_cli(settings, "scim-token", "create", "--tenant", tenant.subdomain, "--name", "Okta",
                                 "--json").stdout)
    assert set(created) == {"id", "name", "token", "url"} and created["name"] == "Okta"
    d = Directory(client, tenant, created["token"], created["id"])
    assert d.get("/Users").status_code == 200
    listed = json.loads(run_cli(settings, "scim-token", "list", "--tenant", tenant.subdomain, "--json").stdout)
    assert [i["id"] for i in listed] == [created["id"]] and created["token"] not in json.dumps(listed)
    rotated = json.loads(run_cli(settings, "scim-token", "rotate", created["id"], "--tenant", tenant.subdomain,
                                 "--json").stdout)
    assert d.get("/Users").status_code == 401
    assert Directory(client, tenant, rotated["token"], created["id"]).get("/Users").status_code == 200
    run_cli(settings, "scim-token", "delete", created["id"], "--tenant", tenant.subdomain)
    assert Directory(client, tenant, rotated["token"], created["id"]).get("/Users").status_code == 401
    missing = run_cli(settings, "scim-token", "create", "--tenant", "no-such-tenant", check=False)
    assert missing.returncode == 1 and "no tenant" in missing.stderr
