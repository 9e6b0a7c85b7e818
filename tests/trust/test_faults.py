"""Real faults against live servers (issue 8 point 5). Whatever fails, the snapshot is never lost or emptied and
`check` keeps answering what the last good sync saw; recoverable faults heal by themselves, unrecoverable ones
stop syncing and notify the admin."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from bramley.auth.models import ApiToken
from bramley.devices import service as devices
from bramley.trust import sync as trust_sync
from bramley.trust.snapshot import Snapshot
from tests.conftest import cli_env, free_port, run_cli
from tests.trust.conftest import DEVICE_LIST, SERVER_ERROR, THROTTLED, ZERO_TRUST, server_verdicts


@pytest.fixture
def zt(make_tenant):
    tenant = make_tenant(devices=650)
    token, token_id = tenant.make_token(ZERO_TRUST, description="Twingate")
    return tenant, token, token_id


def sync(url: str, token: str, state_dir: Path, *, waits: list | None = None, **kwargs) -> trust_sync.SyncResult:
    """One in-process sync. Waits the client decides on are recorded instead of slept (no test sits through a
    Retry-After); what it would have waited is in `waits`."""
    config = trust_sync.SyncConfig(url=url, token=token, state_dir=state_dir, **{"retries": 2, **kwargs})
    return trust_sync.sync_once(config, sleep=waits.append if waits is not None else lambda s: None)


def snapshot_verdicts(state_dir: Path, serials) -> dict[str, bool]:
    with Snapshot(state_dir) as snap:
        return {serial: trust_sync.check(snap, serial)["verified"] for serial in serials}


def integration(state_dir: Path) -> dict:
    with Snapshot(state_dir) as snap:
        return {**snap.integration(), "count": snap.count()}


def lose_agent(db, tenant, client) -> str:
    """Server-side change between syncs: a verified Mac's agent goes away. Its serial."""
    victim = next(serial for serial, ok in server_verdicts(client, tenant).items() if ok)
    with db.unit_of_work() as s:
        ctx = tenant.ctx(s)
        [posture] = devices.postures(s, ctx, serial_numbers=[victim])[1]
        devices.agent_report(s, ctx, posture.device_id, installed=False)
    return victim


def test_a_server_stopped_mid_sync_or_throttling_keeps_the_snapshot(client, db, server_process, zt, tmp_path):
    tenant, token, _ = zt
    # The server's own limiter allows the tenant six requests an hour; a sync takes four (3 pages, 1 detail).
    server = server_process(BRAMLEY_RATE_LIMIT_PER_HOUR="6")
    assert sync(server.url, token, tmp_path).ok
    good = server_verdicts(client, tenant)
    victim = lose_agent(db, tenant, client)

    # Stopped after the first page.
    config = trust_sync.SyncConfig(url=server.url, token=token, state_dir=tmp_path, retries=2)
    failed = trust_sync.sync_once(config, on_page=lambda n: server.stop(), sleep=lambda s: None)
    assert failed.state == "failing" and failed.pages == 1 and failed.retried == 2
    assert failed.error == f"cannot reach {server.url}: ConnectError"
    state = integration(tmp_path)
    assert state["count"] == 650 and state["state"] == "failing" and state["failures"] == 1
    assert snapshot_verdicts(tmp_path, good) == good  # the last good sync's answers, victim still verified
    with Snapshot(tmp_path) as snap:
        assert trust_sync.status(snap)["summary"].startswith(
            f"failed to sync, last successful sync at {state['last_success_at']}")

    server.start()  # back, with a fresh rate-limit window
    healed = sync(server.url, token, tmp_path)
    assert healed.ok and healed.devices == 650
    now = server_verdicts(client, tenant)
    assert now[victim] is False and snapshot_verdicts(tmp_path, now) == now
    assert integration(tmp_path)["failures"] == 0

    # Throttled by the server for the rest of the hour: Retry-After honoured (capped at a minute), then a soft
    # failure that keeps the snapshot.
    waits: list[float] = []
    throttled = sync(server.url, token, tmp_path, waits=waits)
    # The window's sixth request was this sync's first page (the healing sync read a second detail: the victim).
    assert (throttled.state, throttled.error, throttled.pages) == ("failing", "rate limited (429)", 1)
    assert waits == [60.0, 60.0]
    assert integration(tmp_path)["count"] == 650 and snapshot_verdicts(tmp_path, now) == now


