"""Small helpers shared by the Iru API routers: paging, links, lenient bodies, raw JSON replies."""
from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import Query, Request
from starlette.responses import Response

from bramley.errors import DetailError, InvalidField

MAX_LIMIT = 300


class RawJSON(Response):
    """A reply whose JSON is already serialized (stored device docs)."""

    media_type = "application/json"


def limit_offset(
    limit: int | None = Query(None, description="Page size; values above 300 are clamped to 300."),
    offset: int | None = Query(None, ge=0),
) -> tuple[int, int]:
    if limit is None:
        limit = MAX_LIMIT
    if limit < 1:
        raise InvalidField({"limit": ["Ensure this value is greater than or equal to 1."]})
    return min(limit, MAX_LIMIT), offset or 0


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
        return _expand_dotted({k: v for k, v in form.items() if isinstance(v, str)})
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DetailError(f"JSON parse error - {exc}") from None
    if not isinstance(data, dict):
        raise InvalidField({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."
                                                 if isinstance(data, list) else "Invalid data. Expected a dictionary."]})
    return _expand_dotted(data)


def parse_bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int,)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    raise InvalidField({field: ["Must be a valid boolean."]})
