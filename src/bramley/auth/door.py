"""The Iru API door: Host → tenant, Bearer token → TenantContext, rate limit, route permission.

Order follows the reference (§5, §6 rule 22): unknown route 404 (the router), unknown tenant host 404,
bad token 401, token of another tenant's host 401, over the limit 429, not granted 403.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bramley.auth import service as tokens
from bramley.db.engine import OnDemandSession
from bramley.db.raw import AsyncReader, SQLiteReader
from bramley.tenancy import service as tenants
from bramley.tenancy.context import TenantContext
from bramley.tenancy.hosts import tenant_from_host
from bramley.tenancy.service import TenantName

log = logging.getLogger("bramley.auth")


class DoorRefusal(Exception):
    """Refused at the door, before any service ran. Rendered by the Iru error handler."""

    def __init__(self, status: int, body, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: commit after the handler returns, roll back if it raised.

    Always declared `Depends(get_db, scope="function")`: with FastAPI's default scope the commit ran after the reply
    had been sent, so a client reading right after a write could miss it, and a failed commit still answered 2xx.

    Async because a new session connects lazily, on its first query in a worker thread: only the ending
    needs a thread hop (a sync generator dependency takes one to start and one to end).
    """
    db = request.app.state.db
    # Reads stay deferred (many at once in WAL); anything else takes SQLite's write lock at BEGIN.
    session = (db.sessions if request.method in ("GET", "HEAD") else db.write_sessions)()
    ok = False
    try:
        yield session
        ok = True
    finally:
        if not session.in_transaction():
            session.close()  # never touched the database (a read served on the reader): no thread needed
        else:
            with anyio.CancelScope(shield=True):  # a client gone mid-request must still give the connection back
                await run_db(request, _end, session, ok)


READS = ("GET", "HEAD")


async def run_db(request: Request, fn, *args):
    """Run this request's blocking database work. SQLite reads run right on the event loop: a deferred read in
    WAL mode never waits for a lock, and handing ~1 ms of in-process work to a worker thread cost more than the
    work (thread hops, and the GIL passed back and forth on every row fetched). PostgreSQL round trips and SQLite
    writes, which can wait for the write lock, go to the thread pool."""
    if request.method in READS and request.app.state.db.dialect == "sqlite":
        return fn(*args)
    return await run_in_threadpool(fn, *args)


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
    finally:
        session.close()  # also rolls back whatever was not committed


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not value.strip():
        return None
    return value.strip()


def _identify(request: Request, db: Session):
    """The DB half of the door: the host's tenant (404), the token (401), the token's tenant."""
    host = tenant_from_host(request.headers.get("host"))
    host_tenant = None
    if host is not None:
        host_tenant = tenants.get_by_subdomain(db, host.subdomain)
        _check_host(host, host_tenant)
    token = tokens.authenticate(db, _credential(request))
    _check_token(token, host_tenant)
    return token, host_tenant or tenants.name_of(db, token.tenant_id)


async def _identify_read(request: Request, reader: AsyncReader | SQLiteReader, db: Session):
    """`_identify` for a pure read, in the same order: the token on the reader, the tenants
    from the door's memory of them (the session, in a worker thread, only for one not seen yet)."""
    host_tenant = await _remembered_host(request, db)
    token = await tokens.authenticate_on(reader, _credential(request))
    _check_token(token, host_tenant)
    return token, host_tenant or await _remembered(_tenants_seen, token.tenant_id, tenants.name_of, db)


async def _remembered_host(request: Request, db) -> TenantName | None:
    """The tenant the Host header names (None: a host that names none), from the door's memory; 404 if unknown."""
    host = tenant_from_host(request.headers.get("host"))
    if host is None:
        return None
    host_tenant = await _remembered(_hosts_seen, host.subdomain, tenants.name_by_subdomain, db)
    _check_host(host, host_tenant)
    return host_tenant


def _check_host(host, host_tenant) -> None:
    if host_tenant is None or host_tenant.region != host.region:
        raise DoorRefusal(404, {"detail": "Not found."})


def _credential(request: Request) -> str:
    value = _bearer(request)
    if value is None:
        raise DoorRefusal(401, {"detail": "Authentication credentials were not provided."})
    return value


def _check_token(token: tokens.Credential | None, host_tenant) -> None:
    if token is None or (host_tenant is not None and host_tenant.id != token.tenant_id):
        raise DoorRefusal(401, {"detail": "Invalid token."})


