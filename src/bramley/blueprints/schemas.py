from __future__ import annotations

from pydantic import BaseModel


class EnrollmentCode(BaseModel):
    code: str
    is_active: bool


class Blueprint(BaseModel):
    id: str
    name: str
    icon: str
    color: str
    description: str
    params: dict
    computers_count: int
    missing_computers_count: int
    enrollment_code: EnrollmentCode
    type: str


class BlueprintPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Blueprint]
