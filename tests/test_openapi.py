"""The OpenAPI document at /api/v1/openapi.json covers every Iru route, and the API keeps to it under fuzzing.

Schemathesis drives each documented operation against the real app with a real all-access token: no 5xx,
every status documented, every body matching its documented schema (Iru's error shapes included).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi.routing import iter_route_contexts
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from bramley.app import create_app
from bramley.config import Settings
from bramley.library.models import LibraryItem

# The document is loaded at collection time (schemathesis parametrizes from it; its lazy `from_fixture` loader
# fails under pytest 9), so from an app whose database is never opened; requests go to the `app` fixture.
_doc_app = create_app(Settings(data_dir=Path(tempfile.gettempdir()), database_url="sqlite:///never-opened.db"))
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _doc_app)

# Ids of the current test's tenant. Random ids only ever reach the 404 path, so the hooks below swap real
# ones in for some examples; which ones is Hypothesis' choice, so failures still shrink and replay.
REAL: dict[str, str] = {}
BODY_IDS = {"blueprint_id": "blueprint_id", "user": "user_id", "library_item_id": "library_item_id"}


@schema.hook("flatmap_path_parameters")
def _real_path_ids(ctx, path_parameters):
    real = {k: REAL[k] for k in path_parameters or {} if k in REAL}
    return st.sampled_from([path_parameters, {**path_parameters, **real}]) if real else st.just(path_parameters)


@schema.hook("flatmap_body")
def _real_body_ids(ctx, body):
    if not isinstance(body, dict):
        return st.just(body)
    real = {k: REAL[v] for k, v in BODY_IDS.items() if k in body and v in REAL}
    return st.sampled_from([body, {**body, **real}]) if real else st.just(body)


@pytest.fixture
def fleet(client, db, make_tenant):
    """A small seeded tenant; its ids go into REAL for the hooks."""
    t = make_tenant(devices=3)
    devices = client.get("/api/v1/devices", headers=t.auth).json()
    note = client.post(f"/api/v1/devices/{devices[0]['device_id']}/notes", json={"content": "fuzz"},
                       headers=t.auth).json()
    with db.unit_of_work() as s:
        item_id = s.scalar(select(LibraryItem.id).where(LibraryItem.tenant_id == t.id).limit(1))
    REAL.clear()
    REAL.update(
        device_id=devices[0]["device_id"], note_id=note["note_id"], blueprint_id=devices[0]["blueprint_id"],
        user_id=client.get("/api/v1/users", headers=t.auth).json()["results"][0]["id"], library_item_id=item_id,
        tag_id=client.post("/api/v1/tags", json={"name": "fuzz"}, headers=t.auth).json()["id"])
    yield t
    REAL.clear()


def _api_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every Iru API route the app serves (SCIM is another door, with its own schema)."""
    out = set()
    for route in iter_route_contexts(app.routes):  # app.routes alone hides routes of included routers
        path = route.path or ""
        if (path.startswith("/api/v1/") and path not in ("/api/v1/openapi.json", "/api/v1/docs")
                and not path.startswith("/api/v1/scim")):
            out |= {(m, path) for m in route.methods or () if m != "HEAD"}
    return out


def test_every_api_route_is_documented(client):
    doc = client.get("/api/v1/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = _api_routes(client.app)
    assert len(routes) >= 30
    assert routes - documented == set()
    assert documented - routes == set()


def test_document_declares_iru_errors_and_bearer_auth(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["components"]["securitySchemes"]["ApiToken"] == {
        "type": "http", "scheme": "bearer", "description": "An API token from Settings › Access."}
    patch = doc["paths"]["/api/v1/devices/{device_id}"]["patch"]
    # FastAPI's 422 is never sent: validation errors are Iru's 400 shapes.
    assert "422" not in patch["responses"]
    assert {"200", "400", "401", "403", "404", "413", "415", "429"} <= set(patch["responses"])
    assert patch["security"] == [{"ApiToken": []}]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # A device's `user` is an object or null, never "" (reference §6 rule 3).
    device = doc["components"]["schemas"]["Device"]["properties"]
    assert {"type": "null"} in device["user"]["anyOf"]
    assert "$defs" not in r.text  # inline definitions would not resolve inside an OpenAPI document


def test_success_paths_the_fuzzer_rarely_reaches_match_the_document(client, fleet):
    # Random bodies seldom make a whole valid write; walk the happy paths once and hold them to the document.
    d, note, bp, item = REAL["device_id"], REAL["note_id"], REAL["blueprint_id"], REAL["library_item_id"]
    created = client.post("/api/v1/blueprints", json={"name": "Doc check", "enrollment_code": {"is_active": True}},
                          headers=fleet.auth)
    schema["/api/v1/blueprints"]["POST"].validate_response(created)
    calls = [
        ("PATCH", "/api/v1/devices/{device_id}", f"/api/v1/devices/{d}",
         {"asset_tag": "A-1", "tags": ["Doc"], "user": REAL["user_id"], "blueprint_id": bp}),
        ("PATCH", "/api/v1/devices/{device_id}", f"/api/v1/devices/{d}", {"user": None, "asset_tag": None}),
        ("PATCH", "/api/v1/blueprints/{blueprint_id}", f"/api/v1/blueprints/{bp}", {"name": "Doc check 2"}),
        ("POST", "/api/v1/blueprints/{blueprint_id}/assign-library-item",
         f"/api/v1/blueprints/{bp}/assign-library-item", {"library_item_id": item}),
        ("GET", "/api/v1/blueprints/{blueprint_id}/list-library-items",
         f"/api/v1/blueprints/{bp}/list-library-items", None),
        ("POST", "/api/v1/blueprints/{blueprint_id}/remove-library-item",
         f"/api/v1/blueprints/{bp}/remove-library-item", {"library_item_id": item}),
        ("PATCH", "/api/v1/tags/{tag_id}", f"/api/v1/tags/{REAL['tag_id']}", {"name": "Doc renamed"}),
        ("PATCH", "/api/v1/devices/{device_id}/notes/{note_id}", f"/api/v1/devices/{d}/notes/{note}",
         {"content": "edited"}),
        ("DELETE", "/api/v1/devices/{device_id}/notes/{note_id}", f"/api/v1/devices/{d}/notes/{note}", None),
        ("DELETE", "/api/v1/blueprints/{blueprint_id}", f"/api/v1/blueprints/{created.json()['id']}", None),
        ("DELETE", "/api/v1/devices/{device_id}", f"/api/v1/devices/{d}", None),
    ]
    for method, template, url, body in calls:
        r = client.request(method, url, json=body, headers=fleet.auth)
        assert r.status_code in (200, 201, 204), (method, url, r.text)
        schema[template][method].validate_response(r)


@schema.parametrize()
@hypothesis.settings(max_examples=12, derandomize=True, deadline=None, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_api_conforms_to_its_document(case, app, fleet):
    case.call_and_validate(app=app, headers=fleet.auth, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])
