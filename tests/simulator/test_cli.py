"""`bramley simulate` against `bramley serve`, as a user runs it for a demo fleet."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, free_port, run_cli


@pytest.fixture(scope="module")
def server(settings):
    """`bramley serve --no-worker` for this module only: a job worker in another process would claim other
    tests' push jobs and compete for the SQLite file for the rest of the run."""
    port = free_port()
    exe = Path(sys.executable).with_name("bramley")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--no-worker"],
                            env=cli_env(settings, BRAMLEY_RATE_LIMIT_PER_SECOND="100000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("bramley serve did not start") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_simulate_enrolls_devices_that_the_api_then_lists(server, make_tenant, settings, client):
    tenant = make_tenant(devices=0)
    proc = run_cli(settings, "simulate", "--url", server, "--tenant", tenant.subdomain, "--devices", "2",
                   "--platform", "mixed", "--mint-codes", "--rounds", "1", "--poll-interval", "0.2",
                   "--concurrency", "1", "--not-now", "0", "--seed", "11", "--json")
    summary = json.loads(proc.stdout)
    assert (summary["devices"], summary["enrolled"], summary["failed"], summary["retries"]) == (2, 2, 0, 0)
    assert summary["exchanges"] == 2 * 2 and summary["commands"]["Acknowledged"] >= 2 * 5
    listed = client.get("/api/v1/devices", headers=tenant.auth).json()
    assert len(listed) == 2 and all(d["mdm_enabled"] and d["last_check_in"] for d in listed)
    assert len({d["platform"] for d in listed}) == 2


def test_simulate_reports_refused_enrollment_and_exits_1(server, make_tenant, settings):
    tenant = make_tenant(devices=0)
    proc = run_cli(settings, "simulate", "--url", server, "--tenant", tenant.subdomain, "--devices", "1",
                   "--enroll-code", "NOPE-NOPE-NOPE-NOPE", "--rounds", "0", "--json", check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["failures"] == [
        ["profile refused (403): enrollment code missing, used or expired", 1]]


def test_simulate_rejects_an_unknown_platform(settings):
    proc = run_cli(settings, "simulate", "--url", "http://127.0.0.1:9", "--tenant", "x", "--platform", "windows",
                   check=False)
    assert proc.returncode == 1 and "unknown platform 'windows'" in proc.stderr
