"""HTTP edge shared by every door: path normalisation, body limit, response headers, error rendering."""
from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bramley.auth.door import DoorRefusal
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


class JSONBody(Response):
    """Compact JSON (no spaces), as Iru answers; scripts compare `[]` as a string."""

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
        path = scope["path"]
        # Callers use /x and /x/, and a base URL ending in / yields //api/v1: serve all, never redirect.
        while "//" in path:
            path = path.replace("//", "/")
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        if path != scope["path"]:
            scope = dict(scope, path=path, raw_path=path.encode())
        is_api = path.startswith("/api/")

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
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
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if is_api:
                    headers.append(API_CSP)
                    headers.extend(scope.get("state", {}).get("ratelimit_headers", ()))
                    if b"content-type" not in names:
                        # One caller reads Content-Type on every 200, empty bodies included.
                        headers.append((b"content-type", b"application/json"))
                message = dict(message, headers=headers)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            await _send_json(send, 413, {"detail": "Request body too large."})


class BodyTooLarge(Exception):
    pass


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send, status: int, body) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _field_errors(exc: RequestValidationError) -> tuple[int, object]:
    """FastAPI's validation errors in Iru's shapes: JSON parse errors as detail, fields as lists."""
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            msg = (err.get("ctx") or {}).get("error", "invalid JSON")
            return 400, {"detail": f"JSON parse error - {msg}"}
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "non_field_errors"
        message = err.get("msg", "Invalid value.")
        if err.get("type") == "missing":
            message = "This field is required."
        errors.setdefault(field, []).append(message)
    return 400, errors


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
        status, body = _field_errors(exc)
        return json_response(status, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return json_response(404, {"detail": "Not found."})
        if exc.status_code == 405:
            return json_response(405, {"detail": f'Method "{request.method}" not allowed.'}, exc.headers)
        return json_response(exc.status_code, {"detail": exc.detail}, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(500, {"detail": "A server error occurred."})
