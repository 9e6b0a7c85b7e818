"""Bad input on the Iru API: a clear error in Iru's shapes (reference §2.5), never a 500, nothing half-written."""
from __future__ import annotations

import uuid

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from bramley.app import create_app
from bramley.auth.door import api_context, get_db
from bramley.tags import service as tags

NOT_FOUND = {"detail": "Not found."}
MISSING = str(uuid.uuid4())
# Ids that are not UUIDs must 404 like unknown ones (§6 rule 13), never reach the database as garbage.
NOT_UUIDS = ["1", "not-a-uuid", "x" * 500, "%00", "0b7a5a3e-1111-4222-8333-94445555666Z", "NULL"]


@pytest.fixture
def tenant(make_tenant):
    """A small fleet: these tests need one of each object, not the default forty devices."""
    return make_tenant(devices=3)


@pytest.fixture
def ids(client, tenant):
    """One of each object in the tenant's fleet."""
    devices = client.get("/api/v1/devices?limit=2", headers=tenant.auth).json()
    device_id = devices[0]["device_id"]
    note = client.post(f"/api/v1/devices/{device_id}/notes", json={"content": "n"}, headers=tenant.auth).json()
    return {
        "device": device_id, "other_device": devices[1]["device_id"], "note": note["note_id"],
        "blueprint": devices[0]["blueprint_id"],
        "user": client.get("/api/v1/users", headers=tenant.auth).json()["results"][0]["id"],
        "tag": client.post("/api/v1/tags", json={"name": "bad-input"}, headers=tenant.auth).json()["id"],
    }


def _notes(client, tenant, device_id) -> list:
    r = client.get(f"/api/v1/devices/{device_id}/notes", headers=tenant.auth)
    assert r.status_code == 200
    return r.json()


def _audit_ids(client, tenant) -> list[str]:
    return [e["id"] for e in client.get("/api/v1/audit/events?limit=500", headers=tenant.auth).json()["results"]]


# --- malformed JSON ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("PATCH", "/api/v1/devices/{device}"),
    ("POST", "/api/v1/devices/{device}/notes"),
    ("PATCH", "/api/v1/devices/{device}/notes/{note}"),
    ("POST", "/api/v1/blueprints"),
    ("PATCH", "/api/v1/blueprints/{blueprint}"),
    ("POST", "/api/v1/tags"),
])
def test_malformed_json_is_400_json_parse_error(client, tenant, ids, method, path):
    for raw in [b'{"content": "x",', b"{'single': 'quotes'}", b"\xff\xfe{}", b"nul\x00",
                b"\x81Y\x87\x8e"]:  # the last is not even UTF-8
        r = client.request(method, path.format(**ids), content=raw,
                           headers={**tenant.auth, "Content-Type": "application/json"})
        assert r.status_code == 400, raw
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert list(body) == ["detail"] and body["detail"].startswith("JSON parse error - "), raw


def test_malformed_json_with_a_bad_token_is_401(client, ids):
    # Iru checks the token before it reads the body.
    r = client.patch(f"/api/v1/devices/{ids['device']}", content=b"{",
                     headers={"Authorization": "Bearer nope", "Content-Type": "application/json"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}


def test_malformed_json_writes_nothing(client, tenant, ids):
    before = _notes(client, tenant, ids["device"])
    client.post(f"/api/v1/devices/{ids['device']}/notes", content=b'{"content": "half', headers=tenant.auth)
    assert _notes(client, tenant, ids["device"]) == before


# --- JSON of the wrong type --------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("PATCH", "/api/v1/devices/{device}"),
    ("POST", "/api/v1/devices/{device}/notes"),
    ("POST", "/api/v1/blueprints"),
    ("POST", "/api/v1/tags"),
])
def test_body_that_is_not_an_object_is_a_non_field_error(client, tenant, ids, method, path):
    for raw, kind in [(b"[1, 2]", "list"), (b'"text"', "str"), (b"7", "int"), (b"true", "bool"),
                      (b"null", "NoneType")]:
        r = client.request(method, path.format(**ids), content=raw,
                           headers={**tenant.auth, "Content-Type": "application/json"})
        assert r.status_code == 400, raw
        assert r.json() == {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}


