"""The ADE routes as an admin and the Okta cards use them: key, token upload, integrations, ADE devices."""
from __future__ import annotations

import base64
import json
import os

from cryptography import x509
from sqlalchemy import select, text

from bramley.ade.models import ADEDevice
from bramley.ade.token import NOT_A_TOKEN, WRONG_KEY
from bramley.devices import service as devices
from bramley.secrets.models import Secret

from .conftest import BASE

INTEGRATION_KEYS = ["id", "blueprint", "access_token_expiry", "server_name", "server_uuid", "admin_id", "org_name",
                    "org_email", "org_phone", "org_address", "org_type", "stoken_file_name", "last_device_sync",
                    "defaults", "days_left", "status", "status_reason", "status_received_at", "device_counts",
                    "use_blueprint_routing"]
DEVICE_KEYS = ["blueprint_id", "mdm_device", "user_id", "dep_account", "asset_tag", "color", "description",
               "device_assigned_by", "device_assigned_date", "device_family", "model", "os", "profile_assign_time",
               "profile_push_time", "profile_status", "serial_number", "id", "last_assignment_status",
               "failed_assignment_attempts", "assignment_status_received_at", "tags", "use_blueprint_routing",
               "blueprint", "user"]


# -- the public key ------------------------------------------------------------------------------------------------

