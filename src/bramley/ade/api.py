"""ADE routes (reference §3.5): the public key, integrations (server tokens), their devices. Thin."""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response

from bramley.ade import schemas
from bramley.ade import service as ade
from bramley.ade.token import MAX_TOKEN_BYTES
from bramley.apiutil import RawJSON, Text, lenient_body, not_a_dict, page_url, parse_bool
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.config import Settings
from bramley.errors import InvalidField, NotFound
from bramley.tenancy.context import TenantContext

router = APIRouter(prefix="/api/v1/integrations/apple/ade", tags=["Automated Device Enrollment"])
SECTION = ("Integrations", "Automated Device Enrollment")
CERT_TYPE = "application/x-x509-ca-cert"  # exactly: one caller parses anything else as JSON
FORM_FIELDS = ("blueprint_id", "phone", "email", "use_blueprint_routing")


# -- paging (style C: `page`, 300 a page) ------------------------------------------------------------------------

async def page_number(page: Text | None = Query(None, description="Page number; 300 records a page.")) -> int:
    if page is None or page == "":
        return 1
    try:
        number = int(page)
    except ValueError:
        number = 0
    if number < 1:
        raise HTTPException(404, "Invalid page.")
    return number


def _envelope(request: Request, total: int, page: int, results: list) -> dict:
    """Past the last page is an empty page, not an error: callers walking `page+1` stop on it."""
    pages = -(-total // ade.PAGE_SIZE)
    nxt = page_url(request, page=page + 1) if page < pages else None
    prev = None
    if page > 1:
        target = min(page - 1, max(pages, 1))
        prev = page_url(request, page=target if target > 1 else None)
    return {"count": total, "next": nxt, "previous": prev, "results": results}


# -- bodies ------------------------------------------------------------------------------------------------------

def _clean(fields: dict) -> dict:
    out = {}
    for name in FORM_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name == "use_blueprint_routing":
            value = parse_bool(value, name)
        elif name == "blueprint_id" and value == "":
            value = None
        out[name] = value
    return out


async def token_upload(request: Request) -> ade.TokenUpload:
    """The create/renew form: multipart (file part `file`), urlencoded or JSON fields (then no file)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload = ade.TokenUpload()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_files=4, max_fields=64) as form:
            fields: dict = {}
            for key, value in form.multi_items():
                if key == "file":
                    if isinstance(value, UploadFile):
                        upload.file = await value.read(MAX_TOKEN_BYTES + 1)
                        upload.filename = (value.filename or "")[:255]
                    else:
                        upload.file_is_text = True
                elif isinstance(value, str):
                    if "\x00" in value:
                        raise InvalidField({key: ["Null characters are not allowed."]})
                    fields.setdefault(key, value)
    elif ctype in ("application/json", ""):
        raw = await request.body()
        fields = {}
        if raw.strip():
            try:
                fields = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidField({"non_field_errors": [f"JSON parse error - {exc}"]}) from None
            if not isinstance(fields, dict):
                raise InvalidField({"non_field_errors": [not_a_dict(fields)]})
            if "file" in fields:
                upload.file_is_text = True
    else:
        raise HTTPException(415, f'Unsupported media type "{request.headers.get("content-type")}" in request.')
    for name in ("blueprint_id", "phone", "email"):
        if name in fields and fields[name] is not None and not isinstance(fields[name], str):
            raise InvalidField({name: ["Not a valid string."]})
        if isinstance(fields.get(name), str) and "\x00" in fields[name]:
            raise InvalidField({name: ["Null characters are not allowed."]})
    upload.fields = _clean(fields)
    return upload


UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"blueprint_id": {"type": "string", "description": "The default blueprint ID"},
                   "phone": {"type": "string"}, "email": {"type": "string"},
                   "use_blueprint_routing": {"type": "boolean"},
                   "file": {"type": "string", "format": "binary",
                            "description": "MDM server token (.p7m) from Apple Business or School Manager"}}}}}}}


class IntegrationPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    blueprint_id: str | None = None
    phone: str | None = None
    email: str | None = None
    use_blueprint_routing: bool | None = None


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    blueprint_id: str | None = None
    user_id: str | int | None = None
    asset_tag: str | None = None
    use_blueprint_routing: bool | None = None
    blueprint: str | None = None  # older callers
    user: str | int | None = None


def _json_body(model) -> dict:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}}}


def _profile_url(request: Request, ctx: TenantContext) -> str:
    """Where Setup Assistant sends a device: this server's enrollment endpoint for the tenant."""
    settings: Settings = request.app.state.settings
    base = (settings.public_url or f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}")
    return f"{base.rstrip('/')}/mdm/t/{ctx.subdomain}/enroll"


# -- routes: static paths first, so `public_key` and `devices` are not taken for an id ---------------------------

@router.get("/public_key", response_class=Response, openapi_extra=grant(*SECTION, "Download ADE public key"),
            responses={200: {"description": "PEM certificate to upload to Apple Business Manager",
                             "content": {CERT_TYPE: {"schema": {"type": "string"}}}}})
def public_key(request: Request, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    pem = ade.public_certificate(db, ctx)
    if pem is None:
        # A read request's transaction cannot take the write lock safely: the key is made in one of its own.
        with request.app.state.db.unit_of_work() as w:
            pem = ade.ensure_key(w, ctx)
    return Response(pem.encode(), media_type=CERT_TYPE)


@router.get("/devices", response_model=schemas.ADEDevicePage, openapi_extra=grant(*SECTION, "List ADE devices"))
def list_all_devices(request: Request, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function"),
                     page: int = Depends(page_number), blueprint_id: Text | None = None,
                     user_id: Text | None = None, dep_account: Text | None = None, device_family: Text | None = None,
                     model: Text | None = None, os: Text | None = None, profile_status: Text | None = None,
                     serial_number: Text | None = None):
    filters = ade.DeviceFilters(blueprint_id=blueprint_id, user_id=user_id, dep_account=dep_account,
                                device_family=device_family, model=model, os=os, profile_status=profile_status,
                                serial_number=serial_number)
    total, results = ade.list_devices(db, ctx, filters=filters, page=page)
    return RawJSON(orjson.dumps(_envelope(request, total, page, results)))


@router.get("/devices/{device_id}", response_model=schemas.ADEDevice,
            openapi_extra=grant(*SECTION, "Get ADE device"))
def get_device(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return RawJSON(orjson.dumps(ade.device_dict(db, ctx, device_id)))


@router.patch("/devices/{device_id}", response_model=schemas.ADEDevice,
              openapi_extra={**grant(*SECTION, "Update ADE device"), **_json_body(DevicePatch)})
def update_device(device_id: str, raw: dict = Depends(lenient_body), ctx: TenantContext = Depends(api_context),
                  db: Session = Depends(get_db, scope="function")):
    ade.get_device_or_raise(db, ctx, device_id)  # an unknown id is 404 before its body is judged
    changes = _device_changes(raw)
    return RawJSON(orjson.dumps(ade.update_device(db, ctx, device_id, changes)))


def _device_changes(raw: dict) -> dict:
    changes: dict = {}
    aliases = {"blueprint": "blueprint_id", "user": "user_id"}
    for name in ("blueprint_id", "user_id", "asset_tag", "use_blueprint_routing", "blueprint", "user"):
        if name not in raw:
            continue
        target = aliases.get(name, name)
        if target in changes and name in aliases:
            continue  # the current name wins over the legacy one
        value = raw[name]
        if target == "use_blueprint_routing":
            value = parse_bool(value, name)
        elif target == "blueprint_id" and value is not None and not isinstance(value, str):
            raise InvalidField({name: [f'Invalid pk "{value}" - object does not exist.']})
        elif target == "user_id" and value is not None and (not isinstance(value, (str, int))
                                                            or isinstance(value, bool)):
            raise InvalidField({name: [f'Invalid pk "{value}" - object does not exist.']})
        elif target == "asset_tag" and value is not None:
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise InvalidField({name: ["Not a valid string."]})
            value = str(value)
            if len(value) > 255:
                raise InvalidField({name: ["Ensure this field has no more than 255 characters."]})
        changes[target] = value
    return changes


@router.get("", response_model=schemas.IntegrationPage, openapi_extra=grant(*SECTION, "List ADE integrations"))
def list_integrations(request: Request, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function"),
                      page: int = Depends(page_number)):
    total, rows = ade.list_page(db, ctx, page=page)
    return RawJSON(orjson.dumps(_envelope(request, total, page, ade.integration_dicts(db, ctx, rows))))


@router.post("", response_model=schemas.Integration,
             openapi_extra={**grant(*SECTION, "Create ADE integration"), **UPLOAD_BODY})
def create_integration(request: Request, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function"),
                       upload: ade.TokenUpload = Depends(token_upload)):
    row = ade.create(db, ctx, upload, profile_url=_profile_url(request, ctx))
    return RawJSON(orjson.dumps(ade.integration_dict(db, ctx, row)))


@router.get("/{ade_token_id}", response_model=schemas.Integration, openapi_extra=grant(*SECTION, "Get ADE integration"))
def get_integration(ade_token_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return RawJSON(orjson.dumps(ade.integration_dict(db, ctx, ade.get_or_raise(db, ctx, ade_token_id))))


@router.patch("/{ade_token_id}", response_model=schemas.Integration,
              openapi_extra={**grant(*SECTION, "Update ADE integration"), **_json_body(IntegrationPatch)})
def update_integration(ade_token_id: str, raw: dict = Depends(lenient_body),
                       ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    ade.get_or_raise(db, ctx, ade_token_id)
    for name in ("blueprint_id", "phone", "email"):
        if name in raw and raw[name] is not None and not isinstance(raw[name], str):
            raise InvalidField({name: ["Not a valid string."]})
    row = ade.update(db, ctx, ade_token_id, _clean(raw))
    return RawJSON(orjson.dumps(ade.integration_dict(db, ctx, row)))


@router.delete("/{ade_token_id}", status_code=204, openapi_extra=grant(*SECTION, "Delete ADE integration"))
def delete_integration(ade_token_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    ade.delete(db, ctx, ade_token_id)
    return RawJSON(b"", status_code=204)


@router.post("/{ade_token_id}/renew", response_model=schemas.Integration,
             openapi_extra={**grant(*SECTION, "Renew ADE integration"), **UPLOAD_BODY})
def renew_integration(ade_token_id: str, request: Request, ctx: TenantContext = Depends(api_context),
                      db: Session = Depends(get_db, scope="function"), upload: ade.TokenUpload = Depends(token_upload)):
    row = ade.renew(db, ctx, ade_token_id, upload, profile_url=_profile_url(request, ctx))
    return RawJSON(orjson.dumps(ade.integration_dict(db, ctx, row)))


@router.get("/{ade_token_id}/devices", response_model=schemas.ADEDevicePage,
            openapi_extra=grant(*SECTION, "ADE device list"))
def list_token_devices(ade_token_id: str, request: Request, ctx: TenantContext = Depends(api_context),
                       db: Session = Depends(get_db, scope="function"), page: int = Depends(page_number)):
    row = ade.get(db, ctx, ade_token_id)
    if row is None:
        raise NotFound("ade integration")
    total, results = ade.list_devices(db, ctx, integration_id=row.id, page=page)
    return RawJSON(orjson.dumps(_envelope(request, total, page, results)))
