"""Trust verdicts on the Iru door: each device's verdict with its failed rules, the per-tenant window, permissions,
tenancy, and the audit trail the sweeps keep."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from bramley.devices import service as devices
from bramley.jobs.worker import Worker
from bramley.trust import service as trust
from bramley.trust.models import TrustSettings
from tests.conftest import run_cli
from tests.trust.conftest import DEVICE_LIST

VERDICTS = ("GET", "/api/v1/trust/devices")


def listed(client, tenant, **params) -> dict:
    r = client.get("/api/v1/trust/devices", params=params, headers=tenant.auth)
    assert r.status_code == 200, r.text
    return r.json()


def every_verdict(client, tenant) -> list[dict]:
    return listed(client, tenant, limit=300)["results"]


@pytest.fixture
def fleet40(make_tenant):
    return make_tenant(devices=40)


def test_every_device_has_a_verdict_with_the_rules_it_fails(client, fleet40):
    everything = every_verdict(client, fleet40)
    assert len(everything) == 40
    devices_by_id = {d["device_id"]: d for d in client.get("/api/v1/devices", headers=fleet40.auth).json()}
    for verdict in everything:
        device = devices_by_id[verdict["device_id"]]
        assert verdict["serial_number"] == device["serial_number"] and verdict["window_days"] == 7
        rules = [f["rule"] for f in verdict["failed_rules"]]
        assert verdict["verified"] is (not rules)
        assert ("agent_installed" in rules) is (not device["agent_installed"])
        assert ("not_removed" in rules) is device["is_removed"]
    # The seed's stale devices explain themselves; only Macs (the agent's platform) can pass.
    stale = [f for v in everything for f in v["failed_rules"] if f["rule"] == "reported_recently"]
    assert stale and all(f["message"].startswith("last check-in ") and f["message"].endswith(" days ago, limit 7 days")
                         and f["evidence"]["days_since_check_in"] > 7 for f in stale)
    assert {v["platform"] for v in everything if v["verified"]} == {"Mac"}


def test_the_list_pages_and_filters_on_the_outcome(client, fleet40):
    first = listed(client, fleet40, limit=15)
    assert first["count"] == 40 and len(first["results"]) == 15 and first["previous"] is None
    assert "offset=15" in first["next"]
    rest = listed(client, fleet40, limit=15, offset=30)
    assert len(rest["results"]) == 10 and rest["next"] is None
    verified, unverified = listed(client, fleet40, verified="true"), listed(client, fleet40, verified="False")
    assert verified["count"] + unverified["count"] == 40 and verified["count"] > 0
    assert all(v["verified"] for v in verified["results"]) and not any(v["verified"] for v in unverified["results"])
    r = client.get("/api/v1/trust/devices", params={"verified": "maybe"}, headers=fleet40.auth)
    assert r.status_code == 400 and r.json() == {"verified": ["Must be a valid boolean."]}


def test_a_serial_lookup_answers_for_known_and_unknown_serials(client, fleet40):
    some = every_verdict(client, fleet40)[3]
    found = listed(client, fleet40, serial_number=some["serial_number"].lower())
    assert found["count"] == 1 and found["results"][0]["device_id"] == some["device_id"]
    assert found["results"][0]["verified"] == some["verified"]
    by_id = client.get(f"/api/v1/trust/devices/{some['device_id']}", headers=fleet40.auth)
    assert by_id.status_code == 200 and by_id.json()["failed_rules"] == some["failed_rules"]
    unknown = listed(client, fleet40, serial_number="NOTOURS0001")["results"]
    assert unknown == [{"device_id": None, "serial_number": "NOTOURS0001", "device_name": None, "platform": None,
                        "verified": False, "window_days": 7, "evaluated_at": unknown[0]["evaluated_at"],
                        "failed_rules": [{"rule": "serial_known",
                                          "message": "serial number NOTOURS0001 is not managed here",
                                          "evidence": {"serial_number": "NOTOURS0001"}}]}]
    assert client.get("/api/v1/trust/devices/not-a-uuid", headers=fleet40.auth).status_code == 404


def _quiet_mac(db, tenant, days: int) -> str:
    """A Mac with agent and MDM profile that last reported `days` ago."""
    from datetime import timedelta

    from bramley.db.base import utcnow

    with db.unit_of_work() as s:
        [device] = devices.create_many(s, tenant.ctx(s), [devices.NewDevice(
            serial_number=f"QUIET{tenant.id[:6].upper()}", platform="Mac", agent_installed=True,
            last_check_in=utcnow() - timedelta(days=days))])
        return device.serial_number


def test_the_window_is_set_per_tenant_and_audited(client, db, make_tenant):
    mine, theirs = make_tenant(devices=5), make_tenant(devices=5)
    mine_quiet, theirs_quiet = _quiet_mac(db, mine, 20), _quiet_mac(db, theirs, 20)
    [before] = listed(client, mine, serial_number=mine_quiet)["results"]
    assert [f["message"] for f in before["failed_rules"]] == ["last check-in 20 days ago, limit 7 days"]

    r = client.patch("/api/v1/trust/settings", json={"window_days": 30}, headers=mine.auth)
    assert r.status_code == 200 and r.json() == {"window_days": 30}
    assert client.get("/api/v1/trust/settings", headers=mine.auth).json() == {"window_days": 30}
    assert client.get("/api/v1/trust/settings", headers=theirs.auth).json() == {"window_days": 7}
    [after] = listed(client, mine, serial_number=mine_quiet)["results"]
    assert after["verified"] is True and after["window_days"] == 30
    assert mine_quiet in {v["serial_number"] for v in listed(client, mine, verified="true")["results"]}
    assert listed(client, theirs, serial_number=theirs_quiet)["results"][0]["verified"] is False
    events = client.get("/api/v1/audit/events", headers=mine.auth).json()["results"]
    change = next(e for e in events if e["target_type"] == "trust_settings")
    assert change["new_state"] == {"window_days": 30} and change["metadata"]["previous"] == {"window_days": 7}


@pytest.mark.parametrize("body,errors", [
    ({}, {"window_days": ["This field is required."]}),
    ({"window_days": 0}, {"window_days": ["Ensure this value is between 1 and 365."]}),
    ({"window_days": 366}, {"window_days": ["Ensure this value is between 1 and 365."]}),
    ({"window_days": "soon"}, {"window_days": ["A valid integer is required."]}),
    ({"window_days": 7.5}, {"window_days": ["A valid integer is required."]}),
    ({"window_days": True}, {"window_days": ["A valid integer is required."]}),
])
def test_bad_windows_are_field_errors_and_change_nothing(client, make_tenant, body, errors):
    tenant = make_tenant()
    r = client.patch("/api/v1/trust/settings", json=body, headers=tenant.auth)
    assert r.status_code == 400 and r.json() == errors
    assert client.get("/api/v1/trust/settings", headers=tenant.auth).json() == {"window_days": 7}


def test_trust_routes_are_guarded_by_their_own_permissions(client, fleet40):
    list_only, _ = fleet40.make_token([DEVICE_LIST])
    trust_only, _ = fleet40.make_token([VERDICTS])
    assert client.get("/api/v1/trust/devices").status_code == 401
    r = client.get("/api/v1/trust/devices", headers={"Authorization": f"Bearer {list_only}"})
    assert r.status_code == 403
    assert client.get("/api/v1/trust/devices", headers={"Authorization": f"Bearer {trust_only}"}).status_code == 200
    assert client.patch("/api/v1/trust/settings", json={"window_days": 9},
                        headers={"Authorization": f"Bearer {trust_only}"}).status_code == 403


def test_tenants_never_see_each_others_verdicts(client, make_tenant):
    mine, theirs = make_tenant(devices=5), make_tenant(devices=5)
    their_device = every_verdict(client, theirs)[0]
    assert listed(client, mine, serial_number=their_device["serial_number"])["results"][0]["device_id"] is None
    assert client.get(f"/api/v1/trust/devices/{their_device['device_id']}", headers=mine.auth).status_code == 404
    assert {v["device_id"] for v in every_verdict(client, mine)}.isdisjoint(
        {v["device_id"] for v in every_verdict(client, theirs)})


def _trust_events(client, tenant) -> list[dict]:
    events = client.get("/api/v1/audit/events", params={"sort_by": "occurred_at"}, headers=tenant.auth).json()
    return [e for e in events["results"] if e["target_component"] == "trust"]


def test_sweeps_record_a_silent_baseline_then_audit_each_change(client, db, make_tenant, settings):
    tenant = make_tenant(devices=20)
    first = json.loads(run_cli(settings, "trust", "evaluate", "--tenant", tenant.subdomain, "--json").stdout)
    assert first["baseline"] and first["devices"] == 20 and first["changes"] == 0
    assert first["verified"] == listed(client, tenant, verified="true")["count"]
    assert _trust_events(client, tenant) == []

    verified = listed(client, tenant, verified="true")["results"][0]
    with db.unit_of_work() as s:
        ctx = tenant.ctx(s)
        devices.report(s, ctx, verified["device_id"], columns={"is_removed": True})  # what a CheckOut does
        [new] = devices.create_many(s, ctx, [devices.NewDevice(serial_number="NEWMAC0001", platform="Mac")])
        trust.request_sweep(s, ctx)
    asyncio.run(Worker(db, settings, kinds=[trust.KIND]).drain())
    deadline = time.monotonic() + 10  # the live server's worker may have taken the job instead
    while time.monotonic() < deadline and len(_trust_events(client, tenant)) < 2:
        time.sleep(0.1)
    events = {e["target_id"]: e for e in _trust_events(client, tenant)}
    assert set(events) == {verified["device_id"], new.id}
    assert events[verified["device_id"]]["action"] == "update"
    assert events[verified["device_id"]]["new_state"]["failed_rules"] == ["not_removed"]
    assert events[new.id]["action"] == "create" and events[new.id]["new_state"]["verified"] is False
    with db.unit_of_work() as s:
        assert s.get(TrustSettings, tenant.id).last_sweep_at is not None
    # Nothing changed since: the next sweep records nothing.
    again = json.loads(run_cli(settings, "trust", "evaluate", "--tenant", tenant.subdomain, "--json").stdout)
    assert again["changes"] == 0 and not again["baseline"]
