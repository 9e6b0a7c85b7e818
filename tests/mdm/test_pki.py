"""The tenant PKI: a CA and an escrow key pair made with the tenant, keys only in the secret store, identities."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from bramley.db.base import utcnow
from bramley.mdm import pki
from bramley.mdm.models import IssuedCertificate, TenantPKI
from bramley.mdm.signature import cert_sha256
from bramley.secrets import service as secrets
from bramley.secrets.models import Secret


def csr_for(key, cn: str = "device") -> x509.CertificateSigningRequest:
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256()))


def rsa_key(bits: int = 2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def test_new_tenant_has_a_device_ca(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        ca = pki.load_ca(s, handle.ctx(s))
    assert ca.cert.subject == ca.cert.issuer
    assert handle.subdomain in ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.cert.public_key())
    assert isinstance(ca.key, rsa.RSAPrivateKey) and ca.key.key_size == 2048
    assert ca.key.public_key().public_numbers() == ca.cert.public_key().public_numbers()
    cert, key = ca  # unpacks as (cert, key)
    assert cert is ca.cert and key is ca.key


def test_new_tenant_has_an_escrow_key_pair(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        ctx = handle.ctx(s)
        cert, key = pki.escrow_cert(s, ctx), pki.load_escrow_key(s, ctx)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_private_keys_are_stored_only_encrypted(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        row = s.get(TenantPKI, handle.id)
        kinds = set(s.scalars(select(Secret.kind).where(Secret.tenant_id == handle.id, Secret.owner_type == "tenant")))
        blobs = list(s.scalars(select(Secret.ciphertext).where(Secret.tenant_id == handle.id)))
        stored_key = secrets.get(s, handle.ctx(s), owner_type="tenant", owner_id=handle.id, kind="scep_ca_key",
                                 audited=False)
    assert {"scep_ca_key", "escrow_key"} <= kinds
    assert "PRIVATE KEY" not in row.ca_cert_pem + row.escrow_cert_pem
    assert all(b"PRIVATE KEY" not in blob for blob in blobs)
    assert b"PRIVATE KEY" in stored_key


def test_each_tenant_gets_its_own_ca(make_tenant, db):
    a, b = make_tenant(), make_tenant()
    with db.unit_of_work() as s:
        ca_a, ca_b = pki.ca_cert(s, a.ctx(s)), pki.ca_cert(s, b.ctx(s))
    assert ca_a.public_key().public_numbers() != ca_b.public_key().public_numbers()


def test_provision_keeps_an_existing_pki(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        before = s.get(TenantPKI, handle.id).ca_cert_pem
        pki.provision(s, handle.ctx(s))
        assert s.get(TenantPKI, handle.id).ca_cert_pem == before


def test_issued_identity_chains_to_the_tenant_ca_and_is_recorded(make_tenant, db):
    handle = make_tenant()
    key = rsa_key()
    with db.unit_of_work() as s:
        ctx = handle.ctx(s)
        cert = pki.issue_identity(s, ctx, csr_for(key, "mac-1"))
        ca = pki.ca_cert(s, ctx)
    cert.verify_directly_issued_by(ca)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mac-1"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    lifetime = cert.not_valid_after_utc - utcnow()
    assert timedelta(days=364) < lifetime <= timedelta(days=365)
    with db.unit_of_work() as s:
        record = s.get(IssuedCertificate, (handle.id, f"{cert.serial_number:x}"))
        assert record.cert_sha256 == cert_sha256(cert)
        assert record.not_after == cert.not_valid_after_utc
        assert "mac-1" in record.subject


def test_identity_passes_the_x509_client_verification_policy(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        ctx = handle.ctx(s)
        cert = pki.issue_identity(s, ctx, csr_for(rsa_key()))
        ca = pki.ca_cert(s, ctx)
    verifier = verification.PolicyBuilder().store(verification.Store([ca])).build_client_verifier()
    assert verifier.verify(cert, []).chain[-1] == ca


def test_ec_p256_identity_is_issued(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        cert = pki.issue_identity(s, handle.ctx(s), csr_for(ec.generate_private_key(ec.SECP256R1())))
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_small_rsa_key_is_refused_and_nothing_recorded(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        with pytest.raises(pki.IssuanceRefused):
            pki.issue_identity(s, handle.ctx(s), csr_for(rsa_key(1024)))
        assert s.scalar(select(IssuedCertificate).where(IssuedCertificate.tenant_id == handle.id)) is None


def test_ca_served_from_cache_follows_the_stored_certificate(make_tenant, db):
    handle = make_tenant()
    with db.unit_of_work() as s:
        ctx = handle.ctx(s)
        first = pki.load_ca(s, ctx)
        assert pki.load_ca(s, ctx).key is first.key  # decrypted once per process
        # A replaced CA (say, restored from backup) is picked up, not served stale from the cache.
        new_key = rsa_key()
        s.get(TenantPKI, handle.id).ca_cert_pem = pki.build_ca(handle.subdomain, new_key).public_bytes(
            serialization.Encoding.PEM).decode()
        secrets.put(s, ctx, owner_type="tenant", owner_id=handle.id, kind="scep_ca_key",
                    value=new_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        s.flush()
        assert pki.load_ca(s, ctx).cert.public_key().public_numbers() == new_key.public_key().public_numbers()
        s.rollback()
