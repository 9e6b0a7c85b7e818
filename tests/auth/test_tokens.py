"""API tokens: UUID-shaped, stored hashed, shown once, 401 when missing/bad/revoked/expired."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import select, text

from bramley.auth import service as tokens
from bramley.auth.models import ApiToken
from bramley.db.base import utcnow

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_token_value_is_uuid_shaped_and_only_its_hash_is_stored(make_tenant, db):
    t = make_tenant()
    assert UUID_RE.match(t.token)
    with db.unit_of_work() as s:
        row = s.get(ApiToken, t.token_id)
        assert row.token_hash == tokens.hash_token(t.token) and row.token_hash != t.token
        dump = " ".join(str(v) for r in s.execute(text("SELECT * FROM api_tokens")).all() for v in r)
    assert t.token not in dump


def test_missing_malformed_and_unknown_tokens_are_401(client, tenant):
    r = client.get("/api/v1/devices")
    assert r.status_code == 401 and r.json() == {"detail": "Authentication credentials were not provided."}
    assert client.get("/api/v1/devices", headers={"Authorization": "Basic abc"}).status_code == 401
    r = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {uuid.uuid4()}"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}


def test_surrounding_whitespace_in_token_is_tolerated(client, tenant):
    assert client.get("/api/v1/devices", headers={"Authorization": f"Bearer  {tenant.token} "}).status_code == 200


def test_revoked_token_is_refused_at_once(client, make_tenant, db):
    t = make_tenant()
    assert client.get("/api/v1/devices", headers=t.auth).status_code == 200
    with db.unit_of_work() as s:
        tokens.revoke(s, t.ctx(s), t.token_id)
    assert client.get("/api/v1/devices", headers=t.auth).status_code == 401


def test_expired_token_is_401(client, make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        s.get(ApiToken, t.token_id).expires_at = utcnow() - timedelta(seconds=1)
    r = client.get("/api/v1/devices", headers=t.auth)
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}


def test_last_used_time_is_recorded(client, make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        assert s.get(ApiToken, t.token_id).last_used_at is None
    before = utcnow()
    client.get("/api/v1/devices", headers=t.auth)
    with db.unit_of_work() as s:
        used = s.get(ApiToken, t.token_id).last_used_at
    assert used is not None and used >= before - timedelta(seconds=1)


def test_token_creation_is_audited_without_the_value(client, make_tenant, db):
    t = make_tenant()
    value, token_id = t.make_token([("GET", "/api/v1/devices")], description="Okta Workflows")
    events = client.get("/api/v1/audit/events", headers=t.auth).json()["results"]
    created = [e for e in events if e["target_type"] == "api_token" and e["target_id"] == token_id]
    assert created and created[0]["new_state"]["permissions"] == [{"path": "/api/v1/devices", "http_method": "GET"}]
    assert value not in str(events)


def test_description_is_required(make_tenant, db):
    import pytest

    from bramley.errors import InvalidField

    t = make_tenant()
    with db.unit_of_work() as s, pytest.raises(InvalidField):
        tokens.create(s, t.ctx(s), description="  ", permissions=[], all_access=True)
    with db.unit_of_work() as s:
        assert s.scalar(select(ApiToken).where(ApiToken.description == "  ")) is None
