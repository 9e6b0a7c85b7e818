from __future__ import annotations

from pydantic import BaseModel, Field


class Tag(BaseModel):
    id: str
    name: str


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)


class TagPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Tag]