def test_server_errors_throttling_and_garbage_are_retried_and_never_empty_the_snapshot(client, live_server, zt,
                                                                                      fault_proxy, tmp_path):
    tenant, token, _ = zt
    proxy = fault_proxy(live_server)
    second_page = lambda path: "offset=300" in path  # noqa: E731
    assert sync(proxy.url, token, tmp_path).ok
    good = server_verdicts(client, tenant)
    last_success = integration(tmp_path)["last_success_at"]

    # Passing faults: retried within the sync, honouring Retry-After.
    proxy.add(SERVER_ERROR, times=2, when=second_page)
    waits: list[float] = []
    assert sync(proxy.url, token, tmp_path, waits=waits).ok
    proxy.add(THROTTLED, times=2)
    waits.clear()
    result = sync(proxy.url, token, tmp_path, waits=waits)
    assert result.ok and result.retried == 2 and waits == [1.0, 1.0]

    # Lasting faults: the sync fails, the snapshot stays, the reason is kept.
    for reply, error in [(SERVER_ERROR, "server error (500)"), (THROTTLED, "rate limited (429)"),
                         ("drop", f"cannot reach {proxy.url}: RemoteProtocolError"),
                         ((200, {}, b"<html>Sign in to the Wi-Fi</html>"),
                          "the server's reply is not JSON (a proxy or captive portal?)"),
                         ((200, {}, b'{"devices": []}'), "the device list is not a JSON array of devices")]:
        proxy.clear()
        proxy.add(reply, when=second_page)
        failed = sync(proxy.url, token, tmp_path)
        assert (failed.state, failed.error) == ("failing", error)
        state = integration(tmp_path)
        assert state["count"] == 650 and state["last_success_at"] >= last_success
        assert snapshot_verdicts(tmp_path, good) == good
    assert integration(tmp_path)["failures"] == 5

    proxy.clear()
    assert sync(proxy.url, token, tmp_path).ok
    assert integration(tmp_path)["state"] == "ok" and integration(tmp_path)["failures"] == 0


def test_a_revoked_token_stops_syncing_and_notifies_the_admin(settings, client, live_server, zt, fault_proxy,
                                                              webhook, tmp_path):
    tenant, token, token_id = zt
    proxy = fault_proxy(live_server)
    env = {"BRAMLEY_TRUST_DIR": str(tmp_path), "BRAMLEY_TRUST_TOKEN": token, "BRAMLEY_TRUST_WEBHOOK": webhook.url}
    run_cli(settings, "trust", "sync", "--url", proxy.url, "--once", **env)
    good = server_verdicts(client, tenant)

    run_cli(settings, "token", "revoke", token_id)
    r = run_cli(settings, "trust", "sync", "--url", proxy.url, "--once", "--json", check=False, **env)
    assert r.returncode == 3
    outcome = json.loads(r.stdout)
    assert outcome["state"] == "needs_attention" and outcome["error_status"] == 401
    [notice] = webhook.received
    assert notice["event"] == "trust.integration.needs_attention" and notice["status"] == 401
    assert "revoked" in notice["error"] and notice["devices_in_snapshot"] == 650
    assert token not in json.dumps(notice)
    assert "needs attention" in (tmp_path / "trust.log").read_text()

    # Stopped: the same token is not tried again, and the snapshot still answers (with a warning).
    seen = len(proxy.seen)
    again = run_cli(settings, "trust", "sync", "--url", proxy.url, "--once", check=False, **env)
    assert again.returncode == 3 and "not syncing: the integration needs attention" in again.stderr
    assert len(proxy.seen) == seen and len(webhook.received) == 1
    assert snapshot_verdicts(tmp_path, good) == good
    serial = next(s for s, ok in good.items() if ok)
    checked = run_cli(settings, "trust", "check", serial, **env)
    assert checked.stdout == f"{serial}: verified\n" and "needs attention" in checked.stderr
    status = run_cli(settings, "trust", "status", **env).stdout
    assert "needs_attention" in status and "revoked" in status and "admin notified:" in status

    # Reconfigured with a new token: syncing resumes.
    fresh, _ = tenant.make_token(ZERO_TRUST, description="Twingate, new")
    resumed = run_cli(settings, "trust", "sync", "--url", proxy.url, "--once", **{**env, "BRAMLEY_TRUST_TOKEN": fresh})
    assert resumed.stdout.startswith("synced 650 devices")
    assert integration(tmp_path)["state"] == "ok"


