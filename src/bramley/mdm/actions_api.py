"""Iru device action routes, the command history and lost-mode details."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from bramley.apiutil import RawJSON, lenient_body, limit_offset, offset_envelope
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.devices import service as devices
from bramley.devices.render import iso_z
from bramley.errors import RuleViolation
from bramley.mdm import actions, queue
from bramley.mdm.commands import ACTIONS
from bramley.tenancy.context import TenantContext

router = APIRouter(prefix="/api/v1/devices", tags=["Device actions"])
STATUS_CODES = {"Pending": 1, "Sent": 2, "Acknowledged": 3, "Error": 4, "CommandFormatError": 4, "NotNow": 5}


class PinReply(BaseModel):
    PIN: str


def _base_url(request: Request) -> str:
    configured = request.app.state.settings.public_url
    return (configured or f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}").rstrip("/")


def _register(name: str, label: str) -> None:
    def run_action(device_id: str, request: Request, body: dict = Depends(lenient_body),
                   ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
        reply = actions.perform(db, ctx, device_id, name, body, base_url=_base_url(request))
        if reply is None:
            return RawJSON(b"", status_code=200)
        return reply

    run_action.__name__ = f"action_{name}"
    router.add_api_route(f"/{{device_id}}/action/{name}", run_action, methods=["POST"],
                         response_model=PinReply if name == "lock" else None,
                         openapi_extra=grant("Devices", "Device Actions", label),
                         responses={200: {"description": "Sent; empty body (a Mac lock returns its PIN)"}})


for _action in ACTIONS.values():
    _register(_action.name, _action.label)


class CommandOut(BaseModel):
    uuid: str
    error_chain: list[dict[str, Any]]
    command_type: str
    request_type: str
    metadata: dict[str, Any]
    request_requires_network_tether: bool
    status: int
    attempts: int
    date_requested: str | None
    date_completed: str | None
    last_pushed: str | None
    user: Any
    priority: int


class CommandPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[CommandOut]


class DeviceCommands(BaseModel):
    device_id: str
    commands: CommandPage


def _chain(chain: list[dict]) -> list[dict]:
    return [{"code": e.get("ErrorCode"), "domain": e.get("ErrorDomain", ""),
             "localized_description": e.get("LocalizedDescription", ""),
             "us_english_description": e.get("USEnglishDescription", "")} for e in chain]


@router.get("/{device_id}/commands", response_model=DeviceCommands,
            openapi_extra=grant("Devices", "Device Information", "Device commands"))
def list_commands(device_id: str, request: Request, page: tuple[int, int] = Depends(limit_offset),
                  ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    limit, offset = page
    device = devices.get_or_raise(db, ctx, device_id)
    total, rows = queue.history_page(db, ctx, device.id, limit=limit, offset=offset)
    results = [{
        "uuid": r.command_uuid, "error_chain": _chain(r.error_chain or []), "command_type": r.request_type,
        "request_type": r.request_type, "metadata": {"status": r.status}, "request_requires_network_tether": False,
        "status": STATUS_CODES.get(r.status, 4), "attempts": r.attempts, "date_requested": iso_z(r.created_at),
        "date_completed": iso_z(r.completed_at), "last_pushed": None, "user": None, "priority": 0,
    } for r in rows]
    return {"device_id": device.id, "commands": offset_envelope(request, total, results, limit, offset)}


@router.get("/{device_id}/details/lostmode", openapi_extra=grant("Devices", "Device Information", "Lost mode details"))
def lost_mode_details(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    device = devices.get_or_raise(db, ctx, device_id)
    if device.platform not in ("iPhone", "iPad") or device.lost_mode_status in ("", None):
        raise RuleViolation("Device is not in lost mode.")
    section = devices.inventory_section(db, ctx, device.id, "lost_mode") or {}
    return {"device_id": device.id, "lost_mode": {**section, "lost_mode_status": device.lost_mode_status}}


@router.delete("/{device_id}/details/lostmode", openapi_extra=grant("Devices", "Device Actions", "Cancel lost mode"))
def cancel_lost_mode(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    """Clears a lost mode stuck in error (the device is not told; disablelostmode does that)."""
    device = devices.get_or_raise(db, ctx, device_id)
    if device.lost_mode_status not in ("ERROR", "PENDING"):
        raise RuleViolation("Device is not in lost mode.")
    devices.report(db, ctx, device.id, columns={"lost_mode_status": ""})
    return RawJSON(b"", status_code=200)
