"""Audit log: cursor pages of at most 500 events, sort_by, date bounds (reference §3.7, AuditEvent in §4.6)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bramley.audit import service as audit
from bramley.tags import service as tags

EVENT_FIELDS = ["id", "action", "occurred_at", "actor_id", "actor_type", "target_id", "target_type",
                "target_component", "new_state", "metadata"]


def _events(client, tenant, query: str = "") -> dict:
    r = client.get(f"/api/v1/audit/events{query}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return r.json()


def _walk(client, tenant, query: str) -> list[list[dict]]:
    pages, url = [], f"/api/v1/audit/events{query}"
    while url:
        body = client.get(url, headers=tenant.auth).json()
        pages.append(body["results"])
        url = body["next"]
        assert len(pages) < 200
    return pages


def _add_tag_events(tenant, count: int) -> None:
    with tenant.db.unit_of_work() as s:
        ctx = tenant.ctx(s)
        for i in range(count):
            tags.create(s, ctx, name=f"audit-{i:04d}")


@pytest.fixture
def quiet(make_tenant):
    """A tenant with no fleet, so only this test's writes (and its token's creation) are in the log."""
    return make_tenant()


def test_envelope_and_event_fields(client, quiet):
    client.post("/api/v1/tags", json={"name": "Shape"}, headers=quiet.auth)
    body = _events(client, quiet)
    assert list(body) == ["results", "previous", "next"]
    assert body["previous"] is None and body["next"] is None
    newest = body["results"][0]
    assert list(newest) == EVENT_FIELDS
    assert len(newest["id"]) == 26
    assert (newest["action"], newest["target_type"], newest["target_component"]) == ("create", "tag", "")
    assert newest["new_state"] == {"name": "Shape"}
    assert newest["actor_id"] == quiet.token_id and newest["actor_type"] == "API token"
    assert newest["metadata"]["actor_name"] == "all-access test token"
    datetime.strptime(newest["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_default_order_is_newest_first(client, quiet):
    _add_tag_events(quiet, 5)
    results = _events(client, quiet)["results"]
    times = [e["occurred_at"] for e in results]
    assert times == sorted(times, reverse=True)
    assert results[0]["new_state"] == {"name": "audit-0004"}


def test_cursor_walks_every_event_exactly_once(client, quiet):
    _add_tag_events(quiet, 12)
    everything = _events(client, quiet)["results"]
    pages = _walk(client, quiet, "?limit=5")
    assert [len(p) for p in pages] == [5, 5, 3]
    assert [e["id"] for p in pages for e in p] == [e["id"] for e in everything]


def test_previous_leads_back_to_the_earlier_page(client, quiet):
    _add_tag_events(quiet, 8)
    first = _events(client, quiet, "?limit=3")
    second = client.get(first["next"], headers=quiet.auth).json()
    assert second["previous"].startswith("http://testserver/api/v1/audit/events?")
    assert client.get(second["previous"], headers=quiet.auth).json()["results"] == first["results"]


def test_limit_above_500_is_clamped_to_500(client, quiet):
    _add_tag_events(quiet, 520)
    first = _events(client, quiet, "?limit=1000")
    assert len(first["results"]) == 500 and first["next"] is not None
    rest = client.get(first["next"], headers=quiet.auth).json()
    assert len(rest["results"]) == 21 and rest["next"] is None  # 520 tags + the token's creation
    assert len({e["id"] for e in first["results"] + rest["results"]}) == 521


@pytest.mark.parametrize("sort_by, key, reverse", [
    ("occurred_at", "occurred_at", False), ("-occurred_at", "occurred_at", True),
    ("id", "id", False), ("-id", "id", True),
])
def test_sort_by_orders_every_page(client, quiet, sort_by, key, reverse):
    _add_tag_events(quiet, 60)  # many events share a millisecond, where ULID order and time order may differ
    pages = _walk(client, quiet, f"?sort_by={sort_by}&limit=25")
    values = [e[key] for p in pages for e in p]
    assert len(values) == 61 and values == sorted(values, reverse=reverse)


def test_sort_by_id_follows_ids_when_another_process_minted_them(client, quiet):
    # A worker process mints its own ULIDs: within one millisecond its id may sort before an earlier event's.
    with quiet.db.unit_of_work() as s:
        ctx = quiet.ctx(s)
        first = audit.record(s, ctx, action="update", target_type="device", target_id="a")
        second = audit.record(s, ctx, action="update", target_type="device", target_id="b")
        second.id = first.id[:10] + "0" * 16  # same millisecond, smallest random part
    by_id = [e["target_id"] for e in _events(client, quiet, "?sort_by=id")["results"]]
    by_time = [e["target_id"] for e in _events(client, quiet, "?sort_by=occurred_at")["results"]]
    assert by_time.index("a") < by_time.index("b") and by_id.index("b") < by_id.index("a")
    walked = [e["target_id"] for p in _walk(client, quiet, "?sort_by=-id&limit=1") for e in p]
    assert walked.index("a") < walked.index("b") and len(walked) == 3


def test_start_and_end_date_take_plain_dates(client, quiet):
    _add_tag_events(quiet, 3)
    today = datetime.now(timezone.utc).date()
    day = timedelta(days=1)
    assert len(_events(client, quiet, f"?start_date={today}&end_date={today}")["results"]) == 4
    assert _events(client, quiet, f"?start_date={today + day}")["results"] == []
    assert _events(client, quiet, f"?end_date={today - day}")["results"] == []
    assert len(_events(client, quiet, f"?start_date={today - day}T00:00:00Z")["results"]) == 4


def test_date_bounds_survive_paging(client, quiet):
    _add_tag_events(quiet, 6)
    today = datetime.now(timezone.utc).date()
    pages = _walk(client, quiet, f"?start_date={today}&limit=4")
    assert [len(p) for p in pages] == [4, 3]


def test_bad_parameters_are_field_errors(client, quiet):
    for query, field in (("?cursor=garbage!", "cursor"), ("?cursor=Zm9v", "cursor"), ("?start_date=yesterday",
                         "start_date"), ("?end_date=2024-13-01", "end_date"), ("?sort_by=name", "sort_by"),
                         ("?limit=0", "limit")):
        r = client.get(f"/api/v1/audit/events{query}", headers=quiet.auth)
        assert r.status_code == 400 and list(r.json()) == [field], query
    assert client.get("/api/v1/audit/events?cursor=garbage!", headers=quiet.auth).json() == {
        "cursor": ["Invalid cursor."]}


def test_other_tenants_events_are_invisible(client, quiet, make_tenant):
    other = make_tenant()
    client.post("/api/v1/tags", json={"name": "Theirs"}, headers=other.auth)
    assert all(e["new_state"] != {"name": "Theirs"} for e in _events(client, quiet)["results"])
    assert [e["actor_id"] for e in _events(client, quiet)["results"]] == ["fixture"]


def test_failed_write_leaves_no_event(client, quiet):
    client.post("/api/v1/tags", json={"name": "Once"}, headers=quiet.auth)
    before = _events(client, quiet)["results"]
    assert client.post("/api/v1/tags", json={"name": "Once"}, headers=quiet.auth).status_code == 400
    assert _events(client, quiet)["results"] == before