def test_a_removed_permission_needs_attention(db, live_server, zt, webhook, tmp_path):
    tenant, token, token_id = zt
    assert sync(live_server, token, tmp_path).ok
    # The admin unticks Device details on the integration's token.
    with db.unit_of_work() as s:
        s.execute(update(ApiToken).where(ApiToken.id == token_id).values(permissions=[list(DEVICE_LIST)]))
    result = sync(live_server, token, tmp_path, webhook=webhook.url)
    assert result.state == "needs_attention" and result.error_status == 403
    assert "lacks a permission for GET /api/v1/devices/" in result.error
    assert webhook.received[0]["status"] == 403 and integration(tmp_path)["count"] == 650

    # A token that never had it: no snapshot is ever written from a half-permitted token. The webhook is down
    # this time: the notice still reaches the log, and the state says it was not delivered.
    list_only, _ = tenant.make_token([DEVICE_LIST])
    fresh = tmp_path / "fresh"
    dead_hook = f"http://127.0.0.1:{free_port()}/hook"
    assert sync(live_server, list_only, fresh, webhook=dead_hook).state == "needs_attention"
    state = integration(fresh)
    assert state["count"] == 0 and state["last_success_at"] is None and state["notified_at"] is None


def test_the_sync_loop_backs_off_recovers_by_itself_and_stops_when_the_token_dies(settings, live_server, zt,
                                                                                  fault_proxy, webhook, tmp_path):
    tenant, token, token_id = zt
    proxy = fault_proxy(live_server)
    exe = Path(sys.executable).with_name("bramley")
    env = cli_env(settings, BRAMLEY_TRUST_DIR=str(tmp_path), BRAMLEY_TRUST_TOKEN=token,
                  BRAMLEY_TRUST_WEBHOOK=webhook.url)
    loop = subprocess.Popen([str(exe), "trust", "sync", "--url", proxy.url, "--interval", "0.5", "--backoff", "0.1",
                             "--retries", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def until(predicate, what: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (tmp_path / "trust.sqlite3").exists():
                state = integration(tmp_path)
                if predicate(state):
                    return state
            assert loop.poll() is None or what == "exit", f"sync loop exited early: {loop.stderr.read()}"
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        until(lambda s: s["state"] == "ok", "the first sync")
        proxy.add(SERVER_ERROR)
        failing = until(lambda s: s["state"] == "failing" and s["failures"] >= 3, "repeated failures")
        assert failing["count"] == 650 and failing["last_error"] == "server error (500)"
        proxy.clear()
        healed = until(lambda s: s["state"] == "ok", "recovery")
        assert healed["failures"] == 0 and healed["count"] == 650

        run_cli(settings, "token", "revoke", token_id)
        assert loop.wait(timeout=30) == 3
    finally:
        if loop.poll() is None:
            loop.terminate()
            loop.wait(10)
    assert integration(tmp_path)["state"] == "needs_attention"
    assert [n["status"] for n in webhook.received] == [401]
    err = loop.stderr.read()
    assert "failed to sync, last successful sync at" in err and "sync recovered after" in err
    assert "stopped: the integration needs attention" in err and token not in err
