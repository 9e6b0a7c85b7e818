"""SCEP messages (RFC 8894; reference §3): parse a PKIOperation, open its envelope, read the CSR, build CertRep.

Pure: no DB, no HTTP. `enroll.py` holds the rules (challenge, issuance) and the door maps errors to statuses.
`cryptography` builds the AES envelopes; asn1crypto does the SignedData with SCEP's signed attributes, which
`cryptography`'s builders can't emit, and the DES/3DES envelopes older clients use whatever GetCACaps says.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID

from bramley.mdm.signature import DIGESTS, SignatureError, encapsulated_content, load_signed_data, verify_signed_data

# Advertised by GetCACaps. We also accept DES/3DES envelopes and SHA-1 signatures (§3.2 interop).
CA_CAPS = ("AES", "SHA-256", "POSTPKIOperation", "SCEPStandard", "Renewal")

OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"


class MessageType(IntEnum):
    CERT_REP = 3
    RENEWAL_REQ = 17
    PKCS_REQ = 19
    CERT_POLL = 20
    GET_CERT = 21
    GET_CRL = 22


class PKIStatus(IntEnum):
    SUCCESS = 0
    FAILURE = 2
    PENDING = 3


class FailInfo(IntEnum):
    BAD_ALG = 0
    BAD_MESSAGE_CHECK = 1
    BAD_REQUEST = 2
    BAD_TIME = 3
    BAD_CERT_ID = 4


class MalformedMessage(Exception):
    """Not a SCEP message we can even answer (no SignedData, no transactionID...): the door answers 400."""


class SCEPFailure(Exception):
    """A well-formed request we refuse: answered with a CertRep FAILURE carrying `fail_info`."""

    def __init__(self, fail_info: FailInfo, reason: str):
        super().__init__(reason)
        self.fail_info = fail_info
        self.reason = reason


@dataclass
class PKIMessage:
    """A parsed PKIOperation request. `failure` is set when the signature did not verify: the attributes needed
    to answer (transactionID, senderNonce) are still read, unverified, so the CertRep can say why."""

    message_type: int
    transaction_id: str
    sender_nonce: bytes
    digest_algorithm: str
    signer_cert: x509.Certificate | None
    envelope: bytes | None  # DER ContentInfo(EnvelopedData)
    failure: SCEPFailure | None = None


@dataclass(frozen=True)
class CSRInfo:
    csr: x509.CertificateSigningRequest
    challenge: str | None


def parse_pki_message(der: bytes) -> PKIMessage:
    """Parse and verify a PKIOperation request. Raises MalformedMessage if no CertRep can be built for it."""
    try:
        signed_data = load_signed_data(der)
    except SignatureError as exc:
        raise MalformedMessage(exc.reason) from None
    try:
        signer = signed_data["signer_infos"][0]
        attrs = _attrs(signer["signed_attrs"])
        digest_algorithm = signer["digest_algorithm"]["algorithm"].native
        message_type = int(attrs[OID_MESSAGE_TYPE])
        transaction_id = str(attrs[OID_TRANSACTION_ID])
        sender_nonce = attrs[OID_SENDER_NONCE]
        if not isinstance(sender_nonce, bytes) or not transaction_id:
            raise ValueError("bad senderNonce or transactionID")
        content = encapsulated_content(signed_data)
    except Exception:
        raise MalformedMessage("not a SCEP message: missing or bad signer attributes") from None
    msg = PKIMessage(message_type=message_type, transaction_id=transaction_id, sender_nonce=sender_nonce,
                     digest_algorithm=digest_algorithm if digest_algorithm in DIGESTS else "sha256",
                     signer_cert=None, envelope=content)
    try:
        result = verify_signed_data(signed_data)
    except SignatureError as exc:
        msg.failure = SCEPFailure(FailInfo.BAD_MESSAGE_CHECK, exc.reason)
        return msg
    msg.signer_cert = result.cert
    return msg


def _attrs(signed_attrs) -> dict[str, object]:
    if isinstance(signed_attrs, core.Void):
        raise ValueError("no signed attributes")
    out: dict[str, object] = {}
    for attr in signed_attrs:
        values = attr["values"]
        if len(values):
            out[attr["type"].dotted] = values[0].native
    return out


# -- EnvelopedData -----------------------------------------------------------------------------------------------

_CIPHERS = {  # asn1crypto name -> key length in bytes
    "aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32, "tripledes_3key": 24, "des": 8,
}


def open_envelope(der: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[bytes, str]:
    """Decrypt a CMS EnvelopedData addressed to `cert` (RSA key transport). Returns (plaintext, cipher name).

    AES-128/192/256-CBC, 3DES-CBC and DES-CBC; DES runs as TripleDES with the key repeated (K1=K2=K3).
    Raises SCEPFailure(badMessageCheck) on anything it cannot open.
    """
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "enveloped_data":
            raise ValueError("not EnvelopedData")
        enveloped = info["content"]
        encrypted_key, key_alg = _our_recipient(enveloped, cert)
        cek = key.decrypt(encrypted_key, _key_transport_padding(key_alg))
        eci = enveloped["encrypted_content_info"]
        alg = eci["content_encryption_algorithm"]
        name = alg["algorithm"].native
        if name not in _CIPHERS:
            raise SCEPFailure(FailInfo.BAD_ALG, f"content cipher {name} not supported")
        if len(cek) != _CIPHERS[name]:
            raise ValueError("content key length does not match the cipher")
        iv = alg.encryption_iv
        ciphertext = eci["encrypted_content"].native
        if not isinstance(ciphertext, bytes):
            raise ValueError("no encrypted content")
        return _cbc_decrypt(name, cek, iv, ciphertext), name
    except SCEPFailure:
        raise
    except Exception:
        raise SCEPFailure(FailInfo.BAD_MESSAGE_CHECK, "cannot open the envelope") from None


def _our_recipient(enveloped: cms.EnvelopedData, cert: x509.Certificate) -> tuple[bytes, cms.KeyEncryptionAlgorithm]:
    ours = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    fallback = None
    for info in enveloped["recipient_infos"]:
        if info.name != "ktri":
            continue
        ktri = info.chosen
        rid = ktri["rid"]
        found = (ktri["encrypted_key"].native, ktri["key_encryption_algorithm"])
        if rid.name == "issuer_and_serial_number":
            if rid.chosen["serial_number"].native == ours.serial_number and rid.chosen["issuer"] == ours.issuer:
                return found
        elif rid.name == "subject_key_identifier" and rid.chosen.native == ours.key_identifier:
            return found
        fallback = fallback or found
    if fallback is None:
        raise ValueError("no key-transport recipient")
    return fallback  # some clients put the RA's or a stale CA's id here; the key decides


def _key_transport_padding(alg: cms.KeyEncryptionAlgorithm):
    name = alg["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return padding.PKCS1v15()
    if name == "rsaes_oaep":
        params = alg["parameters"]
        hash_name = "sha1"
        if not isinstance(params, core.Void) and params.native:
            hash_name = params["hash_algorithm"]["algorithm"].native
        digest = DIGESTS[hash_name]()
        return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    raise SCEPFailure(FailInfo.BAD_ALG, f"key transport {name} not supported")


def _block_cipher(name: str, key: bytes):
    if name.startswith("aes"):
        return algorithms.AES(key), 128
    return TripleDES(key * 3 if name == "des" else key), 64


def _cbc_decrypt(name: str, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    algorithm, block_bits = _block_cipher(name, key)
    decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(block_bits).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def seal_envelope(data: bytes, recipient: x509.Certificate, cipher: str = "aes128_cbc") -> bytes:
    """EnvelopedData DER of `data` to `recipient` (RSA PKCS#1 v1.5 key transport).

    AES goes through `cryptography` (with Binary: without it LF becomes CRLF and DER breaks); DES and 3DES,
    which `cryptography` won't build, through asn1crypto, for clients that only speak those.
    """
    if not isinstance(recipient.public_key(), rsa.RSAPublicKey):
        raise SCEPFailure(FailInfo.BAD_ALG, "requester key cannot receive an envelope")
    if cipher.startswith("aes"):
        aes = algorithms.AES256 if cipher == "aes256_cbc" else algorithms.AES128
        return (pkcs7.PKCS7EnvelopeBuilder().set_data(data).add_recipient(recipient)
                .set_content_encryption_algorithm(aes)
                .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    if cipher not in ("tripledes_3key", "des"):
        raise SCEPFailure(FailInfo.BAD_ALG, f"content cipher {cipher} not supported")
    cek, iv = os.urandom(_CIPHERS[cipher]), os.urandom(8)
    algorithm, block_bits = _block_cipher(cipher, cek)
    padder = sym_padding.PKCS7(block_bits).padder()
    encryptor = Cipher(algorithm, modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()
    asn1_cert = asn1_x509.Certificate.load(recipient.public_bytes(serialization.Encoding.DER))
    ktri = cms.KeyTransRecipientInfo({
        "version": "v0",
        "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})),
        "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
        "encrypted_key": recipient.public_key().encrypt(cek, padding.PKCS1v15()),
    })
    enveloped = cms.EnvelopedData({
        "version": "v0",
        "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
        "encrypted_content_info": {
            "content_type": "data",
            "content_encryption_algorithm": {"algorithm": cipher, "parameters": core.OctetString(iv)},
            "encrypted_content": ciphertext,
        },
    })
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


# -- CSR -----------------------------------------------------------------------------------------------------------


def read_csr(der: bytes) -> CSRInfo:
    """The PKCS#10 request inside the envelope: its signature must verify; challengePassword may be absent."""
    try:
        csr = x509.load_der_x509_csr(der)
        valid = csr.is_signature_valid
    except Exception:
        raise SCEPFailure(FailInfo.BAD_MESSAGE_CHECK, "envelope does not hold a PKCS#10 request") from None
    if not valid:
        raise SCEPFailure(FailInfo.BAD_MESSAGE_CHECK, "CSR signature does not verify")
    try:
        raw = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
        challenge = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except x509.AttributeNotFound:
        challenge = None
    except (ValueError, UnicodeDecodeError):
        raise SCEPFailure(FailInfo.BAD_REQUEST, "unreadable challengePassword") from None
    return CSRInfo(csr=csr, challenge=challenge)


# -- SignedData with SCEP attributes -------------------------------------------------------------------------------


def _attribute(oid: str, value: core.Asn1Value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [value]})


