"""The sync worker against the fake Apple service: fetch then sync, profile assignment, cursor and session
recovery, broken tokens, and the job that runs it all."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from bramley.ade.models import ADEIntegration
from bramley.ade.sync import KIND, Busy, next_slot
from bramley.jobs.models import Job
from bramley.jobs.worker import Worker

from .conftest import BASE


def _by_serial(ade, tenant, integration_id) -> dict[str, dict]:
    return {d["serial_number"]: d for d in ade.devices(tenant, integration_id)["results"]}


def test_first_sync_fetches_every_device_and_assigns_the_profile(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    mac, phone = org.add_device(family="Mac"), org.add_device(family="iPhone")
    tv = org.add_device(family="AppleTV", profile_status="pushed", profile_uuid="OTHER")
    report = ade.sync(t, body["id"])
    assert (report.added, report.deleted, report.assigned) == (3, 0, 3)
    seen = _by_serial(ade, t, body["id"])
    assert set(seen) == {mac["serial_number"], phone["serial_number"], tv["serial_number"]}
    # Apple holds our profile for each of them, with the URL devices enroll at and the support contacts.
    (profile_uuid, profile), = org.profiles.items()
    assert profile["url"] == f"http://testserver/mdm/t/{t.subdomain}/enroll"
    assert profile["support_phone_number"] == "4155550100" and profile["is_supervised"] is True
    assert all(org.devices[s]["profile_uuid"] == profile_uuid for s in seen)
    assert all(d["profile_status"] == "assigned" for d in seen.values())
    integration = ade.client.get(f"{BASE}/{body['id']}", headers=t.auth).json()
    assert integration["device_counts"] == {"Mac": 1, "iPad": 0, "iPhone": 1, "AppleTV": 1, "total": 3}
    assert integration["last_device_sync"].endswith("Z") and integration["status"] == "SUCCESS"
    # Every call carried the protocol version Apple expects.
    assert {r.protocol_version for r in org.requests} == {"7"}


def test_sync_applies_added_modified_and_deleted(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    keep, change, drop = (org.add_device() for _ in range(3))
    ade.sync(t, body["id"])
    profiles_before = len(org.profiles)

    new = org.add_device(family="iPad")
    org.modify_device(change["serial_number"], description="Renamed in ABM", color="GOLD")
    org.remove_device(drop["serial_number"])
    report = ade.sync(t, body["id"])
    assert (report.added, report.deleted) == (1, 1)
    seen = _by_serial(ade, t, body["id"])
    assert set(seen) == {keep["serial_number"], change["serial_number"], new["serial_number"]}
    assert (seen[change["serial_number"]]["description"], seen[change["serial_number"]]["color"]) == (
        "Renamed in ABM", "GOLD")
    assert seen[new["serial_number"]]["profile_status"] == "assigned"  # added: gets the profile
    assert len(org.profiles) == profiles_before  # the profile is defined once
    # Removed from ADE only: gone from the ADE lists and counts.
    assert ade.client.get(f"{BASE}/devices", headers=t.auth,
                          params={"serial_number": drop["serial_number"]}).json()["count"] == 0
    assert ade.client.get(f"{BASE}/{body['id']}", headers=t.auth).json()["device_counts"]["total"] == 3
    # Assigned back in ABM later: it returns.
    org.add_device(drop["serial_number"])
    ade.sync(t, body["id"])
    assert drop["serial_number"] in _by_serial(ade, t, body["id"])


def test_modified_without_a_profile_gets_it_again(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    device = org.add_device()
    ade.sync(t, body["id"])
    org.modify_device(device["serial_number"], profile_status="empty", profile_uuid="")
    report = ade.sync(t, body["id"])
    assert report.assigned == 1 and org.devices[device["serial_number"]]["profile_status"] == "assigned"


def test_expired_cursor_fetches_again_and_reconciles(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    stays, leaves = org.add_device(), org.add_device()
    ade.sync(t, body["id"])
    org.expire_cursors()  # more than seven days without a sync
    org.remove_device(leaves["serial_number"])
    arrives = org.add_device()
    report = ade.sync(t, body["id"])
    assert report.restarted_fetch
    assert set(_by_serial(ade, t, body["id"])) == {stays["serial_number"], arrives["serial_number"]}
    # The next run carries on from the new cursor.
    assert not ade.sync(t, body["id"]).restarted_fetch


def test_invalid_cursor_is_recovered_too(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.add_device()
    ade.sync(t, body["id"])
    org.fail_next("/devices/sync", 400, "INVALID_CURSOR")
    report = ade.sync(t, body["id"])
    assert report.restarted_fetch and len(_by_serial(ade, t, body["id"])) == 1


def test_an_expired_session_signs_in_again_once(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.add_device()
    sessions: dict = {}
    ade.sync(t, body["id"], sessions)
    started = org.calls("/session")
    ade.sync(t, body["id"], sessions)
    assert org.calls("/session") == started  # the stored session is reused
    org.expire_sessions()
    org.add_device()
    report = ade.sync(t, body["id"], sessions)
    assert report.added == 1
    assert org.calls("/session") == started + 1


def test_the_latest_session_token_is_kept(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.add_devices(3)
    org.rotate_sessions = True  # each reply names a new session and retires the old one
    before = org.calls("/session")
    report = ade.sync(t, body["id"])
    assert report.added == 3 and report.assigned == 3
    assert org.calls("/session") == before + 1


def test_terms_not_accepted_marks_the_integration_broken_until_renewed(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    org.terms_not_signed = True
    from bramley.ade.sync import Broken

    with pytest.raises(Broken):
        ade.sync(t, body["id"])
    got = ade.client.get(f"{BASE}/{body['id']}", headers=t.auth).json()
    assert (got["status"], got["status_reason"]) == ("BROKEN", "T_C_NOT_SIGNED")
    assert got["status_received_at"].endswith("Z")
    org.terms_not_signed = False
    renewed = ade.upload(t, org, path=f"{body['id']}/renew", data={})
    assert renewed.json()["status"] == "SUCCESS"
    ade.sync(t, body["id"])
    assert ade.client.get(f"{BASE}/{body['id']}", headers=t.auth).json()["status"] == "SUCCESS"


def test_failed_assignments_are_recorded_and_retried_a_few_times(ade, make_tenant):
    t = make_tenant()
    body, org = ade.integrate(t)
    device = org.add_device()
    org.failing_serials.add(device["serial_number"])
    for attempt in (1, 2, 3, 4):
        ade.sync(t, body["id"])
        got = _by_serial(ade, t, body["id"])[device["serial_number"]]
        assert got["last_assignment_status"] == "FAILED"
        assert got["failed_assignment_attempts"] == min(attempt, 3)  # then it stops asking Apple
    assert got["profile_status"] == "empty"


def test_a_running_sync_holds_the_integration(ade, make_tenant):
    t = make_tenant()
    body, _ = ade.integrate(t)
    with ade.database.unit_of_work() as s:
        s.execute(update(ADEIntegration).where(ADEIntegration.id == body["id"])
                  .values(sync_locked_until=datetime(2999, 1, 1, tzinfo=timezone.utc)))
    with pytest.raises(Busy):
        ade.sync(t, body["id"])


def test_a_deleted_integration_is_not_synced(ade, make_tenant):
    t = make_tenant()
    body, _ = ade.integrate(t)
    ade.client.delete(f"{BASE}/{body['id']}", headers=t.auth)
    assert ade.sync(t, body["id"]) is None


def test_upload_queues_a_sync_that_the_worker_runs_and_reschedules(ade, make_tenant):
    t = make_tenant()
    org = ade.fake.new_org()
    org.add_devices(2)
    body, _ = ade.integrate(t, org)
    worker = Worker(ade.database, ade.settings, kinds=[KIND])

    async def run():
        try:
            await worker.drain()
        finally:
            await worker.aclose()

    asyncio.run(run())
    assert ade.devices(t, body["id"])["count"] == 2
    with ade.database.unit_of_work() as s:
        pending = s.scalars(select(Job).where(Job.tenant_id == t.id, Job.kind == KIND)).all()
    # One future run on the sync grid, nothing due now.
    assert len(pending) == 1 and pending[0].dedup_key.startswith(body["id"] + ":")
    assert pending[0].run_after > datetime.now(timezone.utc) and pending[0].dead_at is None


def test_the_sync_grid_is_shared_by_every_request():
    interval = 900
    a = next_slot(datetime(2026, 1, 1, 10, 0, 1, tzinfo=timezone.utc), interval)
    b = next_slot(datetime(2026, 1, 1, 10, 14, 59, tzinfo=timezone.utc), interval)
    assert a == b == datetime(2026, 1, 1, 10, 15, tzinfo=timezone.utc)
    assert next_slot(datetime(2026, 1, 1, 10, 15, tzinfo=timezone.utc), interval) > a
