"""Per-route permissions: the catalogue is generated from the routes; no route is unguarded."""
from __future__ import annotations

import re
import uuid

import pytest

from bramley.auth.permissions import catalogue, guarded_routes

FORBIDDEN = {"detail": "You do not have permission to perform this action."}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def test_catalogue_has_every_api_route_with_an_admin_ui_label(app):
    cat = catalogue(app.routes)
    keys = {p.key for p in cat}
    for route in guarded_routes(app.routes):
        for method in route.methods:
            assert (method, route.path) in keys
    assert all(p.section != "Other" for p in cat), [p for p in cat if p.section == "Other"]
    labels = {p.key: p.title for p in cat}
    assert labels[("GET", "/api/v1/devices")] == "Devices › Device Information › Device list"
    assert labels[("GET", "/api/v1/devices/{device_id}/details")] == "Devices › Device Information › Device details"


def test_every_route_refuses_a_request_without_token(client, app):
    for route in guarded_routes(app.routes):
        for method in route.methods:
            r = client.request(method, _concrete(route.path))
            assert r.status_code == 401, (method, route.path, r.status_code)


def test_every_route_refuses_a_token_without_its_permission(client, app, tenant):
    value, _ = tenant.make_token([("GET", "/api/v1/devices")], description="device list only")
    headers = {"Authorization": f"Bearer {value}"}
    for route in guarded_routes(app.routes):
        for method in route.methods:
            if (method, route.path) == ("GET", "/api/v1/devices"):
                continue
            r = client.request(method, _concrete(route.path), headers=headers, json={})
            assert r.status_code == 403 and r.json() == FORBIDDEN, (method, route.path, r.status_code)
    assert client.get("/api/v1/devices", headers=headers).status_code == 200


def test_zero_trust_token_reads_list_and_details_only(client, tenant):
    value, _ = tenant.make_token([("GET", "/api/v1/devices"), ("GET", "/api/v1/devices/{device_id}/details")],
                                 description="Twingate")
    headers = {"Authorization": f"Bearer {value}"}
    device = client.get("/api/v1/devices?limit=1", headers=headers).json()[0]
    assert client.get(f"/api/v1/devices/{device['device_id']}/details/", headers=headers).status_code == 200
    assert client.get(f"/api/v1/devices/{device['device_id']}", headers=headers).status_code == 403
    assert client.patch(f"/api/v1/devices/{device['device_id']}", headers=headers,
                        json={"asset_tag": "x"}).status_code == 403


def test_unknown_route_is_404_before_the_token_check(client):
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_wrong_method_is_405_with_allow(client, tenant):
    r = client.put("/api/v1/devices", headers=tenant.auth)
    assert r.status_code == 405 and "GET" in r.headers["allow"]


@pytest.mark.parametrize("bad", ["GET", "FETCH /api/v1/devices", "GET /api/v1/nope"])
def test_unknown_permissions_are_refused_at_creation(tenant, bad):
    from bramley.auth.permissions import parse_permission
    from bramley.errors import InvalidField

    with pytest.raises((ValueError, InvalidField)):
        tenant.make_token([parse_permission(bad)])
