"""End-to-end harness: the real app in-process (httpx.ASGITransport), its APNs pointed at the mock APNs, the
real job worker pushing through it, and simulated devices that wake on those pushes. Tests act only through
the Iru API and the device wire, as users and devices do.

Import the fixtures into a test module: `from tests.simulator.fleet import apns_server, fleet, mdm_app,
push_pair` (and `shared_fleet` for one tenant per module).
"""
from __future__ import annotations

import plistlib

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import delete, func, select

from bramley.app import create_app
from bramley.auth import service as tokens
from bramley.jobs.models import Job
from bramley.jobs.worker import Worker
from bramley.mdm import enroll, push
from bramley.simulator.agent import Options, SimulatedDevice
from bramley.simulator.device import new_device
from bramley.simulator.mock_apns import MockAPNs, make_push_certificate, serve_mock_apns
from bramley.tenancy import service as tenants
from tests.conftest import TenantHandle

BASE = "http://testserver"


@pytest.fixture(scope="module")
def apns_server():
    with serve_mock_apns(MockAPNs()) as running:
        yield running


@pytest.fixture(scope="module")
def push_pair():
    topic = f"com.apple.mgmt.External.{uuid.uuid4()}"
    cert, key = make_push_certificate(topic, key_size=2048)
    return topic, cert, key


@pytest.fixture(scope="module")
def mdm_app(settings, apns_server):
    app_settings = settings.model_copy(update={"apns_url": apns_server.url})
    app = create_app(app_settings)
    yield app
    app.state.db.dispose()


