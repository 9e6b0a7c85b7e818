"""The swarm: N devices enrolled with bounded concurrency, woken by pushes or polling, answering everything."""
from __future__ import annotations

from bramley.simulator.agent import Options
from bramley.simulator.swarm import Swarm, SwarmConfig
from tests.simulator.fleet import BASE, apns_server, fleet, mdm_app, push_pair  # noqa: F401

FAST = dict(retry_delay=0.05, retries=6, restart_seconds=0.2)


async def config(f, devices: int, *, codes: bool = True, **kwargs) -> SwarmConfig:
    options = kwargs.pop("device", Options(**FAST))
    return SwarmConfig(url=BASE, tenant=f.tenant.subdomain, devices=devices,
                       codes=[await f.code() for _ in range(devices)] if codes else (), concurrency=2, seed=5,
                       device=options, **kwargs)


def test_a_mixed_swarm_enrolls_and_answers_what_pushes_bring(fleet):
    async def scenario(f):
        async with Swarm(await config(f, 4, platform="mixed"), client=f.client, apns=f.apns) as swarm:
            enrolled = await swarm.enroll()
            assert swarm.failures == [] and len(enrolled) == 4
            listed = (await f.api("GET", "/devices")).json()
            assert {d["platform"] for d in listed} == {"Mac", "iPhone", "iPad", "AppleTV"}
            assert all(d["mdm_enabled"] for d in listed)
            swarm.start()
            for device in enrolled:
                assert (await f.action(device, "updateinventory")).status_code == 200
            for device in enrolled:
                commands = await f.settled(device)
                assert {c["request_type"] for c in commands} >= {"DeviceInformation", "SecurityInfo"}
            await swarm.stop()
            summary = swarm.summary()
        assert (summary["devices"], summary["enrolled"], summary["failed"], summary["retries"]) == (4, 4, 0, 0)
        assert summary["pushes"] >= 4 and summary["commands"]["Acknowledged"] >= 4 * 7
        assert summary["request_types"]["DeviceInformation"] == 8  # at enrollment, then on request
    fleet(scenario)


def test_without_pushes_devices_poll_for_their_rounds(fleet):
    async def scenario(f):
        options = Options(poll_interval=0.2, **FAST)
        setup = await config(f, 2, platform="iphone", rounds=2, device=options)
        async with Swarm(setup, client=f.client) as swarm:
            summary = await swarm.run()
        assert (summary["enrolled"], summary["pushes"], summary["retries"]) == (2, 0, 0)
        assert summary["exchanges"] == 2 * 3  # the enrollment's, then two polls each
        assert all(d.exchanges == 3 for d in swarm.devices)
    fleet(scenario)


def test_not_now_commands_are_answered_on_a_later_check_in(fleet):
    async def scenario(f):
        options = Options(not_now_probability=0.5, not_now_retry=0.1, **FAST)
        setup = await config(f, 2, platform="mac", device=options)
        async with Swarm(setup, client=f.client, apns=f.apns) as swarm:
            enrolled = await swarm.enroll()
            swarm.start()
            for device in enrolled:
                await f.settled(device)  # every command final in the end
            summary = swarm.summary()
        assert summary["commands"]["NotNow"] > 0
        assert summary["request_types"]["InstalledApplicationList"] > 2  # offered again after NotNow
    fleet(scenario)


def test_refused_enrollments_are_reported_not_raised(fleet):
    async def scenario(f):
        async with Swarm(await config(f, 3, codes=False, platform="ipad"), client=f.client) as swarm:
            summary = await swarm.run()
        assert (summary["enrolled"], summary["failed"]) == (0, 3)
        assert summary["failures"] == [("profile refused (403): enrollment code missing, used or expired", 3)]
        assert (await f.api("GET", "/devices")).json() == []
    fleet(scenario)
