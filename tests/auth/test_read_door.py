"""The door of pure-read routes (api_read_context: the device list) answers exactly as the transactional door
(api_context: here GET /api/v1/tags), in the same order, on both databases. On PostgreSQL it reads the token on the
AsyncReader and remembers tenant hosts, so these also cover what it remembers and what it must not."""
from __future__ import annotations

import uuid

import pytest

from bramley.auth import service as tokens
from bramley.tenancy import service as tenants

READ_ROUTE, TRANSACTIONAL_ROUTE = "/api/v1/devices", "/api/v1/tags"
NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
INVALID = {"detail": "Invalid token."}
NOT_FOUND = {"detail": "Not found."}
FORBIDDEN = {"detail": "You do not have permission to perform this action."}


def _answer(client, path, headers):
    r = client.get(path, headers=headers)
    return r.status_code, r.json() if r.status_code != 200 else None


@pytest.mark.parametrize("path", [READ_ROUTE, TRANSACTIONAL_ROUTE])
def test_refusals_in_the_references_order(client, make_tenant, path):
    a, b = make_tenant(devices=1), make_tenant(devices=1)
    host_a, host_b = f"{a.subdomain}.api.kandji.io", f"{b.subdomain}.api.kandji.io"
    cases = [
        ({}, (401, NOT_PROVIDED)),
        ({"Authorization": f"Bearer {uuid.uuid4()}"}, (401, INVALID)),
        ({**a.auth, "Host": host_a}, (200, None)),
        ({**a.auth, "Host": host_a}, (200, None)),  # the host now remembered
        ({**a.auth, "Host": host_b}, (401, INVALID)),  # another tenant's host, remembered or not
        ({**b.auth, "Host": host_b}, (200, None)),
        ({**b.auth, "Host": host_a}, (401, INVALID)),
        ({**a.auth, "Host": f"{a.subdomain}.api.eu.kandji.io"}, (404, NOT_FOUND)),  # the host's region decides
        ({"Host": "nosuchtenant.api.kandji.io"}, (404, NOT_FOUND)),  # unknown host before a missing token
        ({"Authorization": f"Bearer {uuid.uuid4()}", "Host": "nosuchtenant.api.kandji.io"}, (404, NOT_FOUND)),
    ]
    for headers, expected in cases:
        assert _answer(client, path, headers) == expected, headers


def test_a_tenant_created_after_its_host_was_asked_for_is_found(client, db):
    subdomain = f"late{uuid.uuid4().hex[:12]}"
    host = f"{subdomain}.api.kandji.io"
    assert _answer(client, READ_ROUTE, {"Host": host}) == (404, NOT_FOUND)
    with db.unit_of_work() as s:
        ctx = tenants.system_context(tenants.create(s, subdomain=subdomain))
        value = tokens.create(s, ctx, description="late", permissions=[], all_access=True).value
    assert _answer(client, READ_ROUTE, {"Authorization": f"Bearer {value}", "Host": host}) == (200, None)


def test_revoked_token_is_refused_on_both_doors_at_once(client, make_tenant, db):
    t = make_tenant(devices=1)
    assert _answer(client, READ_ROUTE, t.auth) == (200, None)
    with db.unit_of_work() as s:
        tokens.revoke(s, t.ctx(s), t.token_id)
    assert _answer(client, READ_ROUTE, t.auth) == (401, INVALID)
    assert _answer(client, TRANSACTIONAL_ROUTE, t.auth) == (401, INVALID)


def test_permission_is_checked_after_the_token(client, make_tenant):
    t = make_tenant(devices=1)
    value, _ = t.make_token([("GET", TRANSACTIONAL_ROUTE)], description="tags only")
    headers = {"Authorization": f"Bearer {value}"}
    assert _answer(client, READ_ROUTE, headers) == (403, FORBIDDEN)
    assert _answer(client, TRANSACTIONAL_ROUTE, headers) == (200, None)
    # The door answers before the query is looked at: a bad query without the permission is still a 403.
    assert _answer(client, READ_ROUTE + "?limit=0", headers) == (403, FORBIDDEN)
    assert client.get(READ_ROUTE + "?limit=0", headers=t.auth).status_code == 400


def test_each_token_pages_through_its_own_tenants_fleet_only(client, make_tenant):
    # On PostgreSQL the whole-fleet page is read in the token's own round trip, scoped by the token's tenant.
    a, b = make_tenant(devices=5), make_tenant(devices=3)
    for t, count in ((a, 5), (b, 3)):
        every = client.get(READ_ROUTE, headers=t.auth).json()
        assert len(every) == count
        pages = [client.get(f"{READ_ROUTE}?limit=2&offset={o}", headers=t.auth).json() for o in range(0, count, 2)]
        assert [d["device_id"] for page in pages for d in page] == [d["device_id"] for d in every]
        hosted = client.get(READ_ROUTE, headers={**t.auth, "Host": f"{t.subdomain}.api.kandji.io"}).json()
        assert hosted == every
    ids_a = {d["device_id"] for d in client.get(READ_ROUTE, headers=a.auth).json()}
    ids_b = {d["device_id"] for d in client.get(READ_ROUTE, headers=b.auth).json()}
    assert not ids_a & ids_b


def test_over_the_limit_the_read_route_answers_429_without_the_page(settings, make_tenant):
    from fastapi.testclient import TestClient

    from bramley.app import create_app

    t = make_tenant(devices=2)
    client = TestClient(create_app(settings.model_copy(update={"rate_limit_per_hour": 2})))
    assert [client.get(READ_ROUTE, headers=t.auth).status_code for _ in range(2)] == [200, 200]
    over = client.get(READ_ROUTE, headers=t.auth)
    assert over.status_code == 429 and over.json() == {"message": "API rate limit exceeded"}
    assert int(over.headers["Retry-After"]) >= 1