class Fleet:
    """One tenant with a push certificate, its devices, and the Iru API as the tenant's token sees it."""

    def __init__(self, app, tenant, client: httpx.AsyncClient, apns: MockAPNs, seed: int):
        self.app, self.tenant, self.client, self.apns = app, tenant, client, apns
        self.rng = random.Random(seed)
        self.devices: list[SimulatedDevice] = []
        self.stop = asyncio.Event()
        self._loops: list[asyncio.Task] = []
        self._ids: dict[str, str] = {}

    @property
    def enroll_url(self) -> str:
        return f"{BASE}/mdm/t/{self.tenant.subdomain}/enroll"

    async def code(self) -> str:
        """A one-time enrollment code, as `bramley mdm enroll-code` mints it."""
        return await self.write(lambda s, ctx: enroll.mint_enroll_code(s, ctx))

    async def write(self, fn: Callable):
        """Run fn(session, ctx) in one transaction, as an admin tool would: in a thread, as the app's own
        handlers run (blocking this loop could hold up the request whose lock it waits for)."""
        def run():
            with self.tenant.db.unit_of_work() as s:
                return fn(s, self.tenant.ctx(s))
        return await asyncio.to_thread(run)
    async def new(self, platform: str, *, supervised: bool | None = None, passcode: bool | None = None,
                  options: Options | None = None) -> SimulatedDevice:
        rng = random.Random(self.rng.getrandbits(64))
        device = SimulatedDevice(new_device(platform, rng, supervised=supervised, passcode=passcode), self.client,
                                 enroll_url=self.enroll_url, code=await self.code(), apns=self.apns,
                                 options=options or Options(not_now_retry=None, restart_seconds=0.2,
                                                                    retry_delay=0.05, retries=6), rng=rng)
        self.devices.append(device)
        return device

    async def enrolled(self, platform: str, *, listen: bool = True, **kwargs) -> SimulatedDevice:
        """A device enrolled through profile + SCEP + check-ins, then (listen) waiting for pushes."""
        device = await self.new(platform, **kwargs)
        await device.enroll()
        if listen:
            # The first TokenUpdate asks for a push; let the device take it now, so that it cannot race a
            # test's next action.
            async def pushed() -> bool:
                return bool(self.apns.pushes(device.token.hex()))
            await self.eventually(pushed, what="the enrollment push")
            exchanges = device.exchanges
            self.listen(device)
            await device.until(lambda d: d.exchanges > exchanges)
        return device

    def listen(self, device: SimulatedDevice) -> None:
        self._loops.append(asyncio.ensure_future(device.run(self.stop)))

    # --- the Iru API ---------------------------------------------------------------------------------

    async def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return await self.client.request(method, f"/api/v1{path}", headers=self.tenant.auth, **kwargs)

    async def record(self, device: SimulatedDevice) -> dict:
        """The device as GET /api/v1/devices lists it (looked up by its serial number)."""
        response = await self.api("GET", "/devices", params={"serial_number": device.state.serial_number})
        assert response.status_code == 200, response.text
        [record] = response.json()
        return record

    async def device_id(self, device: SimulatedDevice) -> str:
        if device.udid not in self._ids:
            self._ids[device.udid] = (await self.record(device))["device_id"]
        return self._ids[device.udid]

    async def action(self, device: SimulatedDevice, name: str, body: dict | None = None) -> httpx.Response:
        return await self.api("POST", f"/devices/{await self.device_id(device)}/action/{name}", json=body or {})

    async def commands(self, device: SimulatedDevice) -> list[dict]:
        response = await self.api("GET", f"/devices/{await self.device_id(device)}/commands",
                                  params={"limit": 300})
        assert response.status_code == 200, response.text
        return response.json()["commands"]["results"]

    async def status_of(self, device: SimulatedDevice, request_type: str) -> int | None:
        """The newest command of this type's status code (1 pending … 3 acknowledged, 4 error, 5 NotNow)."""
        found = [c for c in await self.commands(device) if c["request_type"] == request_type]
        return found[0]["status"] if found else None

    async def eventually(self, check: Callable[[], Awaitable[bool]], timeout: float = 10.0,
                         what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while True:
            if await check():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def acknowledged(self, device: SimulatedDevice, request_type: str, status: int = 3) -> None:
        """Wait until the newest `request_type` command reached `status` (pushed, fetched, answered)."""
        async def done() -> bool:
            return await self.status_of(device, request_type) == status
        await self.eventually(done, what=f"{request_type} to reach status {status}")

    async def settled(self, device: SimulatedDevice) -> list[dict]:
        """Wait until every command sent to the device has a final status; its command list."""
        async def done() -> bool:
            return all(c["status"] in (3, 4) for c in await self.commands(device))
        await self.eventually(done, what="every command to finish")
        return await self.commands(device)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await asyncio.gather(*(d.aclose() for d in self.devices), return_exceptions=True)


class Harness:
    """An event loop in a thread holding one tenant's Fleet, HTTP client and push worker, so devices keep
    listening for pushes between the scenarios a test (or a whole module) runs on it."""

    def __init__(self, app, tenant, apns: MockAPNs, seed: int = 1):
        self.app, self.tenant, self.apns, self.seed = app, tenant, apns, seed
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fleet-loop", daemon=True)
        self.thread.start()
        self.fleet: Fleet = self._call(self._start())

    def _call(self, coro, timeout: float = 90.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> Fleet:
        # In its own thread with its own loop, as `bramley serve` runs it: its database calls block, and on
        # this loop they would stall the app's request handling.
        self._worker = Worker(self.app.state.db, self.app.state.settings, kinds=[push.KIND], poll_interval=0.2)
        self._worker.start_in_thread()
        # A server fault reaches the device as a 500 (which it retries), not as an exception in the test.
        transport = httpx.ASGITransport(self.app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url=BASE, timeout=30)
        return Fleet(self.app, self.tenant, self._client, self.apns, self.seed)

    def __call__(self, scenario: Callable[[Fleet], Awaitable[None]]):
        """Run `scenario(fleet)` on the harness loop (60 s at most) and return its result. Devices retry a 5xx
        as real ones do; here any retry fails the test, so a server fault can't hide behind it."""
        result = self._call(asyncio.wait_for(scenario(self.fleet), 60))
        retried = {repr(d): d.stats["retries"] for d in self.fleet.devices if d.stats["retries"]}
        assert not retried, f"devices had to retry (server 5xx or dropped connections): {retried}"
        return result

    async def _stop(self) -> None:
        await self.fleet.close()
        # Leave no push job behind for a later test's worker (or a live server's) to send.
        deadline = time.monotonic() + 5
        while await asyncio.to_thread(self._pending_pushes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(self._worker.stop_thread)
        await asyncio.to_thread(self._forget_pushes)
        await self._client.aclose()

    def _pending_pushes(self) -> int:
        with self.app.state.db.unit_of_work() as s:
            return s.scalar(select(func.count()).select_from(Job).where(
                Job.tenant_id == self.tenant.id, Job.kind == push.KIND, Job.dead_at.is_(None)))

    def _forget_pushes(self) -> None:
        with self.app.state.db.unit_of_work() as s:
            s.execute(delete(Job).where(Job.tenant_id == self.tenant.id, Job.kind == push.KIND))

    def close(self) -> None:
        try:
            self._call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def new_tenant(app, push_pair) -> TenantHandle:
    """A tenant with an all-access API token and an APNs push certificate (as `make_tenant` + `apns upload`)."""
    _, cert, key = push_pair
    db = app.state.db
    with db.unit_of_work() as s:
        tenant = tenants.create(s, subdomain=f"sim{uuid.uuid4().hex[:12]}", region="us")
        ctx = tenants.system_context(tenant)
        ctx = type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="fixture", actor_type="admin",
                        actor_name="fixture")
        created = tokens.create(s, ctx, description="simulator tests", permissions=[], all_access=True)
        push.save_certificate(s, ctx, cert_pem=cert, key_pem=key)
        return TenantHandle(tenant.id, tenant.subdomain, "us", created.value, created.token.id, db, app)


@pytest.fixture
def fleet(mdm_app, apns_server, push_pair):
    """A fresh tenant per test: `fleet(scenario)` runs the async scenario against it."""
    harness = Harness(mdm_app, new_tenant(mdm_app, push_pair), apns_server.mock)
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def shared_fleet(mdm_app, apns_server, push_pair):
    """One tenant for a whole module, devices kept between tests (enrolling costs ~0.5 s a device)."""
    harness = Harness(mdm_app, new_tenant(mdm_app, push_pair), apns_server.mock, seed=7)
    yield harness
    harness.close()


def filevault_profile(cert) -> bytes:
    """A FileVault profile escrowing the personal recovery key to `cert` (the tenant's escrow certificate)."""
    from cryptography.hazmat.primitives import serialization

    cert_uuid = str(uuid.uuid4()).upper()
    return plistlib.dumps({
        "PayloadType": "Configuration", "PayloadVersion": 1, "PayloadIdentifier": "com.acme.filevault",
        "PayloadUUID": str(uuid.uuid4()).upper(), "PayloadDisplayName": "FileVault",
        "PayloadContent": [
            {"PayloadType": "com.apple.MCX.FileVault2", "PayloadUUID": str(uuid.uuid4()).upper(), "Enable": "On",
             "Defer": True, "UseRecoveryKey": True, "ShowRecoveryKey": False},
            {"PayloadType": "com.apple.security.pkcs1", "PayloadUUID": cert_uuid,
             "PayloadContent": cert.public_bytes(serialization.Encoding.DER)},
            {"PayloadType": "com.apple.security.FDERecoveryKeyEscrow", "PayloadUUID": str(uuid.uuid4()).upper(),
             "Location": "Acme IT", "EncryptCertPayloadUUID": cert_uuid},
        ]})


async def standard_devices(f) -> dict:
    """The five devices the action tests share: a supervised Mac, a supervised iPhone with a passcode, an
    unsupervised iPhone, a supervised iPad and an Apple TV, enrolled and listening."""
    return {"mac": await f.enrolled("mac", supervised=True),
            "phone": await f.enrolled("iphone", supervised=True, passcode=True),
            "unsupervised": await f.enrolled("iphone", supervised=False),
            "ipad": await f.enrolled("ipad", supervised=True),
            "tv": await f.enrolled("tv")}
