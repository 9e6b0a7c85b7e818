"""Enrollment rules: one-time enrollment codes, the enrollment profile, SCEP challenges and issuance.

Who may download a profile: `GET /mdm/t/<sub>/enroll` wants `?code=<enrollment code>` (minted by an admin,
`bramley mdm enroll-code`, one use, 7 days by default) unless the setting `open_enrollment` is on; then anyone who
can reach the URL gets a profile (a code, if given, must still be valid: it carries the blueprint).

Each profile carries a fresh SCEP challenge: random, stored hashed, one use, valid `CHALLENGE_TTL`. The SCEP CA
issues an identity only against an unused, unexpired challenge of the same tenant (renewals signed by a current
identity of the tenant need none). Flushes, never commits.
"""
from __future__ import annotations

import hashlib
import logging
import plistlib
import secrets as pyrandom
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import update
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.mdm import pki, scep
from bramley.mdm.models import EnrollmentToken
from bramley.mdm.signature import SignatureError, check_identity
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.mdm.enroll")

ENROLL_CODE = "enroll_code"
SCEP_CHALLENGE = "scep_challenge"
ENROLL_CODE_TTL = timedelta(days=7)
# Long enough for a person to open System Settings and approve the downloaded profile; short enough that a
# leaked profile is soon useless. One use either way.
CHALLENGE_TTL = timedelta(hours=1)
ACCESS_RIGHTS = 8191
SERVER_CAPABILITIES = ["com.apple.mdm.per-user-connections", "com.apple.mdm.bootstraptoken"]
PROFILE_CONTENT_TYPE = "application/x-apple-aspen-config"
# Unambiguous when read aloud or typed: no 0/O, 1/I/L.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


# -- one-time tokens ----------------------------------------------------------------------------------------------


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _normalize_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def _mint(db: Session, ctx: TenantContext, kind: str, value: str, ttl: timedelta, blueprint_id: str | None) -> None:
    db.add(EnrollmentToken(tenant_id=ctx.tenant_id, token_hash=_hash(value), kind=kind, blueprint_id=blueprint_id,
                           expires_at=utcnow() + ttl))
    db.flush()


def _consume(db: Session, ctx: TenantContext, kind: str, value: str) -> EnrollmentToken | None:
    """Mark a token used, atomically: of two concurrent uses exactly one wins. None if unknown/used/expired."""
    now = utcnow()
    token_hash = _hash(value)
    result = db.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.tenant_id == ctx.tenant_id, EnrollmentToken.token_hash == token_hash,
               EnrollmentToken.kind == kind, EnrollmentToken.used_at.is_(None), EnrollmentToken.expires_at > now)
        .values(used_at=now),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount != 1:
        return None
    return db.get(EnrollmentToken, (ctx.tenant_id, token_hash), populate_existing=True)


def mint_enroll_code(db: Session, ctx: TenantContext, *, ttl: timedelta = ENROLL_CODE_TTL,
                     blueprint_id: str | None = None) -> str:
    """A one-time enrollment code (shown once; stored hashed), e.g. `7KQ4-M9XD-2HTA-PWCE`."""
    raw = "".join(pyrandom.choice(_CODE_ALPHABET) for _ in range(16))
    _mint(db, ctx, ENROLL_CODE, raw, ttl, blueprint_id)
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def use_enroll_code(db: Session, ctx: TenantContext, code: str) -> EnrollmentToken | None:
    return _consume(db, ctx, ENROLL_CODE, _normalize_code(code))


def mint_challenge(db: Session, ctx: TenantContext, *, ttl: timedelta = CHALLENGE_TTL,
                   blueprint_id: str | None = None) -> str:
    """A one-time SCEP challenge. Hex, so it fits the PrintableString some clients put challengePassword in."""
    value = pyrandom.token_hex(16)
    _mint(db, ctx, SCEP_CHALLENGE, value, ttl, blueprint_id)
    return value


def use_challenge(db: Session, ctx: TenantContext, challenge: str) -> EnrollmentToken | None:
    return _consume(db, ctx, SCEP_CHALLENGE, challenge)


