"""Admin routes for SCIM (Iru door, API token): directory integrations and their tokens, the SCIM request log."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bramley.apiutil import RawJSON, Text, page_url
from bramley.audit import service as audit
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.devices.render import iso_z
from bramley.scim import service as scim
from bramley.tenancy.context import TenantContext

router = APIRouter(prefix="/api/v1/integrations/scim", tags=["SCIM integrations"])
SECTION = ("Settings", "SCIM Directory")


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Text = Field(min_length=1, max_length=255)


class Integration(BaseModel):
    id: str
    name: str
    created_at: str
    rotated_at: str | None
    last_used_at: str | None
    scim_url: str


class IssuedIntegration(Integration):
    token: str = Field(description="Shown once: copy it into the identity provider now.")


class ScimRequestOut(BaseModel):
    id: str
    occurred_at: str
    integration_id: str
    method: str
    path: str
    status: int
    resource_type: str | None
    resource_id: str | None
    summary: dict[str, Any]


class ScimRequestPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[ScimRequestOut]


def _scim_url(request: Request) -> str:
    settings = request.app.state.settings
    base = settings.public_url.rstrip("/") if settings.public_url else \
        f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return f"{base}/api/v1/scim"


def _out(request: Request, row, token: str | None = None) -> dict:
    out = {"id": row.id, "name": row.name, "created_at": iso_z(row.created_at), "rotated_at": iso_z(row.rotated_at),
           "last_used_at": iso_z(row.last_used_at), "scim_url": _scim_url(request)}
    if token is not None:
        out["token"] = token
    return out


@router.get("", response_model=list[Integration], openapi_extra=grant(*SECTION, "List SCIM integrations"))
def list_integrations(request: Request, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return [_out(request, row) for row in scim.get_all(db, ctx)]


@router.post("", status_code=201, response_model=IssuedIntegration,
             openapi_extra=grant(*SECTION, "Create SCIM integration"))
def create_integration(request: Request, body: IntegrationIn, ctx: TenantContext = Depends(api_context),
                       db: Session = Depends(get_db, scope="function")):
    issued = scim.create_integration(db, ctx, name=body.name)
    return _out(request, issued.integration, issued.token)


async def flushed_log(request: Request) -> None:
    """Write the batched entries (reads, refused requests) before this request's snapshot is taken."""
    buffer = getattr(request.app.state, "scim_log", None)
    if buffer is not None:
        await run_in_threadpool(buffer.flush)


@router.get("/requests", response_model=ScimRequestPage, openapi_extra=grant(*SECTION, "List SCIM requests"))
def list_requests(request: Request, _flushed: None = Depends(flushed_log), limit: int = Query(100, ge=1),
                  cursor: Text | None = None,
                  integration_id: Text | None = None, resource_id: Text | None = None, method: Text | None = None,
                  status: int | None = Query(None, ge=100, le=599), start_date: Text | None = None,
                  end_date: Text | None = None,
                  ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    """Newest first. `resource_id` answers "what happened to this user?" (e.g. who archived them, and when)."""
    page = scim.list_requests(
        db, ctx, limit=min(limit, scim.MAX_LOG_PAGE), cursor=cursor, integration_id=integration_id,
        resource_id=resource_id, method=method, status=status,
        start=audit.parse_date_bound(start_date, "start_date", end=False),
        end=audit.parse_date_bound(end_date, "end_date", end=True))
    return {
        "next": page_url(request, cursor=page.next_cursor) if page.next_cursor else None,
        "previous": page_url(request, cursor=page.previous_cursor) if page.previous_cursor else None,
        "results": [{"id": r.id, "occurred_at": iso_z(r.occurred_at), "integration_id": r.integration_id,
                     "method": r.method, "path": r.path, "status": r.status, "resource_type": r.resource_type,
                     "resource_id": r.resource_id, "summary": r.summary} for r in page.entries],
    }


@router.get("/{integration_id}", response_model=Integration, openapi_extra=grant(*SECTION, "Get SCIM integration"))
def get_integration(request: Request, integration_id: str, ctx: TenantContext = Depends(api_context),
                    db: Session = Depends(get_db, scope="function")):
    return _out(request, scim.get_or_raise(db, ctx, integration_id))


@router.patch("/{integration_id}", response_model=Integration,
              openapi_extra=grant(*SECTION, "Rename SCIM integration"))
def rename_integration(request: Request, integration_id: str, body: IntegrationIn,
                       ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return _out(request, scim.rename(db, ctx, integration_id, name=body.name))


@router.post("/{integration_id}/rotate", response_model=IssuedIntegration,
             openapi_extra=grant(*SECTION, "Rotate SCIM token"))
def rotate_token(request: Request, integration_id: str, ctx: TenantContext = Depends(api_context),
                 db: Session = Depends(get_db, scope="function")):
    issued = scim.rotate(db, ctx, integration_id)
    return _out(request, issued.integration, issued.token)


@router.delete("/{integration_id}", status_code=204, openapi_extra=grant(*SECTION, "Delete SCIM integration"))
def delete_integration(integration_id: str, ctx: TenantContext = Depends(api_context),
                       db: Session = Depends(get_db, scope="function")):
    scim.delete(db, ctx, integration_id)
    return RawJSON(b"", status_code=204)
