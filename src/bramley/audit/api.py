"""Audit log route: cursor pages of at most 500 events."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from bramley.apiutil import page_url
from bramley.audit import service as audit
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.devices.render import iso_z
from bramley.tenancy.context import TenantContext

router = APIRouter(prefix="/api/v1/audit", tags=["Audit"])


class AuditEventOut(BaseModel):
    id: str
    action: str
    occurred_at: str
    actor_id: str
    actor_type: str
    target_id: str
    target_type: str
    target_component: str
    new_state: dict[str, Any]
    metadata: dict[str, Any]


class AuditPageOut(BaseModel):
    results: list[AuditEventOut]
    previous: str | None
    next: str | None


@router.get("/events", response_model=AuditPageOut, openapi_extra=grant("Audit", "Audit Log", "List audit events"))
def list_events(request: Request, limit: int = Query(500, ge=1), sort_by: str = "-occurred_at",
                start_date: str | None = None, end_date: str | None = None, cursor: str | None = None,
                ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    page = audit.list_events(
        db, ctx, limit=min(limit, audit.MAX_LIMIT), sort_by=sort_by, cursor=cursor,
        start=audit.parse_date_bound(start_date, "start_date", end=False),
        end=audit.parse_date_bound(end_date, "end_date", end=True))
    return {
        "results": [{
            "id": e.id, "action": e.action, "occurred_at": iso_z(e.occurred_at), "actor_id": e.actor_id,
            "actor_type": e.actor_type, "target_id": e.target_id, "target_type": e.target_type,
            "target_component": e.target_component, "new_state": e.new_state, "metadata": e.meta,
        } for e in page.events],
        "previous": page_url(request, cursor=page.previous_cursor) if page.previous_cursor else None,
        "next": page_url(request, cursor=page.next_cursor) if page.next_cursor else None,
    }
