"""The SCIM door, /api/v1/scim: its own token, its own routing and its own error format.

Plain ASGI in front of the framework (`ScimDoor`), which hands every request to one place, so unknown paths,
wrong methods on discovery endpoints and every failure answer with a SCIM Error body (string `status`,
`scimType`), always application/scim+json. Requests may be application/scim+json, application/json, any +json or
untyped. Writes run in turns (group commit): the writes waiting share one transaction.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import partial

import orjson
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bramley.db.base import utcnow
from bramley.db.turns import Turns
from bramley.scim import operations as ops
from bramley.scim import schema
from bramley.scim import service as scim
from bramley.scim.errors import ScimError, bad, not_found
from bramley.tenancy import service as tenants
from bramley.tenancy.context import TenantContext
from bramley.tenancy.hosts import tenant_from_host
from bramley.web import ClientGone, declared_length, normalized_path, read_body, with_edge_headers

log = logging.getLogger("bramley.scim")
PREFIX = "/api/v1/scim"
SCIM_JSON = "application/scim+json"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
DISCOVERY = {"serviceproviderconfig": "ServiceProviderConfig", "resourcetypes": "ResourceTypes",
             "schemas": "Schemas"}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
POSTGRES_LANES = 8


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
    host = request.headers.get("host")
    if host is None:
        host = request.url.netloc
    return f"{request.scope.get('scheme', 'http')}://{host}{PREFIX}"


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
    # A NUL can only come as the escape \u0000 (orjson refuses raw control characters): most bodies need no walk.
    if b"\\u0000" in raw and _has_nul(body):
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


def _buffer(state) -> scim.LogBuffer:
    buffer = getattr(state, "scim_log", None)
    if buffer is None:
        with _BUFFER_MADE:
            buffer = getattr(state, "scim_log", None) or scim.LogBuffer(state.db)
            state.scim_log = buffer
    return buffer


@dataclass
class Knock:
    """One request as the door read it: the whole body is in, so its work can run on any thread."""

    request: Request
    path: str  # below PREFIX
    raw: bytes


@dataclass
class Answer:
    """A request's work inside a transaction that is still open: who asked, what for, and what came of it."""

    caller: scim.Caller | None = None
    route: Route | None = None
    outcome: ops.Outcome | None = None
    error: ScimError | None = None

    @property
    def keeps(self) -> bool:
        """Its changes are to be committed (an error or a 4xx outcome leaves nothing behind)."""
        return self.error is None and self.outcome.status < 400

    def response(self) -> Response:
        if self.error is not None:
            return _error(self.error)
        return _render(self.outcome.status, self.outcome.body, self.outcome.headers)


def _answer(session, knock: Knock, writing: bool) -> Answer:
    """The request's work in `session`'s transaction, neither committed nor rolled back."""
    request, answer = knock.request, Answer()
    try:
        answer.caller, ctx = _identify(request, session)
        answer.route = route = match(request.method, knock.path)
        base = _base(request)
        if route.endpoint in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
            answer.outcome = _discovery(route, request, base)
        else:
            body = _parse_body(knock.raw, request.headers.get("content-type")) if writing and route.action != "delete" \
                else {}
            call = ops.Call(ctx, scim.integration_tag_of(answer.caller), base, request.headers.get("if-match"),
                            request.headers.get("if-none-match"))
            answer.outcome = HANDLERS[(route.endpoint, route.action)](session, call, route, body, _query(request))
    except ScimError as exc:
        answer.error = exc
    return answer


def _record(session, knock: Knock, answer: Answer) -> None:
    """A kept change's log entry (and the token's use, when due), in the change's transaction."""
    scim.record(session, _log_entry(answer.caller, knock.request, answer.route, answer.outcome.status,
                                    answer.outcome, None))
    if scim.use_is_due(answer.caller):
        scim.mark_used(session, answer.caller.integration_id)


def _transaction(state, knock: Knock, writing: bool) -> Response:
    """One request in a transaction of its own. SQLite writers queue at db.engine's WriteGate, across threads
    and worker processes."""
    database = state.db
    session = (database.write_sessions if writing else database.sessions)()
    try:
        answer = _answer(session, knock, writing)
        if answer.caller is None:  # not identified: nothing to log, and no integration to log it under
            return answer.response()
        if writing and answer.keeps:
            _record(session, knock, answer)
            session.commit()
            return answer.response()
        session.rollback()
        if answer.error is not None:
            _buffer(state).add(_log_entry(answer.caller, knock.request, answer.route, answer.error.status, None,
                                          answer.error))
            return answer.response()
        _buffer(state).add(_log_entry(answer.caller, knock.request, answer.route, answer.outcome.status,
                                      answer.outcome, None))
        if scim.use_is_due(answer.caller):
            _mark_used_apart(database, answer.caller)
        return answer.response()
    finally:
        session.close()


