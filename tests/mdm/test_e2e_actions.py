"""Every device action of the card list, end to end: Iru API → queue → APNs push (mock) → the simulated device
fetches and answers the command → the API shows the outcome.

One tenant and one set of listening devices serve the module (`shared_fleet`); tests that end a device
(erase, shutdown) or need it offline enroll their own.
"""
from __future__ import annotations

import pytest

from tests.simulator.fleet import apns_server, mdm_app, push_pair, shared_fleet, standard_devices  # noqa: F401

NOT_ALLOWED = "Command is not allowed for current device"


@pytest.fixture(scope="module")
def fleet(shared_fleet):
    """`fleet(scenario)`: scenario(f, d) with d the module's devices, enrolled once and listening."""
    devices = shared_fleet(standard_devices)

    def run(scenario):
        async def with_devices(f):
            await scenario(f, devices)
        return shared_fleet(with_devices)
    return run


async def refused(f, device, name: str, body: dict | None = None, message: str | list = NOT_ALLOWED) -> None:
    reply = await f.action(device, name, body)
    assert (reply.status_code, reply.json()) == (400, message), reply.text


async def sent(f, device, name: str, body: dict | None = None) -> dict | None:
    reply = await f.action(device, name, body)
    assert reply.status_code == 200, reply.text
    return reply.json() if reply.content else None


def test_lock_a_mac_returns_the_pin_the_device_received(fleet):
    async def scenario(f, d):
        mac = d["mac"]
        reply = await sent(f, mac, "lock", {"Message": "Return to IT", "PhoneNumber": "+1 555 0100"})
        assert set(reply) == {"PIN"} and len(reply["PIN"]) == 6 and reply["PIN"].isdigit()
        await f.acknowledged(mac, "DeviceLock")
        assert (mac.state.locked, mac.state.lock_pin, mac.state.lock_message) == (True, reply["PIN"], "Return to IT")
        secret = await f.api("GET", f"/devices/{await f.device_id(mac)}/secrets/unlockpin")
        assert secret.json() == {"pin": reply["PIN"]}
    fleet(scenario)


def test_lock_an_iphone_has_no_pin(fleet):
    async def scenario(f, d):
        phone = d["unsupervised"]
        assert await sent(f, phone, "lock", {"Message": "Lost phone"}) is None
        await f.acknowledged(phone, "DeviceLock")
        assert phone.state.locked and phone.state.lock_pin is None
        await refused(f, d["tv"], "lock")
    fleet(scenario)


def test_a_pending_lock_hands_back_its_pin_and_other_commands_say_already_running(fleet):
    async def scenario(f, d):
        mac = await f.enrolled("mac", listen=False)  # offline: commands stay pending
        first = await sent(f, mac, "lock")
        assert await sent(f, mac, "lock") == first
        await sent(f, mac, "setname", {"DeviceName": "Kiosk"})
        await refused(f, mac, "setname", {"DeviceName": "Kiosk 2"}, message="Command already running")
        assert [c["status"] for c in await f.commands(mac)][:2] == [1, 1]  # pending
        await mac.connect()  # the Mac comes online
        assert [c["status"] for c in await f.commands(mac)][:2] == [3, 3]
        assert mac.state.lock_pin == first["PIN"] and mac.state.device_name == "Kiosk"
    fleet(scenario)


def test_a_locked_device_is_already_locked_until_it_is_heard_from_again(fleet):
    async def scenario(f, d):
        mac = await f.enrolled("mac", listen=False)
        first = await sent(f, mac, "lock")
        await mac.connect()  # receives and acknowledges the lock, then is silent behind its lock screen
        assert mac.state.locked and mac.state.lock_pin == first["PIN"]
        await refused(f, mac, "lock", message="This device is already locked.")
        await sent(f, mac, "setname", {"DeviceName": "Found"})  # other actions wait for the device as usual
        await mac.connect()  # someone entered the PIN: the Mac is back, and takes the waiting command
        assert mac.state.device_name == "Found"
        second = await sent(f, mac, "lock")
        await mac.connect()
        assert mac.state.lock_pin == second["PIN"]
        assert [c["request_type"] for c in await f.commands(mac)][:3] == ["DeviceLock", "Settings", "DeviceLock"]
    fleet(scenario)


