"""Device secret routes (Iru §3.2). Thin: one service call each; the service audits every read."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from bramley.auth.door import api_context
from bramley.auth.permissions import grant
from bramley.secrets import schemas
from bramley.secrets import service as secrets
from bramley.tenancy.context import TenantContext
from bramley.web import JSONBody

router = APIRouter(prefix="/api/v1/devices", tags=["Device Secrets"])
GROUP = "Device Secrets"
NO_STORE = {"Cache-Control": "no-store"}  # keep secrets out of proxy and client caches


def _reply(body: dict) -> JSONBody:
    return JSONBody(body, headers=NO_STORE)


def _read(request: Request, ctx: TenantContext, device_id: str, kinds: list[str]) -> dict[str, str | None]:
    """Read and audit in a write transaction of its own, committed before the value leaves: a read whose audit
    event cannot be stored discloses nothing. (The door's session is a read transaction on GET.)"""
    with request.app.state.db.unit_of_work() as db:
        return secrets.device_secrets(db, ctx, device_id, kinds)


@router.get("/{device_id}/secrets/bypasscode", response_model=schemas.BypassCode,
            openapi_extra=grant("Devices", GROUP, "Activation Lock bypass code"))
def bypass_code(device_id: str, request: Request, ctx: TenantContext = Depends(api_context)):
    found = _read(request, ctx, device_id, [secrets.BYPASS_CODE_USER, secrets.BYPASS_CODE_DEVICE])
    return _reply({"user_based_albc": found[secrets.BYPASS_CODE_USER],
                   "device_based_albc": found[secrets.BYPASS_CODE_DEVICE]})


@router.get("/{device_id}/secrets/filevaultkey", response_model=schemas.FileVaultKey,
            openapi_extra=grant("Devices", GROUP, "FileVault recovery key"))
def filevault_key(device_id: str, request: Request, ctx: TenantContext = Depends(api_context)):
    found = _read(request, ctx, device_id, [secrets.FILEVAULT_PRK])
    return _reply({"key": found[secrets.FILEVAULT_PRK]})


@router.get("/{device_id}/secrets/unlockpin", response_model=schemas.UnlockPin,
            openapi_extra=grant("Devices", GROUP, "Unlock PIN"))
def unlock_pin(device_id: str, request: Request, ctx: TenantContext = Depends(api_context)):
    found = _read(request, ctx, device_id, [secrets.UNLOCK_PIN])
    return _reply({"pin": found[secrets.UNLOCK_PIN]})


@router.get("/{device_id}/secrets/recoverypassword", response_model=schemas.RecoveryPassword,
            openapi_extra=grant("Devices", GROUP, "Recovery lock password"))
def recovery_password(device_id: str, request: Request, ctx: TenantContext = Depends(api_context)):
    found = _read(request, ctx, device_id, [secrets.RECOVERY_PASSWORD])
    return _reply({"recovery_password": found[secrets.RECOVERY_PASSWORD]})
