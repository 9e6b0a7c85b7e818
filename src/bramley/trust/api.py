"""Trust routes: verdicts and settings on the Iru door (/api/v1/trust/…), agent reports on the device door
(/agent/t/<sub>/…, bare statuses, identity as for MDM check-ins)."""
from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from sqlalchemy.orm import Session

from bramley.apiutil import Text, lenient_body, limit_offset, offset_envelope, parse_bool
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.errors import InvalidField, NotFound, RuleViolation
from bramley.tenancy.context import TenantContext
from bramley.trust import schemas
from bramley.trust import service as trust

log = logging.getLogger("bramley.trust")
router = APIRouter()
SECTION = ("Devices", "Device Trust")
AGENT_VERSION_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-+_ ()")
MAX_AGENT_BODY = 64 * 1024


@router.get("/api/v1/trust/devices", response_model=schemas.TrustVerdictPage, tags=["Device Trust"],
            openapi_extra=grant(*SECTION, "Trust verdicts"),
            description="Each device's verdict under the verification rule, with the rules it fails and why. "
                        "With `serial_number` (exact): that serial's verdicts, one saying \"not managed here\" when "
                        "the tenant does not know it. `verified` filters on the outcome.")
def list_verdicts(request: Request, ctx: TenantContext = Depends(api_context), serial_number: Text | None = None,
                  verified: str | None = None, page: tuple[int, int] = Depends(limit_offset),
                  db: Session = Depends(get_db, scope="function")):
    wanted = parse_bool(verified, "verified") if verified not in (None, "") else None
    limit, offset = page
    if serial_number is not None and serial_number.strip():
        results = trust.lookup(db, ctx, serial_number, verified=wanted)
        return {"count": len(results), "next": None, "previous": None, "results": results}
    total, results = trust.list_page(db, ctx, verified=wanted, limit=limit, offset=offset)
    return offset_envelope(request, total, results, limit, offset)


@router.get("/api/v1/trust/devices/{device_id}", response_model=schemas.TrustVerdict, tags=["Device Trust"],
            openapi_extra=grant(*SECTION, "Trust verdict"))
def get_verdict(device_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return trust.get_device(db, ctx, device_id)


@router.get("/api/v1/trust/settings", response_model=schemas.TrustSettings, tags=["Device Trust"],
            openapi_extra=grant(*SECTION, "Trust settings"))
def get_settings(ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return trust.get_settings(db, ctx)


@router.patch("/api/v1/trust/settings", response_model=schemas.TrustSettings, tags=["Device Trust"],
              openapi_extra={**grant(*SECTION, "Update trust settings"), "requestBody": {
                  "required": True,
                  "content": {"application/json": {"schema": schemas.TrustSettingsPatch.model_json_schema()}}}})
def update_settings(ctx: TenantContext = Depends(api_context), raw: dict = Depends(lenient_body),
                    db: Session = Depends(get_db, scope="function")):
    if "window_days" not in raw:
        raise InvalidField({"window_days": ["This field is required."]})
    value = raw["window_days"]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # form bodies carry numbers as text
        value = int(value)
    return trust.update_settings(db, ctx, window_days_value=value)


# --- the agent door -------------------------------------------------------------------------------------

def _agent_version(body: bytes) -> str:
    """{"agent_version": "4.2.1"}: the only field; anything else about the device comes from MDM."""
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise ValueError("body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("body is not a JSON object")
    version = data.get("agent_version", "")
    if not isinstance(version, str) or len(version) > 32 or not set(version) <= AGENT_VERSION_CHARS:
        raise ValueError("agent_version must be a short version string")
    return version.strip()


def _agent(request: Request, subdomain: str, body: bytes, installed: bool) -> None:
    """Reads first (tenant, identity, body), as the MDM door does: on SQLite writers take turns, so the write
    transaction holds only the change."""
    from bramley.mdm.api import Refused, device_of_request

    ctx, device_id = device_of_request(request, subdomain, body)
    try:
        version = _agent_version(body)
        if installed and not version:
            raise ValueError("agent_version is required")
        with request.app.state.db.unit_of_work() as db:
            trust.agent_report(db, ctx, device_id, installed=installed, version=version)
    except (ValueError, RuleViolation, NotFound) as exc:
        raise Refused(400, str(exc)) from None  # rolled back: a refused report changes nothing


async def _serve_agent(request: Request, subdomain: str, installed: bool) -> Response:
    from bramley.mdm.api import Refused

    body = await request.body()
    if len(body) > MAX_AGENT_BODY:
        return Response(status_code=413)
    try:
        await run_in_threadpool(_agent, request, subdomain, body, installed)
    except Refused as exc:
        log.info("agent request refused (%s): %s", exc.status, exc.reason)
        return Response(status_code=exc.status)
    return Response(status_code=204)


@router.post("/agent/t/{subdomain}/checkin", include_in_schema=False)
async def agent_checkin(request: Request, subdomain: str):
    """The agent's periodic report: {"agent_version": "…"}, signed like an MDM check-in."""
    return await _serve_agent(request, subdomain, installed=True)


@router.post("/agent/t/{subdomain}/uninstall", include_in_schema=False)
async def agent_uninstall(request: Request, subdomain: str):
    """The agent's last word before its uninstaller removes it."""
    return await _serve_agent(request, subdomain, installed=False)
