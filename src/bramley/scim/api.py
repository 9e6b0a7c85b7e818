"""The SCIM door, /api/v1/scim: its own token, its own routing and its own error format.

One catch-all route hands every request to `dispatch`, so unknown paths, wrong methods on discovery endpoints
and every failure answer with a SCIM Error body (string `status`, `scimType`), always application/scim+json.
Requests may be application/scim+json, application/json, any +json or untyped.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import OperationalError
from starlette.responses import Response

from bramley.db.base import utcnow
from bramley.scim import operations as ops
from bramley.scim import schema
from bramley.scim import service as scim
from bramley.scim.errors import ScimError, bad, not_found
from bramley.tenancy import service as tenants
from bramley.tenancy.context import TenantContext
from bramley.tenancy.hosts import tenant_from_host

log = logging.getLogger("bramley.scim")
PREFIX = "/api/v1/scim"
SCIM_JSON = "application/scim+json"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
DISCOVERY = {"serviceproviderconfig": "ServiceProviderConfig", "resourcetypes": "ResourceTypes",
             "schemas": "Schemas"}
WRITES = ("POST", "PUT", "PATCH", "DELETE")

router = APIRouter()  # the door's two routes are added below, at its end


@dataclass
class Route:
    endpoint: str  # "ServiceProviderConfig", "ResourceTypes", "Schemas", "Users", "Groups", ".search"
    action: str  # list, get, create, replace, patch, delete, search
    resource_id: str | None = None


def match(method: str, path: str) -> Route:
    """The operation a method and path ask for: 404 for unknown paths, 405 for wrong verbs, 501 for /Bulk, /Me."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise not_found(f"{PREFIX}/ is not an endpoint")
    head = parts[0].lower()
    if head in DISCOVERY:
        if len(parts) > (1 if head == "serviceproviderconfig" else 2):
            raise not_found("Unknown endpoint")
        if method != "GET":
            raise ScimError(405, f"{method} is not allowed on /{DISCOVERY[head]}", headers={"Allow": "GET"})
        return Route(DISCOVERY[head], "get" if len(parts) == 2 else "list", parts[1] if len(parts) == 2 else None)
    if head in ("users", "groups"):
        endpoint = "Users" if head == "users" else "Groups"
        if len(parts) == 1:
            actions = {"GET": "list", "POST": "create"}
            allow = "GET, POST"
        elif len(parts) == 2 and parts[1] == ".search":
            actions, allow = {"POST": "search"}, "POST"
        elif len(parts) == 2:
            actions = {"GET": "get", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}
            allow = "GET, PUT, PATCH, DELETE"
        else:
            raise not_found("Unknown endpoint")
        if method not in actions:
            raise ScimError(405, f"{method} is not allowed here", headers={"Allow": allow})
        return Route(endpoint, actions[method], parts[1] if len(parts) == 2 and parts[1] != ".search" else None)
    if head == ".search" and len(parts) == 1:
        if method != "POST":
            raise ScimError(405, f"{method} is not allowed on /.search", headers={"Allow": "POST"})
        return Route(".search", "search")
    if head in ("bulk", "me"):
        raise ScimError(501, f"/{parts[0]} is not supported")
    raise not_found("Unknown endpoint")


def _render(status: int, body: dict | None, headers: dict | None = None) -> Response:
    if status in (204, 304) or body is None:
        return Response(status_code=status, headers=headers or {}, media_type=SCIM_JSON if status != 204 else None)
    return Response(orjson.dumps(body), status_code=status, headers=headers or {}, media_type=SCIM_JSON)


def _error(exc: ScimError) -> Response:
    return _render(exc.status, exc.body(), exc.headers)


def _token(request: Request) -> str | None:
    """The bearer value; repeated `Bearer` words (Okta's header mode, pasted with its prefix) are tolerated."""
    header = request.headers.get("authorization")
    if not header:
        return None
    words = header.split()
    while words and words[0].lower() == "bearer":
        words = words[1:]
    return words[0] if len(words) == 1 else None


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="scim"'}