# -- the enrollment profile --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSigner:
    cert: x509.Certificate
    key: object
    chain: tuple[x509.Certificate, ...] = ()

    def sign(self, body: bytes) -> bytes:
        builder = pkcs7.PKCS7SignatureBuilder().set_data(body).add_signer(self.cert, self.key, hashes.SHA256())
        for extra in self.chain:
            builder = builder.add_certificate(extra)
        # Binary: without it, cryptography rewrites LF as CRLF and the signed bytes are not the plist's.
        return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


@lru_cache(maxsize=4)
def load_signer(cert_path: Path, key_path: Path) -> ProfileSigner:
    """The profile signer from PEM files: the first certificate signs, the rest ride along as its chain."""
    certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    return ProfileSigner(certs[0], key, tuple(certs[1:]))


def placeholder_topic(ctx: TenantContext) -> str:
    """Stable stand-in until a push certificate is uploaded (its UID then becomes the topic; re-enroll needed)."""
    return f"com.apple.mgmt.External.{uuid.uuid5(uuid.NAMESPACE_URL, f'bramley:tenant:{ctx.tenant_id}')}"


def topic(db: Session, ctx: TenantContext) -> str:
    from bramley.mdm.service import tenant_topic  # the push certificate is the MDM core's

    return tenant_topic(db, ctx) or placeholder_topic(ctx)


def _uuid() -> str:
    return str(uuid.uuid4()).upper()


def profile_dict(db: Session, ctx: TenantContext, *, base_url: str, challenge: str) -> dict:
    """The Configuration profile: the tenant CA (root), a SCEP identity, and the MDM payload using it."""
    base = base_url.rstrip("/")
    tenant_url = f"{base}/mdm/t/{ctx.subdomain}"
    ident = f"com.bramley.{ctx.subdomain}.enrollment"
    ca_der = pki.ca_cert(db, ctx).public_bytes(serialization.Encoding.DER)
    scep_uuid = _uuid()
    root = {
        "PayloadType": "com.apple.security.root", "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.ca", "PayloadUUID": _uuid(),
        "PayloadDisplayName": f"{ctx.subdomain} device CA",
        "PayloadCertificateFileName": f"{ctx.subdomain}-ca.cer",
        "PayloadContent": ca_der,
    }
    scep_payload = {
        "PayloadType": "com.apple.security.scep", "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.scep", "PayloadUUID": scep_uuid,
        "PayloadDisplayName": "Device identity",
        "PayloadContent": {
            "URL": f"{tenant_url}/scep",
            "Name": ctx.subdomain,
            "Challenge": challenge,
            "Keysize": 2048,
            "Key Type": "RSA",
            "Key Usage": 5,
            "Subject": [[["O", "Bramley"]], [["CN", f"{ctx.subdomain} device identity"]]],
        },
    }
    mdm = {
        "PayloadType": "com.apple.mdm", "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.mdm", "PayloadUUID": _uuid(),
        "PayloadDisplayName": "Device management",
        "IdentityCertificateUUID": scep_uuid,
        "Topic": topic(db, ctx),
        "ServerURL": f"{tenant_url}/connect",
        "CheckInURL": f"{tenant_url}/checkin",
        "SignMessage": True,
        "AccessRights": ACCESS_RIGHTS,
        "CheckOutWhenRemoved": True,
        "ServerCapabilities": list(SERVER_CAPABILITIES),
        "UseDevelopmentAPNS": False,
    }
    return {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        # Stable per tenant, like the identifier: reinstalling replaces rather than duplicates.
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bramley:enrollment:{ctx.tenant_id}")).upper(),
        "PayloadDisplayName": f"{ctx.subdomain} device management",
        "PayloadDescription": "Enrolls this device in device management.",
        "PayloadOrganization": ctx.subdomain,
        "PayloadScope": "System",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [root, scep_payload, mdm],
    }


