"""Mdm-Signature and forwarded client certificates: what authenticates a device on every request."""
from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from urllib.parse import quote

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from bramley.db.base import utcnow
from bramley.mdm import pki
from bramley.mdm.signature import SignatureError, cert_from_forwarded_header, cert_sha256, verify_mdm_signature
from bramley.simulator.scep_client import sign_body

BODY = b'<?xml version="1.0"?>\n<plist version="1.0"><dict><key>MessageType</key><string>Authenticate</string>' \
       b'</dict></plist>\n'


def _csr(key):
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
            .sign(key, hashes.SHA256()))


@pytest.fixture
def identity(make_tenant, db):
    """(tenant handle, CA cert, identity cert, identity key)."""
    handle = make_tenant()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with db.unit_of_work() as s:
        ctx = handle.ctx(s)
        cert = pki.issue_identity(s, ctx, _csr(key))
        ca = pki.ca_cert(s, ctx)
    return handle, ca, cert, key


def _sha1_signature(body: bytes, cert: x509.Certificate, key) -> str:
    """A detached SHA-1 signature with signed attributes, as older devices and tools send (cryptography's
    builder refuses SHA-1, so asn1crypto builds it)."""
    attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha1(body).digest()]}),
    ])
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA1())
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})),
        "digest_algorithm": {"algorithm": "sha1"}, "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"}, "signature": signature,
    })
    signed = cms.SignedData({"version": "v1", "digest_algorithms": [{"algorithm": "sha1"}],
                             "encap_content_info": {"content_type": "data"}, "certificates": [asn1_cert],
                             "signer_infos": [signer]})
    return base64.b64encode(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()).decode()


def test_valid_signature_returns_the_identity(identity):
    _, ca, cert, key = identity
    assert verify_mdm_signature(sign_body(BODY, cert, key), BODY, ca) == cert


def test_sha1_signature_is_accepted(identity):
    _, ca, cert, key = identity
    assert verify_mdm_signature(_sha1_signature(BODY, cert, key), BODY, ca) == cert


def test_signature_without_signed_attributes_is_accepted(identity):
    _, ca, cert, key = identity
    der = (pkcs7.PKCS7SignatureBuilder().set_data(BODY).add_signer(cert, key, hashes.SHA256())
           .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary,
                                              pkcs7.PKCS7Options.NoAttributes]))
    assert verify_mdm_signature(base64.b64encode(der).decode(), BODY, ca) == cert


def test_ecdsa_identity_is_accepted(make_tenant, db):
    handle = make_tenant()
    key = ec.generate_private_key(ec.SECP256R1())
    with db.unit_of_work() as s:
        cert = pki.issue_identity(s, handle.ctx(s), _csr(key))
        ca = pki.ca_cert(s, handle.ctx(s))
    assert verify_mdm_signature(sign_body(BODY, cert, key), BODY, ca) == cert


def test_tampered_body_is_refused(identity):
    _, ca, cert, key = identity
    header = sign_body(BODY, cert, key)
    with pytest.raises(SignatureError, match="messageDigest"):
        verify_mdm_signature(header, BODY.replace(b"Authenticate", b"TokenUpdate!"), ca)


def test_sha1_signature_over_another_body_is_refused(identity):
    _, ca, cert, key = identity
    with pytest.raises(SignatureError):
        verify_mdm_signature(_sha1_signature(BODY, cert, key), BODY + b" ", ca)


def test_identity_from_another_tenants_ca_is_refused(identity, make_tenant, db):
    _, _, cert, key = identity
    other = make_tenant()
    with db.unit_of_work() as s:
        other_ca = pki.ca_cert(s, other.ctx(s))
    with pytest.raises(SignatureError, match="CA"):
        verify_mdm_signature(sign_body(BODY, cert, key), BODY, other_ca)


def test_self_signed_cert_is_refused(identity):
    _, ca, _, _ = identity
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = ca.subject  # even one claiming the CA's name
    now = utcnow()
    fake = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    with pytest.raises(SignatureError):
        verify_mdm_signature(sign_body(BODY, fake, key), BODY, ca)


def test_expired_identity_is_refused(make_tenant, db):
    handle = make_tenant()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with db.unit_of_work() as s:
        ctx = handle.ctx(s)
        cert = pki.issue_identity(s, ctx, _csr(key), now=utcnow() - timedelta(days=400))
        ca = pki.ca_cert(s, ctx)
    with pytest.raises(SignatureError, match="expired"):
        verify_mdm_signature(sign_body(BODY, cert, key), BODY, ca)


def test_cert_without_client_auth_is_refused(make_tenant, db):
    handle = make_tenant()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with db.unit_of_work() as s:
        ca_cert, ca_key = pki.load_ca(s, handle.ctx(s))
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))
    with pytest.raises(SignatureError, match="clientAuth"):
        verify_mdm_signature(sign_body(BODY, cert, key), BODY, ca_cert)


@pytest.mark.parametrize("header", [
    "", "   ", "not base64 at all!", base64.b64encode(b"garbage").decode(),
    base64.b64encode(core.OctetString(b"x").dump()).decode(),
    base64.b64encode(cms.ContentInfo({"content_type": "data", "content": b"x"}).dump()).decode(),
])
def test_garbage_header_is_refused(identity, header):
    _, ca, _, _ = identity
    with pytest.raises(SignatureError):
        verify_mdm_signature(header, BODY, ca)


def test_truncated_signature_is_refused(identity):
    _, ca, cert, key = identity
    der = base64.b64decode(sign_body(BODY, cert, key))
    with pytest.raises(SignatureError):
        verify_mdm_signature(base64.b64encode(der[: len(der) // 2]).decode(), BODY, ca)


def test_cert_sha256_is_the_der_hash(identity):
    _, _, cert, _ = identity
    assert cert_sha256(cert) == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_forwarded_rfc9440_client_cert(identity):
    _, ca, cert, _ = identity
    value = ":" + base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode() + ":"
    assert cert_from_forwarded_header(value, ca) == cert


def test_forwarded_nginx_escaped_pem(identity):
    _, ca, cert, _ = identity
    value = quote(cert.public_bytes(serialization.Encoding.PEM).decode(), safe="")
    assert cert_from_forwarded_header(value, ca) == cert


def test_forwarded_cert_from_another_tenant_is_refused(identity, make_tenant, db):
    _, _, cert, _ = identity
    other = make_tenant()
    with db.unit_of_work() as s:
        other_ca = pki.ca_cert(s, other.ctx(s))
    with pytest.raises(SignatureError):
        cert_from_forwarded_header(":" + base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
                                   + ":", other_ca)


@pytest.mark.parametrize("value", ["", ":bm9wZQ==:", "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE", "garbage"])
def test_forwarded_garbage_is_refused(identity, value):
    _, ca, _, _ = identity
    with pytest.raises(SignatureError):
        cert_from_forwarded_header(value, ca)
