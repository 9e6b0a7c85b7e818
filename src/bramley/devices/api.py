"""Device routes (thin: parse, one service call, shape the reply)."""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import fields
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.routing import Route

from bramley.apiutil import RawJSON, limit_offset
from bramley.auth.door import api_context, api_read_along, api_read_context, api_read_only, get_db, run_db
from bramley.auth.permissions import grant
from bramley.devices import schemas
from bramley.devices import service as devices
from bramley.errors import InvalidField
from bramley.tenancy.context import TenantContext
from bramley.web import with_edge_headers

router = APIRouter(prefix="/api/v1/devices", tags=["Devices"])
INFO = "Device Information"
NOTES = "Device Notes"


FILTERS = [f.name for f in fields(devices.DeviceFilters)]


async def list_query(request: Request) -> tuple[devices.DeviceFilters, tuple[int, int], str | None]:
    """Filters, page and ordering, validated from the raw query in one step.

    Not FastAPI query parameters: its per-parameter handling of 22 of them cost more than the page's SQL.
    QUERY_PARAMETERS documents them instead. Unknown parameters are ignored. Called by the route after the door
    (a bad token's 401 comes before a bad query's 400), not as a dependency: one resolution less per request.
    """
    try:
        query = schemas.DeviceListQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)])
    page = await limit_offset(query.limit, query.offset)
    return devices.DeviceFilters(**{name: getattr(query, name) for name in FILTERS}), page, query.ordering


QUERY_PARAMETERS = [{"name": name, "in": "query", "required": False, "schema": schema}
                    for name, schema in schemas.DeviceListQuery.model_json_schema()["properties"].items()]


@router.get("", response_model=list[schemas.Device],
            openapi_extra={**grant("Devices", INFO, "Device list"), "parameters": QUERY_PARAMETERS})
async def list_devices() -> None:
    """Documents the route and its permission; `device_list`, added ahead of it below, serves it."""
    raise AssertionError("GET /api/v1/devices is served by device_list")


async def device_list(request: Request) -> RawJSON:
    """GET /api/v1/devices, for `DeviceListDoor` and the plain Starlette route below: the same door, query and
    answers as a FastAPI route, without its per-request dependency machinery, which cost as much CPU as reading a
    300-device page. Errors are raised as everywhere else and rendered by the app's handlers (web.py)."""
    request.scope["route"] = DEVICE_LIST  # as FastAPI's routes do: the door checks the token against its path
    try:
        query = await list_query(request)
    except (RequestValidationError, InvalidField) as exc:  # answered after the door, as Iru checks the token first
        query, bad_query = None, exc
    if query is not None and devices.is_whole_fleet(query[0], query[2]):
        # The commonest page, read on the database's reader (a pure read: no session, no worker thread); on
        # PostgreSQL in the token's own round trip.
        limit, offset = query[1]
        reader = request.app.state.db.reader
        if reader.dialect == "postgresql":
            ctx, docs = await api_read_along(request, devices.WHOLE_FLEET_PAGE_ALONG,
                                             {"limit": limit, "offset": offset})
            return RawJSON(devices.json_array(docs))
        ctx = await api_read_only(request)
        return RawJSON(await devices.whole_fleet_page(reader, ctx, limit=limit, offset=offset))
    async with _session(request) as db:
        ctx = await api_read_context(request, db)
        if query is None:
            raise bad_query
        filters, (limit, offset), ordering = query
        body = await run_db(request, partial(devices.list_json, db, ctx, filters=filters, limit=limit, offset=offset,
                                             ordering=ordering))
    return RawJSON(body)


class DeviceListDoor:
    """GET /api/v1/devices in front of the framework's middleware, as the device door is: connectors walk the whole
    fleet through it page after page, and the framework's layers cost as much as the page's own work. It does what
    those layers do for it: the edge's headers (web.with_edge_headers) and the app's error handlers. Anything else,
    a request with a body or a path to normalise included, goes on to `app`."""

    def __init__(self, app, api):
        self.app = app
        self.api = api  # the FastAPI app: its state and its exception handlers

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != DEVICE_LIST.path or scope["method"] != "GET" \
                or any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]):
            return await self.app(scope, receive, send)
        scope["app"] = self.api
        request = Request(scope, receive)
        try:
            response = await device_list(request)
        except Exception as exc:  # rendered by the handler the app would use (web.install_error_handlers)
            handlers = self.api.exception_handlers
            handler = next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)
            response = await handler(request, exc)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = with_edge_headers(message, scope, True)
            await send(message)

        await response(scope, receive, send_with_headers)


