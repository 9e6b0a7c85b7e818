"""The SCIM door's writes in turns (group commit): the writes waiting share one transaction, and no request ever
sees another's failure. Also the door's own edge: paths, body limit, headers."""
from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from starlette.requests import Request

from bramley.audit.models import AuditEvent
from bramley.scim import api
from bramley.users.models import User
from tests.scim.conftest import BASE, USER, Directory, assert_error, light_tenant, new_integration

LOG = "/api/v1/integrations/scim/requests"


def knock(directory: Directory, method: str, path: str, body: dict | None = None, *, token: str | None = None):
    """A request as the door hands it to a turn."""
    headers = [(b"host", b"testserver"), (b"content-type", b"application/scim+json"),
               (b"authorization", f"Bearer {token or directory.token}".encode())]
    scope = {"type": "http", "method": method, "scheme": "http", "path": BASE + path,
             "raw_path": (BASE + path).encode(), "query_string": b"", "root_path": "", "headers": headers,
             "server": ("testserver", 80)}
    return api.Knock(Request(scope), path.lstrip("/"), orjson.dumps(body) if body is not None else b"")


def new_user(name: str) -> dict:
    return {"schemas": [USER], "userName": name}


def answers(outcomes) -> list[tuple[int, dict | None]]:
    return [(r.status_code, orjson.loads(r.body) if r.body else None) for r in outcomes]


def user_count(directory: Directory) -> int:
    with directory.tenant.db.unit_of_work() as s:
        return s.scalar(select(func.count()).select_from(User).where(User.tenant_id == directory.tenant.id))


def logged(client, directory: Directory) -> list[tuple[str, int, str | None]]:
    """The POSTs in the request log."""
    r = client.get(f"{LOG}?limit=500&method=POST", headers=directory.tenant.auth)
    assert r.status_code == 200, r.text
    return sorted((e["method"], e["status"], e["summary"].get("userName")) for e in r.json()["results"])


def test_a_turn_commits_every_write_with_its_own_answer_log_entry_and_audit_row(app, client, directory):
    names = [f"turn{i}@example.com" for i in range(5)]
    outcomes = answers(api._serve_turn(app.state, [knock(directory, "POST", "/Users", new_user(n)) for n in names]))
    assert [status for status, _ in outcomes] == [201] * 5
    assert [body["userName"] for _, body in outcomes] == names
    assert len({body["id"] for _, body in outcomes}) == 5
    for _, body in outcomes:
        assert directory.get(f"/Users/{body['id']}").json()["userName"] == body["userName"]
    legacy = [client.get(f"/api/v1/users/{body['id']}", headers=directory.tenant.auth).json()["deprecated_user_id"]
              for _, body in outcomes]
    assert len(set(legacy)) == 5
    assert logged(client, directory) == [("POST", 201, n) for n in names]
    with directory.tenant.db.unit_of_work() as s:
        audited = set(s.scalars(select(AuditEvent.target_id).where(AuditEvent.tenant_id == directory.tenant.id,
                                                                   AuditEvent.target_type == "user")))
    assert audited == {body["id"] for _, body in outcomes}


def test_a_conflict_in_a_turn_leaves_the_others_as_they_would_be_alone(app, client, directory):
    turn = [knock(directory, "POST", "/Users", new_user(n))
            for n in ("first@example.com", "second@example.com", "FIRST@example.com", "third@example.com")]
    outcomes = answers(api._serve_turn(app.state, turn))
    assert [status for status, _ in outcomes] == [201, 201, 409, 201]
    assert outcomes[2][1]["scimType"] == "uniqueness" and outcomes[2][1]["status"] == "409"
    assert user_count(directory) == 3
    # The 201s are logged once each (their first, rolled-back run left nothing), the refusal too.
    assert [(m, s) for m, s, _ in logged(client, directory)] == [("POST", 201)] * 3 + [("POST", 409)]


def test_later_writes_in_a_turn_see_the_earlier_ones(app, directory):
    user = directory.create_user("old@example.com")
    turn = [knock(directory, "PUT", f"/Users/{user['id']}", new_user("new@example.com")),
            knock(directory, "POST", "/Users", new_user("New@example.com")),
            knock(directory, "POST", "/Users", new_user("old@example.com"))]
    outcomes = answers(api._serve_turn(app.state, turn))
    assert [status for status, _ in outcomes] == [200, 409, 201]
    assert outcomes[0][1]["meta"]["version"] == 'W/"2"'
    assert directory.get(f"/Users/{user['id']}").json()["userName"] == "new@example.com"


