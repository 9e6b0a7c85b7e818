"""The verification rule itself (pure): each of the seed's five conditions, and the evidence in its reasons."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bramley.trust import rules
from bramley.trust.client import base_url

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)


def healthy(**changes) -> rules.Facts:
    base = dict(serial_number="C02XK0AAJGH5", last_check_in=NOW - timedelta(hours=3), agent_installed=True,
                mdm_enabled=True, is_removed=False)
    return rules.Facts(**{**base, **changes})


def test_a_mac_meeting_every_condition_is_verified():
    verdict = rules.evaluate(healthy(), now=NOW)
    assert verdict.verified and verdict.failed == ()


def test_each_failed_condition_is_named_with_its_evidence():
    verdict = rules.evaluate(healthy(last_check_in=NOW - timedelta(days=9, hours=2), agent_installed=False,
                                     mdm_enabled=False, is_removed=True), now=NOW)
    assert not verdict.verified
    assert verdict.failed_rules == ["reported_recently", "agent_installed", "mdm_profile_installed", "not_removed"]
    assert verdict.reasons == ["last check-in 9 days ago, limit 7 days", "agent not installed",
                               "MDM profile not installed", "device removed"]
    assert verdict.failed[0].evidence == {"last_check_in": "2025-03-01T10:00:00.000000Z",
                                          "days_since_check_in": 9.08, "limit_days": 7}


def test_the_window_is_inclusive_and_its_edge_reads_clearly():
    assert rules.evaluate(healthy(last_check_in=NOW - timedelta(days=7)), now=NOW).verified
    late = rules.evaluate(healthy(last_check_in=NOW - timedelta(days=7, hours=5)), now=NOW)
    assert late.reasons == ["last check-in 7.2 days ago, limit 7 days"]  # not "7 days ago, limit 7"


def test_a_wider_window_accepts_what_the_default_refuses():
    stale = healthy(last_check_in=NOW - timedelta(days=20))
    assert not rules.evaluate(stale, now=NOW).verified
    assert rules.evaluate(stale, now=NOW, window_days=30).verified
    assert rules.evaluate(stale, now=NOW, window_days=3).reasons == ["last check-in 20 days ago, limit 3 days"]


def test_never_checked_in_and_unknown_serials_fail_with_their_own_reason():
    assert rules.evaluate(healthy(last_check_in=None), now=NOW).reasons == ["never checked in, limit 7 days"]
    unknown = rules.evaluate(rules.Facts("NOPE123", known=False), now=NOW)
    assert unknown.failed_rules == ["serial_known"]
    assert unknown.reasons == ["serial number NOPE123 is not managed here"]


def test_a_check_in_from_a_clock_ahead_counts_as_now():
    assert rules.evaluate(healthy(last_check_in=NOW + timedelta(minutes=5)), now=NOW).verified


@pytest.mark.parametrize("text,expected", [
    ("2024-07-23T14:11:37.150080Z", datetime(2024, 7, 23, 14, 11, 37, 150080, tzinfo=timezone.utc)),
    ("2024-01-26 16:15:36.087016+00:00", datetime(2024, 1, 26, 16, 15, 36, 87016, tzinfo=timezone.utc)),
    ("", None), (None, None), ("yesterday", None), (17, None),
])
def test_both_device_timestamp_formats_parse(text, expected):
    assert rules.parse_timestamp(text) == expected


@pytest.mark.parametrize("given,origin", [
    ("acme.api.kandji.io", "https://acme.api.kandji.io"),
    ("acme.api.eu.kandji.io/", "https://acme.api.eu.kandji.io"),
    ("acme", "https://acme.api.kandji.io"),
    ("https://mdm.example.com:8443/api/v1", "https://mdm.example.com:8443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("127.0.0.1:8443", "https://127.0.0.1:8443"),
])
def test_the_sync_url_takes_the_forms_admins_type(given, origin):
    assert base_url(given) == origin


@pytest.mark.parametrize("bad", ["", "   ", "ftp://host", "https://"])
def test_a_url_that_is_no_api_origin_is_refused(bad):
    with pytest.raises(ValueError):
        base_url(bad)
