"""Small helpers shared by the Iru API routers: paging, links, lenient bodies, raw JSON replies."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import Query, Request
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from bramley.errors import DetailError, InvalidField

MAX_LIMIT = 300
# Any offset past the end is an empty page; beyond this one the database could not even bind the number
# (SQLAlchemy sends OFFSET as a 32-bit INTEGER to PostgreSQL).
MAX_OFFSET = 2**31 - 1
NUL_MESSAGE = "Null characters are not allowed."


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("null_characters", NUL_MESSAGE)
    return value


# A string PostgreSQL can store and compare: it refuses NUL in text, and DRF's CharField refuses it too.
Text = Annotated[str, AfterValidator(_no_nul)]


def not_a_dict(value) -> str:
    """DRF's message for a body that is JSON but not an object."""
    return f"Invalid data. Expected a dictionary, but got {type(value).__name__}."


class RawJSON(Response):
    """A reply whose JSON is already serialized (stored device docs)."""

    media_type = "application/json"


async def limit_offset(  # async: pure, so FastAPI needn't hop to a worker thread for it
    limit: int | None = Query(None, description="Page size; values above 300 are clamped to 300."),
    offset: int | None = Query(None, ge=0),
) -> tuple[int, int]:
    if limit is None:
        limit = MAX_LIMIT
    if limit < 1:
        raise InvalidField({"limit": ["Ensure this value is greater than or equal to 1."]})
    return min(limit, MAX_LIMIT), min(offset or 0, MAX_OFFSET)


def page_url(request: Request, **params) -> str:
    """An absolute link on the caller's own scheme and host, with the query changed."""
    query = dict(request.query_params)
    for key, value in params.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}{request.url.path}" + (
        f"?{urlencode(query)}" if query else "")


def offset_envelope(request: Request, total: int, results: list, limit: int, offset: int) -> dict:
    nxt = page_url(request, limit=limit, offset=offset + limit) if offset + limit < total else None
    prev = None
    if offset > 0:
        prev = page_url(request, limit=limit, offset=max(offset - limit, 0) or None)
    return {"count": total, "next": nxt, "previous": prev, "results": results}


def _expand_dotted(flat: dict) -> dict:
    """{'enrollment_code.code': '1'} -> {'enrollment_code': {'code': '1'}}; nested input passes through."""
    out: dict = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InvalidField({key: ["Conflicting fields."]})
        node[parts[-1]] = value
    return out


async def lenient_body(request: Request) -> dict:
    """A JSON, urlencoded or multipart body as one dict (blueprints accept all three, dotted keys or nested)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        _reject_nul(fields, "")
        return _expand_dotted(fields)
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DetailError(f"JSON parse error - {exc}") from None
    if not isinstance(data, dict):
        raise InvalidField({"non_field_errors": [not_a_dict(data)]})
    _reject_nul(data, "")
    return _expand_dotted(data)


def _reject_nul(value, field: str) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise InvalidField({field or "non_field_errors": [NUL_MESSAGE]})
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, field)
            _reject_nul(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item, field)


def parse_bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int,)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    raise InvalidField({field: ["Must be a valid boolean."]})
