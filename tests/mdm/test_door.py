"""The device door serves the requests waiting at once in one transaction (a turn): one request's refusal or
failure must never touch the others' changes, and each device gets its own answer."""
from __future__ import annotations

import asyncio
import plistlib

from bramley.mdm import api as door
from bramley.mdm import inventory
from bramley.simulator import scep_client
from bramley.simulator.agent import CONNECT_TYPE
from tests.simulator.fleet import apns_server, fleet, mdm_app, push_pair  # noqa: F401


def _request(f, device, body: bytes, identity=None) -> door.DeviceRequest:
    ident = identity or device.identity
    headers = {"content-type": CONNECT_TYPE,
               "mdm-signature": scep_client.sign_body(body, ident.cert, ident.key)}
    return door.DeviceRequest(f.tenant.subdomain, "connect", headers, body)


def _idle(device) -> bytes:
    return plistlib.dumps({"UDID": device.udid, "Status": "Idle"})


async def _turn(f, requests):
    return await asyncio.to_thread(door._serve_turn, f.app.state, requests)


SENT, ACKNOWLEDGED = 2, 3  # Iru's command status codes


async def _settings(f, device) -> list[tuple[int, int]]:
    """(status, attempts) of the device's Settings commands."""
    return [(c["status"], c["attempts"]) for c in await f.commands(device) if c["request_type"] == "Settings"]


def test_a_forged_request_in_a_turn_is_refused_alone(fleet):
    async def scenario(f):
        alice = await f.enrolled("mac", listen=False)
        bob = await f.enrolled("iphone", supervised=True, listen=False)
        await f.action(bob, "setname", {"DeviceName": "Bob's phone"})
        alice_seen = (await f.record(alice))["last_check_in"]

        # Alice's Idle, Bob's Idle signed by Alice (forged), Bob's own Idle: one turn.
        outcomes = await _turn(f, [_request(f, alice, _idle(alice)), _request(f, bob, _idle(bob), alice.identity),
                                   _request(f, bob, _idle(bob))])
        assert outcomes[0].status == 200 and outcomes[0].body == b""  # nothing queued for Alice
        assert isinstance(outcomes[1], door.Refused) and outcomes[1].status == 400
        command = plistlib.loads(outcomes[2].body)
        assert command["Command"]["RequestType"] == "Settings"
        # Sent once, to Bob's own request; Alice's check-in stayed.
        assert await _settings(f, bob) == [(SENT, 1)]
        assert (await f.record(alice))["last_check_in"] > alice_seen
    fleet(scenario)


def test_a_request_failing_midway_rolls_back_only_its_own_changes(fleet, monkeypatch):
    async def scenario(f):
        alice = await f.enrolled("mac", listen=False)
        bob = await f.enrolled("iphone", supervised=True, listen=False)
        await f.action(bob, "setname", {"DeviceName": "Bob's phone"})
        [uuid] = [plistlib.loads((await _turn(f, [_request(f, bob, _idle(bob))]))[0].body)["CommandUUID"]]
        bob_id = await f.device_id(bob)
        handle = inventory.handle_result

        def failing(db, ctx, channel, outcome, report):
            if channel.device_id == bob_id:
                raise RuntimeError("handler bug")
            return handle(db, ctx, channel, outcome, report)

        monkeypatch.setattr(inventory, "handle_result", failing)
        alice_seen = (await f.record(alice))["last_check_in"]
        bob_seen = (await f.record(bob))["last_check_in"]
        ack = plistlib.dumps({"UDID": bob.udid, "Status": "Acknowledged", "CommandUUID": uuid})
        outcomes = await _turn(f, [_request(f, bob, ack), _request(f, alice, _idle(alice))])
        assert isinstance(outcomes[0], RuntimeError)
        assert outcomes[1].status == 200
        # Bob's acknowledgement (and its check-in time) rolled back; Alice's check-in kept.
        assert await _settings(f, bob) == [(SENT, 1)]
        assert (await f.record(bob))["last_check_in"] == bob_seen
        assert (await f.record(alice))["last_check_in"] > alice_seen

        # Over HTTP the failing request is a bare 500, and the device can try again once the fault is gone.
        reply = await bob.send(bob.server_url, ack, content_type=CONNECT_TYPE)
        assert reply.status_code == 500 and reply.content == b""
        monkeypatch.setattr(inventory, "handle_result", handle)
        reply = await bob.send(bob.server_url, ack, content_type=CONNECT_TYPE)
        assert reply.status_code == 200
        assert await _settings(f, bob) == [(ACKNOWLEDGED, 1)]
        assert (await f.record(bob))["device_name"] == "Bob's phone"
    fleet(scenario)