@pytest.mark.parametrize("path,body,field", [
    ("/api/v1/devices/{device}/notes", {"content": 12}, "content"),
    ("/api/v1/devices/{device}/notes", {"content": ["a"]}, "content"),
    ("/api/v1/devices/{device}/notes", {"content": "a\x00b"}, "content"),
    ("/api/v1/devices/{device}/notes", {}, "content"),
    ("/api/v1/tags", {"name": {"a": 1}}, "name"),
    ("/api/v1/tags", {"name": "x\x00"}, "name"),
    ("/api/v1/blueprints", {"name": 5, "enrollment_code": {"is_active": True}}, "name"),
    ("/api/v1/blueprints", {"name": "n\x00", "enrollment_code": {"is_active": True}}, "name"),
    ("/api/v1/blueprints", {"name": "ok", "enrollment_code": {"is_active": "maybe"}}, "enrollment_code.is_active"),
])
def test_wrong_field_type_is_a_field_error(client, tenant, ids, path, body, field):
    r = client.post(path.format(**ids), json=body, headers=tenant.auth)
    assert r.status_code == 400
    errors = r.json()
    assert list(errors) == [field]
    assert all(isinstance(m, str) and m for m in errors[field])


@pytest.mark.parametrize("body,field", [
    ({"asset_tag": 12}, "asset_tag"),
    ({"asset_tag": "a\x00"}, "asset_tag"),
    ({"tags": "Finance"}, "tags"),
    ({"user": {"id": 1}}, "user"),  # one key, not one per member of the str | int union
    ({"user": 10**30}, "user"),  # a legacy numeric id far beyond any database integer
    ({"blueprint_id": 3}, "blueprint_id"),
    ({"blueprint_id": None}, "blueprint_id"),
])
def test_device_patch_field_errors_leave_the_device_alone(client, tenant, ids, body, field):
    url = f"/api/v1/devices/{ids['device']}"
    before = client.get(url, headers=tenant.auth).json()
    r = client.patch(url, json=body, headers=tenant.auth)
    assert r.status_code == 400
    assert list(r.json()) == [field]
    assert client.get(url, headers=tenant.auth).json() == before


def test_non_json_content_type_on_a_json_route_is_415(client, tenant, ids):
    r = client.post(f"/api/v1/devices/{ids['device']}/notes", content=b'{"content": "x"}',
                    headers={**tenant.auth, "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json() == {"detail": 'Unsupported media type "text/plain" in request.'}


# --- unknown ids -------------------------------------------------------------------------------------------

ID_ROUTES = [
    ("GET", "/api/v1/devices/{id}"), ("PATCH", "/api/v1/devices/{id}"), ("DELETE", "/api/v1/devices/{id}"),
    ("GET", "/api/v1/devices/{id}/details"), ("GET", "/api/v1/devices/{id}/apps"),
    ("GET", "/api/v1/devices/{id}/library-items"), ("GET", "/api/v1/devices/{id}/parameters"),
    ("GET", "/api/v1/devices/{id}/status"), ("GET", "/api/v1/devices/{id}/notes"),
    ("POST", "/api/v1/devices/{id}/notes"),
    ("GET", "/api/v1/blueprints/{id}"), ("PATCH", "/api/v1/blueprints/{id}"), ("DELETE", "/api/v1/blueprints/{id}"),
    ("GET", "/api/v1/blueprints/{id}/list-library-items"),
    ("GET", "/api/v1/users/{id}"), ("DELETE", "/api/v1/users/{id}"),
    ("PATCH", "/api/v1/tags/{id}"), ("DELETE", "/api/v1/tags/{id}"),
]
VALID_BODY = {"PATCH": {"name": "renamed"}, "POST": {"content": "hello"}}


@pytest.mark.parametrize("method,path", ID_ROUTES)
def test_unknown_or_malformed_id_is_404(client, make_tenant, method, path):
    auth = make_tenant().auth
    for bad_id in [MISSING, *NOT_UUIDS]:
        r = client.request(method, path.format(id=bad_id), json=VALID_BODY.get(method), headers=auth)
        assert (r.status_code, r.json()) == (404, NOT_FOUND), bad_id
        assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("method,path", ID_ROUTES)
def test_another_tenants_id_is_404_and_untouched(client, make_tenant, method, path):
    mine, theirs = make_tenant(), make_tenant(devices=1)
    kind = path.split("/")[3]
    their_id = {
        "devices": lambda: client.get("/api/v1/devices", headers=theirs.auth).json()[0]["device_id"],
        "blueprints": lambda: client.get("/api/v1/blueprints", headers=theirs.auth).json()["results"][0]["id"],
        "users": lambda: client.get("/api/v1/users", headers=theirs.auth).json()["results"][0]["id"],
        "tags": lambda: client.post("/api/v1/tags", json={"name": "theirs"}, headers=theirs.auth).json()["id"],
    }[kind]()
    r = client.request(method, path.format(id=their_id), json=VALID_BODY.get(method), headers=mine.auth)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    if kind == "tags":
        assert {"id": their_id, "name": "theirs"} in client.get("/api/v1/tags", headers=theirs.auth).json()["results"]
    else:
        r = client.get(f"/api/v1/{kind}/{their_id}", headers=theirs.auth)
        assert r.status_code == 200 and "renamed" not in r.text


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_note_ids_are_404(client, tenant, make_tenant, ids, method):
    other = make_tenant(devices=1)  # another tenant, with a note of its own
    other_device = client.get("/api/v1/devices", headers=other.auth).json()[0]["device_id"]
    other_note = client.post(f"/api/v1/devices/{other_device}/notes", json={"content": "theirs"},
                             headers=other.auth).json()["note_id"]
    cases = [
        (ids["device"], MISSING), (ids["device"], "not-a-uuid"), (ids["device"], "%00"),
        (ids["other_device"], ids["note"]),  # a real note, asked for under another device
        (ids["device"], other_note), (other_device, other_note),  # another tenant's note
    ]
    for device_id, note_id in cases:
        r = client.request(method, f"/api/v1/devices/{device_id}/notes/{note_id}",
                           json={"content": "x"} if method == "PATCH" else None, headers=tenant.auth)
        assert (r.status_code, r.json()) == (404, NOT_FOUND), (device_id, note_id)
    assert client.get(f"/api/v1/devices/{ids['device']}/notes/{ids['note']}",
                      headers=tenant.auth).json()["content"] == "n"


def test_unknown_route_is_404_json(client, tenant):
    r = client.get("/api/v1/no-such-thing", headers=tenant.auth)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


# --- query parameters --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/blueprints", "/api/v1/tags",
                                  "/api/v1/devices/{device}/notes", "/api/v1/users"])
