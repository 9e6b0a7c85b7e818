"""A live `bramley serve` whose APNs is a mock in this process, and simulated devices enrolled into it over HTTP.

The connector talks to the server over real HTTP, as it would to an Iru tenant; the server queues the MDM
command and its worker pushes through the mock APNs; the simulated device wakes, fetches the command over HTTP
and answers it. Tests check both sides: the device's state and the command list the API shows.

The server lives only as long as this package's tests: its job worker would otherwise deliver other packages'
pushes to this package's mock.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from bramley.auth import service as tokens
from bramley.jobs.models import Job
from bramley.mdm import push
from bramley.simulator.agent import Options
from bramley.simulator.fake_ade import serve_fake_ade
from bramley.simulator.mock_apns import MockAPNs, make_push_certificate, serve_mock_apns
from bramley.tenancy import service as tenants
from tests.conftest import TenantHandle, cli_env, free_port
from tests.simulator.fleet import Fleet, Harness


@pytest.fixture(scope="package")
def apns():
    with serve_mock_apns(MockAPNs()) as running:
        yield running


@pytest.fixture(scope="package")
def apple_ade():
    """The fake Apple device enrollment service, for the ADE cards."""
    with serve_fake_ade() as running:
        yield running


@pytest.fixture(scope="package")
def server(settings, apns, apple_ade):
    """`bramley serve` on a free port, pushing through the mock APNs and syncing ADE tokens with the fake Apple
    service, with limits out of the way."""
    port = free_port()
    exe = Path(sys.executable).with_name("bramley")
    env = cli_env(settings, BRAMLEY_APNS_URL=apns.url, BRAMLEY_ADE_URL=apple_ade.url, BRAMLEY_WORKER_POLL_SECONDS="0.1",
                  BRAMLEY_RATE_LIMIT_PER_SECOND="100000", BRAMLEY_RATE_LIMIT_PER_HOUR="10000000")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class LiveFleet(Fleet):
    """The simulator's Fleet, enrolling into the live server instead of an in-process app."""

    def __init__(self, url: str, *args, **kwargs):
        self.url = url
        super().__init__(*args, **kwargs)

    @property
    def enroll_url(self) -> str:
        return f"{self.url}/mdm/t/{self.tenant.subdomain}/enroll"

    async def new(self, platform: str, **kwargs):
        # Pushes wake the devices; a slow poll as well, so a push job claimed by some other worker on the same
        # database cannot leave a device asleep.
        kwargs.setdefault("options", Options(not_now_retry=None, restart_seconds=0.2, retry_delay=0.05, retries=6,
                                             poll_interval=2.0))
        return await super().new(platform, **kwargs)


class LiveHarness(Harness):
    """The simulator's Harness (an event loop in a thread holding the devices) over real HTTP."""

    def __init__(self, url: str, tenant: TenantHandle, apns: MockAPNs):
        self.url = url
        super().__init__(None, tenant, apns, seed=11)

    async def _start(self) -> Fleet:
        self._client = httpx.AsyncClient(base_url=self.url, timeout=30)
        return LiveFleet(self.url, None, self.tenant, self._client, self.apns, self.seed)

    async def _stop(self) -> None:
        await self.fleet.close()
        await self._client.aclose()


def _push_tenant(app) -> TenantHandle:
    """A tenant with an all-access token and an APNs push certificate."""
    topic = f"com.apple.mgmt.External.{uuid.uuid4()}"
    cert, key = make_push_certificate(topic, key_size=2048)
    db = app.state.db
    with db.unit_of_work() as s:
        tenant = tenants.create(s, subdomain=f"conn{uuid.uuid4().hex[:12]}", region="us")
        ctx = tenants.system_context(tenant)
        ctx = type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="fixture", actor_type="admin",
                        actor_name="fixture")
        created = tokens.create(s, ctx, description="connector tests", permissions=[], all_access=True)
        push.save_certificate(s, ctx, cert_pem=cert, key_pem=key)
        return TenantHandle(tenant.id, tenant.subdomain, "us", created.value, created.token.id, db, app)


def seeded_tenant(app, devices: int, region: str = "us") -> TenantHandle:
    """A tenant with an all-access token and a demo fleet (as `make_tenant`, for module-scoped fixtures)."""
    from bramley.demo.seed import seed

    db = app.state.db
    with db.unit_of_work() as s:
        tenant = tenants.create(s, subdomain=f"conn{uuid.uuid4().hex[:12]}", region=region)
        ctx = tenants.system_context(tenant)
        ctx = type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="fixture", actor_type="admin",
                        actor_name="fixture")
        created = tokens.create(s, ctx, description="connector tests", permissions=[], all_access=True)
        seed(s, ctx, devices_count=devices, audited=False)
        return TenantHandle(tenant.id, tenant.subdomain, region, created.value, created.token.id, db, app)


@pytest.fixture(scope="package")
def sim(app, server, apns):
    """One tenant with listening simulated devices for the package: `sim(scenario)` runs scenario(fleet)."""
    tenant = _push_tenant(app)
    harness = LiveHarness(server, tenant, apns.mock)
    yield harness
    try:
        harness.close()
    finally:
        with app.state.db.unit_of_work() as s:  # no push job left for a later worker to send anywhere
            s.execute(delete(Job).where(Job.tenant_id == tenant.id, Job.kind == push.KIND))


def committed(read, ok, timeout: float = 5.0):
    """read() until ok(result), for effects that arrive asynchronously: a simulated device acting on a command, an
    ADE sync job. Writes themselves are committed before their reply (get_db runs in the endpoint's scope;
    tests/devices/test_notes.py holds the server to it), so reads of a card's own write pass on the first try."""
    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def found(read):
    """read(), or None when it answers 404 (for `committed`: a write's object may not be readable yet)."""
    from bramley.connector import NotFound

    try:
        return read()
    except NotFound:
        return None
