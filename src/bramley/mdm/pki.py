"""The tenant's PKI: a device-identity CA (SCEP issues under it) and a FileVault escrow key pair.

Both private keys live in the secrets service (owner "tenant", kinds "scep_ca_key" / "escrow_key"); the
certificates live in TenantPKI. Made once, when the tenant is created (`provision`). Flushes, never commits.
"""
from __future__ import annotations

import hashlib
import time
import threading
from datetime import datetime, timedelta
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.errors import BramleyError, NotFound
from bramley.mdm.models import IssuedCertificate, TenantPKI
from bramley.mdm.signature import cert_sha256
from bramley.secrets import service as secrets
from bramley.tenancy.context import TenantContext

CA_KEY_KIND = "scep_ca_key"
ESCROW_KEY_KIND = "escrow_key"
OWNER_TYPE = "tenant"

CA_VALIDITY = timedelta(days=3650)
ESCROW_VALIDITY = timedelta(days=3650)
IDENTITY_VALIDITY = timedelta(days=365)
# Backdate leaves a little: a device whose clock runs slow must not see its brand-new identity as not yet valid.
CLOCK_SKEW = timedelta(minutes=10)
MIN_RSA_BITS = 2048


class IssuanceRefused(BramleyError):
    """The request does not meet the issuing policy (key type or size, subject)."""


class CA(NamedTuple):
    """Unpacks as `(cert, key)`."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey


# tenant_id -> (sha256 of the CA PEM, parsed CA). The PEM is read from the DB on each call (a primary-key read),
# so a rolled-back or replaced CA is never served from here; only parsing and the key decryption are saved.
_cache: dict[str, tuple[str, x509.Certificate, rsa.RSAPrivateKey | None]] = {}
_cache_lock = threading.Lock()


def _name(*parts: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _serial() -> int:
    return x509.random_serial_number()


def build_ca(subdomain: str, key: rsa.RSAPrivateKey, *, now: datetime | None = None) -> x509.Certificate:
    """Self-signed device-identity CA. KeyUsage also has digitalSignature (it signs SCEP CertReps) and
    keyEncipherment (SCEP requests are enveloped to it: some clients check before encrypting)."""
    now = now or utcnow()
    name = _name((NameOID.ORGANIZATION_NAME, "Bramley"), (NameOID.COMMON_NAME, f"Bramley {subdomain} Device CA"))
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def build_escrow_cert(subdomain: str, key: rsa.RSAPrivateKey, *, now: datetime | None = None) -> x509.Certificate:
    """Self-signed certificate devices encrypt the FileVault personal recovery key to (reference §8.1)."""
    now = now or utcnow()
    name = _name((NameOID.ORGANIZATION_NAME, "Bramley"),
                 (NameOID.COMMON_NAME, f"Bramley {subdomain} FileVault Escrow"))
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + ESCROW_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=True,
                                     data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def provision(db: Session, ctx: TenantContext) -> TenantPKI:
    """Make the tenant's CA and escrow key pair (keys to the secrets service). Idempotent: keeps an existing PKI."""
    existing = db.get(TenantPKI, ctx.tenant_id)
    if existing is not None:
        return existing
    ca_key, escrow_key = _new_rsa(), _new_rsa()
    row = TenantPKI(
        tenant_id=ctx.tenant_id,
        ca_cert_pem=build_ca(ctx.subdomain, ca_key).public_bytes(serialization.Encoding.PEM).decode(),
        escrow_cert_pem=build_escrow_cert(ctx.subdomain, escrow_key).public_bytes(serialization.Encoding.PEM).decode(),
    )
    secrets.put(db, ctx, owner_type=OWNER_TYPE, owner_id=ctx.tenant_id, kind=CA_KEY_KIND, value=_key_pem(ca_key))
    secrets.put(db, ctx, owner_type=OWNER_TYPE, owner_id=ctx.tenant_id, kind=ESCROW_KEY_KIND,
                value=_key_pem(escrow_key))
    db.add(row)
    db.flush()
    return row


def get(db: Session, ctx: TenantContext) -> TenantPKI | None:
    return db.get(TenantPKI, ctx.tenant_id)


def _pki_or_raise(db: Session, ctx: TenantContext) -> TenantPKI:
    row = db.get(TenantPKI, ctx.tenant_id)
    if row is None:
        raise NotFound(f"tenant {ctx.subdomain} has no PKI")
    return row


