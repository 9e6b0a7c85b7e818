"""Device identity on every MDM request: the `Mdm-Signature` header (reference §6), or a client certificate a TLS
proxy forwards. Pure: no DB, no HTTP. The caller passes the tenant CA (`pki.ca_cert`) and maps `SignatureError` to
a bare 400 (never 401, which can unenroll a device).

`cryptography` has no PKCS#7 verify API, so the SignedData is read with asn1crypto and each check done by hand.
The SCEP door uses `verify_signed_data` for its requests too.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

# Devices and MDM client tools sign with SHA-1 as well as SHA-256 (§6 interop); the certificate check is what
# authenticates. MD5 and friends are refused.
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
# Signature algorithm OIDs that name their own hash; plain rsassa_pkcs1v15 / ecdsa use the digest algorithm.
_SIG_HASH = {
    "sha1_rsa": "sha1", "sha224_rsa": "sha224", "sha256_rsa": "sha256", "sha384_rsa": "sha384",
    "sha512_rsa": "sha512", "sha1_ecdsa": "sha1", "sha224_ecdsa": "sha224", "sha256_ecdsa": "sha256",
    "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512",
}


class SignatureError(Exception):
    """The request's signature or certificate is not acceptable. `reason` is short and safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignerResult:
    cert: x509.Certificate
    digest_algorithm: str  # sha1 | sha256 | ...
    signed_attrs: cms.CMSAttributes | None