def _mark_used_apart(database, caller: scim.Caller) -> None:
    try:
        with database.unit_of_work() as w:
            scim.mark_used(w, caller.integration_id)
    except OperationalError:
        log.warning("could not record SCIM token use (database busy)")


def _together(state, turn: list[Knock]) -> list[Response] | None:
    """The writes of a turn in one transaction, committed only if every one of them keeps its changes; None
    (everything rolled back) as soon as one does not. Each request starts from an empty identity map, as in a
    session of its own, and sees the changes of those before it, as if they had committed."""
    session = state.db.write_sessions()
    try:
        answers = []
        for knock in turn:
            answer = _answer(session, knock, True)
            if not answer.keeps:
                return None
            _record(session, knock, answer)
            session.flush()
            session.expunge_all()
            answers.append(answer)
        session.commit()
    finally:
        session.close()
    return [answer.response() for answer in answers]


def _serve_turn(state, turn: list[Knock]) -> list:
    """One turn of writes: each request's Response (or the exception it raised), in order.

    Under load a turn holds every write waiting, run in one transaction: SQLite's write lock, BEGIN and COMMIT
    and the hop to this thread are paid once per turn instead of once per request (group commit). Should any
    request fail, be refused or answer a 4xx, that transaction is rolled back and each request runs again in a
    transaction of its own, exactly as it would have alone: one request's failure never touches another's
    changes, and a refused request's log entry and answer are the ones it gets alone."""
    if len(turn) > 1:
        try:
            responses = _together(state, turn)
        except Exception:
            log.info("a SCIM write failed in a turn of %d: each runs alone", len(turn))
            responses = None
        if responses is not None:
            return responses
    outcomes: list = []
    for knock in turn:
        try:
            outcomes.append(_transaction(state, knock, True))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


class ScimDoor:
    """Serves /api/v1/scim in front of the framework (see `bramley.app.Bramley`) and passes every other request
    on: identity providers provision in bursts of thousands of requests, and FastAPI's route matching and
    middleware layers cost more than a POST's own work. Answers as the app's edge would (its security headers,
    413 for an oversized body) and as the SCIM routes did: a SCIM Error body for every failure. Writes run in
    turns (db/turns.py `Turns`); reads each on a worker thread of their own."""

    def __init__(self, app, state) -> None:
        self.app = app
        self.state = state
        self.turns = Turns(partial(_serve_turn, state), lanes=1 if state.db.dialect == "sqlite" else POSTGRES_LANES,
                           name="scim-writes")
        self.max_body = state.settings.max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        path = normalized_path(scope["path"]) if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        if path != scope["path"]:
            scope = dict(scope, path=path, raw_path=path.encode())
        if declared_length(scope) > self.max_body:
            await _send(send, scope, TOO_LARGE)
            return
        request = Request(scope)
        raw = b""
        if scope["method"] in WRITES:
            try:
                raw = await read_body(receive, self.max_body)
            except ClientGone:
                return
            if raw is None:
                await _send(send, scope, TOO_LARGE)
                return
        knock = Knock(request, path[len(PREFIX) + 1:], raw)
        try:
            if scope["method"] in WRITES:
                response = await self.turns.serve(knock)
            else:
                response = await run_in_threadpool(_transaction, self.state, knock, False)
        except Exception:  # never a bare 500 page: the SCIM client still gets a SCIM error body
            log.exception("SCIM request failed: %s %s", scope["method"], path)
            response = _error(ScimError(500, "An internal error occurred"))
        await _send(send, scope, response)


TOO_LARGE = Response(orjson.dumps({"detail": "Request body too large."}), 413, media_type="application/json")


async def _send(send, scope, response: Response) -> None:
    """The response with the headers the app's edge adds to every /api/ answer."""
    await send(with_edge_headers({"type": "http.response.start", "status": response.status_code,
                                  "headers": response.raw_headers}, scope, True))
    await send({"type": "http.response.body", "body": response.body})
