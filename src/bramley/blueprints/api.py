"""Blueprint routes. Create/update accept JSON, urlencoded or multipart, dotted keys or nested (§2.2)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bramley.apiutil import RawJSON, Text, lenient_body, limit_offset, offset_envelope, parse_bool
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.blueprints import schemas
from bramley.blueprints import service as blueprints
from bramley.errors import InvalidField
from bramley.library import service as library
from bramley.tenancy.context import TenantContext

router = APIRouter(prefix="/api/v1/blueprints", tags=["Blueprints"])
SECTION = ("Blueprints", "Blueprints Management")


class EnrollmentCodeIn(BaseModel):
    code: str | None = Field(None, max_length=32)
    is_active: bool | None = None


class SourceIn(BaseModel):
    type: str
    id: str


class BlueprintIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, max_length=255)
    enrollment_code: EnrollmentCodeIn | None = None
    color: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=10_000)
    icon: str | None = Field(None, max_length=64)
    type: str | None = None
    source: SourceIn | None = None


class EnrollmentCodeCreate(EnrollmentCodeIn):
    is_active: bool


class BlueprintCreate(BlueprintIn):
    """The documented create body: what PATCH may leave out, create requires."""

    name: str = Field(min_length=1, max_length=255)
    enrollment_code: EnrollmentCodeCreate
    type: Literal["classic", "map"] | None = None


class LibraryItemRef(BaseModel):
    library_item_id: Text
    assignment_node_id: Text | None = None


def _body_schema(model) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _counts(db: Session, ctx: TenantContext, bps: list) -> list[dict]:
    from bramley.devices import service as devices

    counts = devices.counts_for_blueprints(db, ctx, [b.id for b in bps])
    return [{
        "id": b.id, "name": b.name, "icon": b.icon, "color": b.color, "description": b.description,
        "params": b.params, "computers_count": counts.get(b.id, (0, 0))[0],
        "missing_computers_count": counts.get(b.id, (0, 0))[1],
        "enrollment_code": {"code": b.enrollment_code, "is_active": b.enrollment_code_active}, "type": b.type,
    } for b in bps]


def _parse(raw: dict) -> BlueprintIn:
    code = raw.get("enrollment_code")
    if isinstance(code, dict) and "is_active" in code and isinstance(code["is_active"], str):
        code["is_active"] = parse_bool(code["is_active"], "enrollment_code.is_active")
    try:
        return BlueprintIn.model_validate(raw)
    except ValueError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():  # type: ignore[attr-defined]
            errors.setdefault(".".join(str(p) for p in err["loc"]), []).append(err["msg"])
        raise InvalidField(errors) from None


@router.get("", response_model=schemas.BlueprintPage, openapi_extra=grant(*SECTION, "List blueprints"))
def list_blueprints(request: Request, id: str | None = None, id__in: str | None = None,
                    name: str | None = None, page: tuple[int, int] = Depends(limit_offset),
                    ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    limit, offset = page
    ids = None
    if id or id__in:
        ids = ([id] if id else []) + [i.strip() for i in (id__in or "").split(",") if i.strip()]
    total, rows = blueprints.list_page(db, ctx, ids=ids, name=name, limit=limit, offset=offset)
    return offset_envelope(request, total, _counts(db, ctx, rows), limit, offset)


@router.post("", status_code=201, response_model=schemas.Blueprint,
             openapi_extra={**grant(*SECTION, "Create blueprint"), **_body_schema(BlueprintCreate)})
def create_blueprint(raw: dict = Depends(lenient_body), ctx: TenantContext = Depends(api_context),
                     db: Session = Depends(get_db, scope="function")):
    body = _parse(raw)
    code = body.enrollment_code or EnrollmentCodeIn()
    if code.is_active is None:
        raise InvalidField({"enrollment_code.is_active": ["This field is required."]})
    bp = blueprints.create(
        db, ctx, name=body.name or "", enrollment_code_active=code.is_active, enrollment_code=code.code,
        color=body.color, description=body.description, icon=body.icon, type=body.type or "classic",
        source_type=body.source.type if body.source else None, source_id=body.source.id if body.source else None)
    return _counts(db, ctx, [bp])[0]


@router.get("/{blueprint_id}", response_model=schemas.Blueprint, openapi_extra=grant(*SECTION, "Get blueprint"))
def get_blueprint(blueprint_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return _counts(db, ctx, [blueprints.get_or_raise(db, ctx, blueprint_id)])[0]


@router.patch("/{blueprint_id}", response_model=schemas.Blueprint,
              openapi_extra={**grant(*SECTION, "Update blueprint"), **_body_schema(BlueprintIn)})
def update_blueprint(blueprint_id: str, raw: dict = Depends(lenient_body),
                     ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    body = _parse(raw)
    changes = {k: getattr(body, k) for k in body.model_fields_set if k in ("name", "color", "description", "icon")}
    if body.enrollment_code is not None:
        if body.enrollment_code.code is not None:
            changes["enrollment_code"] = body.enrollment_code.code
        if body.enrollment_code.is_active is not None:
            changes["enrollment_code_active"] = body.enrollment_code.is_active
    bp = blueprints.update(db, ctx, blueprint_id, changes)
    return _counts(db, ctx, [bp])[0]


@router.delete("/{blueprint_id}", status_code=204, openapi_extra=grant(*SECTION, "Delete blueprint"))
def delete_blueprint(blueprint_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    blueprints.delete(db, ctx, blueprint_id)
    return RawJSON(b"", status_code=204)


@router.get("/{blueprint_id}/list-library-items", openapi_extra=grant(*SECTION, "List library items"))
def list_library_items(blueprint_id: str, request: Request, page: tuple[int, int] = Depends(limit_offset),
                       ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    limit, offset = page
    bp = blueprints.get_or_raise(db, ctx, blueprint_id)
    total, rows = library.blueprint_items(db, ctx, bp.id, limit=limit, offset=offset)
    return offset_envelope(request, total, rows, limit, offset)


@router.post("/{blueprint_id}/assign-library-item", response_model=list[str],
             openapi_extra=grant(*SECTION, "Assign library item"))
def assign_library_item(blueprint_id: str, body: LibraryItemRef, ctx: TenantContext = Depends(api_context),
                        db: Session = Depends(get_db, scope="function")):
    bp = blueprints.get_or_raise(db, ctx, blueprint_id)
    return library.assign(db, ctx, bp, body.library_item_id, body.assignment_node_id)


@router.post("/{blueprint_id}/remove-library-item", response_model=list[str],
             openapi_extra=grant(*SECTION, "Remove library item"))
def remove_library_item(blueprint_id: str, body: LibraryItemRef, ctx: TenantContext = Depends(api_context),
                        db: Session = Depends(get_db, scope="function")):
    bp = blueprints.get_or_raise(db, ctx, blueprint_id)
    return library.remove(db, ctx, bp, body.library_item_id, body.assignment_node_id)