def test_public_key_is_a_pem_certificate_with_the_exact_content_type(ade, make_tenant):
    t = make_tenant()
    r = ade.client.get(f"{BASE}/public_key/", headers=t.auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-x509-ca-cert"
    cert = x509.load_pem_x509_certificate(r.content)
    assert t.subdomain in cert.subject.rfc4514_string()
    # Stable: the admin uploads it to Apple once.
    assert ade.client.get(f"{BASE}/public_key", headers=t.auth).text == r.text
    # Each tenant has its own.
    assert ade.public_key(make_tenant()) != r.text


def test_the_private_key_is_encrypted_at_rest(ade, make_tenant):
    t = make_tenant()
    ade.public_key(t)
    with ade.database.unit_of_work() as s:
        row = s.scalar(select(Secret).where(Secret.tenant_id == t.id, Secret.kind == "ade_key"))
    assert row is not None
    assert b"PRIVATE KEY" not in row.ciphertext and b"MII" not in row.ciphertext


# -- token upload --------------------------------------------------------------------------------------------------

def test_uploading_a_token_returns_the_integration_in_iru_shape(ade, make_tenant):
    t = make_tenant()
    bp = ade.blueprint(t, "ADE Default")
    org = ade.fake.new_org(server_name="Accuhive MDM")
    r = ade.upload(t, org, blueprint_id=bp)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == INTEGRATION_KEYS
    assert body["blueprint"] == {"id": bp, "name": "ADE Default", "icon": "ss-files", "color": "aqua-800"}
    assert body["server_name"] == "Accuhive MDM" and body["server_uuid"] == org.account["server_uuid"]
    assert body["org_name"] == "Accuhive" and body["admin_id"] == "admin@accuhive.io"
    assert body["access_token_expiry"] == org.token()["access_token_expiry"]
    assert body["stoken_file_name"] == "Test_Token_2026-01-01T00-00-00Z_smime.p7m"
    assert body["defaults"] == {"email": "it@example.com", "phone": "4155550100"}
    assert body["days_left"] in (364, 365)
    assert (body["status"], body["status_reason"], body["last_device_sync"]) == ("SUCCESS", None, None)
    assert body["device_counts"] == {"Mac": 0, "iPad": 0, "iPhone": 0, "AppleTV": 0, "total": 0}
    # The card reads it back by id, and the list shows it.
    got = ade.client.get(f"{BASE}/{body['id']}", headers=t.auth)
    assert got.status_code == 200 and got.json() == body
    listed = ade.client.get(BASE, headers=t.auth).json()
    assert listed == {"count": 1, "next": None, "previous": None, "results": [body]}


def test_the_oauth_secrets_are_stored_encrypted_and_never_shown(ade, make_tenant, caplog):
    t = make_tenant()
    body, org = ade.integrate(t)
    with ade.database.unit_of_work() as s:
        rows = s.scalars(select(Secret).where(Secret.tenant_id == t.id, Secret.owner_id == body["id"])).all()
        dump = json.dumps([dict(r) for r in s.execute(text("SELECT * FROM ade_integrations WHERE id = :i"),
                                                       {"i": body["id"]}).mappings()], default=str)
    assert [r.kind for r in rows] == ["server_token"]
    for secret in (org.consumer_secret, org.access_secret, org.access_token):
        assert secret.encode() not in rows[0].ciphertext
        assert secret not in dump and secret not in caplog.text
        assert secret not in json.dumps(body)


def test_a_3des_token_opens_too(ade, make_tenant):
    t = make_tenant()
    r = ade.upload(t, cipher="tripledes_3key")
    assert r.status_code == 200, r.text


def test_upload_writes_an_audit_event(ade, make_tenant):
    t = make_tenant()
    body, _ = ade.integrate(t)
    events = ade.client.get("/api/v1/audit/events", headers=t.auth, params={"limit": 50}).json()["results"]
    created = [e for e in events if e["target_id"] == body["id"]]
    assert created and created[0]["action"] == "create"


def test_a_file_that_is_not_a_token_is_a_400_on_file(ade, make_tenant):
    t = make_tenant()
    ade.public_key(t)
    for junk in (b"hello", os.urandom(300), b"MIME-Version: 1.0\r\n\r\n" + base64.b64encode(b"\x30\x03abc"),
                 b"-----BEGIN PKCS7-----\nnot base64!\n-----END PKCS7-----"):
        r = ade.upload(t, file=junk)
        assert r.status_code == 400 and r.json() == {"file": [NOT_A_TOKEN]}, (junk[:20], r.text)


def test_a_token_made_for_another_key_is_refused(ade, make_tenant):
    t, other = make_tenant(), make_tenant()
    ade.public_key(t)
    r = ade.upload(t, file=ade.token_file(other, ade.fake.new_org()))
    assert r.status_code == 400 and r.json() == {"file": [WRONG_KEY]}


def test_upload_before_downloading_the_key_says_what_to_do(ade, make_tenant):
    t = make_tenant()
    from bramley.simulator.fake_ade import server_token_p7m

    r = ade.upload(t, file=server_token_p7m(ade.public_key(make_tenant()), ade.fake.new_org()))
    assert r.status_code == 400 and "public key" in r.json()["file"][0]


def test_bad_form_fields_are_field_errors_and_nothing_is_written(ade, make_tenant):
    t = make_tenant()
    org = ade.fake.new_org()
    r = ade.upload(t, org, data={"blueprint_id": "5344c996-8823-4b37-8d6e-8515fc7c3a0a", "email": "not-an-email"})
    assert r.status_code == 400
    assert r.json() == {"blueprint_id": ['Invalid pk "5344c996-8823-4b37-8d6e-8515fc7c3a0a" - object does not exist.'],
                        "email": ["Enter a valid email address."]}
    r = ade.upload(t, org, data={"phone": "1"})
    assert r.json() == {"blueprint_id": ["This field is required."]}
    r = ade.client.post(f"{BASE}/", headers=t.auth, data={"blueprint_id": ade.blueprint(t)})
    assert r.status_code == 400 and r.json() == {"file": ["No file was submitted."]}
    r = ade.client.post(f"{BASE}/", headers=t.auth, data={"blueprint_id": ade.blueprint(t), "file": "text"})
    assert r.status_code == 400 and r.json()["file"][0].startswith("The submitted data was not a file")
    r = ade.upload(t, org, file=b"")
    assert r.status_code == 400 and r.json() == {"file": ["The submitted file is empty."]}
    r = ade.client.post(f"{BASE}/", headers={**t.auth, "Content-Type": "text/plain"}, content=b"x")
    assert r.status_code == 415
    r = ade.client.post(f"{BASE}/", headers=t.auth, json=[1])
    assert r.status_code == 400
    r = ade.upload(t, org, data={"blueprint_id": "x\x00y"})
    assert r.status_code == 400
    assert ade.client.get(BASE, headers=t.auth).json()["count"] == 0


def test_routing_instead_of_a_blueprint(ade, make_tenant):
    t = make_tenant()
    body, _ = ade.integrate(t, data={"use_blueprint_routing": "True"})
    assert body["blueprint"] is None and body["use_blueprint_routing"] is True


def test_apple_refusing_the_token_is_a_clear_400(ade, make_tenant):
    t = make_tenant()
    revoked = ade.fake.new_org()
    revoked.revoked = True
    r = ade.upload(t, revoked)
    assert r.status_code == 400 and "Apple refused this server token (FORBIDDEN)" in r.json()["file"][0]
    tampered = ade.fake.new_org()
    token = {**tampered.token(), "consumer_secret": "CS_wrong"}
    from bramley.simulator.fake_ade import server_token_p7m

    r = ade.upload(t, file=server_token_p7m(ade.public_key(t), token))
    assert r.status_code == 400 and "UNAUTHORIZED" in r.json()["file"][0]


def test_the_same_server_twice_is_refused(ade, make_tenant):
    t = make_tenant()
    _, org = ade.integrate(t)
    r = ade.upload(t, org)
    assert r.status_code == 400 and "already exists" in r.json()["file"][0]


def test_renew_keeps_the_integration_and_checks_the_server(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.access_token, org.access_secret = "AT_renewed", "AS_renewed"  # ABM issues new credentials yearly
    r = ade.upload(t, org, path=f"{body['id']}/renew", data={})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == body["id"] and r.json()["defaults"] == body["defaults"]
    other = ade.upload(t, path=f"{body['id']}/renew", data={})
    assert other.status_code == 400 and "belongs to the MDM server" in other.json()["file"][0]
    assert ade.upload(t, org, path="5344c996-8823-4b37-8d6e-8515fc7c3a0a/renew", data={}).status_code == 404


def test_patch_integration(ade, make_tenant):
    t = make_tenant()
    body, _ = ade.integrate(t)
    url = f"{BASE}/{body['id']}"
    bp = ade.blueprint(t, "Second")
    r = ade.client.patch(url, headers=t.auth, json={"blueprint_id": bp, "phone": "1234567890",
                                                   "email": "new@example.com"})
    assert r.status_code == 200
    assert r.json()["blueprint"]["name"] == "Second"
    assert r.json()["defaults"] == {"email": "new@example.com", "phone": "1234567890"}
    r = ade.client.patch(url, headers=t.auth, json={"use_blueprint_routing": True})
    assert r.json()["blueprint"] is None and r.json()["use_blueprint_routing"] is True
    assert ade.client.patch(url, headers=t.auth, json={"use_blueprint_routing": False}).json() == {
        "blueprint_id": ["This field is required."]}
    assert ade.client.patch(url, headers=t.auth, json={"email": "nope"}).json() == {
        "email": ["Enter a valid email address."]}
    assert ade.client.patch(url, headers=t.auth, json={"phone": 5}).status_code == 400
    assert ade.client.patch(url, headers=t.auth, json={"blueprint_id": bp}).json()["use_blueprint_routing"] is False


def test_delete_integration(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.add_devices(2)
    ade.sync(t, body["id"])
    r = ade.client.delete(f"{BASE}/{body['id']}/", headers=t.auth)
    assert r.status_code == 204 and r.content == b""
    assert ade.client.get(f"{BASE}/{body['id']}", headers=t.auth).status_code == 404
    assert ade.client.get(f"{BASE}/devices", headers=t.auth).json()["count"] == 0
    with ade.database.unit_of_work() as s:
        assert s.scalar(select(Secret).where(Secret.tenant_id == t.id, Secret.owner_id == body["id"])) is None


def test_unknown_ids_are_404(ade, make_tenant):
    t = make_tenant()
    for bad in ("5344c996-8823-4b37-8d6e-8515fc7c3a0a", "not-a-uuid", "1"):
        for method, path in (("GET", bad), ("PATCH", bad), ("DELETE", bad), ("GET", f"{bad}/devices"),
                             ("GET", f"devices/{bad}"), ("PATCH", f"devices/{bad}")):
            r = ade.client.request(method, f"{BASE}/{path}", headers=t.auth, json={})
            assert r.status_code == 404 and r.json() == {"detail": "Not found."}, (method, path, r.text)


# -- ADE devices ---------------------------------------------------------------------------------------------------

def test_token_devices_list_in_iru_shape(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    mac = org.add_device(family="Mac", asset_tag="A-1")
    ade.sync(t, body["id"])
    page = ade.devices(t, body["id"], page=1)
    assert (page["count"], page["next"], page["previous"]) == (1, None, None)
    device = page["results"][0]
    assert list(device) == DEVICE_KEYS
    assert device["serial_number"] == mac["serial_number"] and device["device_family"] == "Mac"
    assert device["os"] == "OSX" and device["asset_tag"] == "A-1"
    assert device["dep_account"] == {"id": body["id"], "server_name": body["server_name"]}
    assert device["mdm_device"] is None  # awaiting enrollment
    assert device["blueprint_id"] == body["blueprint"]["id"] == device["blueprint"]
    assert device["profile_status"] == "assigned" and device["last_assignment_status"] == "SUCCESS"
    assert device["device_assigned_date"].endswith("Z") and len(device["device_assigned_date"]) == 20
    assert device["assignment_status_received_at"].endswith("Z") and "." in device["assignment_status_received_at"]
    # The same record by id.
    one = ade.client.get(f"{BASE}/devices/{device['id']}", headers=t.auth)
    assert one.status_code == 200 and one.json() == device


def test_enrolled_device_links_as_mdm_device(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    apple = org.add_device(family="iPhone")
    ade.sync(t, body["id"])
    with ade.database.unit_of_work() as s:
        managed = devices.enroll(s, t.ctx(s), udid="00008030-000A1B2C3D4E5F60", serial_number=apple["serial_number"],
                                 platform="iPhone", device_name="Ann's iPhone")
        managed_id = managed.id
    device = ade.devices(t, body["id"])["results"][0]
    assert device["mdm_device"] == {"id": managed_id, "enrolled_at": device["mdm_device"]["enrolled_at"],
                                    "name": "Ann's iPhone", "enrollment_status": 4, "deferred_install": False,
                                    "is_missing": False, "is_removed": False}
    assert device["mdm_device"]["enrolled_at"].endswith("Z")


def test_pages_hold_300_and_link_onwards(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.add_devices(301)
    ade.sync(t, body["id"])
    first = ade.devices(t, body["id"])
    assert first["count"] == 301 and len(first["results"]) == 300
    assert first["next"] == f"http://testserver{BASE}/{body['id']}/devices?page=2" and first["previous"] is None
    second = ade.client.get(first["next"], headers=t.auth).json()
    assert len(second["results"]) == 1 and second["next"] is None
    assert second["previous"] == f"http://testserver{BASE}/{body['id']}/devices"
    assert {d["id"] for d in first["results"]}.isdisjoint(d["id"] for d in second["results"])
    assert ade.devices(t, body["id"], page=9)["results"] == []
    for bad in ("0", "abc", "-1"):
        assert ade.client.get(f"{BASE}/{body['id']}/devices", headers=t.auth,
                              params={"page": bad}).status_code == 404
    counts = ade.client.get(f"{BASE}/{body['id']}", headers=t.auth).json()["device_counts"]
    assert counts == {"Mac": 301, "iPad": 0, "iPhone": 0, "AppleTV": 0, "total": 301}


def test_device_list_filters(ade, make_tenant):
    t = make_tenant()
    first, org1 = ade.integrate(t)
    second, org2 = ade.integrate(t)
    mac = org1.add_device("C02FL5YXQ6LC", family="Mac")
    org1.add_device(family="iPad")
    phone = org2.add_device(family="iPhone")
    ade.sync(t, first["id"])
    ade.sync(t, second["id"])

    def serials(**params):
        r = ade.client.get(f"{BASE}/devices", headers=t.auth, params=params)
        assert r.status_code == 200, r.text
        return sorted(d["serial_number"] for d in r.json()["results"])

    assert len(serials()) == 3
    assert serials(dep_account=second["id"]) == [phone["serial_number"]]
    assert serials(device_family="Mac") == [mac["serial_number"]]
    assert serials(os="iOS", dep_account=first["id"]) == [d for d in serials(device_family="iPad")]
    assert serials(serial_number="fl5yx") == [mac["serial_number"]]
    assert serials(model="macbook") == [mac["serial_number"]]
    assert serials(profile_status="assigned") == serials()
    assert serials(profile_status="pushed") == []
    assert serials(blueprint_id=first["blueprint"]["id"][:8]) == serials(dep_account=first["id"])
    assert serials(user_id="5344c996-8823-4b37-8d6e-8515fc7c3a0a", unknown="x") == []
    r = ade.client.get(f"{BASE}/devices", headers=t.auth, params={"dep_account": "nope"})
    assert r.status_code == 400 and r.json() == {"dep_account": ["Enter a valid UUID."]}
    assert ade.client.get(f"{BASE}/devices", headers=t.auth, params={"model": "a\x00b"}).status_code == 400


def test_patch_ade_device(ade, make_tenant):
    t = make_tenant(devices=2)
    body, org = ade.integrate(t)
    org.add_device()
    ade.sync(t, body["id"])
    device = ade.devices(t, body["id"])["results"][0]
    url = f"{BASE}/devices/{device['id']}"
    user_id = ade.client.get("/api/v1/users", headers=t.auth).json()["results"][0]["id"]
    bp = ade.blueprint(t)
    r = ade.client.patch(url, headers=t.auth, json={"blueprint_id": bp, "asset_tag": "123456", "user_id": user_id})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["blueprint_id"], got["blueprint"], got["user_id"], got["user"], got["asset_tag"]) == (
        bp, bp, user_id, user_id, "123456")
    assert ade.client.get(url, headers=t.auth).json() == got
    # Older callers' names.
    bp2 = ade.blueprint(t)
    got = ade.client.patch(url, headers=t.auth, json={"blueprint": bp2, "user": None}).json()
    assert (got["blueprint_id"], got["user_id"]) == (bp2, None)
    got = ade.client.patch(url, headers=t.auth, json={"use_blueprint_routing": "true"}).json()
    assert got["use_blueprint_routing"] is True and got["blueprint_id"] is None
    got = ade.client.patch(url, headers=t.auth, json={"asset_tag": None}).json()
    assert got["asset_tag"] is None
    # Bad values: field errors, nothing changed.
    for patch, field in (({"blueprint_id": "5344c996-8823-4b37-8d6e-8515fc7c3a0a"}, "blueprint_id"),
                         ({"user_id": "nobody"}, "user_id"), ({"asset_tag": "x" * 256}, "asset_tag"),
                         ({"use_blueprint_routing": "maybe"}, "use_blueprint_routing"),
                         ({"asset_tag": ["x"]}, "asset_tag"), ({"blueprint_id": 5}, "blueprint_id")):
        r = ade.client.patch(url, headers=t.auth, json=patch)
        assert r.status_code == 400 and list(r.json()) == [field], (patch, r.text)
    assert ade.client.get(url, headers=t.auth).json()["use_blueprint_routing"] is True
    assert ade.client.patch(url, headers={**t.auth, "Content-Type": "application/json"},
                            content=b"{bad").status_code == 400


def test_tenants_never_see_each_others_ade(ade, make_tenant):
    a, b = make_tenant(), make_tenant()
    body, org = ade.integrate(a)
    org.add_device()
    ade.sync(a, body["id"])
    device = ade.devices(a, body["id"])["results"][0]
    assert ade.client.get(BASE, headers=b.auth).json()["count"] == 0
    assert ade.client.get(f"{BASE}/devices", headers=b.auth).json()["count"] == 0
    assert ade.client.get(f"{BASE}/devices", headers=b.auth, params={"dep_account": body["id"]}).json()["count"] == 0
    for method, path, payload in (("GET", body["id"], None), ("PATCH", body["id"], {"phone": "1"}),
                                  ("DELETE", body["id"], None), ("GET", f"{body['id']}/devices", None),
                                  ("GET", f"devices/{device['id']}", None),
                                  ("PATCH", f"devices/{device['id']}", {"asset_tag": "mine"})):
        r = ade.client.request(method, f"{BASE}/{path}", headers=b.auth, json=payload)
        assert r.status_code == 404, (method, path)
    r = ade.upload(b, path=f"{body['id']}/renew", data={})
    assert r.status_code == 404
    # A's records are untouched.
    assert ade.client.get(f"{BASE}/devices/{device['id']}", headers=a.auth).json() == device


def test_routes_need_their_own_permission(ade, make_tenant):
    t = make_tenant()
    body, _ = ade.integrate(t)
    value, _ = t.make_token([("GET", "/api/v1/integrations/apple/ade/{ade_token_id}/devices"),
                             ("GET", "/api/v1/integrations/apple/ade/{ade_token_id}")])
    headers = {"Authorization": f"Bearer {value}"}
    assert ade.client.get(f"{BASE}/{body['id']}/devices", headers=headers).status_code == 200
    assert ade.client.get(f"{BASE}/{body['id']}", headers=headers).status_code == 200
    assert ade.client.get(BASE, headers=headers).status_code == 403
    assert ade.client.get(f"{BASE}/public_key", headers=headers).status_code == 403
    assert ade.client.delete(f"{BASE}/{body['id']}", headers=headers).status_code == 403
    assert ade.client.get(f"{BASE}/{body['id']}").status_code == 401


def test_device_rows_are_tenant_scoped_in_storage(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.add_devices(2)
    ade.sync(t, body["id"])
    with ade.database.unit_of_work() as s:
        tenants = set(s.scalars(select(ADEDevice.tenant_id).where(ADEDevice.integration_id == body["id"])))
    assert tenants == {t.id}


def test_replies_match_the_openapi_document(ade, make_tenant, ade_app):
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", ade_app)
    t = make_tenant(devices=2)
    key = ade.client.get(f"{BASE}/public_key", headers=t.auth)
    schema[f"{BASE}/public_key"]["GET"].validate_response(key)
    org = ade.fake.new_org()
    created = ade.upload(t, org)
    schema[BASE]["POST"].validate_response(created)
    body = created.json()
    org.add_devices(2)
    ade.sync(t, body["id"])
    device = ade.devices(t, body["id"])["results"][0]
    user_id = ade.client.get("/api/v1/users", headers=t.auth).json()["results"][0]["id"]
    calls = [
        ("GET", BASE, BASE, None),
        ("GET", f"{BASE}/{{ade_token_id}}", f"{BASE}/{body['id']}", None),
        ("PATCH", f"{BASE}/{{ade_token_id}}", f"{BASE}/{body['id']}", {"phone": "1", "use_blueprint_routing": True}),
        ("GET", f"{BASE}/{{ade_token_id}}/devices", f"{BASE}/{body['id']}/devices", None),
        ("GET", f"{BASE}/devices", f"{BASE}/devices", None),
        ("GET", f"{BASE}/devices/{{device_id}}", f"{BASE}/devices/{device['id']}", None),
        ("PATCH", f"{BASE}/devices/{{device_id}}", f"{BASE}/devices/{device['id']}",
         {"user_id": user_id, "asset_tag": "T-1"}),
        ("GET", f"{BASE}/devices", f"{BASE}/devices?dep_account=bad", None),
        ("DELETE", f"{BASE}/{{ade_token_id}}", f"{BASE}/{body['id']}", None),
    ]
    for method, template, url, payload in calls:
        r = ade.client.request(method, url, json=payload, headers=t.auth)
        assert r.status_code < 500, (method, url, r.text)
        schema[template][method].validate_response(r)


def test_odd_ids_and_queries_are_never_a_500(ade, make_tenant):
    t = make_tenant()
    for odd in ("%00", "x" * 500, "0b7a5a3e-1111-4222-8333-94445555666Z", "NULL"):
        for method, path in (("GET", odd), ("GET", f"{odd}/devices"), ("GET", f"devices/{odd}"),
                             ("PATCH", f"devices/{odd}"), ("POST", f"{odd}/renew")):
            r = ade.client.request(method, f"{BASE}/{path}", headers=t.auth, json={})
            assert r.status_code == 404, (method, path, r.status_code)
    for params in ({"page": "9" * 30}, {"page": "%00"}, {"serial_number": "%"}, {"model": "_"},
                   {"user_id": "x" * 1000}, {"blueprint_id": "'; DROP TABLE ade_devices; --"}):
        r = ade.client.get(f"{BASE}/devices", headers=t.auth, params=params)
        assert r.status_code in (200, 400, 404), (params, r.status_code)
    body, _ = ade.integrate(t)
    for patch in ({"phone": "x" * 100}, {"email": "a@b.c" * 100}, {"blueprint_id": "x" * 500}, {"phone": ["1"]},
                  {"use_blueprint_routing": None}):
        r = ade.client.patch(f"{BASE}/{body['id']}", headers=t.auth, json=patch)
        assert r.status_code == 400, (patch, r.text)
