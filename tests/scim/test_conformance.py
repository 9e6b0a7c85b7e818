"""scim2-tester, run by `scim2 test` (scim2-cli) against `bramley serve`: every check SUCCESS, exit code 0."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.scim.conftest import new_integration


def test_scim2_tester_reports_no_failures(live_server, make_tenant):
    tenant = make_tenant()
    token, _ = new_integration(tenant, "scim2-tester")
    env = dict(os.environ, SCIM_CLI_URL=f"{live_server}/api/v1/scim",
               # The token goes in the environment, not on the command line, where other users could read it.
               SCIM_CLI_HEADERS=f"Authorization: Bearer {token}", NO_COLOR="1", TERM="dumb", COLUMNS="200")
    exe = Path(sys.executable).with_name("scim2")
    proc = subprocess.run([str(exe), "test"], capture_output=True, text=True, env=env, timeout=240)
    report = proc.stdout + proc.stderr
    statuses = [line.split()[0] for line in report.splitlines()
                if line and not line.startswith((" ", "Performing")) and line.split()[0].isupper()]
    failures = [line for line in report.splitlines() if line.split() and line.split()[0] in (
        "ERROR", "CRITICAL", "DEVIATION", "ACCEPTABLE", "COMPLIANT", "SKIPPED")]
    assert proc.returncode == 0 and not failures, report
    assert statuses and set(statuses) == {"SUCCESS"}, report
    assert len(statuses) >= 80  # discovery, CRUD, attribute selection, /.search and PATCH on every attribute