def test_devices_checking_in_at_once_each_get_their_own_command(fleet):
    async def scenario(f):
        phones = [await f.enrolled("iphone", supervised=True, listen=False) for _ in range(6)]
        for number, phone in enumerate(phones):
            await f.action(phone, "setname", {"DeviceName": f"Phone {number}"})
        replies = await asyncio.gather(*(p.send(p.server_url, _idle(p), content_type=CONNECT_TYPE) for p in phones))
        assert [r.status_code for r in replies] == [200] * len(phones)
        names = [plistlib.loads(r.content)["Command"]["Settings"][0]["DeviceName"] for r in replies]
        assert names == [f"Phone {number}" for number in range(len(phones))]
    fleet(scenario)


def test_a_remembered_certificate_still_expires_and_a_new_ca_verifies_afresh():
    from datetime import datetime, timedelta, timezone

    cache = door.VerifiedCertificates(size=2)
    ca, other_ca = object(), object()
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    cache.put(cache.key(ca, "cert-a"), "hash-a", soon)
    cache.put(cache.key(ca, "cert-b"), "hash-b", datetime.now(timezone.utc) - timedelta(seconds=1))
    assert cache.get(cache.key(ca, "cert-a")) == "hash-a"
    assert cache.get(cache.key(ca, "cert-b")) is None  # expired since it was checked
    assert cache.get(cache.key(other_ca, "cert-a")) is None  # the tenant's CA was replaced
    # Bounded: the least recently used goes first.
    cache.put(cache.key(ca, "cert-c"), "hash-c", soon)
    assert cache.get(cache.key(ca, "cert-a")) == "hash-a"
    cache.put(cache.key(ca, "cert-d"), "hash-d", soon)
    assert cache.get(cache.key(ca, "cert-c")) is None
    assert cache.get(cache.key(ca, "cert-a")) == "hash-a" and cache.get(cache.key(ca, "cert-d")) == "hash-d"