def cert_sha256(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate DER: the value bound to an enrollment (CertAuth)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_mdm_signature(header_b64: str, body: bytes, ca_cert: x509.Certificate, *,
                         now: datetime | None = None) -> x509.Certificate:
    """The signer certificate of a valid `Mdm-Signature` over `body`, issued by `ca_cert`; else SignatureError."""
    if not header_b64 or not header_b64.strip():
        raise SignatureError("missing Mdm-Signature")
    try:
        der = base64.b64decode("".join(header_b64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Mdm-Signature is not base64") from None
    signed_data = load_signed_data(der)
    result = verify_signed_data(signed_data, body)
    check_identity(result.cert, ca_cert, now=now)
    return result.cert


def cert_from_forwarded_header(value: str, ca_cert: x509.Certificate, *,
                               now: datetime | None = None) -> x509.Certificate:
    """The client certificate a TLS proxy forwarded, checked against the tenant CA.

    Accepts RFC 9440 `Client-Cert: :<base64 DER>:`, nginx's `$ssl_client_escaped_cert` (URL-escaped PEM), plain PEM,
    or bare base64 DER. The proxy must strip this header from inbound requests; Bramley trusts it only when the
    setting `client_cert_header` names it.
    """
    cert = _parse_forwarded(value)
    check_identity(cert, ca_cert, now=now)
    return cert


def _parse_forwarded(value: str) -> x509.Certificate:
    text = (value or "").strip()
    if not text:
        raise SignatureError("empty client certificate header")
    try:
        if text.startswith(":") and text.endswith(":") and len(text) > 2:
            return x509.load_der_x509_certificate(base64.b64decode(text[1:-1], validate=True))
        if "%" in text or "-----BEGIN" in text:
            pem = unquote(text)
            # Some proxies fold the PEM onto one line with spaces or tabs: restore the line breaks.
            if "\n" not in pem.strip():
                head, _, rest = pem.partition("-----BEGIN CERTIFICATE-----")
                b64, _, _ = rest.partition("-----END CERTIFICATE-----")
                pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(b64.split()) + "\n-----END CERTIFICATE-----\n"
            return x509.load_pem_x509_certificate(pem.encode())
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error):
        raise SignatureError("client certificate header is not a certificate") from None


def check_identity(cert: x509.Certificate, ca_cert: x509.Certificate, *, now: datetime | None = None) -> None:
    """Directly issued by the tenant CA, inside its validity window, and for client authentication."""
    now = now or datetime.now(timezone.utc)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise SignatureError("certificate not issued by this tenant's CA") from None
    if now < cert.not_valid_before_utc:
        raise SignatureError("certificate not yet valid")
    if now > cert.not_valid_after_utc:
        raise SignatureError("certificate expired")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise SignatureError("certificate has no clientAuth extended key usage") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise SignatureError("certificate has no clientAuth extended key usage")


# -- CMS SignedData, shared with the SCEP door -------------------------------------------------------------------


def load_signed_data(der: bytes) -> cms.SignedData:
    """Parse a ContentInfo holding SignedData; asn1crypto parses lazily, so touch what we need here."""
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise SignatureError("not a CMS SignedData")
        signed_data = info["content"]
        # Parse the signer now, not in the middle of a check (its attributes are read lazily, as needed: turning
        # the whole SignerInfo into Python values was over half the cost of verifying a check-in).
        signed_data["signer_infos"][0]["sid"].chosen  # noqa: B018
        return signed_data
    except SignatureError:
        raise
    except Exception:  # asn1crypto raises ValueError, TypeError, KeyError... on malformed input
        raise SignatureError("malformed CMS") from None


def verify_signed_data(signed_data: cms.SignedData, content: bytes | None = None) -> SignerResult:
    """Verify the first signer over `content` (detached) or the encapsulated content; return its certificate.

    With signed attributes, `messageDigest` must equal H(content) and the signature covers the attributes
    re-encoded as a SET; without them it covers the content itself.
    """
    try:
        return _verify_signed_data(signed_data, content)
    except SignatureError:
        raise
    except Exception:
        raise SignatureError("malformed CMS") from None


def _verify_signed_data(signed_data: cms.SignedData, content: bytes | None) -> SignerResult:
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) == 0:
        raise SignatureError("no signer")
    signer = signer_infos[0]
    cert = _signer_cert(signed_data, signer)
    if content is None:
        content = encapsulated_content(signed_data)
        if content is None:
            raise SignatureError("no signed content")
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in DIGESTS:
        raise SignatureError(f"digest algorithm {digest_name} not accepted")
    digest_cls = DIGESTS[digest_name]
    attrs = signer["signed_attrs"]
    if isinstance(attrs, core.Void) or len(attrs) == 0:
        attrs = None
        to_verify = content
    else:
        digest = _attr(attrs, "message_digest")
        if digest is None:
            raise SignatureError("signed attributes without messageDigest")
        if digest != _hash(digest_cls, content):
            raise SignatureError("messageDigest does not match the content")
        # The signature covers the DER SET OF, not the [0] IMPLICIT tag the attributes travel under.
        encoded = attrs.dump()
        to_verify = b"\x31" + encoded[1:]
    sig_name = signer["signature_algorithm"]["algorithm"].native
    sig_hash_cls = DIGESTS.get(_SIG_HASH.get(sig_name, digest_name))
    if sig_hash_cls is None:
        raise SignatureError(f"signature algorithm {sig_name} not accepted")
    signature = signer["signature"].native
    public_key = cert.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if sig_name not in ("rsassa_pkcs1v15", "rsa") and not sig_name.endswith("_rsa"):
                raise SignatureError(f"signature algorithm {sig_name} not accepted")
            public_key.verify(signature, to_verify, padding.PKCS1v15(), sig_hash_cls())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if sig_name != "ecdsa" and not sig_name.endswith("_ecdsa"):
                raise SignatureError(f"signature algorithm {sig_name} not accepted")
            public_key.verify(signature, to_verify, ec.ECDSA(sig_hash_cls()))
        else:
            raise SignatureError("signer key type not accepted")
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None
    return SignerResult(cert=cert, digest_algorithm=digest_name, signed_attrs=attrs)


def encapsulated_content(signed_data: cms.SignedData) -> bytes | None:
    """The encapsulated content octets, or None for a detached signature."""
    value = signed_data["encap_content_info"]["content"]
    if isinstance(value, core.Void):
        return None
    native = value.native  # the octets, chunks of a BER constructed OCTET STRING joined
    return native if isinstance(native, bytes) else None


def _signer_cert(signed_data: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    sid = signer["sid"]
    certs = signed_data["certificates"]
    if isinstance(certs, core.Void):
        raise SignatureError("signer certificate not included")
    for choice in certs:
        if choice.name != "certificate":
            continue
        candidate = choice.chosen
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if candidate.serial_number == ias["serial_number"].native and _same_name(candidate.issuer, ias["issuer"]):
                return x509.load_der_x509_certificate(candidate.dump())
        elif sid.name == "subject_key_identifier":
            if candidate.key_identifier == sid.chosen.native:
                return x509.load_der_x509_certificate(candidate.dump())
    raise SignatureError("signer certificate not included")


def _same_name(a, b) -> bool:
    """Names equal as X.509 compares them; byte-identical encodings (what signers copy from their certificate)
    answer without asn1crypto's normalising comparison, the costliest step of finding the signer."""
    return a.dump() == b.dump() or a == b


def _attr(attrs: cms.CMSAttributes, name: str):
    for attr in attrs:
        if attr["type"].native == name:
            values = attr["values"]
            return values[0].native if len(values) else None
    return None


def _hash(digest_cls: type[hashes.HashAlgorithm], data: bytes) -> bytes:
    h = hashes.Hash(digest_cls())
    h.update(data)
    return h.finalize()