def test_unknown_query_parameters_are_ignored(client, tenant, ids, path):
    url = path.format(**ids)
    plain = client.get(url, headers=tenant.auth)
    extra = client.get(url + "?source=okta-workflows&sizePerPage=100&foo=%00bar&foo=2&ordering_x=-1",
                       headers=tenant.auth)
    assert plain.status_code == extra.status_code == 200
    assert extra.json() == plain.json() or path == "/api/v1/users"  # users honours sizePerPage
    if path == "/api/v1/users":
        assert extra.json()["results"] == plain.json()["results"][:100]


@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/blueprints", "/api/v1/tags",
                                  "/api/v1/blueprints/{blueprint}/list-library-items"])
@pytest.mark.parametrize("query,field", [("limit=0", "limit"), ("limit=-3", "limit"), ("limit=ten", "limit"),
                                         ("limit=1.5", "limit"), ("offset=-1", "offset"), ("offset=x", "offset")])
def test_limit_or_offset_out_of_range_is_a_field_error(client, tenant, ids, path, query, field):
    r = client.get(f"{path.format(**ids)}?{query}", headers=tenant.auth)
    assert r.status_code == 400
    assert list(r.json()) == [field] and isinstance(r.json()[field][0], str)


def test_limit_above_300_is_clamped_and_huge_numbers_are_not_500(client, tenant):
    everything = client.get("/api/v1/devices", headers=tenant.auth).json()
    assert client.get("/api/v1/devices?limit=301", headers=tenant.auth).json() == everything
    assert client.get(f"/api/v1/devices?limit={10**30}", headers=tenant.auth).json() == everything
    # An offset past the end is an empty page, however far past (§6 rule 7).
    r = client.get(f"/api/v1/devices?offset={10**30}", headers=tenant.auth)
    assert (r.status_code, r.text) == (200, "[]")
    r = client.get(f"/api/v1/blueprints?offset={10**30}", headers=tenant.auth)
    assert r.status_code == 200 and r.json()["results"] == [] and r.json()["next"] is None


@pytest.mark.parametrize("query", ["user_id=" + "9" * 30, "user_id=-1", "serial_number=%00",
                                   "device_name=a%00b", "tag_name=%00", "ordering=%00", "blueprint_id=%00"])
def test_odd_filter_values_match_nothing_or_are_field_errors(client, tenant, query):
    r = client.get(f"/api/v1/devices?{query}", headers=tenant.auth)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.text == "[]" or "ordering" in query
    else:
        assert list(r.json()) == [query.split("=")[0]]


@pytest.mark.parametrize("query,field", [("limit=0", "limit"), ("start_date=yesterday", "start_date"),
                                         ("limit=x", "limit")])
def test_audit_bad_query_is_a_field_error(client, tenant, query, field):
    r = client.get(f"/api/v1/audit/events?{query}", headers=tenant.auth)
    assert r.status_code == 400 and list(r.json()) == [field]


# --- oversized bodies --------------------------------------------------------------------------------------

