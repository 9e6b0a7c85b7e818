from __future__ import annotations

from pydantic import BaseModel


class UserIntegration(BaseModel):
    id: str | None = None
    name: str | None = None
    uuid: str | None = None
    type: str | None = None


class User(BaseModel):
    active: bool
    archived: bool
    created_at: str | None
    department: str | None
    deprecated_user_id: str | None
    email: str | None
    id: str
    integration: UserIntegration | None
    job_title: str | None
    name: str | None
    device_count: int
    updated_at: str | None


class UserPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[User]
