"""APNs HTTP/2 provider for MDM pushes: certificate or token auth, bounded concurrency, typed results.

Apple: https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
MDM pushes use the tenant's MDM push certificate as TLS client certificate; the topic is its subject UID.
Token (JWT) auth is offered as well, for providers that accept it (Apple documents certificates for MDM).
No database here: push.py loads credentials and enrollments and records what the results mean.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

TOPIC_OID = NameOID.USER_ID  # 0.9.2342.19200300.100.1.1
JWT_REFRESH_SECONDS = 50 * 60  # APNs refuses tokens older than an hour and throttles refreshes under 20 min

# Reasons that mean "this token is dead until the device sends a new TokenUpdate".
DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"})
CERT_REASONS = frozenset({"BadCertificate", "BadCertificateEnvironment", "Forbidden", "InvalidProviderToken",
                          "ExpiredProviderToken", "MissingProviderToken"})


class CredentialError(ValueError):
    """A push certificate, key or token-auth key that cannot be used; the message says why."""


# --- credentials ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """What a provider needs for one topic. `key_pem` is secret: never logged (repr hides it)."""

    topic: str
    auth_type: str  # certificate | token
    key_pem: str = field(repr=False)
    cert_pem: str = ""
    key_id: str = ""
    team_id: str = ""


@dataclass(frozen=True)
class CertificateInfo:
    topic: str
    not_after: datetime
    cert_pem: str
    key_pem: str = field(repr=False)


def parse_certificate(cert_pem: bytes, key_pem: bytes, *, now: datetime | None = None) -> CertificateInfo:
    """Check an MDM push certificate and its private key; return the topic (subject UID) and normalized PEMs."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise CredentialError("the certificate is not a PEM X.509 certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CredentialError("the private key is encrypted; decrypt it first "
                              "(openssl pkey -in KEY -out plain.pem)") from None
    except ValueError:
        raise CredentialError("the private key is not a PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise CredentialError("the private key does not belong to the certificate")
    uids = cert.subject.get_attributes_for_oid(TOPIC_OID)
    topic = str(uids[0].value).strip() if uids else ""
    if not topic:
        raise CredentialError("the certificate subject has no UID (the push topic); "
                              "is this an MDM push certificate from Apple?")
    now = now or datetime.now(timezone.utc)
    if cert.not_valid_after_utc <= now:
        raise CredentialError(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                              "renew it in Apple's Push Certificates Portal with the same Apple ID")
    if cert.not_valid_before_utc > now:
        raise CredentialError(f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    key_out = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return CertificateInfo(topic, cert.not_valid_after_utc, cert.public_bytes(serialization.Encoding.PEM).decode(),
                           key_out)


def parse_token_key(key_pem: bytes) -> str:
    """Check an APNs auth key (.p8: PKCS#8 EC P-256) and return it as PKCS#8 PEM."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (TypeError, ValueError):
        raise CredentialError("the auth key is not an unencrypted PEM (.p8) private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CredentialError("an APNs auth key is an EC P-256 key (ES256)")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def client_ssl_context(creds: Credentials, *, ca_file: Path | None = None) -> ssl.SSLContext:
    """TLS context for APNs; with certificate auth it carries the push certificate as client certificate.

    `load_cert_chain` only reads files, so the key is written to a 0600 temporary file (on tmpfs when there
    is one) and removed right after loading.
    """
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=str(ca_file))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if creds.auth_type == "certificate":
        shm = Path("/dev/shm")
        directory = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        fd, path = tempfile.mkstemp(prefix="bramley-apns-", suffix=".pem", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(creds.cert_pem.strip() + "\n" + creds.key_pem.strip() + "\n")
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
    return ctx


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def provider_token(key_pem: str, *, key_id: str, team_id: str, issued_at: int | None = None) -> str:
    """An ES256 provider JWT: header {alg, kid}, claims {iss: team id, iat}."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    header = _b64url(json.dumps({"alg": "ES256", "kid": key_id}, separators=(",", ":")).encode())
    claims = _b64url(json.dumps({"iss": team_id, "iat": int(issued_at if issued_at is not None else time.time())},
                                separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{claims}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


# --- results ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PushResult:
    token_hex: str
    status: int  # HTTP status; 0 when no answer came (network error, GOAWAY)
    reason: str = ""
    apns_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def token_dead(self) -> bool:
        """APNs will never deliver to this token again: stop pushing until a new TokenUpdate."""
        return self.status in (400, 410) and self.reason in DEAD_TOKEN_REASONS

    @property
    def credentials_refused(self) -> bool:
        """The certificate or provider token was refused: an operator has to act, retrying soon won't help."""
        return self.status == 403 or self.reason in CERT_REASONS

    @property
    def retryable(self) -> bool:
        """Worth trying again after a backoff: throttling, server trouble, no answer."""
        return self.status in (0, 429) or self.status >= 500


# --- the provider ----------------------------------------------------------------------------------------

class APNsProvider:
    """One HTTP/2 client per topic, at most `concurrency` pushes in flight.

    Works over h2 (TLS with ALPN, as Apple serves it) and over plain HTTP/1.1 (a local mock).
    """

    def __init__(self, creds: Credentials, *, base_url: str, concurrency: int = 8, timeout: float = 10.0,
                 expiration: int = 3600, ca_file: Path | None = None, http1: bool = True):
        self.creds = creds
        self.expiration = expiration
        self._semaphore = asyncio.Semaphore(concurrency)
        self._jwt: tuple[str, float] | None = None
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), http2=True, http1=http1,
            verify=client_ssl_context(creds, ca_file=ca_file), timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))

    async def __aenter__(self) -> "APNsProvider":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _authorization(self) -> dict[str, str]:
        if self.creds.auth_type != "token":
            return {}
        now = time.time()
        if self._jwt is None or now - self._jwt[1] >= JWT_REFRESH_SECONDS:
            self._jwt = (provider_token(self.creds.key_pem, key_id=self.creds.key_id, team_id=self.creds.team_id,
                                        issued_at=int(now)), now)
        return {"authorization": f"bearer {self._jwt[0]}"}

    def headers(self) -> dict[str, str]:
        return {
            "apns-push-type": "mdm",
            "apns-topic": self.creds.topic,
            "apns-priority": "10",
            "apns-expiration": str(int(time.time()) + self.expiration) if self.expiration else "0",
            "content-type": "application/json",
            **self._authorization(),
        }

    async def push(self, token_hex: str, push_magic: str) -> PushResult:
        """Send one MDM push: body exactly {"mdm": PushMagic}."""
        body = json.dumps({"mdm": push_magic}, separators=(",", ":")).encode()
        async with self._semaphore:
            try:
                response = await self._client.post(f"/3/device/{token_hex}", content=body, headers=self.headers())
            except httpx.HTTPError as exc:
                return PushResult(token_hex, 0, f"{type(exc).__name__}: {exc}")
        reason = ""
        if response.status_code != 200:
            try:
                reason = str(response.json().get("reason", ""))
            except (ValueError, AttributeError):
                reason = response.text[:200]
        return PushResult(token_hex, response.status_code, reason, response.headers.get("apns-id", ""))

    async def push_many(self, targets: Iterable[tuple[str, str]]) -> list[PushResult]:
        """Push (token_hex, push_magic) pairs concurrently (bounded); results in the same order."""
        return list(await asyncio.gather(*(self.push(token, magic) for token, magic in targets)))
