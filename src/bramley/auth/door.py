"""The Iru API door: Host → tenant, Bearer token → TenantContext, rate limit, route permission.

Order follows the reference (§5, §6 rule 22): unknown route 404 (the router), unknown tenant host 404,
bad token 401, token of another tenant's host 401, over the limit 429, not granted 403.
"""
from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bramley.auth import service as tokens
from bramley.tenancy import service as tenants
from bramley.tenancy.context import TenantContext
from bramley.tenancy.hosts import tenant_from_host


class DoorRefusal(Exception):
    """Refused at the door, before any service ran. Rendered by the Iru error handler."""

    def __init__(self, status: int, body, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request: commit after the handler returns, roll back if it raised."""
    with request.app.state.db.unit_of_work() as session:
        yield session


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not value.strip():
        return None
    return value.strip()


def api_context(request: Request, db: Session = Depends(get_db)) -> TenantContext:
    host = tenant_from_host(request.headers.get("host"))
    host_tenant = None
    if host is not None:
        host_tenant = tenants.get_by_subdomain(db, host.subdomain)
        if host_tenant is None or host_tenant.region != host.region:
            raise DoorRefusal(404, {"detail": "Not found."})
    value = _bearer(request)
    if value is None:
        raise DoorRefusal(401, {"detail": "Authentication credentials were not provided."})
    token = tokens.authenticate(db, value)
    if token is None:
        raise DoorRefusal(401, {"detail": "Invalid token."})
    if host_tenant is not None and host_tenant.id != token.tenant_id:
        raise DoorRefusal(401, {"detail": "Invalid token."})
    verdict = request.app.state.rate_limiter.hit(token.tenant_id)
    request.scope.setdefault("state", {})["ratelimit_headers"] = verdict.headers
    if not verdict.allowed:
        raise DoorRefusal(429, {"message": "API rate limit exceeded"}, {"Retry-After": str(verdict.retry_after)})
    route = request.scope["route"]
    if not tokens.allows(token, request.method, route.path):
        raise DoorRefusal(403, {"detail": "You do not have permission to perform this action."})
    tenant = host_tenant or tenants.get(db, token.tenant_id)
    return TenantContext(
        tenant_id=token.tenant_id,
        subdomain=tenant.subdomain,
        region=tenant.region,
        actor_id=token.id,
        actor_type="API token",
        actor_name=token.description,
        permissions=frozenset(),
    )
