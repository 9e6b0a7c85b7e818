"""Shared fixtures: one migrated database per run (SQLite, or PostgreSQL when BRAMLEY_DATABASE_URL names it),
an app on it, and tenants made per test, so tests never see each other's data (tenancy does the isolating)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bramley.app import create_app
from bramley.auth import service as tokens
from bramley.auth.permissions import catalogue
from bramley.config import Settings
from bramley.db.migrate import upgrade
from bramley.tenancy import service as tenants

REPO = Path(__file__).resolve().parent.parent


def _database_url() -> str | None:
    return os.environ.get("BRAMLEY_DATABASE_URL") or None


@pytest.fixture(scope="session")
def database_url() -> str | None:
    """The run's database: SQLite in the data dir, or the PostgreSQL database BRAMLEY_DATABASE_URL names. Under
    pytest-xdist each worker gets a database of its own beside that one (`<name>_<worker>`), made fresh, since some
    tests look at a whole database (migrations, compaction, key rotation). It is left for whoever made `<name>` to
    drop (.ci/run drops both): the worker's background writers (SCIM request logs) still flush as it exits."""
    url, worker = _database_url(), os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker or not url.startswith("postgresql"):
        yield url
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    own = base.set(database=name).render_as_string(hide_password=False)
    os.environ["BRAMLEY_DATABASE_URL"] = own  # for what this worker starts (CLI runs, servers, private databases)
    yield own


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bramley-data")


@pytest.fixture(scope="session")
def settings(data_dir, database_url) -> Settings:
    # Generous limits by default; rate-limit tests build their own app with small ones.
    s = Settings(data_dir=data_dir, database_url=database_url, rate_limit_per_second=100_000,
                 rate_limit_per_hour=10_000_000)
    upgrade(s)  # an unreachable PostgreSQL fails here: the run fails, it never skips
    return s


@pytest.fixture(scope="session")
def app(settings):
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture(scope="session")
def client(app) -> TestClient:
    return TestClient(app, base_url="http://testserver")


@pytest.fixture(scope="session")
def db(app):
    return app.state.db


@dataclass
class TenantHandle:
    id: str
    subdomain: str
    region: str
    token: str
    token_id: str
    db: object
    app: object

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def make_token(self, permissions: list[tuple[str, str]] | None = None, *, all_access: bool = False,
                   description: str = "test token") -> tuple[str, str]:
        with self.db.unit_of_work() as s:
            ctx = tenants.system_context(tenants.get(s, self.id))
            created = tokens.create(s, ctx, description=description, permissions=permissions or [],
                                    all_access=all_access, known={p.key for p in catalogue(self.app.routes)})
            return created.value, created.token.id

    def ctx(self, session):
        return tenants.system_context(tenants.get(session, self.id))


@pytest.fixture
def make_tenant(app, db):
    def _make(region: str = "us", devices: int = 0, prefix: str = "t") -> TenantHandle:
        sub = f"{prefix}{uuid.uuid4().hex[:12]}"
        with db.unit_of_work() as s:
            tenant = tenants.create(s, subdomain=sub, region=region)
            ctx = tenants.system_context(tenant)
            ctx = type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="fixture", actor_type="admin",
                            actor_name="fixture")
            created = tokens.create(s, ctx, description="all-access test token", permissions=[], all_access=True)
            handle = TenantHandle(tenant.id, sub, region, created.value, created.token.id, db, app)
            if devices:
                from bramley.demo.seed import seed

                seed(s, ctx, devices_count=devices, audited=False)
        return handle

    return _make


@pytest.fixture
def tenant(make_tenant) -> TenantHandle:
    return make_tenant(devices=40)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(settings: Settings, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env["BRAMLEY_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["BRAMLEY_DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


def run_cli(settings: Settings, *args: str, check: bool = True, **extra_env) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("bramley")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=cli_env(settings, **extra_env),
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"bramley {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_healthy(url: str, seconds: float = 60, **client) -> bool:
    """Whether `bramley serve` at `url` answered /healthz within `seconds` (`client`: httpx options, e.g. verify)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1, **client).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="session")
def live_server(settings):
    """`bramley serve` on a free loopback port, as a user would run it."""
    port = free_port()
    exe = Path(sys.executable).with_name("bramley")
    # No job worker: it would claim jobs (pushes, sweeps) that other tests enqueue and run with workers of their own.
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--no-worker"],
                            env=cli_env(settings, BRAMLEY_RATE_LIMIT_PER_SECOND="100000",
                                        BRAMLEY_RATE_LIMIT_PER_HOUR="10000000"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url):
        proc.kill()
        raise RuntimeError(f"server did not start: {proc.stdout.read().decode() if proc.stdout else ''}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