def sign_pki_message(content: bytes | None, *, signer_cert: x509.Certificate, signer_key, digest: str = "sha256",
                     message_type: int, transaction_id: str, sender_nonce: bytes,
                     recipient_nonce: bytes | None = None, pki_status: int | None = None,
                     fail_info: int | None = None) -> bytes:
    """A SCEP pkiMessage: SignedData over `content` (absent for a FAILURE) with the SCEP signed attributes."""
    digest_cls = DIGESTS[digest]
    h = hashes.Hash(digest_cls())
    h.update(content or b"")
    attrs = [
        _attribute("1.2.840.113549.1.9.3", cms.ContentType("data")),
        _attribute("1.2.840.113549.1.9.4", core.OctetString(h.finalize())),
        _attribute(OID_MESSAGE_TYPE, core.PrintableString(str(int(message_type)))),
        _attribute(OID_TRANSACTION_ID, core.PrintableString(transaction_id)),
        _attribute(OID_SENDER_NONCE, core.OctetString(sender_nonce)),
    ]
    if pki_status is not None:
        attrs.append(_attribute(OID_PKI_STATUS, core.PrintableString(str(int(pki_status)))))
    if fail_info is not None:
        attrs.append(_attribute(OID_FAIL_INFO, core.PrintableString(str(int(fail_info)))))
    if recipient_nonce is not None:
        attrs.append(_attribute(OID_RECIPIENT_NONCE, core.OctetString(recipient_nonce)))
    signed_attrs = cms.CMSAttributes(attrs)
    to_sign = signed_attrs.dump()  # a plain SET OF: what the signature covers
    if isinstance(signer_key, rsa.RSAPrivateKey):
        signature = signer_key.sign(to_sign, padding.PKCS1v15(), digest_cls())
        sig_alg = "rsassa_pkcs1v15"
    elif isinstance(signer_key, ec.EllipticCurvePrivateKey):
        signature = signer_key.sign(to_sign, ec.ECDSA(digest_cls()))
        sig_alg = f"{digest}_ecdsa"
    else:
        raise TypeError("signer key must be RSA or EC")
    asn1_cert = asn1_x509.Certificate.load(signer_cert.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})),
        "digest_algorithm": {"algorithm": digest},
        "signed_attrs": signed_attrs,
        "signature_algorithm": {"algorithm": sig_alg},
        "signature": signature,
    })
    encap: dict = {"content_type": "data"}
    if content is not None:
        encap["content"] = content
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": encap,
        "certificates": [asn1_cert],
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def cert_rep_success(msg: PKIMessage, issued: x509.Certificate, *, ca_cert: x509.Certificate, ca_key,
                     content_cipher: str = "aes128_cbc") -> bytes:
    """CertRep SUCCESS: the issued certificate in a degenerate certs-only PKCS#7, enveloped to the requester's
    signing certificate with the cipher it used (AES for SCEPStandard clients, DES/3DES for old ones)."""
    assert msg.signer_cert is not None
    degenerate = pkcs7.serialize_certificates([issued], serialization.Encoding.DER)
    enveloped = seal_envelope(degenerate, msg.signer_cert, content_cipher)
    return sign_pki_message(enveloped, signer_cert=ca_cert, signer_key=ca_key, digest=msg.digest_algorithm,
                            message_type=MessageType.CERT_REP, transaction_id=msg.transaction_id,
                            sender_nonce=os.urandom(16), recipient_nonce=msg.sender_nonce,
                            pki_status=PKIStatus.SUCCESS)


