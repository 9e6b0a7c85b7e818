"""Wire shapes of the trust routes (Bramley's own; Iru has no trust API)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FailedRule(BaseModel):
    rule: str = Field(description="serial_known, reported_recently, agent_installed, mdm_profile_installed or "
                                  "not_removed")
    message: str = Field(description='What failed, with its evidence: "last check-in 9 days ago, limit 7 days".')
    evidence: dict[str, Any]


class TrustVerdict(BaseModel):
    device_id: str | None = Field(description="null when the serial number is not managed by this tenant")
    serial_number: str
    device_name: str | None
    platform: str | None
    verified: bool
    failed_rules: list[FailedRule]
    window_days: int
    evaluated_at: str


class TrustVerdictPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[TrustVerdict]


class TrustSettings(BaseModel):
    window_days: int = Field(description="Days a device may go without reporting and stay verified (1-365).")


class TrustSettingsPatch(BaseModel):
    window_days: int = Field(ge=1, le=365)
