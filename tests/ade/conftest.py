"""ADE fixtures: the fake Apple enrollment service on a loopback port, an app whose `ade_url` points at it,
and helpers that do what an admin does (download the key, upload a token) and what the worker does (sync)."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi.testclient import TestClient

from bramley.ade.sync import sync_integration
from bramley.app import create_app
from bramley.simulator.fake_ade import FakeOrg, serve_fake_ade, server_token_p7m

BASE = "/api/v1/integrations/apple/ade"


@pytest.fixture(scope="session")
def fake_ade():
    with serve_fake_ade() as running:
        yield running


@pytest.fixture(scope="session")
def ade_settings(settings, fake_ade):
    return settings.model_copy(update={"ade_url": fake_ade.url})


@pytest.fixture(scope="session")
def ade_app(ade_settings):
    application = create_app(ade_settings)
    yield application
    application.state.db.dispose()


@pytest.fixture(scope="session")
def ade_client(ade_app) -> TestClient:
    return TestClient(ade_app, base_url="http://testserver")


class ADEHelper:
    def __init__(self, client: TestClient, fake, settings, database):
        self.client = client
        self.fake = fake.fake
        self.settings = settings
        self.database = database

    def public_key(self, tenant) -> str:
        r = self.client.get(f"{BASE}/public_key/", headers=tenant.auth)
        assert r.status_code == 200, r.text
        return r.text

    def blueprint(self, tenant, name: str | None = None) -> str:
        r = self.client.post("/api/v1/blueprints", headers=tenant.auth,
                             json={"name": name or f"ADE {uuid.uuid4().hex[:6]}", "enrollment_code": {"is_active": True}})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def token_file(self, tenant, org: FakeOrg, cipher: str = "aes256_cbc") -> bytes:
        return server_token_p7m(self.public_key(tenant), org, cipher=cipher)

    def upload(self, tenant, org: FakeOrg | None = None, *, blueprint_id: str | None = None, path: str = "",
               data: dict | None = None, file: bytes | None = None, cipher: str = "aes256_cbc"):
        org = org or self.fake.new_org()
        fields = {"blueprint_id": blueprint_id or self.blueprint(tenant), "phone": "4155550100",
                  "email": "it@example.com"} if data is None else data
        body = file if file is not None else self.token_file(tenant, org, cipher)
        return self.client.post(f"{BASE}/{path}", headers=tenant.auth, data=fields,
                                files={"file": ("Test_Token_2026-01-01T00-00-00Z_smime.p7m", body,
                                                "application/pkcs7-mime")})

    def integrate(self, tenant, org: FakeOrg | None = None, **kw) -> tuple[dict, FakeOrg]:
        org = org or self.fake.new_org()
        r = self.upload(tenant, org, **kw)
        assert r.status_code == 200, r.text
        return r.json(), org

    def sync(self, tenant, integration_id: str, sessions: dict | None = None):
        return asyncio.run(sync_integration(self.database, self.settings, tenant.id, integration_id,
                                            sessions=sessions))

    def devices(self, tenant, integration_id: str, **params) -> dict:
        r = self.client.get(f"{BASE}/{integration_id}/devices", headers=tenant.auth, params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def ade(ade_client, fake_ade, ade_settings, ade_app) -> ADEHelper:
    return ADEHelper(ade_client, fake_ade, ade_settings, ade_app.state.db)