def cert_rep_failure(msg: PKIMessage, fail_info: FailInfo, *, ca_cert: x509.Certificate, ca_key) -> bytes:
    """CertRep FAILURE: no content, pkiStatus 2 and failInfo."""
    return sign_pki_message(None, signer_cert=ca_cert, signer_key=ca_key, digest=msg.digest_algorithm,
                            message_type=MessageType.CERT_REP, transaction_id=msg.transaction_id,
                            sender_nonce=os.urandom(16), recipient_nonce=msg.sender_nonce,
                            pki_status=PKIStatus.FAILURE, fail_info=fail_info)


@dataclass(frozen=True)
class CertRep:
    """A parsed CertRep, as a client reads it (simulator, tests)."""

    status: int
    fail_info: int | None
    transaction_id: str
    recipient_nonce: bytes | None
    sender_nonce: bytes | None
    envelope: bytes | None
    signer_cert: x509.Certificate


def parse_cert_rep(der: bytes, ca_cert: x509.Certificate | None = None) -> CertRep:
    """Verify a CertRep's signature (and, given `ca_cert`, that the CA signed it) and read its attributes."""
    signed_data = load_signed_data(der)
    content = encapsulated_content(signed_data)
    result = verify_signed_data(signed_data, content if content is not None else b"")
    if ca_cert is not None and result.cert.public_key().public_numbers() != ca_cert.public_key().public_numbers():
        raise SignatureError("CertRep not signed by the CA")
    attrs = _attrs(result.signed_attrs)
    if int(attrs.get(OID_MESSAGE_TYPE, -1)) != MessageType.CERT_REP:
        raise SignatureError("not a CertRep")
    fail = attrs.get(OID_FAIL_INFO)
    return CertRep(status=int(attrs[OID_PKI_STATUS]), fail_info=int(fail) if fail is not None else None,
                   transaction_id=str(attrs.get(OID_TRANSACTION_ID)), recipient_nonce=attrs.get(OID_RECIPIENT_NONCE),
                   sender_nonce=attrs.get(OID_SENDER_NONCE), envelope=content, signer_cert=result.cert)
