"""Device door, enrollment half: the profile download and the SCEP CA. Bare statuses, never a 401.

GET  /mdm/t/{subdomain}/enroll[?code=]                      → 200 application/x-apple-aspen-config; 403 no/bad code
GET  /mdm/t/{subdomain}/scep?operation=GetCACaps            → 200 text/plain
GET  /mdm/t/{subdomain}/scep?operation=GetCACert            → 200 application/x-x509-ca-cert (DER)
POST /mdm/t/{subdomain}/scep?operation=PKIOperation         → 200 application/x-pki-message (binary body)
GET  /mdm/t/{subdomain}/scep?operation=PKIOperation&message=<base64>
Unknown tenant → 404; bad input → 400 (an empty body either way).
"""
from __future__ import annotations

import base64
import binascii
import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from bramley.mdm import enroll, scep
from bramley.tenancy import service as tenants
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.mdm.enroll")
router = APIRouter(prefix="/mdm/t/{subdomain}", include_in_schema=False)

# Exact Content-Types: strict SCEP clients compare the whole header, so never a "; charset".
CACAPS_TYPE = "text/plain"
CACERT_TYPE = "application/x-x509-ca-cert"
PKI_MESSAGE_TYPE = "application/x-pki-message"
MAX_SCEP_BODY = 64 * 1024


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _typed(body: bytes, content_type: str, **headers: str) -> Response:
    # media_type=None and the header set by hand: Starlette would append "; charset=utf-8" to text/plain.
    return Response(body, status_code=200, headers={"content-type": content_type, **headers})


def _tenant(db, subdomain: str) -> TenantContext:
    tenant = tenants.get_by_subdomain(db, subdomain)
    if tenant is None:
        raise Refused(404, "unknown tenant")
    return tenants.system_context(tenant)


def _base_url(request: Request) -> str:
    configured = request.app.state.settings.public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def _signer(request: Request) -> enroll.ProfileSigner | None:
    settings = request.app.state.settings
    if settings.enroll_signing_cert and settings.enroll_signing_key:
        return enroll.load_signer(settings.enroll_signing_cert, settings.enroll_signing_key)
    return None


def _profile(request: Request, subdomain: str, code: str | None) -> bytes:
    settings = request.app.state.settings
    with request.app.state.db.unit_of_work() as db:
        ctx = _tenant(db, subdomain)
        blueprint_id = None
        if code:
            token = enroll.use_enroll_code(db, ctx, code)
            if token is None:
                raise Refused(403, "enrollment code unknown, used or expired")
            blueprint_id = token.blueprint_id
        elif not settings.open_enrollment:
            raise Refused(403, "enrollment code required")
        return enroll.build_profile(db, ctx, base_url=_base_url(request), signer=_signer(request),
                                    blueprint_id=blueprint_id)


@router.get("/enroll")
async def enrollment_profile(request: Request, subdomain: str):
    try:
        body = await run_in_threadpool(_profile, request, subdomain, request.query_params.get("code"))
    except Refused as exc:
        log.info("enrollment profile refused (%s): %s", exc.status, exc.reason)
        return Response(status_code=exc.status)
    return _typed(body, enroll.PROFILE_CONTENT_TYPE, **{
        "content-disposition": f'attachment; filename="{subdomain}-enroll.mobileconfig"',
        "cache-control": "no-store",  # it carries a one-time challenge
    })


def _scep(request: Request, subdomain: str, operation: str, message: bytes | None) -> Response:
    # Only PKIOperation writes (the challenge, the issued certificate): on SQLite a write transaction waits for
    # the write lock, which the other two steps of every enrollment have no need of.
    with request.app.state.db.unit_of_work(write=operation == "PKIOperation") as db:
        ctx = _tenant(db, subdomain)
        if operation == "GetCACaps":
            return _typed(enroll.ca_caps().encode(), CACAPS_TYPE)
        if operation == "GetCACert":
            return _typed(enroll.ca_cert_der(db, ctx), CACERT_TYPE)
        if operation == "PKIOperation":
            if not message:
                raise Refused(400, "empty PKIOperation")
            try:
                return _typed(enroll.pki_operation(db, ctx, message), PKI_MESSAGE_TYPE)
            except scep.MalformedMessage as exc:
                raise Refused(400, f"malformed PKIOperation: {exc}") from None
    raise Refused(400, f"unknown operation {operation!r}")


def _query_message(request: Request) -> bytes | None:
    value = request.query_params.get("message")
    if value is None:
        return None
    # Clients that don't percent-encode lose '+' to the query parser as ' '; some send URL-safe base64.
    text = value.replace(" ", "+").replace("-", "+").replace("_", "/").strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "message is not base64") from None


@router.api_route("/scep", methods=["GET", "POST"])
async def scep_endpoint(request: Request, subdomain: str):
    operation = request.query_params.get("operation", "")
    try:
        if request.method == "POST":
            body = await request.body()
            if len(body) > MAX_SCEP_BODY:
                raise Refused(413, "PKIOperation too large")
            message = body
        else:
            message = _query_message(request) if operation == "PKIOperation" else None
        return await run_in_threadpool(_scep, request, subdomain, operation, message)
    except Refused as exc:
        log.info("SCEP %s refused (%s): %s", operation or "request", exc.status, exc.reason)
        return Response(status_code=exc.status)