def _identify(request: Request, db) -> tuple[scim.Caller, TenantContext]:
    host = tenant_from_host(request.headers.get("host"))
    host_tenant = None
    if host is not None:
        host_tenant = tenants.get_by_subdomain(db, host.subdomain)
        if host_tenant is None or host_tenant.region != host.region:
            raise not_found("Unknown tenant")
    value = _token(request)
    if value is None:
        raise ScimError(401, "A SCIM bearer token is required", headers=UNAUTHORIZED)
    caller = scim.authenticate(db, value)
    if caller is None or (host_tenant is not None and host_tenant.id != caller.tenant_id):
        raise ScimError(401, "The SCIM token is not valid", headers=UNAUTHORIZED)
    tenant = host_tenant or tenants.name_of(db, caller.tenant_id)
    ctx = TenantContext(tenant_id=caller.tenant_id, subdomain=tenant.subdomain, region=tenant.region,
                        actor_id=caller.integration_id, actor_type="SCIM integration", actor_name=caller.name)
    return caller, ctx


def _base(request: Request) -> str:
    host = request.headers.get("host", request.url.netloc)
    return f"{request.url.scheme}://{host}{PREFIX}"


def _query(request: Request) -> ops.Query:
    p = request.query_params
    return ops.page_query(p.get("filter"), p.get("startIndex"), p.get("count"), p.get("attributes"),
                          p.get("excludedAttributes"))


def _discovery(route: Route, request: Request, base: str) -> ops.Outcome:
    if "filter" in request.query_params:
        raise ScimError(403, "Discovery endpoints do not take a filter")
    if route.endpoint == "ServiceProviderConfig":
        doc = dict(schema.service_provider_config())
        doc["meta"] = {**doc["meta"], "location": f"{base}/ServiceProviderConfig"}
        return ops.Outcome(200, doc)
    table = schema.resource_types() if route.endpoint == "ResourceTypes" else schema.schemas()
    kind = "ResourceType" if route.endpoint == "ResourceTypes" else "Schema"

    def located(key: str, doc: dict) -> dict:
        return {**doc, "meta": {"resourceType": kind, "location": f"{base}/{route.endpoint}/{key}"}}

    if route.resource_id is not None:
        key = next((k for k in table if k.lower() == route.resource_id.lower()), None)
        if key is None:
            raise not_found(f"No {kind} {route.resource_id}")
        return ops.Outcome(200, located(key, table[key]))
    docs = [located(k, d) for k, d in table.items()]
    return ops.Outcome(200, {"schemas": [schema.LIST_SCHEMA], "totalResults": len(docs), "startIndex": 1,
                             "itemsPerPage": len(docs), "Resources": docs})


HANDLERS = {
    ("Users", "list"): lambda db, call, r, body, q: ops.list_users(db, call, q),
    ("Users", "get"): lambda db, call, r, body, q: ops.get_user(db, call, r.resource_id, q),
    ("Users", "create"): lambda db, call, r, body, q: ops.create_user(db, call, body, q),
    ("Users", "replace"): lambda db, call, r, body, q: ops.replace_user(db, call, r.resource_id, body, q),
    ("Users", "patch"): lambda db, call, r, body, q: ops.patch_user(db, call, r.resource_id, body, q),
    ("Users", "delete"): lambda db, call, r, body, q: ops.delete_user(db, call, r.resource_id),
    ("Users", "search"): lambda db, call, r, body, q: ops.search(db, call, ops.search_body(body), ("User",)),
    ("Groups", "list"): lambda db, call, r, body, q: ops.list_groups(db, call, q),
    ("Groups", "get"): lambda db, call, r, body, q: ops.get_group(db, call, r.resource_id, q),
    ("Groups", "create"): lambda db, call, r, body, q: ops.create_group(db, call, body, q),
    ("Groups", "replace"): lambda db, call, r, body, q: ops.replace_group(db, call, r.resource_id, body, q),
    ("Groups", "patch"): lambda db, call, r, body, q: ops.patch_group(db, call, r.resource_id, body, q),
    ("Groups", "delete"): lambda db, call, r, body, q: ops.delete_group(db, call, r.resource_id),
    ("Groups", "search"): lambda db, call, r, body, q: ops.search(db, call, ops.search_body(body), ("Group",)),
    (".search", "search"): lambda db, call, r, body, q: ops.search(db, call, ops.search_body(body),
                                                                  ("User", "Group")),
}


