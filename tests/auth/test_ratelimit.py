"""Per-tenant rate limits: Iru's headers on every reply, 429 + Retry-After, shared through Redis."""
from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from bramley.app import create_app

REDIS_URL = "redis://127.0.0.1:6379/0"


def _client(settings, **limits) -> TestClient:
    s = settings.model_copy(update={"rate_limit_per_second": 50, "rate_limit_per_hour": 10_000, **limits})
    return TestClient(create_app(s))


def test_every_reply_carries_the_rate_limit_headers(settings, make_tenant):
    t = make_tenant(devices=1)
    client = _client(settings)
    r = client.get("/api/v1/devices", headers=t.auth)
    assert r.headers["RateLimit-Limit"] == "50" and r.headers["X-RateLimit-Limit-Hour"] == "10000"
    assert int(r.headers["X-RateLimit-Remaining-Hour"]) == 9999
    assert int(r.headers["RateLimit-Remaining"]) <= 49
    missing = client.get("/api/v1/devices/not-a-device", headers=t.auth)
    assert missing.status_code == 404 and "X-RateLimit-Remaining-Hour" in missing.headers


def test_burst_over_the_per_second_limit_gets_429_with_retry_after(settings, make_tenant):
    t = make_tenant()
    client = _client(settings, rate_limit_per_second=5)
    statuses = []
    for _ in range(20):
        r = client.get("/api/v1/tags", headers=t.auth)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.json() == {"message": "API rate limit exceeded"}
            assert r.headers["Retry-After"] == "1"  # the per-second window resets within a second
            break
    assert 429 in statuses and statuses.count(200) >= 5


def test_hourly_limit_is_enforced_per_tenant(settings, make_tenant):
    a, b = make_tenant(), make_tenant()
    client = _client(settings, rate_limit_per_hour=3)
    assert [client.get("/api/v1/tags", headers=a.auth).status_code for _ in range(4)] == [200, 200, 200, 429]
    over = client.get("/api/v1/tags", headers=a.auth)
    assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 3600
    assert client.get("/api/v1/tags", headers=b.auth).status_code == 200  # the other tenant is unaffected


def test_limits_are_shared_across_workers_through_redis(settings, make_tenant):
    redis.Redis.from_url(REDIS_URL).ping()  # Redis must be there: fail, never skip
    t = make_tenant()
    worker_1 = _client(settings, redis_url=REDIS_URL, rate_limit_per_hour=4)
    worker_2 = _client(settings, redis_url=REDIS_URL, rate_limit_per_hour=4)
    got = [worker_1.get("/api/v1/tags", headers=t.auth).status_code,
           worker_2.get("/api/v1/tags", headers=t.auth).status_code,
           worker_1.get("/api/v1/tags", headers=t.auth).status_code,
           worker_2.get("/api/v1/tags", headers=t.auth).status_code,
           worker_1.get("/api/v1/tags", headers=t.auth).status_code]
    assert got == [200, 200, 200, 200, 429]
    assert worker_2.get("/api/v1/tags", headers=t.auth).headers["X-RateLimit-Remaining-Hour"] == "0"
