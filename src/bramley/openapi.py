"""The /api/v1 OpenAPI document: FastAPI's, corrected to what the Iru door really sends.

FastAPI documents a 422 that the door never sends (validation errors are Iru's 400 shapes), and knows
nothing of the door's own refusals. Both are fixed here once, so routers only declare their success shape.
"""
from __future__ import annotations

from fastapi import FastAPI

from bramley.auth.permissions import API_PREFIX, PUBLIC_PATHS

SCHEME = "ApiToken"
_REF = "#/components/schemas/"

ERROR_SCHEMAS: dict[str, dict] = {
    "Detail": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    "FieldErrors": {"type": "object", "description": 'Field validation: {"field": ["message", ...]}.',
                    "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    "RuleErrors": {"type": "array", "description": "A business rule refused the request.",
                   "items": {"type": "string"}},
    "Refusal": {"type": "string", "description": "An action was refused."},
    "RateLimited": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
}


def _json(description: str, schema: dict, **extra) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def _detail(description: str) -> dict:
    return _json(description, {"$ref": _REF + "Detail"})


# Every shape §2.5 of the reference lists for a 400; which one depends on what went wrong.
BAD_REQUEST = _json("Bad request: field errors, a rule's messages, a refusal, or a JSON parse error.", {"anyOf": [
    {"$ref": _REF + "FieldErrors"}, {"$ref": _REF + "Detail"}, {"$ref": _REF + "RuleErrors"},
    {"$ref": _REF + "Refusal"}]})

DOOR_RESPONSES: dict[str, dict] = {
    "401": _detail("Missing or invalid API token."),
    "403": _detail("The token is not granted this route."),
    "404": _detail("Unknown id, or a tenant host that does not exist."),
    "429": _json("Rate limit exceeded.", {"$ref": _REF + "RateLimited"},
                 headers={"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}),
}


def _hoist_defs(node, schemas: dict) -> None:
    """Move inline `$defs` (from model_json_schema()) into components: `#/$defs/X` does not resolve in OpenAPI."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
            _hoist_defs(schema, schemas)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = _REF + ref.removeprefix("#/$defs/")
        for value in node.values():
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)


def iru_document(doc: dict) -> dict:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(ERROR_SCHEMAS)
    components["securitySchemes"] = {SCHEME: {"type": "http", "scheme": "bearer",
                                              "description": "An API token from Settings › Access."}}
    for path, ops in doc.get("paths", {}).items():
        guarded = path.startswith(API_PREFIX + "/") and path not in PUBLIC_PATHS
        for op in ops.values():
            _hoist_defs(op, schemas)
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if not guarded:
                continue
            op["security"] = [{SCHEME: []}]
            if op.get("parameters") or op.get("requestBody"):
                responses.setdefault("400", BAD_REQUEST)
            if op.get("requestBody"):
                responses.setdefault("413", _detail("Request body too large."))
                responses.setdefault("415", _detail("The body is not JSON (Content-Type)."))
            for status, response in DOOR_RESPONSES.items():
                responses.setdefault(status, response)
    return doc


def install(app: FastAPI) -> None:
    """Serve the corrected document (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = iru_document(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
