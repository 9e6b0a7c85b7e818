"""A tenant with a SCIM directory integration, and a client speaking to its SCIM door."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from bramley.auth import service as tokens
from bramley.scim import service as scim
from bramley.tenancy import service as tenants
from bramley.tenancy.models import Tenant
from tests.conftest import TenantHandle

BASE = "/api/v1/scim"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@dataclass
class Directory:
    """One integration's view of the SCIM door: `d.get("/Users")` etc. send its token."""

    client: object
    tenant: object
    token: str
    integration_id: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}

    def request(self, method: str, path: str, **kw):
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.client.request(method, BASE + path, headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, json=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, json=body, **kw)

    def patch(self, path, *operations, **kw):
        return self.request("PATCH", path, json={"schemas": [PATCH], "Operations": list(operations)}, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create_user(self, user_name: str, **extra) -> dict:
        r = self.post("/Users", {"schemas": [USER], "userName": user_name, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def create_group(self, name: str, members: list[str] = ()) -> dict:
        r = self.post("/Groups", {"schemas": [GROUP], "displayName": name,
                                  "members": [{"value": m} for m in members]})
        assert r.status_code == 201, r.text
        return r.json()


def new_integration(tenant, name: str = "Okta") -> tuple[str, str]:
    with tenant.db.unit_of_work() as s:
        issued = scim.create_integration(s, tenant.ctx(s), name=name)
        return issued.token, issued.integration.id


def light_tenant(app, db) -> TenantHandle:
    """A fresh tenant with an all-access API token but without the device PKI `tenants.create` also makes
    (RSA keys): directory tests never enroll a device, and most of their setup time went there."""
    with db.unit_of_work() as s:
        tenant = Tenant(subdomain=f"d{uuid.uuid4().hex[:12]}", region="us")
        s.add(tenant)
        s.flush()
        ctx = tenants.system_context(tenant)
        created = tokens.create(s, ctx, description="all-access test token", permissions=[], all_access=True)
        return TenantHandle(tenant.id, tenant.subdomain, "us", created.value, created.token.id, db, app)


@pytest.fixture
def directory(client, app, db) -> Directory:
    tenant = light_tenant(app, db)
    token, integration_id = new_integration(tenant)
    return Directory(client, tenant, token, integration_id)


def assert_error(r, status: int, scim_type: str | None = None) -> dict:
    """A SCIM Error body: string status, the scimType, a detail, application/scim+json."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/scim+json")
    body = r.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status) and body["detail"]
    assert body.get("scimType") == scim_type
    return body