# A tenant's id, subdomain and region never change once created (tenancy remembers them per process too). The
# door keeps those it has seen, so a read on the event loop needs no worker thread for them. Misses are asked
# each time: an unknown host may name a tenant created later.
_hosts_seen: dict[str, TenantName] = {}
_tenants_seen: dict[str, TenantName] = {}


async def _remembered(seen: dict[str, TenantName], key: str, lookup, db: Session) -> TenantName | None:
    found = seen.get(key)
    if found is None:
        found = await run_in_threadpool(lookup, db, key)
        if found is not None:
            seen[key] = found
    return found


def _record_use(request: Request, db: Session, token_id: str) -> None:
    """Best effort, about once a minute per token: a busy database must not fail the caller's request.

    A read records it in a small write of its own (always in a worker thread: taking SQLite's write lock can
    wait). A write request already holds that lock, so a second transaction would wait for itself: its own
    transaction records it.
    """
    if request.method not in READS:
        tokens.mark_used(db, token_id)
        return
    try:
        with request.app.state.db.unit_of_work() as w:
            tokens.mark_used(w, token_id)
    except OperationalError:
        log.warning("could not record token use (database busy)")


async def api_context(request: Request, db: Session = Depends(get_db, scope="function")) -> TenantContext:
    # Async so the rate limiter runs on the event loop.
    token, tenant = await run_db(request, _identify, request, db)
    return await _admit(request, db, token, tenant)


async def api_read_context(request: Request, db: Session = Depends(get_db, scope="function")) -> TenantContext:
    """The door for routes that never write in the request's transaction (the device list): same answers as
    `api_context`. The token is read on the database's reader (db/raw.py), outside that transaction, which then
    begins only if the route needs the session."""
    token, tenant = await _identify_read(request, request.app.state.db.reader, db)
    return await _admit(request, db, token, tenant)


@asynccontextmanager
async def _session_on_demand(request: Request) -> AsyncIterator[OnDemandSession]:
    """A session for the door's rare needs beside a reader (a tenant not remembered yet, the token's last use):
    made on first use, closed in a worker thread only if it was."""
    db = OnDemandSession(request.app.state.db.sessions)
    try:
        yield db
    finally:
        if db.used:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(db.close)


async def api_read_only(request: Request) -> TenantContext:
    """`api_read_context` for a route whose reads all go to the reader: a session opens only for a tenant the door
    does not remember yet, or to record the token's use."""
    async with _session_on_demand(request) as db:
        return await api_read_context(request, db)


async def api_read_along(request: Request, statement: str, params: dict) -> tuple[TenantContext, list[bytes]]:
    """`api_read_context` and a read of the caller's tenant in one round trip (PostgreSQL's AsyncReader; see
    `tokens.authenticate_along` for `statement`): the context and the read's column. Same answers in the same
    order; the rows of a request the door refuses are dropped unseen. A session opens only for a tenant the door
    does not remember yet."""
    async with _session_on_demand(request) as db:
        host_tenant = await _remembered_host(request, db)
        token, rows = await tokens.authenticate_along(request.app.state.db.reader, _credential(request), statement,
                                                      params)
        _check_token(token, host_tenant)
        tenant = host_tenant or await _remembered(_tenants_seen, token.tenant_id, tenants.name_of, db)
        return await _admit(request, db, token, tenant), rows


async def _admit(request: Request, db: Session, token: tokens.Credential, tenant) -> TenantContext:
    """The rest of the door once the token is known: last use, rate limit (429), route permission (403)."""
    if tokens.use_is_due(token):
        await run_in_threadpool(_record_use, request, db, token.id)
    verdict = await request.app.state.rate_limiter.hit(token.tenant_id)
    request.scope.setdefault("state", {})["ratelimit_headers"] = verdict.headers
    if not verdict.allowed:
        raise DoorRefusal(429, {"message": "API rate limit exceeded"}, {"Retry-After": str(verdict.retry_after)})
    route = request.scope["route"]
    if not tokens.allows(token, request.method, route.path):
        raise DoorRefusal(403, {"detail": "You do not have permission to perform this action."})
    return TenantContext(
        tenant_id=token.tenant_id,
        subdomain=tenant.subdomain,
        region=tenant.region,
        actor_id=token.id,
        actor_type="API token",
        actor_name=token.description,
        permissions=frozenset(),
    )
