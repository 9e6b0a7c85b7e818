"""HTTP edge shared by every door: path normalisation, body limit, response headers, error rendering."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from bramley.apiutil import NUL_MESSAGE, not_a_dict
from bramley.auth.door import DoorRefusal, api_context, get_db
from bramley.errors import ActionRefused, Conflict, DetailError, InvalidField, NotFound, RuleViolation

log = logging.getLogger("bramley.http")

SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"access-control-allow-origin", b"*"),
    (b"vary", b"Origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class JSONBody(JSONResponse):
    """Compact JSON (no spaces), as Iru answers; scripts compare `[]` as a string.

    A JSONResponse subclass so FastAPI documents each route's response_model instead of "string".
    """

    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def json_response(status: int, body, headers: dict[str, str] | None = None) -> JSONBody:
    return JSONBody(body, status_code=status, headers=headers)


class EdgeMiddleware:
    """Pure ASGI (no per-request task overhead): runs on every request, including refused ones."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = normalized_path(scope["path"])
        if path != scope["path"]:
            scope = dict(scope, path=path, raw_path=path.encode())
        is_api = path.startswith("/api/")

        if declared_length(scope) > self.max_body:
            await _send_json(send, 413, {"detail": "Request body too large."})
            return

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge()
            return message

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = with_edge_headers(message, scope, is_api)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            await _send_json(send, 413, {"detail": "Request body too large."})


def with_edge_headers(start: dict, scope, is_api: bool) -> dict:
    """A response's start message with the headers every reply carries (security; on the API its CSP, the rate
    limit's figures and a Content-Type)."""
    headers = list(start.get("headers", []))
    names = {k.lower() for k, _ in headers}
    headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
    if is_api:
        headers.append(API_CSP)
        headers.extend(scope.get("state", {}).get("ratelimit_headers", ()))
        if b"content-type" not in names:
            # One caller reads Content-Type on every 200, empty bodies included.
            headers.append((b"content-type", b"application/json"))
    return dict(start, headers=headers)


class ClientGone(Exception):
    """The client hung up before its request's body was in: there is no one to answer."""


async def read_body(receive, limit: int) -> bytes | None:
    """A plain-ASGI door's whole request body; None past `limit`, ClientGone if the client left first."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read. An HTTPException, so FastAPI's body parsing passes it on as a 413
    instead of turning it into its generic 400."""

    def __init__(self) -> None:
        super().__init__(413, "Request body too large.")


def normalized_path(path: str) -> str:
    """The path every door serves: callers use /x and /x/, and a base URL ending in / yields //api/v1, so `//` is
    collapsed and a trailing `/` dropped (served, never redirected)."""
    while "//" in path:
        path = path.replace("//", "/")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def declared_length(scope) -> int:
    """The request's Content-Length (0 if none or not a number: the body is then counted as it is read)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _send_json(send, status: int, body) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


LOCATIONS = ("body", "query", "path", "header", "cookie")
# Pydantic names the union member that failed ("str", "int", "list[str]", "function-after[...]") in `loc`;
# the caller sent one field, so it gets one key.
_UNION_TAGS = {"str", "int", "float", "bool", "bytes", "dict", "list", "none"}


def _field(loc) -> str:
    parts = list(loc[1:] if loc and loc[0] in LOCATIONS else loc)
    parts = [str(p) for p in parts if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p))]
    return ".".join(parts) or "non_field_errors"


def _field_errors(request: Request, exc: RequestValidationError) -> tuple[int, object]:
    """FastAPI's validation errors in Iru's shapes: JSON parse errors as detail, fields as lists."""
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        kind, loc = err.get("type"), err.get("loc", ())
        if kind == "json_invalid":
            msg = (err.get("ctx") or {}).get("error", "invalid JSON")
            return 400, {"detail": f"JSON parse error - {msg}"}
        message = err.get("msg", "Invalid value.")
        if kind == "missing":
            message = "This field is required."
        elif tuple(loc) == ("body",) and kind in ("model_attributes_type", "model_type", "dict_type"):
            value = err.get("input")
            if isinstance(value, (bytes, bytearray)):  # FastAPI leaves a body it would not parse as JSON raw
                ctype = request.headers.get("content-type")
                return 415, {"detail": f'Unsupported media type "{ctype}" in request.' if ctype
                             else "Missing Content-Type header: send JSON as application/json."}
            message = not_a_dict(value)
        field = _field(loc)
        if message not in errors.get(field, ()):
            errors.setdefault(field, []).append(message)
    return 400, errors


async def _door_refusal(request: Request) -> DoorRefusal | None:
    """The door's verdict on a request whose body failed before the door ran.

    FastAPI reads and validates the body before any dependency, so without this a caller with a bad token
    would hear about their JSON first; Iru checks the token first (reference §5 check order).
    """
    path = request.url.path
    if not path.startswith("/api/v1/") or path.startswith("/api/v1/scim") or "route" not in request.scope:
        return None
    if "ratelimit_headers" in request.scope.get("state", {}):
        return None  # the door already ran and let it in

    try:
        # The door's own dependencies, run as FastAPI would: same transaction policy, same token bookkeeping.
        async with asynccontextmanager(get_db)(request) as session:
            await api_context(request, session)
    except DoorRefusal as refusal:
        return refusal
    return None


def _declared_query(dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


async def reject_nul_query(request: Request) -> None:
    """A NUL in a filter is a field error, as DRF's filters make it (PostgreSQL cannot compare such text).

    Only declared parameters count: unknown ones stay ignored, whatever they hold. An app-wide dependency,
    so it runs before the door: a NUL-laden filter with a bad token is a 400, not a 401.
    """
    if b"%00" not in request.scope.get("query_string", b"") or not request.url.path.startswith("/api/"):
        return
    route = request.scope.get("route")
    declared = _declared_query(route.dependant) if getattr(route, "dependant", None) is not None else set()
    bad = {k: [NUL_MESSAGE] for k, v in request.query_params.multi_items() if k in declared and "\x00" in v}
    if bad:
        raise InvalidField(bad)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DoorRefusal)
    async def _door(request: Request, exc: DoorRefusal):
        return json_response(exc.status, exc.body, exc.headers)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return json_response(404, {"detail": "Not found."})

    @app.exception_handler(InvalidField)
    async def _invalid(request: Request, exc: InvalidField):
        return json_response(400, exc.errors)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return json_response(400, {exc.field: [exc.message]})

    @app.exception_handler(RuleViolation)
    async def _rule(request: Request, exc: RuleViolation):
        return json_response(400, exc.messages)

    @app.exception_handler(ActionRefused)
    async def _refused(request: Request, exc: ActionRefused):
        return json_response(400, exc.message)

    @app.exception_handler(DetailError)
    async def _detail(request: Request, exc: DetailError):
        return json_response(400, {"detail": exc.detail})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        refusal = await _door_refusal(request)
        if refusal is not None:
            return json_response(refusal.status, refusal.body, refusal.headers)
        status, body = _field_errors(request, exc)
        return json_response(status, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return json_response(404, {"detail": "Not found."})
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI's "error parsing the body": JSON that is not even text (invalid UTF-8).
            refusal = await _door_refusal(request)
            if refusal is not None:
                return json_response(refusal.status, refusal.body, refusal.headers)
            return json_response(400, {"detail": f"JSON parse error - {exc.__cause__}"})
        if exc.status_code == 405:
            return json_response(405, {"detail": f'Method "{request.method}" not allowed.'}, exc.headers)
        return json_response(exc.status_code, {"detail": exc.detail}, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(500, {"detail": "A server error occurred."})
