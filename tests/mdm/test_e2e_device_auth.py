"""The device door refuses what a device did not sign: 400 (never 401), and nothing changes."""
from __future__ import annotations

import plistlib

from bramley.simulator import scep_client
from bramley.simulator.agent import CHECKIN_TYPE, CONNECT_TYPE
from tests.simulator.fleet import apns_server, fleet, mdm_app, push_pair  # noqa: F401


async def state_of(f, device) -> tuple:
    """What a forged request could change: the record, and the device's pending commands."""
    return await f.record(device), [(c["request_type"], c["status"]) for c in await f.commands(device)]


def test_forged_tampered_and_malformed_requests_are_400_and_change_nothing(fleet):
    async def scenario(f):
        alice = await f.enrolled("mac", listen=False)
        bob = await f.enrolled("iphone", supervised=True, listen=False)
        await f.action(bob, "setname", {"DeviceName": "Bob's work phone"})  # pending: bob is offline
        before = await state_of(f, alice), await state_of(f, bob)

        # Bob's Idle and TokenUpdate, signed with Alice's identity.
        idle = plistlib.dumps({"UDID": bob.udid, "Status": "Idle"})
        forged = await bob.send(bob.server_url, idle, content_type=CONNECT_TYPE, identity=alice.identity)
        update = {**bob.token_update_message(), "Token": b"\x01" * 32, "PushMagic": "STOLEN"}
        stolen = await bob.send(bob.checkin_url, plistlib.dumps(update), content_type=CHECKIN_TYPE,
                                identity=alice.identity)
        # Alice re-authenticating as Bob (one identity, two devices).
        twin = {**bob.authenticate_message(), "SerialNumber": "FAKE000001"}
        twice = await bob.send(bob.checkin_url, plistlib.dumps(twin), content_type=CHECKIN_TYPE,
                               identity=alice.identity)
        # A body changed after signing.
        signature = scep_client.sign_body(idle, bob.identity.cert, bob.identity.key)
        tampered = await bob.send(bob.server_url, idle.replace(b"Idle", b"Idlf"), content_type=CONNECT_TYPE,
                                  signature=signature)
        result = plistlib.dumps({"UDID": bob.udid, "Status": "Acknowledged", "CommandUUID": "X"})
        swapped = await bob.send(bob.server_url, result, content_type=CONNECT_TYPE, signature=signature)
        # Well signed, but not a plist; and a UDID nobody enrolled.
        malformed = await bob.send(bob.server_url, b"<plist><dict><key>Status", content_type=CONNECT_TYPE)
        stranger = await bob.send(bob.server_url, plistlib.dumps({"UDID": "00000000-0000000000000000",
                                                                  "Status": "Idle"}), content_type=CONNECT_TYPE)
        # No signature at all, and a signature by a certificate our CA never issued.
        unsigned = await bob.client.put(bob.server_url, content=idle, headers={"Content-Type": CONNECT_TYPE})
        self_signed = await _self_signed_idle(bob, idle)

        replies = {"forged": forged, "stolen": stolen, "twice": twice, "tampered": tampered, "swapped": swapped,
                   "malformed": malformed, "stranger": stranger, "unsigned": unsigned, "self_signed": self_signed}
        assert {name: r.status_code for name, r in replies.items()} == {name: 400 for name in replies}
        assert all(r.content == b"" for r in replies.values())
        assert (await state_of(f, alice), await state_of(f, bob)) == before
        assert len((await f.api("GET", "/devices")).json()) == 2

        # Bob's own identity still works, and his pending command was waiting for him.
        assert await bob.connect() == 1
        assert (await f.record(bob))["device_name"] == "Bob's work phone"
    fleet(scenario)


async def _self_signed_idle(device, body: bytes):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = scep_client.self_signed(key, device.identity.cert.subject)
    return await device.send(device.server_url, body, content_type=CONNECT_TYPE,
                             signature=scep_client.sign_body(body, cert, key))


def test_another_tenants_identity_is_refused(fleet, mdm_app, push_pair):
    from tests.simulator.fleet import Harness, new_tenant

    other = Harness(mdm_app, new_tenant(mdm_app, push_pair), fleet.apns)
    try:
        stranger = other(lambda f: f.enrolled("ipad", listen=False))

        async def scenario(f):
            mine = await f.enrolled("ipad", listen=False)
            idle = plistlib.dumps({"UDID": stranger.udid, "Status": "Idle"})
            # Its own UDID, its own (valid, but other-tenant) identity, at our tenant's URL.
            reply = await f.client.put(mine.server_url, content=idle, headers={
                "Content-Type": CONNECT_TYPE,
                "Mdm-Signature": scep_client.sign_body(idle, stranger.identity.cert, stranger.identity.key)})
            assert reply.status_code == 400
        fleet(scenario)
    finally:
        other.close()