def test_erase_ends_the_enrollment_and_the_device_gets_no_more_commands(fleet):
    async def scenario(f, d):
        phone = await f.enrolled("iphone", supervised=True)
        mac = await f.enrolled("mac")
        assert await sent(f, phone, "erase", {"PreserveDataPlan": False}) is None
        assert await sent(f, mac, "erase", {"PIN": 246810}) is None  # the card sends the PIN as a number
        for device in (phone, mac):
            await device.until(lambda d: d.state.erased)
            record = await f.record(device)
            assert (record["mdm_enabled"], record["is_removed"]) == (False, True)
            assert not device.enrolled and device.identity is None  # no CheckOut was sent
            await refused(f, device, "blankpush")
            assert await f.status_of(device, "EraseDevice") == 3
        assert mac.state.erase_pin == "246810"
        pin = await f.api("GET", f"/devices/{await f.device_id(mac)}/secrets/unlockpin")
        assert pin.json() == {"pin": "246810"}
        pushes = len(f.apns.pushes())
        await refused(f, phone, "lock")
        assert len(f.apns.pushes()) == pushes
    fleet(scenario)


def test_clear_passcode_on_an_iphone_and_not_on_a_mac(fleet):
    async def scenario(f, d):
        phone = d["phone"]
        assert phone.state.passcode_present
        assert await sent(f, phone, "clearpasscode") is None
        await f.acknowledged(phone, "ClearPasscode")  # the UnlockToken escrowed at TokenUpdate matched
        assert not phone.state.passcode_present
        await refused(f, d["mac"], "clearpasscode")
        await refused(f, d["tv"], "clearpasscode")
    fleet(scenario)


def test_remote_desktop_only_on_a_mac(fleet):
    async def scenario(f, d):
        mac = d["mac"]
        device_id = await f.device_id(mac)
        for enable in (True, False):
            await sent(f, mac, "remotedesktop", {"EnableRemoteDesktop": enable})
            await mac.until(lambda d: d.state.remote_desktop is enable)
            await f.settled(mac)
            details = (await f.api("GET", f"/devices/{device_id}/details")).json()
            assert details["security_information"]["remote_desktop_enabled"] is enable
        await refused(f, d["ipad"], "remotedesktop", {"EnableRemoteDesktop": True})
    fleet(scenario)


def test_lost_mode_on_sound_location_off_on_a_supervised_iphone(fleet):
    async def scenario(f, d):
        phone = d["phone"]
        device_id = await f.device_id(phone)
        await refused(f, phone, "playlostmodesound", message=["Device is not in lost mode."])
        await sent(f, phone, "enablelostmode", {"Message": "Please call", "PhoneNumber": "+1 555 0100",
                                               "Footnote": "Acme IT"})
        await f.acknowledged(phone, "EnableLostMode")
        assert phone.state.lost_mode and phone.state.lost_message == "Please call"
        assert (await f.record(phone))["lost_mode_status"] == "ENABLED"
        await sent(f, phone, "playlostmodesound")
        await f.acknowledged(phone, "PlayLostModeSound")
        assert phone.state.sound_played == 1
        await sent(f, phone, "updatelocation")
        await f.acknowledged(phone, "DeviceLocation")
        lost = (await f.api("GET", f"/devices/{device_id}/details/lostmode")).json()["lost_mode"]
        assert (float(lost["last_location"]["latitude"]), float(lost["last_location"]["longitude"])) == \
            phone.state.location
        assert lost["lock_screen_message"] == "Please call" and lost["lock_screen_footnote"] == "Acme IT"
        await sent(f, phone, "disablelostmode")
        await f.acknowledged(phone, "DisableLostMode")
        assert not phone.state.lost_mode and (await f.record(phone))["lost_mode_status"] == ""
        # Only supervised iPhones and iPads.
        await refused(f, d["unsupervised"], "enablelostmode", {"Message": "x"})
        await refused(f, d["mac"], "enablelostmode", {"Message": "x"})
    fleet(scenario)


def test_restart_and_shutdown(fleet):
    async def scenario(f, d):
        mac = await f.enrolled("mac")
        await sent(f, mac, "restart", {"NotifyUser": True})
        # Acknowledged, offline for a moment, then back: it checks in after booting.
        await mac.until(lambda d: d.state.restarts == 1 and d.stats["boots"] == 1)
        assert await f.status_of(mac, "RestartDevice") == 3
        await sent(f, mac, "shutdown")
        await mac.until(lambda d: d.state.powered_off)
        assert await f.status_of(mac, "ShutDownDevice") == 3
        # Off: a blank push wakes nothing, and the device does not check in.
        seen = (await f.record(mac))["last_check_in"]
        await sent(f, mac, "blankpush")
        await f.eventually(lambda: _pushed(f, mac, 4), what="the blank push")
        assert (await f.record(mac))["last_check_in"] == seen
        await mac.power_on()
        assert (await f.record(mac))["last_check_in"] > seen
        # Restart needs supervision on iOS: the device answers Error; Apple TV has no shutdown.
        phone = d["unsupervised"]
        await sent(f, phone, "restart")
        await f.acknowledged(phone, "RestartDevice", status=4)
        assert not phone.state.powered_off
        await refused(f, d["tv"], "shutdown")
    fleet(scenario)