def build_profile(db: Session, ctx: TenantContext, *, base_url: str, signer: ProfileSigner | None = None,
                  blueprint_id: str | None = None) -> bytes:
    """A ready .mobileconfig with a fresh one-time challenge; CMS-signed when a signer is configured."""
    pki.provision(db, ctx)  # no-op for tenants made with their PKI; heals ones made before it existed
    challenge = mint_challenge(db, ctx, blueprint_id=blueprint_id)
    body = plistlib.dumps(profile_dict(db, ctx, base_url=base_url, challenge=challenge), fmt=plistlib.FMT_XML)
    return signer.sign(body) if signer is not None else body


# -- SCEP ----------------------------------------------------------------------------------------------------------


def ca_caps() -> str:
    return "\n".join(scep.CA_CAPS) + "\n"


def ca_cert_der(db: Session, ctx: TenantContext) -> bytes:
    return pki.ca_cert(db, ctx).public_bytes(serialization.Encoding.DER)


def pki_operation(db: Session, ctx: TenantContext, message: bytes) -> bytes:
    """Answer a PKIOperation with a CertRep (SUCCESS with the identity, or FAILURE with failInfo).

    Raises scep.MalformedMessage when the bytes are not a SCEP request at all (the door answers 400).
    """
    msg = scep.parse_pki_message(message)
    ca = pki.load_ca(db, ctx)
    try:
        cert, cipher = _issue(db, ctx, msg, ca)
    except scep.SCEPFailure as failure:
        log.info("SCEP request refused (tenant %s, transaction %s): %s", ctx.subdomain, msg.transaction_id,
                 failure.reason)
        return scep.cert_rep_failure(msg, failure.fail_info, ca_cert=ca.cert, ca_key=ca.key)
    log.info("SCEP issued identity serial %x (tenant %s, transaction %s)", cert.serial_number, ctx.subdomain,
             msg.transaction_id)
    return scep.cert_rep_success(msg, cert, ca_cert=ca.cert, ca_key=ca.key, content_cipher=cipher)


def _issue(db: Session, ctx: TenantContext, msg: scep.PKIMessage, ca: pki.CA) -> tuple[x509.Certificate, str]:
    if msg.failure is not None:
        raise msg.failure
    if msg.message_type not in (scep.MessageType.PKCS_REQ, scep.MessageType.RENEWAL_REQ):
        raise scep.SCEPFailure(scep.FailInfo.BAD_REQUEST, f"messageType {msg.message_type} not supported")
    if msg.envelope is None:
        raise scep.SCEPFailure(scep.FailInfo.BAD_REQUEST, "no enveloped request")
    assert msg.signer_cert is not None
    if not isinstance(msg.signer_cert.public_key(), rsa.RSAPublicKey):
        # The CertRep is enveloped to the signer's key: RSA key transport only.
        raise scep.SCEPFailure(scep.FailInfo.BAD_ALG, "signer key cannot receive the CertRep")
    plaintext, cipher = scep.open_envelope(msg.envelope, ca.cert, ca.key)
    request = scep.read_csr(plaintext)
    try:
        pki.check_request_key(request.csr.public_key())
    except pki.IssuanceRefused as exc:
        raise scep.SCEPFailure(scep.FailInfo.BAD_REQUEST, str(exc)) from None
    if not (msg.message_type == scep.MessageType.RENEWAL_REQ and _current_identity(db, ctx, msg.signer_cert, ca.cert)):
        # Checked last and consumed atomically: a refused request never burns the challenge.
        if not request.challenge or use_challenge(db, ctx, request.challenge) is None:
            raise scep.SCEPFailure(scep.FailInfo.BAD_REQUEST, "challenge unknown, used or expired")
    return pki.issue_identity(db, ctx, request.csr), cipher


def _current_identity(db: Session, ctx: TenantContext, cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """A valid, unrevoked identity this tenant's CA issued: it may renew itself without a challenge."""
    try:
        check_identity(cert, ca_cert)
    except SignatureError:
        return False
    record = pki.issued(db, ctx, cert)
    return record is not None and record.revoked_at is None
