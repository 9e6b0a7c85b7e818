"""The Iru secret endpoints: values and nulls in Iru's shapes, every read audited, nothing leaks elsewhere."""
from __future__ import annotations

import json
import logging
import uuid

import pytest

from bramley.auth.permissions import catalogue
from bramley.secrets import service as secrets

PATHS = ("bypasscode", "filevaultkey", "unlockpin", "recoverypassword")


def _device_ids(client, handle) -> list[str]:
    return [d["device_id"] for d in client.get("/api/v1/devices", headers=handle.auth).json()]


def _store(handle, device_id: str, **values: str) -> None:
    with handle.db.unit_of_work() as s:
        for kind, value in values.items():
            secrets.put(s, handle.ctx(s), owner_type="device", owner_id=device_id, kind=kind, value=value)


def _secret_values() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8].upper()
    return {"bypass_code_user": f"U{tag}-8RTM-C3GL-VPXY-QW2R-M5HD", "bypass_code_device": f"D{tag}-K7PQ-2NVB",
            "filevault_prk": f"F{tag}-EFGH-IJKL-MNOP-QRST-UVWX", "unlock_pin": f"P{tag}",
            "recovery_password": f"R{tag}-correct-horse-battery"}


def _audit_reads(client, handle) -> list[dict]:
    events = client.get("/api/v1/audit/events?limit=500", headers=handle.auth).json()["results"]
    return [e for e in events if e["action"] == "read" and e["target_component"] == "secrets"]


def test_secret_endpoints_return_stored_values_in_iru_shapes(client, make_tenant):
    t = make_tenant(devices=2)
    device = _device_ids(client, t)[0]
    _store(t, device, bypass_code_user="K0XQ-8RTM-C3GL-VPXY-QW2R-M5HD", bypass_code_device="T2C6-K7PQ-2NVB-4XQR",
           filevault_prk="ABCD-EFGH-IJKL-MNOP-QRST-UVWX", unlock_pin="482913", recovery_password="s3cret-Recovery")
    base = f"/api/v1/devices/{device}/secrets"
    expected = {
        "bypasscode": {"user_based_albc": "K0XQ-8RTM-C3GL-VPXY-QW2R-M5HD", "device_based_albc": "T2C6-K7PQ-2NVB-4XQR"},
        "filevaultkey": {"key": "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"},
        "unlockpin": {"pin": "482913"},
        "recoverypassword": {"recovery_password": "s3cret-Recovery"},
    }
    for path, body in expected.items():
        r = client.get(f"{base}/{path}", headers=t.auth)
        assert r.status_code == 200 and r.json() == body, path
        assert r.headers["content-type"] == "application/json" and r.headers["cache-control"] == "no-store"
        assert r.content == json.dumps(body, separators=(",", ":")).encode()
    # Trailing slash served the same, never redirected.
    assert client.get(f"{base}/unlockpin/", headers=t.auth).json() == {"pin": "482913"}


def test_secret_endpoints_answer_null_when_nothing_is_stored(client, make_tenant):
    t = make_tenant(devices=1)
    device = _device_ids(client, t)[0]
    _store(t, device, bypass_code_device="ONLY-DEVICE-CODE")
    base = f"/api/v1/devices/{device}/secrets"
    assert client.get(f"{base}/bypasscode", headers=t.auth).json() == {"user_based_albc": None,
                                                                       "device_based_albc": "ONLY-DEVICE-CODE"}
    assert client.get(f"{base}/filevaultkey", headers=t.auth).text == '{"key":null}'
    assert client.get(f"{base}/unlockpin", headers=t.auth).text == '{"pin":null}'
    assert client.get(f"{base}/recoverypassword", headers=t.auth).text == '{"recovery_password":null}'


def test_every_read_is_audited_with_token_and_never_the_value(client, make_tenant):
    t = make_tenant(devices=1)
    device = _device_ids(client, t)[0]
    values = _secret_values()
    _store(t, device, **values)
    token, token_id = t.make_token(all_access=True, description="Helpdesk FileVault lookup")
    auth = {"Authorization": f"Bearer {token}"}
    for path in PATHS:
        assert client.get(f"/api/v1/devices/{device}/secrets/{path}", headers=auth).status_code == 200
    client.get(f"/api/v1/devices/{device}/secrets/filevaultkey", headers=auth)

    listing = client.get("/api/v1/audit/events?limit=500", headers=t.auth)
    reads = [e for e in listing.json()["results"] if e["action"] == "read" and e["target_component"] == "secrets"]
    assert len(reads) == 5
    for event in reads:
        assert (event["target_type"], event["target_id"], event["actor_id"]) == ("device", device, token_id)
        assert event["metadata"]["actor_name"] == "Helpdesk FileVault lookup"
        assert event["metadata"]["reader_id"] == token_id
    kinds = sorted(tuple(e["metadata"]["secret_kinds"]) for e in reads)
    assert kinds == sorted([("bypass_code_user", "bypass_code_device"), ("filevault_prk",), ("filevault_prk",),
                            ("unlock_pin",), ("recovery_password",)])
    for value in values.values():
        assert value not in listing.text


