"""What a device does to get its MDM identity (reference §11.2 step 1), and how it signs its requests.

fetch the profile (strip its CMS signature) → GetCACaps → GetCACert → RSA key + throw-away self-signed cert →
CSR with challengePassword → PKCSReq enveloped (AES) to the CA and signed → CertRep → decrypt → identity.

Takes an `httpx.AsyncClient`, so it runs against a live server or in-process via `httpx.ASGITransport(app)`.
The envelope and the CertRep decryption go through `cryptography`, not Bramley's own asn1crypto code, so the
server is checked against a second implementation.
"""
from __future__ import annotations

import base64
import hashlib
import os
import plistlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID

from bramley.mdm import scep

_SUBJECT_OIDS = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS, "E": NameOID.EMAIL_ADDRESS,
}


class EnrollmentFailed(Exception):
    """The SCEP server answered FAILURE (or something unusable)."""

    def __init__(self, message: str, *, fail_info: int | None = None, status: int | None = None):
        super().__init__(message)
        self.fail_info = fail_info
        self.status = status


@dataclass
class Identity:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate
    profile: dict = field(default_factory=dict)

    @property
    def mdm_payload(self) -> dict:
        return payload(self.profile, "com.apple.mdm")


# -- the profile ---------------------------------------------------------------------------------------------------


def strip_signature(data: bytes) -> bytes:
    """The plist inside a CMS-signed profile (an unsigned one is returned as is). Not verified: devices show
    "verified" from the signature; the simulator only needs the payloads."""
    head = data.lstrip()[:8]
    if head.startswith(b"<?xml") or head.startswith(b"bplist") or head.startswith(b"<plist"):
        return data
    info = cms.ContentInfo.load(data)
    if info["content_type"].native != "signed_data":
        raise ValueError("profile is neither a plist nor CMS SignedData")
    return info["content"]["encap_content_info"]["content"].native


def parse_profile(data: bytes) -> dict:
    return plistlib.loads(strip_signature(data))


def payload(profile: dict, payload_type: str) -> dict:
    for item in profile.get("PayloadContent", []):
        if item.get("PayloadType") == payload_type:
            return item
    raise KeyError(payload_type)


async def fetch_profile(client: httpx.AsyncClient, url: str, *, code: str | None = None) -> dict:
    response = await client.get(url, params={"code": code} if code else None)
    if response.status_code != 200:
        raise EnrollmentFailed(f"profile download answered {response.status_code}", status=response.status_code)
    return parse_profile(response.content)


# -- SCEP --------------------------------------------------------------------------------------------------------


def subject_name(subject: list | None) -> x509.Name:
    """The profile's Subject ([[["CN", "x"]], [["O", "y"]]]) as an X.509 name."""
    rdns = []
    for rdn in subject or []:
        attrs = [x509.NameAttribute(_SUBJECT_OIDS.get(oid) or x509.ObjectIdentifier(oid), value) for oid, value in rdn]
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def self_signed(key, subject: x509.Name) -> x509.Certificate:
    """The throw-away certificate a device signs its PKCSReq with (RFC 8894 §2.3)."""
    now = datetime.now(timezone.utc)
    name = subject if len(subject) else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SCEP requester")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))


def make_csr(key, subject: x509.Name, challenge: str | None) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return builder.sign(key, hashes.SHA256())


def transaction_id_for(key) -> str:
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@dataclass
class PendingRequest:
    message: bytes
    transaction_id: str
    sender_nonce: bytes
    signer_cert: x509.Certificate
    key: object