def _chunks(total: int):
    yield b'{"content": "'
    sent = 0
    while sent < total:
        yield b"a" * 65536
        sent += 65536
    yield b'"}'


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_the_limit_is_413_and_nothing_is_written(client, tenant, ids, chunked):
    limit = client.app.state.settings.max_body_bytes
    url = f"/api/v1/devices/{ids['device']}/notes"
    before = _notes(client, tenant, ids["device"])
    audit_before = _audit_ids(client, tenant)
    # A generator body goes out chunked, without Content-Length: the limit must hold while reading, too.
    content = _chunks(limit + 1) if chunked else b'{"content": "' + b"a" * (limit + 1) + b'"}'
    r = client.post(url, content=content, headers={**tenant.auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"detail": "Request body too large."}
    assert r.headers["content-type"] == "application/json"
    assert _notes(client, tenant, ids["device"]) == before
    assert _audit_ids(client, tenant) == audit_before


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_form_or_lenient_body_is_413(client, tenant, chunked):
    limit = client.app.state.settings.max_body_bytes
    payload = b"name=big&enrollment_code.is_active=true&description=" + b"d" * (limit + 1)
    content = (payload[i:i + 65536] for i in range(0, len(payload), 65536)) if chunked else payload
    r = client.post("/api/v1/blueprints", content=content,
                    headers={**tenant.auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()) == (413, {"detail": "Request body too large."})
    names = [b["name"] for b in client.get("/api/v1/blueprints", headers=tenant.auth).json()["results"]]
    assert "big" not in names


def test_body_just_under_the_limit_is_accepted(client, tenant, ids):
    limit = client.app.state.settings.max_body_bytes
    # Notes cap their content far below the body limit, so this is a field error, not a 413.
    raw = b'{"content": "' + b"a" * (limit - 20) + b'"}'
    r = client.post(f"/api/v1/devices/{ids['device']}/notes", content=raw,
                    headers={**tenant.auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and list(r.json()) == ["content"]


# --- nothing half-written ----------------------------------------------------------------------------------

def test_failed_patch_leaves_device_and_audit_untouched(client, tenant, ids):
    url = f"/api/v1/devices/{ids['device']}"
    before = client.get(url, headers=tenant.auth).json()
    other_bp = next(b["id"] for b in client.get("/api/v1/blueprints", headers=tenant.auth).json()["results"]
                    if b["id"] != before["blueprint_id"])
    audit_before = _audit_ids(client, tenant)
    # The blueprint is applied before the user is found missing: the whole PATCH must still roll back.
    r = client.patch(url, json={"asset_tag": "CHANGED-1", "blueprint_id": other_bp, "user": MISSING,
                                "tags": ["Brand New Tag"]}, headers=tenant.auth)
    assert r.status_code == 400
    assert r.json() == {"user": [f'Invalid pk "{MISSING}" - object does not exist.']}
    assert client.get(url, headers=tenant.auth).json() == before
    assert _audit_ids(client, tenant) == audit_before
    tag_names = [t["name"] for t in client.get("/api/v1/tags", headers=tenant.auth).json()["results"]]
    assert "Brand New Tag" not in tag_names


def test_invalid_blueprint_id_leaves_asset_tag_alone(client, tenant, ids):
    url = f"/api/v1/devices/{ids['device']}"
    before = client.get(url, headers=tenant.auth).json()
    r = client.patch(url, json={"asset_tag": "CHANGED-2", "blueprint_id": MISSING}, headers=tenant.auth)
    assert r.status_code == 400
    assert r.json() == {"blueprint_id": [f'Invalid pk "{MISSING}" - object does not exist.']}
    assert client.get(url, headers=tenant.auth).json()["asset_tag"] == before["asset_tag"]


# --- server errors -----------------------------------------------------------------------------------------

@pytest.fixture
def failing_app(settings):
    """A separate app with one route that writes, then fails the way a bug would."""
    app = create_app(settings)

    @app.post("/api/v1/test-only/explode")
    def explode(ctx=Depends(api_context), db=Depends(get_db)):
        tags.create(db, ctx, name="written-before-the-crash")
        raise RuntimeError("secret internals: /srv/bramley/db password=hunter2")

    yield app
    app.state.db.dispose()


def test_unexpected_exception_is_a_plain_500_and_rolls_back(failing_app, tenant, caplog):
    client = TestClient(failing_app, raise_server_exceptions=False)
    r = client.post("/api/v1/test-only/explode", headers=tenant.auth)
    assert r.status_code == 500
    assert r.json() == {"detail": "A server error occurred."}
    assert r.headers["content-type"] == "application/json"
    assert "hunter2" not in r.text and "Traceback" not in r.text
    assert "unhandled error on POST /api/v1/test-only/explode" in caplog.text  # the operator still sees it
    names = [t["name"] for t in client.get("/api/v1/tags?search=written", headers=tenant.auth).json()["results"]]
    assert names == []