def _parse_body(raw: bytes, content_type: str | None) -> dict:
    media = (content_type or "").split(";")[0].strip().lower()
    if media and not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
                      or media == "text/json"):
        raise ScimError(415, f"Send JSON (application/scim+json), not {media}")
    if not raw.strip():
        raise bad("A JSON body is required", "invalidSyntax")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad(f"Malformed JSON: {exc}", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise bad("The body must be a JSON object", "invalidSyntax")
    if _has_nul(body):
        raise bad("Values cannot contain NUL characters", "invalidValue")
    return body


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _log_entry(caller: scim.Caller, request: Request, route: Route | None, status: int, outcome: ops.Outcome | None,
               error: ScimError | None) -> scim.LoggedRequest:
    summary = dict(outcome.summary) if outcome is not None else {}
    if error is not None:
        summary["error"] = {"scimType": error.scim_type, "detail": error.detail}
    resource_type = outcome.resource_type if outcome else None
    resource_id = outcome.resource_id if outcome else None
    if resource_id is None and route is not None and route.resource_id and route.endpoint in ("Users", "Groups"):
        resource_type, resource_id = route.endpoint[:-1], route.resource_id[:64]
    return scim.LoggedRequest(tenant_id=caller.tenant_id, integration_id=caller.integration_id,
                              method=request.method, path=request.url.path, status=status,
                              resource_type=resource_type, resource_id=resource_id, summary=summary,
                              occurred_at=utcnow())


_BUFFER_MADE = threading.Lock()


def _buffer(request: Request) -> scim.LogBuffer:
    state = request.app.state
    buffer = getattr(state, "scim_log", None)
    if buffer is None:
        with _BUFFER_MADE:
            buffer = getattr(state, "scim_log", None) or scim.LogBuffer(state.db)
            state.scim_log = buffer
    return buffer


def _handle(request: Request, path: str, raw: bytes) -> Response:
    """The whole request, in one worker thread and one transaction (SQLite writers queue at db.engine's
    WriteGate, across threads and worker processes)."""
    return _transaction(request, path, raw, request.method in WRITES)


def _transaction(request: Request, path: str, raw: bytes, writing: bool) -> Response:
    database = request.app.state.db
    session = (database.write_sessions if writing else database.sessions)()
    caller = route = outcome = None
    try:
        try:
            caller, ctx = _identify(request, session)
        except ScimError as exc:
            return _error(exc)
        try:
            route = match(request.method, path)
            base = _base(request)
            if route.endpoint in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
                outcome = _discovery(route, request, base)
            else:
                body = _parse_body(raw, request.headers.get("content-type")) if writing and route.action != "delete" \
                    else {}
                call = ops.Call(ctx, scim.integration_tag_of(caller), base, request.headers.get("if-match"),
                                request.headers.get("if-none-match"))
                q = _query(request)
                outcome = HANDLERS[(route.endpoint, route.action)](session, call, route, body, q)
            if writing and outcome.status < 400:
                scim.record(session, _log_entry(caller, request, route, outcome.status, outcome, None))
                if scim.use_is_due(caller):
                    scim.mark_used(session, caller.integration_id)
                session.commit()
            else:
                session.rollback()
                _buffer(request).add(_log_entry(caller, request, route, outcome.status, outcome, None))
                if scim.use_is_due(caller):
                    _mark_used_apart(database, caller)
            return _render(outcome.status, outcome.body, outcome.headers)
        except ScimError as exc:
            session.rollback()
            _buffer(request).add(_log_entry(caller, request, route, exc.status, None, exc))
            return _error(exc)
    finally:
        session.close()


def _mark_used_apart(database, caller: scim.Caller) -> None:
    try:
        with database.unit_of_work() as w:
            scim.mark_used(w, caller.integration_id)
    except OperationalError:
        log.warning("could not record SCIM token use (database busy)")


async def scim_door(request: Request) -> Response:
    raw = await request.body() if request.method in WRITES else b""
    try:
        return await run_in_threadpool(_handle, request, request.path_params.get("path", ""), raw)
    except Exception:  # never a bare 500 page: the SCIM client still gets a SCIM error body
        log.exception("SCIM request failed: %s %s", request.method, request.url.path)
        return _error(ScimError(500, "An internal error occurred"))


# Plain Starlette routes: the door parses everything itself, so FastAPI's per-request dependency and parameter
# machinery would only cost time (the app-wide NUL check has no declared query parameter to look at here).
router.add_route(PREFIX, scim_door, methods=METHODS, include_in_schema=False)
router.add_route(PREFIX + "/{path:path}", scim_door, methods=METHODS, include_in_schema=False)