def build_pkcs_req(csr: x509.CertificateSigningRequest, *, key, signer_cert: x509.Certificate,
                   ca_cert: x509.Certificate, message_type: int = scep.MessageType.PKCS_REQ,
                   digest: str = "sha256") -> PendingRequest:
    """PKCSReq: the CSR AES-enveloped to the CA (cryptography's builder), signed with SCEP attributes."""
    enveloped = (pkcs7.PKCS7EnvelopeBuilder().set_data(csr.public_bytes(serialization.Encoding.DER))
                 .add_recipient(ca_cert).encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    nonce = os.urandom(16)
    tid = transaction_id_for(key)
    message = scep.sign_pki_message(enveloped, signer_cert=signer_cert, signer_key=key, digest=digest,
                                    message_type=message_type, transaction_id=tid, sender_nonce=nonce)
    return PendingRequest(message, tid, nonce, signer_cert, key)


def read_cert_rep(der: bytes, request: PendingRequest, ca_cert: x509.Certificate) -> x509.Certificate:
    """Check the CertRep answers our request, then decrypt the issued certificate out of it."""
    rep = scep.parse_cert_rep(der, ca_cert)
    if rep.transaction_id != request.transaction_id or rep.recipient_nonce != request.sender_nonce:
        raise EnrollmentFailed("CertRep does not answer our request")
    if rep.status != scep.PKIStatus.SUCCESS:
        raise EnrollmentFailed(f"SCEP FAILURE, failInfo {rep.fail_info}", fail_info=rep.fail_info, status=rep.status)
    if rep.envelope is None:
        raise EnrollmentFailed("CertRep SUCCESS without content")
    try:
        inner = pkcs7.pkcs7_decrypt_der(rep.envelope, request.signer_cert, request.key, [])
    except ValueError:  # not AES: an old-style DES/3DES answer
        inner, _ = scep.open_envelope(rep.envelope, request.signer_cert, request.key)
    certs = pkcs7.load_der_pkcs7_certificates(inner)
    if not certs:
        raise EnrollmentFailed("CertRep holds no certificate")
    return certs[0]


class SCEPClient:
    def __init__(self, client: httpx.AsyncClient, url: str):
        self.client = client
        self.url = url

    async def _get(self, operation: str, **params) -> httpx.Response:
        response = await self.client.get(self.url, params={"operation": operation, **params})
        if response.status_code != 200:
            raise EnrollmentFailed(f"{operation} answered {response.status_code}", status=response.status_code)
        return response

    async def get_ca_caps(self) -> list[str]:
        return [line.strip() for line in (await self._get("GetCACaps")).text.splitlines() if line.strip()]

    async def get_ca_cert(self, name: str = "") -> x509.Certificate:
        response = await self._get("GetCACert", message=name)
        return x509.load_der_x509_certificate(response.content)

    async def pki_operation(self, message: bytes, *, post: bool = True) -> bytes:
        if post:
            response = await self.client.post(self.url, params={"operation": "PKIOperation"}, content=message,
                                              headers={"content-type": "application/x-pki-message"})
        else:
            response = await self.client.get(self.url, params={"operation": "PKIOperation",
                                                                "message": base64.b64encode(message).decode()})
        if response.status_code != 200:
            raise EnrollmentFailed(f"PKIOperation answered {response.status_code}", status=response.status_code)
        return response.content


async def scep_enroll(client: httpx.AsyncClient, scep_payload: dict, *, key: rsa.RSAPrivateKey | None = None,
                      challenge: str | None = None) -> tuple[x509.Certificate, rsa.RSAPrivateKey, x509.Certificate]:
    """Run the SCEP exchange a `com.apple.security.scep` payload describes. Returns (identity, key, CA)."""
    content = scep_payload["PayloadContent"]
    scep_client = SCEPClient(client, content["URL"])
    caps = await scep_client.get_ca_caps()
    ca_cert = await scep_client.get_ca_cert(content.get("Name", ""))
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=int(content.get("Keysize", 2048)))
    subject = subject_name(content.get("Subject"))
    csr = make_csr(key, subject, challenge if challenge is not None else content.get("Challenge"))
    request = build_pkcs_req(csr, key=key, signer_cert=self_signed(key, subject), ca_cert=ca_cert,
                             digest="sha256" if "SHA-256" in caps else "sha1")
    der = await scep_client.pki_operation(request.message, post="POSTPKIOperation" in caps)
    return read_cert_rep(der, request, ca_cert), key, ca_cert


async def enroll(client: httpx.AsyncClient, profile_url: str, *, code: str | None = None) -> Identity:
    """Download the enrollment profile and get the identity its SCEP payload describes."""
    profile = await fetch_profile(client, profile_url, code=code)
    cert, key, ca_cert = await scep_enroll(client, payload(profile, "com.apple.security.scep"))
    return Identity(cert=cert, key=key, ca_cert=ca_cert, profile=profile)


# -- Mdm-Signature -----------------------------------------------------------------------------------------------


def sign_body(body: bytes, cert: x509.Certificate, key, digest: hashes.HashAlgorithm | None = None) -> str:
    """The `Mdm-Signature` header value: base64 of a detached CMS signature over the exact body bytes."""
    signature = (pkcs7.PKCS7SignatureBuilder().set_data(body).add_signer(cert, key, digest or hashes.SHA256())
                 .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature,
                                                    pkcs7.PKCS7Options.Binary]))
    return base64.b64encode(signature).decode()
