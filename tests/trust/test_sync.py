"""The sync client against a live server: it reads the fleet as a zero-trust product does, with only the Device
list and Device details permissions, and `bramley trust check` agrees with the server's own verdicts."""
from __future__ import annotations

import json

import pytest

from bramley.trust import sync as trust_sync
from bramley.trust.snapshot import Snapshot
from tests.conftest import run_cli
from tests.trust.conftest import ZERO_TRUST, server_verdicts


@pytest.fixture
def zt(make_tenant):
    """A 650-device tenant (pages of 300, 300, 50) and a token granted exactly what the Twingate setup grants."""
    tenant = make_tenant(devices=650)
    token, token_id = tenant.make_token(ZERO_TRUST, description="Twingate")
    return tenant, token, token_id


def config(url: str, token: str, state_dir, **kwargs) -> trust_sync.SyncConfig:
    return trust_sync.SyncConfig(url=url, token=token, state_dir=state_dir, **{"retries": 1, **kwargs})


def test_a_sync_snapshots_the_fleet_and_check_agrees_with_the_server(client, live_server, zt, tmp_path):
    tenant, token, _ = zt
    result = trust_sync.sync_once(config(live_server, token, tmp_path), sleep=lambda s: None)
    assert result.ok and result.devices == 650 and result.pages == 3 and result.details == 1
    expected = server_verdicts(client, tenant)
    with Snapshot(tmp_path) as snap:
        got = {serial: trust_sync.check(snap, serial)["verified"] for serial in expected}
        assert got == expected
        assert result.verified == sum(expected.values()) > 0
        assert trust_sync.check(snap, "NOTMANAGED01")["reasons"][0]["rule"] == "serial_known"


def test_the_cli_syncs_checks_and_reports_status(settings, live_server, zt, tmp_path, client):
    tenant, token, _ = zt
    env = {"BRAMLEY_TRUST_DIR": str(tmp_path), "BRAMLEY_TRUST_TOKEN": token}
    out = run_cli(settings, "trust", "sync", "--url", live_server, "--once", **env)
    assert out.stdout.startswith("synced 650 devices (")
    verdicts = {v["serial_number"]: v for v in _all(client, tenant)}
    good = next(v for v in verdicts.values() if v["verified"])
    bad = next(v for v in verdicts.values() if len(v["failed_rules"]) >= 2)

    ok = run_cli(settings, "trust", "check", good["serial_number"].lower(), **env)
    assert ok.returncode == 0 and ok.stdout == f"{good['serial_number']}: verified\n"
    no = run_cli(settings, "trust", "check", bad["serial_number"], check=False, **env)
    assert no.returncode == 1
    assert no.stdout.splitlines() == [f"{bad['serial_number']}: NOT verified"] + [
        f"  - {f['message']}" for f in bad["failed_rules"]]
    as_json = json.loads(run_cli(settings, "trust", "check", bad["serial_number"], "--json", check=False,
                                 **env).stdout)
    assert [r["rule"] for r in as_json["reasons"]] == [f["rule"] for f in bad["failed_rules"]]
    assert as_json["device_id"] == bad["device_id"] and as_json["sync_state"] == "ok"

    status = json.loads(run_cli(settings, "trust", "status", "--json", **env).stdout)
    assert status["state"] == "ok" and status["snapshot_devices"] == 650 and status["last_error"] is None
    assert status["summary"].startswith("synced, last successful sync at ")
    text = run_cli(settings, "trust", "status", **env).stdout
    assert "last successful sync:" in text and "650 devices" in text
    assert token not in text + json.dumps(status) + (tmp_path / "trust.log").read_text()


def _all(client, tenant) -> list[dict]:
    out, offset = [], 0
    while True:
        page = client.get("/api/v1/trust/devices", params={"limit": 300, "offset": offset},
                          headers=tenant.auth).json()["results"]
        out += page
        if len(page) < 300:
            return out
        offset += 300


def test_check_and_status_before_any_sync_say_so(settings, tmp_path):
    env = {"BRAMLEY_TRUST_DIR": str(tmp_path / "fresh")}
    r = run_cli(settings, "trust", "check", "C02ABC", check=False, **env)
    assert r.returncode == 2 and "run `bramley trust sync` first" in r.stderr
    assert "not configured" in run_cli(settings, "trust", "status", **env).stdout
    bad = run_cli(settings, "trust", "sync", "--url", "ftp://x", "--token", "t", "--once", check=False, **env)
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    hook = run_cli(settings, "trust", "sync", "--url", "http://127.0.0.1:9", "--token", "t", "--once",
                   "--webhook", "mailto:admin@example.com", check=False, **env)
    assert hook.returncode == 2 and "--webhook must be an http(s) URL" in hook.stderr


def test_only_one_sync_runs_per_state_directory(settings, live_server, zt, tmp_path):
    _, token, _ = zt
    with trust_sync.SyncLock(tmp_path):
        r = run_cli(settings, "trust", "sync", "--url", live_server, "--token", token, "--once",
                    "--state-dir", str(tmp_path), check=False)
    assert r.returncode == 2 and "another `bramley trust sync`" in r.stderr


def test_a_second_sync_reads_details_only_where_verdicts_changed(client, db, live_server, zt, tmp_path):
    from bramley.devices import service as devices

    tenant, token, _ = zt
    assert trust_sync.sync_once(config(live_server, token, tmp_path)).details == 1  # the permission probe
    victim = next(v for v in _all(client, tenant) if v["verified"])
    with db.unit_of_work() as s:
        devices.agent_report(s, tenant.ctx(s), victim["device_id"], installed=False)
    second = trust_sync.sync_once(config(live_server, token, tmp_path))
    assert second.ok and second.details == 2
    with Snapshot(tmp_path) as snap:
        verdict = trust_sync.check(snap, victim["serial_number"])
    assert not verdict["verified"] and [r["message"] for r in verdict["reasons"]] == ["agent not installed"]