async def _pushed(f, device, count: int) -> bool:
    return len(f.apns.pushes(device.token.hex())) >= count


def test_blank_push_updates_last_check_in(fleet):
    async def scenario(f, d):
        tv = d["tv"]
        before = (await f.record(tv))["last_check_in"]
        exchanges = tv.exchanges
        assert await sent(f, tv, "blankpush") is None
        await tv.until(lambda d: d.exchanges > exchanges)
        assert (await f.record(tv))["last_check_in"] > before
        assert await f.commands(tv) == [c for c in await f.commands(tv) if c["request_type"] != "blankpush"]
    fleet(scenario)


def test_set_name_changes_the_name_after_the_ack(fleet):
    async def scenario(f, d):
        mac = d["mac"]
        await sent(f, mac, "setname", {"DeviceName": "SALES MBP 07"})
        await f.acknowledged(mac, "Settings")
        assert (mac.state.device_name, mac.state.local_host_name) == ("SALES MBP 07", "sales-mbp-07")
        assert (await f.record(mac))["device_name"] == "SALES MBP 07"
        # An unsupervised iPhone refuses the DeviceName item: the API keeps the old name.
        phone = d["unsupervised"]
        name = phone.state.device_name
        await sent(f, phone, "setname", {"DeviceName": "Renamed"})
        await f.acknowledged(phone, "Settings")
        assert phone.state.device_name == name and (await f.record(phone))["device_name"] == name
    fleet(scenario)


def test_unlock_user_account(fleet):
    async def scenario(f, d):
        mac = d["mac"]
        user = mac.state.users[0]
        user.locked = True
        await sent(f, mac, "unlockaccount", {"UserName": user.short_name})
        await f.acknowledged(mac, "UnlockUserAccount")
        assert not user.locked
        await sent(f, mac, "unlockaccount", {"UserName": "nobody"})
        await f.acknowledged(mac, "UnlockUserAccount", status=4)
        [failed] = [c for c in await f.commands(mac) if c["request_type"] == "UnlockUserAccount"][:1]
        assert failed["error_chain"][0]["domain"] == "MCMDMErrorDomain" and failed["error_chain"][0]["code"]
        await refused(f, d["phone"], "unlockaccount", {"UserName": "x"})
    fleet(scenario)


def test_reinstall_agent_installs_it_on_a_mac_only(fleet):
    async def scenario(f, d):
        mac = d["mac"]
        await sent(f, mac, "reinstallagent")
        await f.acknowledged(mac, "InstallEnterpriseApplication")
        await sent(f, mac, "updateinventory")
        await f.settled(mac)
        apps = (await f.api("GET", f"/devices/{await f.device_id(mac)}/apps")).json()["apps"]
        assert "dev.bramley.agent" in {a["bundle_id"] for a in apps}
        await refused(f, d["ipad"], "reinstallagent")
    fleet(scenario)


def test_not_now_is_offered_again_on_the_next_idle(fleet):
    async def scenario(f, d):
        mac = d["mac"]
        mac.ctx.not_now_next = 1
        await sent(f, mac, "reinstallagent")
        await f.acknowledged(mac, "InstallEnterpriseApplication", status=5)  # NotNow
        assert mac.state.history[-1] == ("InstallEnterpriseApplication", "NotNow")
        await mac.connect()  # the device is ready again: Idle, and the command comes back
        assert await f.status_of(mac, "InstallEnterpriseApplication") == 3
        assert [h for h in mac.state.history if h[0] == "InstallEnterpriseApplication"][-2:] == [
            ("InstallEnterpriseApplication", "NotNow"), ("InstallEnterpriseApplication", "Acknowledged")]
        newest = next(c for c in await f.commands(mac) if c["request_type"] == "InstallEnterpriseApplication")
        assert newest["attempts"] == 2
    fleet(scenario)