def _cached(db: Session, ctx: TenantContext, *, with_key: bool) -> tuple[x509.Certificate, rsa.RSAPrivateKey | None]:
    pem = _pki_or_raise(db, ctx).ca_cert_pem
    fingerprint = hashlib.sha256(pem.encode()).hexdigest()
    with _cache_lock:
        hit = _cache.get(ctx.tenant_id)
    if hit is not None and hit[0] == fingerprint and (hit[2] is not None or not with_key):
        return hit[1], hit[2]
    cert = x509.load_pem_x509_certificate(pem.encode())
    key = hit[2] if hit is not None and hit[0] == fingerprint else None
    if with_key and key is None:
        raw = secrets.get(db, ctx, owner_type=OWNER_TYPE, owner_id=ctx.tenant_id, kind=CA_KEY_KIND, audited=False)
        if raw is None:
            raise NotFound(f"tenant {ctx.subdomain} has no CA key")
        key = serialization.load_pem_private_key(raw, password=None)
        if key.public_key().public_numbers() != cert.public_key().public_numbers():
            raise NotFound(f"tenant {ctx.subdomain}: CA key does not match the CA certificate")
    with _cache_lock:
        _cache[ctx.tenant_id] = (fingerprint, cert, key)
    return cert, key


# Every device request checks its identity against the CA: re-reading the stored certificate each time cost a
# query per check-in for a row that changes only when a CA is restored from a backup.
CA_RECHECK = 60.0  # seconds a verified-fresh CA certificate is served without looking at the stored one
_checked_at: dict[str, float] = {}


def ca_cert(db: Session, ctx: TenantContext) -> x509.Certificate:
    """The tenant's CA certificate: what device identities must chain to. NotFound if not provisioned."""
    with _cache_lock:
        hit = _cache.get(ctx.tenant_id)
        fresh = time.monotonic() - _checked_at.get(ctx.tenant_id, float("-inf")) < CA_RECHECK
    if hit is not None and fresh:
        return hit[1]
    cert = _cached(db, ctx, with_key=False)[0]
    with _cache_lock:
        _checked_at[ctx.tenant_id] = time.monotonic()
    return cert


def load_ca(db: Session, ctx: TenantContext) -> CA:
    """The tenant's CA certificate and private key (decrypted once per process)."""
    cert, key = _cached(db, ctx, with_key=True)
    assert key is not None
    return CA(cert, key)


def escrow_cert(db: Session, ctx: TenantContext) -> x509.Certificate:
    return x509.load_pem_x509_certificate(_pki_or_raise(db, ctx).escrow_cert_pem.encode())


def load_escrow_key(db: Session, ctx: TenantContext) -> rsa.RSAPrivateKey:
    """The FileVault escrow private key (to decrypt a PRK CMS). Not cached: used rarely."""
    raw = secrets.get(db, ctx, owner_type=OWNER_TYPE, owner_id=ctx.tenant_id, kind=ESCROW_KEY_KIND, audited=False)
    if raw is None:
        raise NotFound(f"tenant {ctx.subdomain} has no escrow key")
    return serialization.load_pem_private_key(raw, password=None)


def check_request_key(public_key) -> None:
    """Issuing policy on the requester's key: RSA of at least 2048 bits, or EC P-256 and up."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise IssuanceRefused(f"RSA key of {public_key.key_size} bits; at least {MIN_RSA_BITS} required")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.key_size < 256:
            raise IssuanceRefused("EC key below P-256")
        return
    raise IssuanceRefused("key type not accepted")


def _subject(csr: x509.CertificateSigningRequest, ctx: TenantContext) -> x509.Name:
    # The device names itself from the profile's Subject; an empty subject gets one naming the tenant.
    if len(csr.subject) and len(csr.subject.rfc4514_string()) <= 400:
        return csr.subject
    return _name((NameOID.ORGANIZATION_NAME, "Bramley"), (NameOID.COMMON_NAME, f"{ctx.subdomain} device identity"))


def issue_identity(db: Session, ctx: TenantContext, csr: x509.CertificateSigningRequest, *,
                   validity: timedelta = IDENTITY_VALIDITY, now: datetime | None = None) -> x509.Certificate:
    """Issue a device identity certificate for a verified CSR and record it (IssuedCertificate).

    The leaf has EKU clientAuth, AKI (the CA's SKI), SKI and a URN SAN naming the tenant and serial, so it also
    passes `cryptography.x509.verification` client policies, not only the direct-issuer check.
    """
    check_request_key(csr.public_key())
    ca = load_ca(db, ctx)
    now = now or utcnow()
    serial = _serial()
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    public_key = csr.public_key()
    key_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey), data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(csr, ctx)).issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
            f"urn:bramley:tenant:{ctx.tenant_id}:identity:{serial:x}")]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    db.add(IssuedCertificate(tenant_id=ctx.tenant_id, serial=f"{serial:x}", cert_sha256=cert_sha256(cert),
                             subject=cert.subject.rfc4514_string()[:512], not_after=cert.not_valid_after_utc))
    db.flush()
    return cert


def issued(db: Session, ctx: TenantContext, cert: x509.Certificate) -> IssuedCertificate | None:
    """The issuance record of a certificate, or None if this tenant's CA never issued it."""
    return db.get(IssuedCertificate, (ctx.tenant_id, f"{cert.serial_number:x}"))


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _checked_at.clear()