_session = asynccontextmanager(get_db)  # the request's transaction, as `Depends(get_db, scope="function")` runs it
# Ahead of the FastAPI route above, so the router matches it first; GET only (Starlette would add HEAD).
DEVICE_LIST = Route(router.prefix, device_list, methods=["GET"], include_in_schema=False)
DEVICE_LIST.methods = {"GET"}
router.routes.insert(0, DEVICE_LIST)


@router.get("/{device_id}", response_model=schemas.Device, openapi_extra=grant("Devices", INFO, "Device ID"))
def get_device(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return RawJSON(devices.device_json(db, ctx, device_id))


@router.patch("/{device_id}", response_model=schemas.Device, openapi_extra=grant("Devices", INFO, "Update device"))
def update_device(device_id: str, body: schemas.DevicePatch, ctx: TenantContext = Depends(api_context),
                  db: Session = Depends(get_db, scope="function")):
    given = {k: getattr(body, k) for k in body.model_fields_set}
    if "tags" in given:
        given["tag_names"] = given.pop("tags")
    device = devices.update(db, ctx, device_id, **given)
    return RawJSON(device.doc)


@router.delete("/{device_id}", status_code=204, openapi_extra=grant("Devices", INFO, "Delete device"))
def delete_device(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    devices.delete(db, ctx, device_id)
    return RawJSON(b"", status_code=204)


@router.get("/{device_id}/details", response_model=schemas.DeviceDetails,
            openapi_extra=grant("Devices", INFO, "Device details"))
def device_details(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.details(db, ctx, device_id)


@router.get("/{device_id}/apps", response_model=schemas.DeviceApps,
            openapi_extra=grant("Devices", INFO, "Application list"))
def device_apps(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.apps(db, ctx, device_id)


@router.get("/{device_id}/library-items", response_model=schemas.DeviceLibraryItems,
            openapi_extra=grant("Devices", INFO, "Library items"))
def device_library_items(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.library_items(db, ctx, device_id)


@router.get("/{device_id}/parameters", response_model=schemas.DeviceParameters,
            openapi_extra=grant("Devices", INFO, "Parameters"))
def device_parameters(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.parameters(db, ctx, device_id)


@router.get("/{device_id}/status", response_model=schemas.DeviceStatus,
            openapi_extra=grant("Devices", INFO, "Device status"))
def device_status(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.status(db, ctx, device_id)


@router.get("/{device_id}/notes", response_model=list[schemas.Note], openapi_extra=grant("Devices", NOTES, "List notes"))
def list_notes(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return [devices.note_dict(n) for n in devices.list_notes(db, ctx, device_id)]


@router.post("/{device_id}/notes", status_code=201, response_model=schemas.Note,
             openapi_extra=grant("Devices", NOTES, "Create note"))
def create_note(device_id: str, body: schemas.NoteIn, ctx: TenantContext = Depends(api_context),
                db: Session = Depends(get_db, scope="function")):
    return devices.note_dict(devices.create_note(db, ctx, device_id, content=body.content))


@router.get("/{device_id}/notes/{note_id}", response_model=schemas.Note,
            openapi_extra=grant("Devices", NOTES, "Get note"))
def get_note(device_id: str, note_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.note_dict(devices.get_note(db, ctx, device_id, note_id))


@router.patch("/{device_id}/notes/{note_id}", response_model=schemas.Note,
              openapi_extra=grant("Devices", NOTES, "Update note"))
def update_note(device_id: str, note_id: str, body: schemas.NoteIn, ctx: TenantContext = Depends(api_context),
                db: Session = Depends(get_db, scope="function")):
    return devices.note_dict(devices.update_note(db, ctx, device_id, note_id, content=body.content))


@router.delete("/{device_id}/notes/{note_id}", response_model=schemas.NoteDeleted,
               openapi_extra=grant("Devices", NOTES, "Delete note"))
def delete_note(device_id: str, note_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return devices.delete_note(db, ctx, device_id, note_id)
