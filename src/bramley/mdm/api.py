"""The device door: PUT check-in and connect. Bare HTTP statuses, never a 401 (it can unenroll devices)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from bramley.mdm import service
from bramley.mdm.protocol import ProtocolError, decode_checkin
from bramley.tenancy import service as tenants

log = logging.getLogger("bramley.mdm")
router = APIRouter(prefix="/mdm/t/{subdomain}", include_in_schema=False)
CHECKIN_TYPE = "application/x-apple-aspen-mdm-checkin"
MAX_DEVICE_BODY = 4 * 1024 * 1024


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason


def _identity_hash(db, ctx, request: Request, body: bytes) -> str:
    """sha256 of the identity certificate: from Mdm-Signature, or from a TLS proxy's forwarded client cert."""
    from bramley.mdm import pki, signature

    ca_cert = pki.ca_cert(db, ctx)
    header = request.headers.get("mdm-signature")
    forwarded_name = request.app.state.settings.client_cert_header
    try:
        if header:
            cert = signature.verify_mdm_signature(header, body, ca_cert)
        elif forwarded_name and request.headers.get(forwarded_name):
            cert = signature.cert_from_forwarded_header(request.headers[forwarded_name], ca_cert)
        else:
            raise Refused(400, "no device identity")
    except signature.SignatureError as exc:
        raise Refused(400, f"bad identity: {exc}") from None
    return signature.cert_sha256(cert)


def _handle(request: Request, subdomain: str, body: bytes, kind: str) -> service.Reply:
    db_ = request.app.state.db
    with db_.unit_of_work() as db:
        tenant = tenants.get_by_subdomain(db, subdomain)
        if tenant is None:
            raise Refused(404, "unknown tenant")
        ctx = tenants.system_context(tenant)
        cert_hash = _identity_hash(db, ctx, request, body)
        try:
            if kind == "checkin":
                return service.checkin(db, ctx, cert_hash, decode_checkin(body))
            return service.connect(db, ctx, cert_hash, body)
        except (ProtocolError, service.IdentityMismatch) as exc:
            # Rolled back by raising: a refused request changes nothing.
            raise Refused(400, str(exc)) from None


async def _serve(request: Request, subdomain: str, kind: str) -> Response:
    body = await request.body()
    if len(body) > MAX_DEVICE_BODY:
        return Response(status_code=413)
    try:
        reply = await run_in_threadpool(_handle, request, subdomain, body, kind)
    except Refused as exc:
        log.info("device request refused (%s %s): %s", kind, exc.status, exc.reason)
        return Response(status_code=exc.status)
    return Response(reply.body, status_code=reply.status,
                    media_type=reply.content_type if reply.body else None)


@router.put("/checkin")
async def checkin(request: Request, subdomain: str):
    return await _serve(request, subdomain, "checkin")


@router.put("/connect")
async def connect(request: Request, subdomain: str):
    return await _serve(request, subdomain, "connect")


@router.put("/mdm")
async def combined(request: Request, subdomain: str):
    """One URL for both (NanoMDM style): check-ins are told apart by their Content-Type."""
    kind = "checkin" if request.headers.get("content-type", "").startswith(CHECKIN_TYPE) else "connect"
    return await _serve(request, subdomain, kind)
