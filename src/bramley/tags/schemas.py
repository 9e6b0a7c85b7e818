from __future__ import annotations

from pydantic import BaseModel, Field

from bramley.apiutil import Text


class Tag(BaseModel):
    id: str
    name: str


class TagIn(BaseModel):
    name: Text = Field(min_length=1, max_length=255)


class TagPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Tag]