def test_reading_nothing_is_still_audited(client, make_tenant):
    t = make_tenant(devices=1)
    device = _device_ids(client, t)[0]
    assert client.get(f"/api/v1/devices/{device}/secrets/unlockpin", headers=t.auth).json() == {"pin": None}
    [event] = _audit_reads(client, t)
    assert event["metadata"]["secret_kinds"] == ["unlock_pin"] and event["metadata"]["stored"] == []


@pytest.mark.parametrize("path", PATHS)
def test_other_tenants_or_unknown_device_is_404_and_not_audited(client, make_tenant, path):
    a, b = make_tenant(devices=1), make_tenant(devices=1)
    b_device = _device_ids(client, b)[0]
    values = _secret_values()
    _store(b, b_device, **values)
    for device in (b_device, str(uuid.uuid4()), "not-a-uuid"):
        r = client.get(f"/api/v1/devices/{device}/secrets/{path}", headers=a.auth)
        assert r.status_code == 404 and r.json() == {"detail": "Not found."}
    assert _audit_reads(client, a) == [] and _audit_reads(client, b) == []


def test_secret_routes_are_granted_one_by_one(client, make_tenant, app):
    t = make_tenant(devices=1)
    device = _device_ids(client, t)[0]
    token, _ = t.make_token([("GET", "/api/v1/devices/{device_id}/secrets/unlockpin")])
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/devices/{device}/secrets/unlockpin", headers=auth).status_code == 200
    r = client.get(f"/api/v1/devices/{device}/secrets/filevaultkey", headers=auth)
    assert r.status_code == 403
    labels = {(p.path, p.label) for p in catalogue(app.routes) if p.group == "Device Secrets"}
    assert labels == {
        ("/api/v1/devices/{device_id}/secrets/bypasscode", "Activation Lock bypass code"),
        ("/api/v1/devices/{device_id}/secrets/filevaultkey", "FileVault recovery key"),
        ("/api/v1/devices/{device_id}/secrets/unlockpin", "Unlock PIN"),
        ("/api/v1/devices/{device_id}/secrets/recoverypassword", "Recovery lock password"),
    }


def test_secrets_never_appear_in_device_list_or_details(client, make_tenant):
    t = make_tenant(devices=3)
    devices = _device_ids(client, t)
    values = _secret_values()
    for device in devices:
        _store(t, device, **values)
    bodies = [client.get("/api/v1/devices", headers=t.auth).text]
    for device in devices:
        for path in ("", "/details"):
            r = client.get(f"/api/v1/devices/{device}{path}", headers=t.auth)
            assert r.status_code == 200
            bodies.append(r.text)
    for value in values.values():
        assert not any(value in body for body in bodies)


def test_secrets_never_reach_the_logs(client, make_tenant, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="bramley")
    t = make_tenant(devices=1)
    device = _device_ids(client, t)[0]
    values = _secret_values()
    _store(t, device, **values)
    with t.db.unit_of_work() as s:
        ctx = t.ctx(s)
        for kind in values:
            secrets.get(s, ctx, owner_type="device", owner_id=device, kind=kind, audited=True)
    for path in PATHS:
        assert client.get(f"/api/v1/devices/{device}/secrets/{path}", headers=t.auth).status_code == 200
    client.get(f"/api/v1/devices/{str(uuid.uuid4())}/secrets/filevaultkey", headers=t.auth)
    assert any("read secrets filevault_prk" in r.getMessage() for r in caplog.records)  # we did log, at DEBUG
    logged = caplog.text + "".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for value in values.values():
        assert value not in logged


def test_deleting_a_device_destroys_its_escrowed_secrets(client, make_tenant):
    from sqlalchemy import func, select

    from bramley.secrets.models import Secret

    t = make_tenant(devices=2)
    gone, kept = _device_ids(client, t)[:2]
    _store(t, gone, **_secret_values())
    _store(t, kept, unlock_pin="135790")
    assert client.delete(f"/api/v1/devices/{gone}", headers=t.auth).status_code == 204
    with t.db.unit_of_work() as s:
        left = dict(s.execute(select(Secret.owner_id, func.count()).where(Secret.tenant_id == t.id,
                                                                           Secret.owner_type == "device")
                              .group_by(Secret.owner_id)).all())
    assert left == {kept: 1}
    assert client.get(f"/api/v1/devices/{kept}/secrets/unlockpin", headers=t.auth).json() == {"pin": "135790"}
