"""Enrollment end to end: simulated devices enroll through the real endpoints (profile, SCEP, signed
check-ins) and the Iru API shows what they reported."""
from __future__ import annotations

from bramley.mdm import pki, queue
from bramley.mdm.actions import device_enrollment
from bramley.simulator.agent import Refused
from bramley.simulator.scep_client import EnrollmentFailed
from tests.simulator.fleet import apns_server, filevault_profile, fleet, mdm_app, push_pair  # noqa: F401


def test_enrolled_devices_of_every_platform_appear_in_the_device_list(fleet):
    async def scenario(f):
        devices = [await f.enrolled(p, listen=False) for p in ("mac", "iphone", "ipad", "tv")]
        listed = (await f.api("GET", "/devices")).json()
        assert len(listed) == 4
        by_serial = {d["serial_number"]: d for d in listed}
        for device in devices:
            s = device.state
            record = by_serial[s.serial_number]
            assert (record["platform"], record["model"], record["os_version"], record["device_name"]) == (
                s.platform, s.model_name, s.os_version, s.device_name)
            assert record["mdm_enabled"] is True and record["is_removed"] is False
            assert record["last_check_in"] and record["last_check_in"].endswith("Z")
            assert record["first_enrollment"] and record["last_enrollment"]
    fleet(scenario)


