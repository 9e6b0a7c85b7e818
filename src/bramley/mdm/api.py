"""The device door: PUT check-in and connect. Bare HTTP statuses, never a 401 (it can unenroll devices)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from bramley.mdm import service
from bramley.mdm.protocol import ProtocolError, decode_checkin, decode_report
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


def _identify(request: Request, subdomain: str, body: bytes, *, bound_device: bool = False):
    """The read half of every device-door request, before any write transaction (on SQLite writers take turns,
    so a turn should hold only the state change): the tenant (404), the identity certificate (400) and, for the
    agent door, the device whose enrollment that certificate is bound to. Returns (ctx, cert hash | device id)."""
    with request.app.state.db.unit_of_work(write=False) as db:
        tenant = tenants.name_by_subdomain(db, subdomain)
        if tenant is None:
            raise Refused(404, "unknown tenant")
        ctx = tenants.system_context(tenant)
        cert_hash = _identity_hash(db, ctx, request, body)
        if not bound_device:
            return ctx, cert_hash
        enrollment_id = service.bound_enrollment(db, ctx, cert_hash)
        enrollment = service._enrollment(db, ctx, enrollment_id) if enrollment_id else None
        if enrollment is None:
            raise Refused(400, "certificate not bound to an enrollment")
        return ctx, enrollment.device_id


def device_of_request(request: Request, subdomain: str, body: bytes):
    """(ctx, device_id) of a request signed by an enrolled device's identity: the check the agent door (/agent/…)
    shares with check-ins. Refused(404) for an unknown tenant, Refused(400) without a bound identity."""
    return _identify(request, subdomain, body, bound_device=True)


def _handle(request: Request, subdomain: str, body: bytes, kind: str) -> service.Reply:
    ctx, cert_hash = _identify(request, subdomain, body)
    try:
        message = decode_checkin(body) if kind == "checkin" else decode_report(body)
        with request.app.state.db.unit_of_work() as db:
            if kind == "checkin":
                return service.checkin(db, ctx, cert_hash, message)
            return service.connect(db, ctx, cert_hash, message)
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
