"""The verification rule a zero-trust product applies to a managed Mac (seed 004, the Twingate rule), pure.

A device is verified when its serial number is known, it reported within the window (7 days by default), the
agent is installed, the MDM profile is installed, and it has not been removed. The server (trust API, audit
sweeps) and the sync client (`bramley trust check`) both evaluate it here, so they can never disagree. No
server imports: the sync client ships this module alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

DEFAULT_WINDOW_DAYS = 7
MIN_WINDOW_DAYS, MAX_WINDOW_DAYS = 1, 365
# In the order a verdict lists its failures (the order the seed lists its reasons).
RULES = ("serial_known", "reported_recently", "agent_installed", "mdm_profile_installed", "not_removed")


@dataclass(frozen=True)
class Facts:
    """What the device manager says about one serial number (device list fields)."""

    serial_number: str
    known: bool = True
    last_check_in: datetime | None = None
    agent_installed: bool = False
    mdm_enabled: bool = False
    is_removed: bool = False


@dataclass(frozen=True)
class FailedRule:
    rule: str
    message: str
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"rule": self.rule, "message": self.message, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Verdict:
    verified: bool
    failed: tuple[FailedRule, ...]

    @property
    def failed_rules(self) -> list[str]:
        return [f.rule for f in self.failed]

    @property
    def reasons(self) -> list[str]:
        return [f.message for f in self.failed]


def iso_z(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


def parse_timestamp(value) -> datetime | None:
    """Both device timestamp formats of the Iru API (`…T…Z`, `… …+00:00`); null and "" mean never."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def age_text(days: float, window_days: int) -> str:
    """"9 days" well past the limit; "7.2 days" near it, where whole days would read as within it."""
    whole = int(days)
    if whole > window_days:
        return f"{whole} days"
    if days < 1:
        hours = int(days * 24)
        return f"{hours} hour{'s' if hours != 1 else ''}" if hours else "less than an hour"
    return f"{days:.1f} days"


def evaluate(facts: Facts, *, now: datetime, window_days: int = DEFAULT_WINDOW_DAYS) -> Verdict:
    if not facts.known:
        return Verdict(False, (FailedRule(
            "serial_known", f"serial number {facts.serial_number} is not managed here",
            {"serial_number": facts.serial_number}),))
    failed: list[FailedRule] = []
    if facts.last_check_in is None:
        failed.append(FailedRule("reported_recently", f"never checked in, limit {window_days} days",
                                 {"last_check_in": None, "limit_days": window_days}))
    else:
        days = max(0.0, (now - facts.last_check_in).total_seconds() / 86400)
        if days > window_days:
            failed.append(FailedRule(
                "reported_recently", f"last check-in {age_text(days, window_days)} ago, limit {window_days} days",
                {"last_check_in": iso_z(facts.last_check_in), "days_since_check_in": round(days, 2),
                 "limit_days": window_days}))
    if not facts.agent_installed:
        failed.append(FailedRule("agent_installed", "agent not installed", {"agent_installed": False}))
    if not facts.mdm_enabled:
        failed.append(FailedRule("mdm_profile_installed", "MDM profile not installed", {"mdm_enabled": False}))
    if facts.is_removed:
        failed.append(FailedRule("not_removed", "device removed", {"is_removed": True}))
    return Verdict(not failed, tuple(failed))