def test_large_reports_are_accepted_up_to_the_device_limit(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        # A Mac with thousands of apps answers InstalledApplicationList with megabytes: past the API's 1 MB limit.
        big = plistlib.dumps({"UDID": mac.udid, "Status": "Idle", "Padding": "x" * 1_500_000})
        assert (await mac.send(mac.server_url, big, content_type=CONNECT_TYPE)).status_code == 200
        huge = plistlib.dumps({"UDID": mac.udid, "Status": "Idle", "Padding": "x" * (door.MAX_DEVICE_BODY + 1)})
        reply = await mac.send(mac.server_url, huge, content_type=CONNECT_TYPE)
        assert reply.status_code == 413 and reply.content == b""
    fleet(scenario)


def _ack(device, uuid: str) -> bytes:
    return plistlib.dumps({"UDID": device.udid, "Status": "Acknowledged", "CommandUUID": uuid})


def test_a_device_twice_in_a_turn_is_answered_in_order(fleet):
    async def scenario(f):
        phone = await f.enrolled("iphone", supervised=True, listen=False)
        other = await f.enrolled("iphone", supervised=True, listen=False)
        await f.action(phone, "setname", {"DeviceName": "First"})
        assert (await f.action(phone, "updateinventory")).status_code == 200
        first = plistlib.loads((await _turn(f, [_request(f, phone, _idle(phone))]))[0].body)
        assert first["Command"]["Settings"][0]["DeviceName"] == "First"

        # A retried Idle, another device, and the acknowledgement of the first command, all in one turn: the
        # phone's two requests are answered as if one came after the other (the retry gets the first command again,
        # the acknowledgement the next one).
        outcomes = await _turn(f, [_request(f, phone, _idle(phone)), _request(f, other, _idle(other)),
                                   _request(f, phone, _ack(phone, first["CommandUUID"]))])
        assert plistlib.loads(outcomes[0].body)["CommandUUID"] == first["CommandUUID"]
        assert outcomes[1].status == 200 and outcomes[1].body == b""
        assert plistlib.loads(outcomes[2].body)["Command"]["RequestType"] == "DeviceInformation"
        assert await _settings(f, phone) == [(ACKNOWLEDGED, 2)]
        assert (await f.record(phone))["device_name"] == "First"
    fleet(scenario)


def test_an_error_chain_with_odd_values_is_stored_without_them(fleet):
    from datetime import datetime

    async def scenario(f):
        phone = await f.enrolled("iphone", supervised=True, listen=False)
        await f.action(phone, "setname", {"DeviceName": "Never"})
        [command] = [plistlib.loads((await _turn(f, [_request(f, phone, _idle(phone))]))[0].body)]
        error = plistlib.dumps({"UDID": phone.udid, "Status": "Error", "CommandUUID": command["CommandUUID"],
                                "ErrorChain": [{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain",
                                                "Blob": b"\x00\x01", "When": datetime(2026, 1, 2),
                                                "Nested": {"a": 1}}]})
        [reply] = await _turn(f, [_request(f, phone, error)])
        assert reply.status == 200
        [stored] = [c for c in await f.commands(phone) if c["uuid"] == command["CommandUUID"]]
        assert stored["status"] == 4
        assert stored["error_chain"][0]["code"] == 12021 and stored["error_chain"][0]["domain"] == "MCMDMErrorDomain"
        from sqlalchemy import select

        from bramley.mdm.models import CommandHistory
        with f.app.state.db.unit_of_work(write=False) as s:
            kept = s.scalar(select(CommandHistory.error_chain).where(
                CommandHistory.command_uuid == command["CommandUUID"]))
        assert kept == [{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain"}]
    fleet(scenario)


def test_only_turns_that_a_crash_cannot_hurt_commit_without_waiting_for_the_disk(fleet):
    """On PostgreSQL a turn of Idle reports and inventory answers commits asynchronously; a turn holding the
    result of a command that changed the device, or a check-in, waits for the WAL flush. (SQLite: see _run.)"""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    modes: list[str] = []

    def before_commit(session):
        if session.info.get("turn"):  # the door's turns (on PostgreSQL)
            modes.append(session.connection().exec_driver_sql("SHOW synchronous_commit").scalar())

    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        phone = await f.enrolled("iphone", supervised=True, listen=False)
        postgresql = f.app.state.db.dialect == "postgresql"
        await f.action(mac, "updateinventory")
        inventory_uuids = [plistlib.loads((await _turn(f, [_request(f, mac, _idle(mac))]))[0].body)["CommandUUID"]]
        await f.action(phone, "lock")
        [lock] = [plistlib.loads((await _turn(f, [_request(f, phone, _idle(phone))]))[0].body)]
        assert lock["Command"]["RequestType"] == "DeviceLock"

        event.listen(Session, "before_commit", before_commit)
        try:
            modes.clear()
            await _turn(f, [_request(f, mac, _ack(mac, inventory_uuids[0])), _request(f, phone, _idle(phone))])
            assert modes == (["off"] if postgresql else [])
            modes.clear()
            await _turn(f, [_request(f, phone, _ack(phone, lock["CommandUUID"])), _request(f, mac, _idle(mac))])
            assert modes == (["on"] if postgresql else [])
        finally:
            event.remove(Session, "before_commit", before_commit)
        assert (await f.status_of(phone, "DeviceLock")) == ACKNOWLEDGED
    fleet(scenario)


def test_a_command_put_off_with_notnow_comes_back_on_the_next_idle_only(fleet):
    async def scenario(f):
        phone = await f.enrolled("iphone", supervised=True, listen=False)
        await f.action(phone, "setname", {"DeviceName": "Later"})
        [command] = [plistlib.loads((await _turn(f, [_request(f, phone, _idle(phone))]))[0].body)]
        not_now = plistlib.dumps({"UDID": phone.udid, "Status": "NotNow", "CommandUUID": command["CommandUUID"]})
        [reply] = await _turn(f, [_request(f, phone, not_now)])
        assert reply.status == 200 and reply.body == b""  # put off: not offered again in the same exchange
        [again] = await _turn(f, [_request(f, phone, _idle(phone))])
        assert plistlib.loads(again.body)["CommandUUID"] == command["CommandUUID"]
        [done] = await _turn(f, [_request(f, phone, _ack(phone, command["CommandUUID"]))])
        assert done.body == b""
        [idle] = await _turn(f, [_request(f, phone, _idle(phone))])
        assert idle.body == b""
        assert await _settings(f, phone) == [(ACKNOWLEDGED, 2)]
    fleet(scenario)