def test_refused_requests_in_a_turn_get_their_own_answers(app, directory):
    turn = [knock(directory, "POST", "/Users", new_user("ok1@example.com")),
            knock(directory, "POST", "/Users", new_user("nobody@example.com"), token="not-a-token"),
            knock(directory, "POST", "/Users", {"schemas": [USER], "userName": 5}),
            knock(directory, "DELETE", "/Users/00000000-0000-0000-0000-000000000000"),
            knock(directory, "POST", "/Users", new_user("ok2@example.com"))]
    outcomes = answers(api._serve_turn(app.state, turn))
    assert [status for status, _ in outcomes] == [201, 401, 400, 404, 201]
    assert outcomes[1][1]["detail"] == "The SCIM token is not valid"
    assert directory.get('/Users?filter=userName eq "ok2@example.com"').json()["totalResults"] == 1
    assert user_count(directory) == 2


def test_a_request_failing_in_a_turn_fails_alone(app, directory, monkeypatch):
    create = api.HANDLERS[("Users", "create")]

    def failing(db, call, route, body, q):
        if body.get("userName") == "boom@example.com":
            raise RuntimeError("boom")
        return create(db, call, route, body, q)

    monkeypatch.setitem(api.HANDLERS, ("Users", "create"), failing)
    outcomes = api._serve_turn(app.state, [knock(directory, "POST", "/Users", new_user(n))
                                           for n in ("a@example.com", "boom@example.com", "b@example.com")])
    assert isinstance(outcomes[1], RuntimeError)
    assert [outcomes[0].status_code, outcomes[2].status_code] == [201, 201]
    assert user_count(directory) == 2


def test_a_turn_keeps_tenants_and_integrations_apart(app, client, db):
    directories = []
    for _ in range(2):
        tenant = light_tenant(app, db)
        token, integration_id = new_integration(tenant)
        directories.append(Directory(client, tenant, token, integration_id))
    ours, theirs = directories
    outcomes = answers(api._serve_turn(app.state, [knock(ours, "POST", "/Users", new_user("same@example.com")),
                                                   knock(theirs, "POST", "/Users", new_user("same@example.com")),
                                                   knock(ours, "POST", "/Users", new_user("ours@example.com"))]))
    assert [status for status, _ in outcomes] == [201, 201, 201]
    assert user_count(ours) == 2 and user_count(theirs) == 1
    tagged = client.get(f"/api/v1/users/{outcomes[1][1]['id']}", headers=theirs.tenant.auth).json()
    assert tagged["integration"]["uuid"] == theirs.integration_id
    assert ours.get(f"/Users/{outcomes[1][1]['id']}").status_code == 404


def test_concurrent_posts_through_the_door_each_get_their_own_answer(app, client, directory):
    names = [f"crowd{i}@example.com" for i in range(16)] + ["twin@example.com", "TWIN@example.com"]

    async def post_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await asyncio.gather(*(c.post(BASE + "/Users", json=new_user(n), headers=directory.headers)
                                          for n in names))

    responses = asyncio.run(post_all())
    for name, r in zip(names[:16], responses):
        assert r.status_code == 201, r.text
        assert r.json()["userName"] == name and r.headers["location"].endswith(r.json()["id"])
    assert sorted(r.status_code for r in responses[16:]) == [201, 409]
    assert user_count(directory) == 17
    assert [s for _, s, _ in logged(client, directory)].count(201) == 17


# --- the door's edge ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [BASE + "/Users/", "http://testserver//" + BASE + "/Users", BASE + "//Users"])
def test_slashes_are_forgiven(client, directory, path):
    r = client.get(path, headers=directory.headers)
    assert r.status_code == 200 and r.json()["totalResults"] == 0


def test_answers_carry_the_edge_headers(directory):
    r = directory.post("/Users", {"schemas": [USER], "userName": "headers@example.com"})
    assert r.status_code == 201
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["content-type"].startswith("application/scim+json")
    deleted = directory.delete(f"/Users/{r.json()['id']}")
    assert deleted.status_code == 204 and deleted.headers["content-type"] == "application/json"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413_and_writes_nothing(client, directory, chunked):
    limit = client.app.state.settings.max_body_bytes
    raw = b'{"schemas": ["' + USER.encode() + b'"], "userName": "big@example.com", "title": "' + \
        b"t" * (limit + 1) + b'"}'
    content = (raw[i:i + 65536] for i in range(0, len(raw), 65536)) if chunked else raw
    r = client.post(BASE + "/Users", content=content, headers=directory.headers)
    assert (r.status_code, r.json()) == (413, {"detail": "Request body too large."})
    assert user_count(directory) == 0


def test_paths_beside_the_door_are_the_apis(client, directory):
    r = client.get("/api/v1/scimUsers", headers=directory.headers)
    assert r.status_code == 404 and not r.headers["content-type"].startswith("application/scim+json")
    assert_error(client.get(BASE, headers=directory.headers), 404)
