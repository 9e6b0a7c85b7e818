"""Tag routes."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from bramley.apiutil import RawJSON, limit_offset, offset_envelope
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.tags import schemas
from bramley.tags import service as tags
from bramley.tenancy.context import TenantContext

router = APIRouter(prefix="/api/v1/tags", tags=["Tags"])
SECTION = ("Tags", "Tags")


@router.get("", response_model=schemas.TagPage, openapi_extra=grant(*SECTION, "List tags"))
def list_tags(request: Request, search: str | None = None, page: tuple[int, int] = Depends(limit_offset),
              ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    limit, offset = page
    total, rows = tags.list_page(db, ctx, search=search, limit=limit, offset=offset)
    return offset_envelope(request, total, [{"id": t.id, "name": t.name} for t in rows], limit, offset)


@router.post("", status_code=201, response_model=schemas.Tag, openapi_extra=grant(*SECTION, "Create tag"))
def create_tag(body: schemas.TagIn, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    tag = tags.create(db, ctx, name=body.name)
    return {"id": tag.id, "name": tag.name}


@router.patch("/{tag_id}", response_model=schemas.Tag, openapi_extra=grant(*SECTION, "Update tag"))
def update_tag(tag_id: str, body: schemas.TagIn, ctx: TenantContext = Depends(api_context),
               db: Session = Depends(get_db, scope="function")):
    tag = tags.rename(db, ctx, tag_id, body.name)
    return {"id": tag.id, "name": tag.name}


@router.delete("/{tag_id}", status_code=204, openapi_extra=grant(*SECTION, "Delete tag"))
def delete_tag(tag_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    tags.delete(db, ctx, tag_id)
    return RawJSON(b"", status_code=204)
