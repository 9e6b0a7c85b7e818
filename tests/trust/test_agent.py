"""The agent door end to end: simulated Macs enroll, their agent checks in with the enrollment identity, and the
device API, the trust API and the audit log show what it reported; uninstalling it takes verification away."""
from __future__ import annotations

import json

from bramley.simulator import scep_client
from bramley.simulator.swarm import Swarm, SwarmConfig
from tests.simulator.fleet import BASE, apns_server, fleet, mdm_app, push_pair  # noqa: F401


async def verdict(f, device) -> dict:
    r = await f.api("GET", "/trust/devices", params={"serial_number": device.state.serial_number})
    assert r.status_code == 200, r.text
    [one] = r.json()["results"]
    return one


async def trust_events(f, device_id: str) -> list[dict]:
    r = await f.api("GET", "/audit/events", params={"sort_by": "occurred_at"})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["results"] if e["target_component"] == "trust" and e["target_id"] == device_id]


def test_the_agent_reports_in_and_uninstalling_it_takes_verification_away(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        assert mac.stats["agent_checkins"] == 1  # right after enrolling
        record = await f.record(mac)
        assert record["agent_installed"] is True and record["agent_version"] == "1.0.0"
        details = (await f.api("GET", f"/devices/{record['device_id']}/details")).json()["kandji_agent"]
        assert details["agent_installed"] == "True" and details["agent_version"] == "1.0.0"
        assert details["install_date"] and details["last_check_in"].endswith("Z")
        assert (await verdict(f, mac))["verified"] is True

        assert await mac.uninstall_agent() == 204
        record = await f.record(mac)
        assert record["agent_installed"] is False and record["agent_version"] == ""
        gone = await verdict(f, mac)
        assert gone["verified"] is False
        assert gone["failed_rules"] == [{"rule": "agent_installed", "message": "agent not installed",
                                         "evidence": {"agent_installed": False}}]
        assert await mac.agent_checkin() == 0  # nothing left to report

        # The admin reinstalls it over MDM; once it lands, the agent reports in again.
        assert (await f.action(mac, "reinstallagent")).status_code == 200
        await mac.connect()
        assert (await f.action(mac, "updateinventory")).status_code == 200
        await mac.connect()
        assert mac.agent_installed
        assert await mac.agent_checkin() == 204
        assert (await verdict(f, mac))["verified"] is True

        events = await trust_events(f, record["device_id"])
        assert [(e["action"], e["new_state"]["verified"], e["new_state"]["failed_rules"]) for e in events] == [
            ("update", False, ["agent_installed"]), ("update", True, [])]
        assert events[0]["new_state"]["reasons"] == ["agent not installed"]
        assert events[0]["metadata"]["previous"] == {"verified": True, "failed_rules": []}
    fleet(scenario)


def test_removing_the_mdm_profile_fails_verification_with_its_reasons(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        await mac.check_out()
        found = await verdict(f, mac)
        assert found["verified"] is False
        assert [r["message"] for r in found["failed_rules"]] == ["MDM profile not installed", "device removed"]
    fleet(scenario)


def test_the_agent_door_refuses_what_the_device_did_not_sign(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        phone = await f.enrolled("iphone", listen=False)
        url = mac._agent_url("checkin")
        before = await f.record(mac)

        def signed(body: bytes, device=mac) -> dict:
            return {"Content-Type": "application/json",
                    "Mdm-Signature": scep_client.sign_body(body, device.identity.cert, device.identity.key)}

        good = json.dumps({"agent_version": "9.9.9"}).encode()
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        stranger = scep_client.self_signed(key, mac.identity.cert.subject)
        replies = {
            "unsigned": await f.client.post(url, content=good, headers={"Content-Type": "application/json"}),
            "tampered": await f.client.post(url, content=good.replace(b"9.9.9", b"6.6.6"), headers=signed(good)),
            "self_signed": await f.client.post(url, content=good, headers={
                "Content-Type": "application/json", "Mdm-Signature": scep_client.sign_body(good, stranger, key)}),
            "not_json": await f.client.post(url, content=b"agent 9", headers=signed(b"agent 9")),
            "bad_version": await f.client.post(url, content=b'{"agent_version": ["9"]}',
                                               headers=signed(b'{"agent_version": ["9"]}')),
            "no_version": await f.client.post(url, content=b"{}", headers=signed(b"{}")),
            # An iPhone has no agent to run.
            "iphone": await f.client.post(phone._agent_url("checkin"), content=good, headers=signed(good, phone)),
        }
        assert {name: r.status_code for name, r in replies.items()} == {name: 400 for name in replies}
        unknown = await f.client.post(f"{BASE}/agent/t/nosuchtenant/checkin", content=good, headers=signed(good))
        assert unknown.status_code == 404
        assert await f.record(mac) == before  # nothing refused changed anything
        assert (await f.record(phone))["agent_installed"] is False
    fleet(scenario)


def test_a_swarm_can_be_told_to_uninstall_the_agent(fleet):
    async def scenario(f):
        codes = [await f.code() for _ in range(3)]
        config = SwarmConfig(url=BASE, tenant=f.tenant.subdomain, devices=3, platform="mac", codes=codes, seed=3)
        async with Swarm(config, client=f.client) as swarm:
            await swarm.enroll()
            assert not swarm.failures and all(d.agent_installed for d in swarm.devices)
            [removed] = await swarm.uninstall_agent(1)
            listed = {d["serial_number"]: d["agent_installed"] for d in (await f.api("GET", "/devices")).json()}
            assert listed == {d.state.serial_number: d is not removed for d in swarm.devices}
    fleet(scenario)


def test_an_agent_removed_without_notice_is_noticed_in_the_next_app_inventory(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        assert (await f.record(mac))["agent_installed"] is True
        assert await mac.uninstall_agent(notify=False) == 0  # deleted by hand: the server hears nothing
        assert (await f.record(mac))["agent_installed"] is True
        assert (await f.action(mac, "updateinventory")).status_code == 200
        await mac.connect()
        assert (await f.record(mac))["agent_installed"] is False
        found = await verdict(f, mac)
        assert found["verified"] is False and [r["rule"] for r in found["failed_rules"]] == ["agent_installed"]
    fleet(scenario)
