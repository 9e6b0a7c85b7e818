"""`bramley connect …` against the live server, as an admin or a script runs it."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid

import pytest

from typer.testing import CliRunner

from bramley.connector.catalog import CARDS
from bramley.connector.cli import connect_app
from tests.conftest import cli_env

# The card list of the Okta Workflows Kandji connector (seed 002), plus its Custom API Action.
CARD_NAMES = {
    "Clear Passcode", "Create Blueprint", "Create Note", "Erase Device", "Get ADE Integration",
    "Get Activation Lock Bypass Codes", "Get Blueprint", "Get Device", "Get FileVault Recovery Key",
    "Get (Mac) Unlock PIN", "List ADE Integrations", "List ADE Devices", "List Blueprints", "List Device Apps",
    "List Device Library Items", "List Device Notes", "List Devices", "Lock Device", "Manage Apple Remote Desktop",
    "Play Lost Mode Sound", "Reinstall Kandji Agent", "Restart Device", "Send MDM Blank Push", "Set Device Name",
    "Shutdown Device", "Turn Off Lost Mode", "Turn On Lost Mode", "Unlock (Local) User Account", "Update Device",
    "Update Inventory", "Update Lost Mode Location", "Custom API Action",
}


@pytest.fixture(scope="module")
def fleet(app, server):
    from tests.connector.conftest import seeded_tenant

    return seeded_tenant(app, 320)


@pytest.fixture(scope="module")
def mac(sim):
    device = sim(lambda f: f.enrolled("mac"))
    return device, sim(lambda f: f.device_id(device))


def connect_cli(settings, *args, env: dict | None = None, check: bool = True, stdin: str | None = None,
                process: bool = False):
    """`bramley connect ARGS`: in this process (Typer's runner) unless `process`, then as a real subprocess."""
    env = {"BRAMLEY_URL": "", "BRAMLEY_TOKEN": "", "BRAMLEY_TOKEN_FILE": "", "BRAMLEY_PROFILE": "", **(env or {})}
    if process:
        exe = os.path.join(os.path.dirname(sys.executable), "bramley")
        done = subprocess.run([exe, "connect", *args], input=stdin, capture_output=True, text=True, timeout=120,
                              env=cli_env(settings, **env))
    else:
        result = CliRunner().invoke(connect_app, list(args), input=stdin, env=env, catch_exceptions=False)
        done = subprocess.CompletedProcess(["bramley", "connect", *args], result.exit_code, result.stdout,
                                           result.stderr)
    if check and done.returncode != 0:
        raise AssertionError(f"bramley connect {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def test_every_card_has_a_call_and_a_command(settings):
    assert {c.name for c in CARDS} == CARD_NAMES
    listed = json.loads(connect_cli(settings, "cards", "--json").stdout)
    assert {row["card"] for row in listed} == CARD_NAMES
    lock = next(row for row in listed if row["card"] == "Lock Device")
    assert lock["command"] == "bramley connect device lock"
    assert lock["permissions"] == [
        "POST /api/v1/devices/{device_id}/action/lock (Devices › Device Actions › Lock device)"]


def test_devices_list_three_result_sets_with_env_connection(settings, server, fleet):
    env = {"BRAMLEY_URL": server, "BRAMLEY_TOKEN": fleet.token}
    macs = json.loads(connect_cli(settings, "devices", "list", "--platform", "Mac", "--result-set", "first-200",
                                  "--json", env=env).stdout)
    assert macs and {d["platform"] for d in macs} == {"Mac"} and len(macs) <= 200
    first = json.loads(connect_cli(settings, "devices", "list", "--platform", "Mac", "--result-set", "first",
                                   "--json", env=env).stdout)
    assert first["device_id"] == macs[0]["device_id"]
    streamed = connect_cli(settings, "devices", "list", "--result-set", "stream", "--json", "--progress", env=env,
                           process=True)
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert len(lines) == 320 and len({d["device_id"] for d in lines}) == 320
    assert "streaming devices" in streamed.stderr and "320/320" in streamed.stderr
    table = connect_cli(settings, "devices", "list", "--serial-number", lines[3]["serial_number"], env=env).stdout
    assert lines[3]["device_id"] in table and "1 device(s)" in table
    nothing = json.loads(connect_cli(settings, "devices", "list", "--result-set", "first", "--serial-number", "NOPE",
                                     "--json", env=env).stdout)
    assert nothing is None
    bad = connect_cli(settings, "devices", "list", "--result-set", "all", env=env, check=False)
    assert bad.returncode == 1 and "--result-set must be one of first, first-200, stream" in bad.stderr


def test_custom_prints_status_headers_and_body(settings, server, fleet):
    env = {"BRAMLEY_URL": server, "BRAMLEY_TOKEN": fleet.token}
    result = json.loads(connect_cli(settings, "custom", "GET", "/devices", "--query", "limit=5", "--json",
                                    env=env).stdout)
    assert set(result) == {"status_code", "headers", "body"}
    assert result["status_code"] == 200 and len(result["body"]) == 5
    assert result["headers"]["content-type"] == "application/json"
    missing = connect_cli(settings, "custom", "GET", "/devices/not-a-device", "--json", env=env, check=False)
    assert missing.returncode == 1 and json.loads(missing.stdout)["status_code"] == 404


def test_device_commands_reach_the_device(settings, server, sim, mac):
    device, device_id = mac
    env = {"BRAMLEY_URL": server, "BRAMLEY_TOKEN": sim.tenant.token}
    locked = json.loads(connect_cli(settings, "device", "lock", device_id, "--json", env=env, process=True).stdout)
    assert locked["status_code"] == 200 and len(locked["pin"]) == 6
    sim(lambda f: f.acknowledged(device, "DeviceLock"))
    assert device.state.lock_pin == locked["pin"]
    table = connect_cli(settings, "device", "secrets", "unlock-pin", device_id, env=env).stdout
    assert "PIN" in table and locked["pin"] in table
    refused = connect_cli(settings, "device", "clear-passcode", device_id, "--json", env=env, check=False)
    assert refused.returncode == 1
    assert f"Clear Passcode (device {device_id}): 400 Command is not allowed for current device" in refused.stderr
    assert json.loads(refused.stdout)["error"]["status_code"] == 400
    erase = connect_cli(settings, "device", "erase", device_id, "--pin", "123456", env=env, check=False)
    assert erase.returncode == 1 and "needs --yes" in erase.stderr
    assert "EraseDevice" not in [c["request_type"] for c in sim(lambda f: f.commands(device))]


def test_missing_permission_and_bad_token_are_reported_without_the_token(settings, server, sim, mac):
    _, device_id = mac
    limited, _ = sim.tenant.make_token([("GET", "/api/v1/devices")])
    refused = connect_cli(settings, "--url", server, "--token", limited, "device", "lock", device_id, check=False,
                          process=True)
    assert refused.returncode == 1
    assert "403 the API token lacks the permission POST /api/v1/devices/{device_id}/action/lock" in refused.stderr
    assert limited not in refused.stdout + refused.stderr
    wrong = str(uuid.uuid4())
    bad = connect_cli(settings, "--url", server, "--token", wrong, "check", check=False)
    assert bad.returncode == 1 and "401 the API token was refused" in bad.stderr
    assert wrong not in bad.stdout + bad.stderr
    nothing = connect_cli(settings, "--profiles-file", "/nonexistent/connections.toml", "devices", "list",
                          check=False, env={"BRAMLEY_URL": "", "BRAMLEY_TOKEN": ""})
    assert nothing.returncode == 1 and "no connection" in nothing.stderr


def test_profiles_keep_several_connections(settings, server, fleet, sim, tmp_path):
    profiles = tmp_path / "connections.toml"
    token_file = tmp_path / "fleet.token"
    token_file.write_text(fleet.token + "\n")
    base = ["--profiles-file", str(profiles)]
    added = json.loads(connect_cli(settings, *base, "profile", "add", "fleet", "--url", server, "--token-file",
                                   str(token_file), "--json").stdout)
    assert added["checked"] is True and added["base_url"] == server
    connect_cli(settings, *base, "profile", "add", "sim", "--url", server, "--token-stdin", stdin=sim.tenant.token)
    connect_cli(settings, *base, "profile", "add", "lab", "--url", server, "--token-env", "LAB_TOKEN", "--no-check")
    assert stat.S_IMODE(profiles.stat().st_mode) == 0o600
    listed = connect_cli(settings, *base, "profile", "list", "--json").stdout
    assert fleet.token not in listed and sim.tenant.token not in listed
    assert {p["name"]: p["default"] for p in json.loads(listed)} == {"fleet": True, "sim": False, "lab": False}
    # The default profile, a named one, and the named one winning over BRAMLEY_URL.
    count = len(json.loads(connect_cli(settings, *base, "devices", "list", "--json").stdout))
    assert count == 200
    sim_devices = json.loads(connect_cli(settings, *base, "--profile", "sim", "devices", "list", "--json",
                                         env={"BRAMLEY_URL": "http://127.0.0.1:9"}).stdout)
    assert 0 < len(sim_devices) < 200
    lab = connect_cli(settings, *base, "--profile", "lab", "devices", "list", "--json", env={"LAB_TOKEN": fleet.token})
    assert len(json.loads(lab.stdout)) == 200
    profiles.chmod(0o644)  # a file holding a token that others can read is refused
    loose = connect_cli(settings, *base, "--profile", "sim", "devices", "list", check=False)
    assert loose.returncode == 1 and "chmod 600" in loose.stderr
    profiles.chmod(0o600)
    connect_cli(settings, *base, "profile", "remove", "sim")
    assert "sim" not in {p["name"] for p in json.loads(connect_cli(settings, *base, "profile", "list",
                                                                   "--json").stdout)}
    bad = connect_cli(settings, *base, "profile", "add", "bad", "--url", server, "--token-stdin", stdin="nope",
                      check=False)
    assert bad.returncode == 1 and "401" in bad.stderr and "nope" not in bad.stderr


def test_the_connector_imports_no_server_code():
    code = ("import sys, bramley.connector, bramley.connector.cli, bramley.connector.recipes; "
            "print(sorted(m for m in sys.modules if m.startswith('bramley') and m != 'bramley' "
            "and not m.startswith('bramley.connector')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    usage = subprocess.run([sys.executable, "-m", "bramley.connector", "--help"], capture_output=True, text=True,
                           check=True).stdout
    assert "devices" in usage and "custom" in usage
