"""GET /api/v1/devices runs in front of the framework (devices.api.DeviceListDoor). Whatever it answers, the
framework's own path answers the same: the door's exact path against the trailing-slash form, which the edge
normalises and the framework's router serves."""
from __future__ import annotations

import pytest

from bramley.auth import service as tokens

DOOR, FRAMEWORK = "/api/v1/devices", "/api/v1/devices/"
VARYING = {"date", "ratelimit-remaining", "x-ratelimit-remaining-second", "x-ratelimit-remaining-hour",
           "ratelimit-reset"}


def _same(a, b) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert {k: v for k, v in a.headers.items() if k not in VARYING} == \
        {k: v for k, v in b.headers.items() if k not in VARYING}


@pytest.mark.parametrize("query", ["", "?limit=2", "?limit=2&offset=1", "?limit=0", "?offset=-1",
                                   "?platform=Mac", "?ordering=-serial_number", "?serial_number=%00", "?unknown=1"])
def test_the_door_answers_as_the_framework_does(client, make_tenant, query):
    t = make_tenant(devices=3)
    _same(client.get(DOOR + query, headers=t.auth), client.get(FRAMEWORK + query, headers=t.auth))


def test_refusals_are_the_same_on_both_paths(client, make_tenant, db):
    t = make_tenant(devices=1)
    limited, _ = t.make_token([("GET", "/api/v1/tags")], description="tags only")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {limited}"},
                    {**t.auth, "Host": "nosuchtenant.api.kandji.io"}):
        door, framework = client.get(DOOR, headers=headers), client.get(FRAMEWORK, headers=headers)
        assert door.status_code in (401, 403, 404)
        _same(door, framework)
    with db.unit_of_work() as s:
        tokens.revoke(s, t.ctx(s), t.token_id)
    _same(client.get(DOOR, headers=t.auth), client.get(FRAMEWORK, headers=t.auth))


def test_the_door_reply_carries_the_edge_headers(client, make_tenant):
    t = make_tenant(devices=1)
    r = client.get(DOOR, headers=t.auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-frame-options"] == "DENY" and "default-src 'none'" in r.headers["content-security-policy"]
    assert int(r.headers["x-ratelimit-limit-hour"]) > 0 and "ratelimit-remaining" in r.headers


def test_a_request_with_a_body_goes_through_the_framework(client, make_tenant):
    t = make_tenant(devices=1)
    r = client.request("GET", DOOR, headers={**t.auth, "Content-Type": "application/json"}, content=b"{}")
    assert r.status_code == 200 and len(r.json()) == 1


def test_an_unexpected_failure_is_the_apis_500(client, make_tenant, monkeypatch):
    from bramley.devices import service

    t = make_tenant(devices=1)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "is_whole_fleet", broken)
    r = client.get(DOOR, headers=t.auth)
    assert (r.status_code, r.json()) == (500, {"detail": "A server error occurred."})
    assert "boom" not in r.text


def test_the_exact_path_is_served_by_the_door_and_the_other_forms_by_the_framework(client, make_tenant, monkeypatch):
    from bramley.devices import api

    t = make_tenant(devices=1)
    served = []
    door_endpoint = api.device_list

    async def counting(request):
        served.append(request.url.path)
        return await door_endpoint(request)

    monkeypatch.setattr(api, "device_list", counting)  # the door's name for it; the router keeps its own
    assert client.get(DOOR, headers=t.auth).status_code == 200
    assert client.get(FRAMEWORK, headers=t.auth).status_code == 200
    assert client.get(DOOR, headers={**t.auth, "Content-Length": "0"}).status_code == 200
    assert served == [DOOR]
