"""Tenants never see or change each other's data, whatever the route or host."""
from __future__ import annotations


def test_other_tenants_devices_are_invisible(client, make_tenant):
    a, b = make_tenant(devices=5), make_tenant(devices=5)
    a_ids = {d["device_id"] for d in client.get("/api/v1/devices", headers=a.auth).json()}
    b_dev = client.get("/api/v1/devices", headers=b.auth).json()[0]
    assert b_dev["device_id"] not in a_ids
    for path in ("", "/details", "/apps", "/notes", "/library-items", "/status", "/parameters"):
        r = client.get(f"/api/v1/devices/{b_dev['device_id']}{path}", headers=a.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}, path
    assert client.get(f"/api/v1/devices?device_id={b_dev['device_id']}", headers=a.auth).text == "[]"
    assert client.get(f"/api/v1/devices?blueprint_id={b_dev['blueprint_id']}", headers=a.auth).text == "[]"
    assert client.get(f"/api/v1/devices?serial_number={b_dev['serial_number']}", headers=a.auth).text == "[]"


def test_other_tenants_device_cannot_be_changed_or_deleted(client, make_tenant):
    a, b = make_tenant(devices=2), make_tenant(devices=2)
    b_dev = client.get("/api/v1/devices", headers=b.auth).json()[0]
    assert client.patch(f"/api/v1/devices/{b_dev['device_id']}", json={"asset_tag": "stolen"},
                        headers=a.auth).status_code == 404
    assert client.post(f"/api/v1/devices/{b_dev['device_id']}/notes", json={"content": "x"},
                       headers=a.auth).status_code == 404
    assert client.delete(f"/api/v1/devices/{b_dev['device_id']}", headers=a.auth).status_code == 404
    after = client.get(f"/api/v1/devices/{b_dev['device_id']}", headers=b.auth).json()
    assert after == b_dev
    assert client.get(f"/api/v1/devices/{b_dev['device_id']}/notes", headers=b.auth).json() == []


def test_blueprints_users_tags_and_audit_stay_per_tenant(client, make_tenant):
    a, b = make_tenant(devices=3), make_tenant(devices=3)
    b_bp = client.get("/api/v1/blueprints", headers=b.auth).json()["results"][0]
    a_bps = client.get("/api/v1/blueprints", headers=a.auth).json()["results"]
    assert b_bp["id"] not in {x["id"] for x in a_bps}
    assert client.get(f"/api/v1/blueprints/{b_bp['id']}", headers=a.auth).status_code == 404
    assert client.patch(f"/api/v1/blueprints/{b_bp['id']}", json={"name": "x"}, headers=a.auth).status_code == 404
    assert client.delete(f"/api/v1/blueprints/{b_bp['id']}", headers=a.auth).status_code == 404
    b_user = client.get("/api/v1/users", headers=b.auth).json()["results"][0]
    assert client.get(f"/api/v1/users/{b_user['id']}", headers=a.auth).status_code == 404
    assert b_user["id"] not in {u["id"] for u in client.get("/api/v1/users", headers=a.auth).json()["results"]}
    # A device of A cannot be pointed at B's user or blueprint.
    a_dev = client.get("/api/v1/devices?limit=1", headers=a.auth).json()[0]
    r = client.patch(f"/api/v1/devices/{a_dev['device_id']}", json={"user": b_user["id"]}, headers=a.auth)
    assert r.status_code == 400 and "user" in r.json()
    r = client.patch(f"/api/v1/devices/{a_dev['device_id']}", json={"blueprint_id": b_bp["id"]}, headers=a.auth)
    assert r.status_code == 400 and "blueprint_id" in r.json()
    client.post("/api/v1/tags", json={"name": "only-in-b"}, headers=b.auth)
    assert "only-in-b" not in str(client.get("/api/v1/tags", headers=a.auth).json())
    b_events = client.get("/api/v1/audit/events", headers=b.auth).json()["results"]
    a_event_ids = {e["id"] for e in client.get("/api/v1/audit/events", headers=a.auth).json()["results"]}
    assert b_events and not {e["id"] for e in b_events} & a_event_ids


def test_tenant_host_must_match_the_tokens_tenant(client, make_tenant):
    a, b = make_tenant(devices=1), make_tenant(devices=1)
    ok = client.get("/api/v1/devices", headers={**a.auth, "Host": f"{a.subdomain}.api.kandji.io"})
    assert ok.status_code == 200
    assert client.get("/api/v1/devices", headers={**a.auth, "Host": f"{a.subdomain}.api.iru.com"}).status_code == 200
    wrong = client.get("/api/v1/devices", headers={**a.auth, "Host": f"{b.subdomain}.api.kandji.io"})
    assert wrong.status_code == 401
    unknown = client.get("/api/v1/devices", headers={**a.auth, "Host": "nosuchtenant.api.kandji.io"})
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not found."}


def test_eu_tenant_answers_on_eu_hosts_only(client, make_tenant):
    eu = make_tenant(region="eu", devices=1)
    for host in (f"{eu.subdomain}.api.eu.kandji.io", f"{eu.subdomain}.api.eu.iru.com", "127.0.0.1:8443", "localhost"):
        assert client.get("/api/v1/devices", headers={**eu.auth, "Host": host}).status_code == 200, host
    assert client.get("/api/v1/devices", headers={**eu.auth, "Host": f"{eu.subdomain}.api.kandji.io"}).status_code == 404


def test_page_links_use_the_callers_host(client, make_tenant):
    t = make_tenant(devices=1)
    for n in range(3):
        client.post("/api/v1/tags", json={"name": f"tag{n}"}, headers=t.auth)
    host = f"{t.subdomain}.api.kandji.io"
    body = client.get("/api/v1/tags?limit=1", headers={**t.auth, "Host": host}).json()
    assert body["next"].startswith(f"http://{host}/api/v1/tags?")