def test_initial_inventory_fills_apps_details_and_the_bypass_code(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", supervised=True, listen=False)
        device_id = await f.device_id(mac)
        apps = (await f.api("GET", f"/devices/{device_id}/apps")).json()["apps"]
        assert sorted(a["bundle_id"] for a in apps) == sorted(a.identifier for a in mac.state.apps)
        details = (await f.api("GET", f"/devices/{device_id}/details")).json()
        assert details["mdm"]["supervised"] == "True" and details["mdm"]["mdm_enabled"] == "True"
        assert details["filevault"]["filevault_enabled"] == mac.state.filevault
        assert details["volumes"][0]["name"] == "Macintosh HD"
        assert details["network"]["local_hostname"] == mac.state.local_host_name
        enrollment_profile = f"com.bramley.{f.tenant.subdomain}.enrollment"
        assert [p["identifier"] for p in details["installed_profiles"]] == [enrollment_profile]
        codes = (await f.api("GET", f"/devices/{device_id}/secrets/bypasscode")).json()
        assert mac.state.bypass_code in (codes["user_based_albc"], codes["device_based_albc"])
        statuses = {c["request_type"]: c["status"] for c in await f.commands(mac)}
        assert statuses == {"DeviceInformation": 3, "SecurityInfo": 3, "InstalledApplicationList": 3,
                            "ProfileList": 3, "CertificateList": 3, "ActivationLockBypassCode": 3}
    fleet(scenario)


def test_update_inventory_refreshes_from_the_device(fleet):
    async def scenario(f):
        phone = await f.enrolled("iphone", supervised=True)
        device_id = await f.device_id(phone)
        # Meanwhile, on the phone: an OS update, a new app, less free space.
        phone.state.os_version, phone.state.build_version = "26.2", "23C55"
        phone.state.apps.append(type(phone.state.apps[0])("Notion", "notion.id", "1.7.3", "Notion", 9_000_000))
        phone.state.available_gb = 10.0
        reply = await f.action(phone, "updateinventory")
        assert (reply.status_code, reply.content) == (200, b"")
        await f.settled(phone)
        assert (await f.record(phone))["os_version"] == "26.2"
        apps = (await f.api("GET", f"/devices/{device_id}/apps")).json()["apps"]
        assert {"app_name": "Notion", "version": "1.7.3"}.items() <= next(
            a for a in apps if a["bundle_id"] == "notion.id").items()
        details = (await f.api("GET", f"/devices/{device_id}/details")).json()
        assert details["general"]["system_version"] == "26.2 (23C55)"
        assert details["volumes"][0]["available"] == "10.00 GB"
        assert len(f.apns.pushes(phone.token.hex())) >= 1  # woken by a push, not a poll
    fleet(scenario)


def test_mdm_enabled_only_after_token_update(fleet):
    async def scenario(f):
        mac = await f.new("mac")
        await mac.get_identity()
        await mac.checkin(mac.authenticate_message())
        assert (await f.record(mac))["mdm_enabled"] is False
        await mac.checkin(mac.token_update_message())
        assert (await f.record(mac))["mdm_enabled"] is True
    fleet(scenario)


def test_reenrolling_the_same_device_keeps_its_id_and_notes(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac", listen=False)
        before = await f.record(mac)
        note = await f.api("POST", f"/devices/{before['device_id']}/notes", json={"content": "Asset of Ada"})
        assert note.status_code == 201
        old_identity = mac.identity.cert
        await mac.enroll(code=await f.code())  # a new profile, a new SCEP identity, the same hardware
        assert mac.identity.cert != old_identity
        after = await f.record(mac)
        assert after["device_id"] == before["device_id"] and after["mdm_enabled"] is True
        assert after["first_enrollment"] == before["first_enrollment"]
        assert after["last_enrollment"] > before["last_enrollment"]
        notes = (await f.api("GET", f"/devices/{before['device_id']}/notes")).json()
        assert [n["content"] for n in notes] == ["Asset of Ada"]
        assert len((await f.api("GET", "/devices")).json()) == 1
    fleet(scenario)


def test_checkout_marks_the_device_removed(fleet):
    async def scenario(f):
        phone = await f.enrolled("iphone", listen=False)
        await phone.check_out()
        record = await f.record(phone)
        assert (record["mdm_enabled"], record["is_removed"]) == (False, True)
        refused = await f.action(phone, "blankpush")
        assert (refused.status_code, refused.json()) == (400, "Command is not allowed for current device")
    fleet(scenario)


def test_profile_needs_a_valid_one_time_code(fleet):
    async def scenario(f):
        device = await f.new("ipad")
        code = device.code
        refused = await f.client.get(f.enroll_url)
        assert refused.status_code == 403
        await device.get_identity()
        again = await f.new("ipad")
        try:
            await again.get_identity(code=code)  # used already
        except EnrollmentFailed as exc:
            assert exc.status == 403
        else:
            raise AssertionError("a used code served a second profile")
    fleet(scenario)


def test_a_filevault_profile_escrows_the_recovery_key(fleet):
    async def scenario(f):
        mac = await f.enrolled("mac")
        mac.state.filevault, mac.state.prk = False, ""
        device_id = await f.device_id(mac)

        def install(s, ctx):  # no API action installs a FileVault profile yet: queued as the core would
            enrollment = device_enrollment(s, ctx, device_id)
            queue.enqueue(s, ctx, [queue.Target(enrollment.id, enrollment.device_id)], "InstallProfile",
                          {"Payload": filevault_profile(pki.escrow_cert(s, ctx))}, priority=20)

        await f.write(install)
        await f.action(mac, "updateinventory")  # pushes; the profile goes first, then SecurityInfo with the PRK
        await f.eventually(lambda: _escrowed(f, mac), what="the escrowed PRK")
        key = (await f.api("GET", f"/devices/{await f.device_id(mac)}/secrets/filevaultkey")).json()
        assert key == {"key": mac.state.prk}
    fleet(scenario)


async def _escrowed(f, mac) -> bool:
    details = (await f.api("GET", f"/devices/{await f.device_id(mac)}/details")).json()
    return details["filevault"].get("filevault_prk_escrowed") is True


def test_a_topic_other_than_the_tenants_is_refused(fleet):
    async def scenario(f):
        phone = await f.new("iphone")
        await phone.get_identity()
        message = {**phone.authenticate_message(), "Topic": "com.apple.mgmt.External.someone-else"}
        try:
            await phone.checkin(message)
        except Refused as exc:
            assert exc.status == 400
        else:
            raise AssertionError("a foreign topic was accepted")
        assert (await f.api("GET", "/devices")).json() == []
    fleet(scenario)

