"""SCEP against the ASGI app: what devices and common SCEP clients send, and what they must get back.

Old-style requests (DES/3DES envelopes, SHA-1 signatures) are built here with asn1crypto, independently of
Bramley's SCEP code, so a shared misunderstanding can't make both sides agree.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
from datetime import timedelta

import httpx
import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import select

from bramley.mdm import enroll, pki, scep
from bramley.mdm.models import IssuedCertificate
from bramley.mdm.signature import cert_sha256
from bramley.simulator import scep_client
from bramley.simulator.scep_client import EnrollmentFailed

SUCCESS, FAILURE = 0, 2
BAD_MESSAGE_CHECK, BAD_REQUEST = 1, 2


def run(coro):
    return asyncio.run(coro)


def device_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def scep_url(handle) -> str:
    return f"http://testserver/mdm/t/{handle.subdomain}/scep"


def scep_payload(handle, challenge: str | None) -> dict:
    content = {"URL": scep_url(handle), "Name": handle.subdomain, "Keysize": 2048,
               "Subject": [[["CN", "test device"]]]}
    if challenge is not None:
        content["Challenge"] = challenge
    return {"PayloadType": "com.apple.security.scep", "PayloadContent": content}


def mint_challenge(db, handle, ttl: timedelta = enroll.CHALLENGE_TTL) -> str:
    with db.unit_of_work() as s:
        return enroll.mint_challenge(s, handle.ctx(s), ttl=ttl)


def tenant_ca(db, handle) -> pki.CA:
    with db.unit_of_work() as s:
        return pki.load_ca(s, handle.ctx(s))


async def post(app, handle, message: bytes) -> httpx.Response:
    async with device_client(app) as c:
        return await c.post(scep_url(handle), params={"operation": "PKIOperation"}, content=message)


# -- an independent, old-style SCEP client: asn1crypto envelopes and signatures --------------------------------


def legacy_envelope(data: bytes, recipient: x509.Certificate, cipher: str) -> bytes:
    key_len = {"tripledes_3key": 24, "des": 8, "aes128_cbc": 16, "aes256_cbc": 32}[cipher]
    cek = os.urandom(key_len)
    if cipher.startswith("aes"):
        block, algorithm, iv = 128, algorithms.AES(cek), os.urandom(16)
    else:
        block, algorithm, iv = 64, TripleDES(cek * 3 if cipher == "des" else cek), os.urandom(8)
    padder = sym_padding.PKCS7(block).padder()
    enc = Cipher(algorithm, modes.CBC(iv)).encryptor()
    ciphertext = enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    asn1_cert = asn1_x509.Certificate.load(recipient.public_bytes(serialization.Encoding.DER))
    ktri = cms.KeyTransRecipientInfo({
        "version": "v0",
        "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})),
        "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
        "encrypted_key": recipient.public_key().encrypt(cek, padding.PKCS1v15()),
    })
    enveloped = cms.EnvelopedData({
        "version": "v0", "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
        "encrypted_content_info": {"content_type": "data", "encrypted_content": ciphertext,
                                   "content_encryption_algorithm": {"algorithm": cipher,
                                                                    "parameters": core.OctetString(iv)}},
    })
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def legacy_open(der: bytes, key) -> tuple[bytes, str]:
    enveloped = cms.ContentInfo.load(der)["content"]
    cek = key.decrypt(enveloped["recipient_infos"][0].chosen["encrypted_key"].native, padding.PKCS1v15())
    alg = enveloped["encrypted_content_info"]["content_encryption_algorithm"]
    name, iv = alg["algorithm"].native, alg["parameters"].native
    if name.startswith("aes"):
        block, algorithm = 128, algorithms.AES(cek)
    else:
        block, algorithm = 64, TripleDES(cek * 3 if name == "des" else cek)
    dec = Cipher(algorithm, modes.CBC(iv)).decryptor()
    padded = dec.update(enveloped["encrypted_content_info"]["encrypted_content"].native) + dec.finalize()
    unpadder = sym_padding.PKCS7(block).unpadder()
    return unpadder.update(padded) + unpadder.finalize(), name


def legacy_signed(content: bytes, cert: x509.Certificate, key, *, digest: str, message_type: str = "19",
                  transaction_id: str = "4F1A", nonce: bytes = b"\x01" * 16, corrupt: bool = False) -> bytes:
    digest_fn = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}[digest]
    hash_alg = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}[digest]()

    def attr(oid, value):
        return cms.CMSAttribute({"type": oid, "values": [value]})

    attrs = cms.CMSAttributes([
        attr("1.2.840.113549.1.9.3", cms.ContentType("data")),
        attr("1.2.840.113549.1.9.4", core.OctetString(digest_fn(content).digest())),
        attr("2.16.840.1.113733.1.9.2", core.PrintableString(message_type)),
        attr("2.16.840.1.113733.1.9.7", core.PrintableString(transaction_id)),
        attr("2.16.840.1.113733.1.9.5", core.OctetString(nonce)),
    ])
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), hash_alg)
    if corrupt:
        signature = bytes([signature[0] ^ 0xFF]) + signature[1:]
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})),
        "digest_algorithm": {"algorithm": digest}, "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"}, "signature": signature,
    })
    signed = cms.SignedData({
        "version": "v1", "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": [asn1_cert], "signer_infos": [signer],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def legacy_request(ca_cert, challenge: str | None, *, cipher: str, digest: str, key=None, **kw):
    key = key or new_key()
    subject = scep_client.subject_name([[["CN", "legacy device"]]])
    csr = scep_client.make_csr(key, subject, challenge)
    signer = scep_client.self_signed(key, subject)
    enveloped = legacy_envelope(csr.public_bytes(serialization.Encoding.DER), ca_cert, cipher)
    return legacy_signed(enveloped, signer, key, digest=digest, **kw), key


# -- enrollment round trip -------------------------------------------------------------------------------------


def test_device_enrolls_with_profile_and_scep(app, db, make_tenant):
    handle = make_tenant()
    with db.unit_of_work() as s:
        code = enroll.mint_enroll_code(s, handle.ctx(s))

    async def go():
        async with device_client(app) as c:
            return await scep_client.enroll(c, f"http://testserver/mdm/t/{handle.subdomain}/enroll", code=code)

    identity = run(go())
    ca = tenant_ca(db, handle)
    identity.cert.verify_directly_issued_by(ca.cert)
    assert identity.ca_cert == ca.cert
    assert identity.cert.public_key().public_numbers() == identity.key.public_key().public_numbers()
    with db.unit_of_work() as s:
        record = s.get(IssuedCertificate, (handle.id, f"{identity.cert.serial_number:x}"))
        assert record is not None and record.cert_sha256 == cert_sha256(identity.cert)
    mdm = identity.mdm_payload
    assert mdm["IdentityCertificateUUID"] == scep_client.payload(identity.profile,
                                                                 "com.apple.security.scep")["PayloadUUID"]


def test_challenge_works_once(app, db, make_tenant):
    handle = make_tenant()
    payload = scep_payload(handle, mint_challenge(db, handle))

    async def go():
        async with device_client(app) as c:
            first = await scep_client.scep_enroll(c, payload)
            with pytest.raises(EnrollmentFailed) as second:
                await scep_client.scep_enroll(c, payload)
            return first, second.value

    (cert, _, ca), refused = run(go())
    cert.verify_directly_issued_by(ca)
    assert refused.status == FAILURE and refused.fail_info == BAD_REQUEST


def test_expired_challenge_gets_failure(app, db, make_tenant):
    handle = make_tenant()
    payload = scep_payload(handle, mint_challenge(db, handle, ttl=timedelta(seconds=-1)))

    async def go():
        async with device_client(app) as c:
            await scep_client.scep_enroll(c, payload)

    with pytest.raises(EnrollmentFailed) as refused:
        run(go())
    assert refused.value.fail_info == BAD_REQUEST


@pytest.mark.parametrize("challenge", [None, "", "0123456789abcdef0123456789abcdef"])
def test_missing_or_unknown_challenge_gets_failure(app, db, make_tenant, challenge):
    handle = make_tenant()

    async def go():
        async with device_client(app) as c:
            await scep_client.scep_enroll(c, scep_payload(handle, challenge))

    with pytest.raises(EnrollmentFailed) as refused:
        run(go())
    assert refused.value.fail_info == BAD_REQUEST


def test_challenge_of_another_tenant_gets_failure(app, db, make_tenant):
    handle, other = make_tenant(), make_tenant()
    payload = scep_payload(handle, mint_challenge(db, other))

    async def go():
        async with device_client(app) as c:
            await scep_client.scep_enroll(c, payload)

    with pytest.raises(EnrollmentFailed) as refused:
        run(go())
    assert refused.value.fail_info == BAD_REQUEST


def test_refused_request_does_not_burn_the_challenge(app, db, make_tenant):
    handle = make_tenant()
    payload = scep_payload(handle, mint_challenge(db, handle))

    async def go():
        async with device_client(app) as c:
            with pytest.raises(EnrollmentFailed) as weak:
                await scep_client.scep_enroll(c, payload, key=new_key(1024))
            return weak.value, await scep_client.scep_enroll(c, payload)

    weak, (cert, _, _) = run(go())
    assert weak.fail_info == BAD_REQUEST
    assert cert is not None


# -- interop: old envelopes and digests, GET -------------------------------------------------------------------


@pytest.mark.parametrize("cipher,digest", [
    ("tripledes_3key", "sha1"), ("des", "sha1"), ("tripledes_3key", "sha256"), ("aes256_cbc", "sha1"),
])
def test_old_style_request_is_accepted_and_answered_in_kind(app, db, make_tenant, cipher, digest):
    handle = make_tenant()
    ca = tenant_ca(db, handle)
    message, key = legacy_request(ca.cert, mint_challenge(db, handle), cipher=cipher, digest=digest,
                                  nonce=b"\x07" * 16, transaction_id="LEGACY1")
    response = run(post(app, handle, message))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-pki-message"
    rep = scep.parse_cert_rep(response.content, ca.cert)
    assert (rep.status, rep.transaction_id, rep.recipient_nonce) == (SUCCESS, "LEGACY1", b"\x07" * 16)
    assert rep.sender_nonce and rep.sender_nonce != b"\x07" * 16
    signer_info = cms.ContentInfo.load(response.content)["content"]["signer_infos"][0]
    assert signer_info["digest_algorithm"]["algorithm"].native == digest  # answered with the client's digest
    inner, answered_cipher = legacy_open(rep.envelope, key)
    assert answered_cipher == cipher  # a DES-only client gets DES back
    cert = pkcs7.load_der_pkcs7_certificates(inner)[0]
    cert.verify_directly_issued_by(ca.cert)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_pki_operation_by_get_with_base64_message(app, db, make_tenant):
    handle = make_tenant()
    ca = tenant_ca(db, handle)
    key = new_key()
    subject = scep_client.subject_name([[["CN", "get device"]]])
    request = scep_client.build_pkcs_req(scep_client.make_csr(key, subject, mint_challenge(db, handle)), key=key,
                                         signer_cert=scep_client.self_signed(key, subject), ca_cert=ca.cert)

    async def go():
        async with device_client(app) as c:
            return await scep_client.SCEPClient(c, scep_url(handle)).pki_operation(request.message, post=False)

    cert = scep_client.read_cert_rep(run(go()), request, ca.cert)
    cert.verify_directly_issued_by(ca.cert)


def test_get_message_with_unescaped_plus_signs(app, db, make_tenant):
    handle = make_tenant()
    ca = tenant_ca(db, handle)
    # Some clients don't percent-encode: '+' arrives as ' '. Find a message whose base64 has a '+'.
    for _ in range(50):
        message, key = legacy_request(ca.cert, mint_challenge(db, handle), cipher="tripledes_3key", digest="sha1")
        encoded = base64.b64encode(message).decode()
        if "+" in encoded:
            break
    raw_query = "operation=PKIOperation&message=" + encoded.replace("/", "%2F").replace("=", "%3D")

    async def go():
        async with device_client(app) as c:
            return await c.get(f"{scep_url(handle)}?{raw_query}")

    response = run(go())
    assert response.status_code == 200
    assert scep.parse_cert_rep(response.content, ca.cert).status == SUCCESS


def test_get_ca_cert_and_caps_have_exact_content_types(app, db, make_tenant):
    handle = make_tenant()
    ca = tenant_ca(db, handle)

    async def go():
        async with device_client(app) as c:
            cert = await c.get(scep_url(handle), params={"operation": "GetCACert", "message": handle.subdomain})
            caps = await c.get(scep_url(handle), params={"operation": "GetCACaps"})
            return cert, caps

    cert, caps = run(go())
    assert cert.status_code == 200
    assert cert.headers["content-type"] == "application/x-x509-ca-cert"
    assert cert.content == ca.cert.public_bytes(serialization.Encoding.DER)
    assert caps.status_code == 200 and caps.headers["content-type"] == "text/plain"
    assert set(caps.text.split()) >= {"AES", "SHA-256", "POSTPKIOperation", "SCEPStandard", "Renewal"}


# -- refusals --------------------------------------------------------------------------------------------------


def test_bad_signature_gets_failure_bad_message_check(app, db, make_tenant):
    handle = make_tenant()
    ca = tenant_ca(db, handle)
    message, _ = legacy_request(ca.cert, mint_challenge(db, handle), cipher="aes128_cbc", digest="sha256",
                                corrupt=True, transaction_id="TAMPERED", nonce=b"\x05" * 16)
    response = run(post(app, handle, message))
    assert response.status_code == 200
    rep = scep.parse_cert_rep(response.content, ca.cert)
    assert (rep.status, rep.fail_info) == (FAILURE, BAD_MESSAGE_CHECK)
    assert (rep.transaction_id, rep.recipient_nonce, rep.envelope) == ("TAMPERED", b"\x05" * 16, None)
    with db.unit_of_work() as s:
        assert s.scalar(select(IssuedCertificate).where(IssuedCertificate.tenant_id == handle.id)) is None


def test_request_enveloped_to_another_ca_gets_failure(app, db, make_tenant):
    handle, other = make_tenant(), make_tenant()
    message, _ = legacy_request(tenant_ca(db, other).cert, mint_challenge(db, handle), cipher="aes128_cbc",
                                digest="sha256")
    rep = scep.parse_cert_rep(run(post(app, handle, message)).content, tenant_ca(db, handle).cert)
    assert (rep.status, rep.fail_info) == (FAILURE, BAD_MESSAGE_CHECK)


def test_cert_poll_is_refused_with_bad_request(app, db, make_tenant):
    handle = make_tenant()
    ca = tenant_ca(db, handle)
    message, _ = legacy_request(ca.cert, mint_challenge(db, handle), cipher="aes128_cbc", digest="sha256",
                                message_type="20")
    rep = scep.parse_cert_rep(run(post(app, handle, message)).content, ca.cert)
    assert (rep.status, rep.fail_info) == (FAILURE, BAD_REQUEST)


def test_renewal_signed_by_current_identity_needs_no_challenge(app, db, make_tenant):
    handle = make_tenant()
    payload = scep_payload(handle, mint_challenge(db, handle))

    async def enroll_once():
        async with device_client(app) as c:
            return await scep_client.scep_enroll(c, payload)

    current, current_key, ca_cert = run(enroll_once())
    new = new_key()
    subject = scep_client.subject_name([[["CN", "renewed"]]])
    renewal = scep_client.build_pkcs_req(scep_client.make_csr(new, subject, None), key=current_key,
                                         signer_cert=current, ca_cert=ca_cert,
                                         message_type=scep.MessageType.RENEWAL_REQ)
    cert = scep_client.read_cert_rep(run(post(app, handle, renewal.message)).content, renewal, ca_cert)
    assert cert.public_key().public_numbers() == new.public_key().public_numbers()
    # The same renewal from a self-signed stranger needs a challenge like any enrollment.
    stranger = scep_client.build_pkcs_req(scep_client.make_csr(new, subject, None), key=new,
                                          signer_cert=scep_client.self_signed(new, subject), ca_cert=ca_cert,
                                          message_type=scep.MessageType.RENEWAL_REQ)
    with pytest.raises(EnrollmentFailed) as refused:
        scep_client.read_cert_rep(run(post(app, handle, stranger.message)).content, stranger, ca_cert)
    assert refused.value.fail_info == BAD_REQUEST


@pytest.mark.parametrize("body", [
    b"", b"garbage", b"\x30\x03\x02\x01\x01",
    cms.ContentInfo({"content_type": "data", "content": b"x"}).dump(),
])
def test_malformed_pki_operation_is_400_not_500(app, make_tenant, body):
    handle = make_tenant()
    response = run(post(app, handle, body))
    assert (response.status_code, response.content) == (400, b"")


def test_signed_data_without_scep_attributes_is_400(app, db, make_tenant):
    handle = make_tenant()
    ca_cert, ca_key = tenant_ca(db, handle)
    der = (pkcs7.PKCS7SignatureBuilder().set_data(b"hello").add_signer(ca_cert, ca_key, hashes.SHA256())
           .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    assert run(post(app, handle, der)).status_code == 400


@pytest.mark.parametrize("params", [
    {"operation": "PKIOperation", "message": "%%%not base64%%%"},
    {"operation": "PKIOperation"},
    {"operation": "GetNextCACert"},
    {},
])
def test_bad_get_requests_are_400(app, make_tenant, params):
    handle = make_tenant()

    async def go():
        async with device_client(app) as c:
            return await c.get(scep_url(handle), params=params)

    response = run(go())
    assert (response.status_code, response.content) == (400, b"")


@pytest.mark.parametrize("path,params", [
    ("/scep", {"operation": "GetCACert"}), ("/scep", {"operation": "GetCACaps"}),
    ("/scep", {"operation": "PKIOperation", "message": "AAAA"}), ("/enroll", {"code": "AAAA-BBBB"}),
])
def test_unknown_tenant_is_404(app, path, params):
    async def go():
        async with device_client(app) as c:
            return await c.get(f"/mdm/t/nosuchtenant{os.urandom(4).hex()}{path}", params=params)

    response = run(go())
    assert (response.status_code, response.content) == (404, b"")


def test_openssl_verifies_and_decrypts_cert_rep(app, db, make_tenant, tmp_path):
    """A third implementation agrees: OpenSSL checks the CA's signature and opens the envelope."""
    handle = make_tenant()
    ca = tenant_ca(db, handle)
    key = new_key()
    subject = scep_client.subject_name([[["CN", "openssl check"]]])
    signer = scep_client.self_signed(key, subject)
    request = scep_client.build_pkcs_req(scep_client.make_csr(key, subject, mint_challenge(db, handle)), key=key,
                                         signer_cert=signer, ca_cert=ca.cert)
    (tmp_path / "rep.der").write_bytes(run(post(app, handle, request.message)).content)
    (tmp_path / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "signer.pem").write_bytes(signer.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True, timeout=30)

    openssl("cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-purpose", "any",
            "-out", "enveloped.der")
    openssl("cms", "-decrypt", "-inform", "DER", "-in", "enveloped.der", "-recip", "signer.pem", "-inkey", "key.pem",
            "-out", "certs.der")
    cert = pkcs7.load_der_pkcs7_certificates((tmp_path / "certs.der").read_bytes())[0]
    cert.verify_directly_issued_by(ca.cert)
