"""ADE server tokens: the .p7m Apple Business Manager hands out, opened with the tenant's ADE key. Pure: no DB.

Apple's file is S/MIME: MIME headers, then base64 of a CMS EnvelopedData addressed to the certificate the admin
uploaded (reference §9.1). Inside is another MIME part whose body holds, between `-----BEGIN MESSAGE-----` and
`-----END MESSAGE-----`, the JSON OAuth credentials. `cryptography` opens AES envelopes; which cipher Apple uses
is unconfirmed, so 3DES (and any AES variant it refuses) is opened with asn1crypto plus a plain CBC decrypt.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7

MAX_TOKEN_BYTES = 64 * 1024  # a real token is about 2 KB

NOT_A_TOKEN = "The file is not an MDM server token (.p7m) from Apple Business Manager or Apple School Manager."
WRONG_KEY = ("The server token was not encrypted with this tenant's ADE public key. Download the public key "
             "again, upload it to the MDM server in Apple Business Manager, then download a new token.")
NO_CREDENTIALS = "The server token does not hold the OAuth credentials Apple issues."
_CIPHERS = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32, "tripledes_3key": 24}
_MESSAGE = re.compile(rb"-----BEGIN MESSAGE-----(.*?)-----END MESSAGE-----", re.S)


class TokenError(ValueError):
    """The upload is not a usable server token; the message is safe to show (it never holds token bytes)."""


@dataclass(frozen=True)
class ServerToken:
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_secret: str
    access_token_expiry: datetime | None

    def __repr__(self) -> str:  # never the secrets
        return f"ServerToken(consumer_key={self.consumer_key!r}, expiry={self.access_token_expiry})"

    def to_json(self) -> bytes:
        return json.dumps({
            "consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret,
            "access_token": self.access_token, "access_secret": self.access_secret,
            "access_token_expiry": format_expiry(self.access_token_expiry),
        }).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "ServerToken":
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise TokenError(NO_CREDENTIALS) from None
        if not isinstance(data, dict):
            raise TokenError(NO_CREDENTIALS)
        values = {}
        for name in ("consumer_key", "consumer_secret", "access_token", "access_secret"):
            value = data.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > 1024:
                raise TokenError(NO_CREDENTIALS)
            values[name] = value.strip()
        return cls(**values, access_token_expiry=parse_expiry(data.get("access_token_expiry")))


def parse_expiry(value) -> datetime | None:
    """Apple writes `2024-06-14T23:53:04Z`; anything unreadable is treated as unknown."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def format_expiry(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


# -- the envelope -----------------------------------------------------------------------------------------------

def envelope_der(data: bytes) -> bytes:
    """The CMS bytes of an upload: S/MIME (Apple's .p7m), PEM, bare base64, or DER."""
    if data.lstrip()[:1] == b"\x30":
        return data.lstrip()  # DER: never strip its end, where any byte may look like whitespace
    body = data.strip()
    if not body:
        raise TokenError(NOT_A_TOKEN)
    pem = re.search(rb"-----BEGIN (?:PKCS7|CMS)-----(.*?)-----END (?:PKCS7|CMS)-----", body, re.S)
    if pem:
        body = pem.group(1)
    else:
        # MIME: headers, a blank line, then the base64 body.
        parts = re.split(rb"\r?\n\r?\n", body, maxsplit=1)
        if len(parts) == 2 and re.match(rb"^[A-Za-z-]+:", parts[0]):
            body = parts[1]
    try:
        der = base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
    except (binascii.Error, ValueError):
        raise TokenError(NOT_A_TOKEN) from None
    if der[:1] != b"\x30":
        raise TokenError(NOT_A_TOKEN)
    return der


def _enveloped(der: bytes) -> cms.EnvelopedData:
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "enveloped_data":
            raise TokenError(NOT_A_TOKEN)
        enveloped = info["content"]
        enveloped["recipient_infos"].native  # noqa: B018 - parse now, so garbage fails here
        return enveloped
    except TokenError:
        raise
    except Exception:
        raise TokenError(NOT_A_TOKEN) from None


def _is_ours(enveloped: cms.EnvelopedData, cert: x509.Certificate) -> list[cms.KeyTransRecipientInfo]:
    """Key-transport recipients naming our certificate (issuer+serial or key id)."""
    ours = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    found = []
    for info in enveloped["recipient_infos"]:
        if info.name != "ktri":
            continue
        rid = info.chosen["rid"]
        if rid.name == "issuer_and_serial_number":
            if rid.chosen["serial_number"].native == ours.serial_number and rid.chosen["issuer"] == ours.issuer:
                found.append(info.chosen)
        elif rid.name == "subject_key_identifier" and rid.chosen.native == ours.key_identifier:
            found.append(info.chosen)
    return found


def _key_transport_padding(alg) -> padding.AsymmetricPadding:
    name = alg["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return padding.PKCS1v15()
    if name == "rsaes_oaep":
        params = alg["parameters"]
        digest: hashes.HashAlgorithm = hashes.SHA1()
        if not isinstance(params, core.Void) and params.native:
            digest = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
                      "sha512": hashes.SHA512()}.get(params["hash_algorithm"]["algorithm"].native, digest)
        return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    raise TokenError(NOT_A_TOKEN)


def _open_with_asn1(enveloped: cms.EnvelopedData, recipients, key: rsa.RSAPrivateKey) -> bytes:
    eci = enveloped["encrypted_content_info"]
    alg = eci["content_encryption_algorithm"]
    name = alg["algorithm"].native
    if name not in _CIPHERS:
        raise TokenError(f"The server token uses a cipher Bramley cannot open ({name}).")
    ciphertext = eci["encrypted_content"].native
    if not isinstance(ciphertext, bytes):
        raise TokenError(NOT_A_TOKEN)
    for ktri in recipients:
        try:
            cek = key.decrypt(ktri["encrypted_key"].native, _key_transport_padding(ktri["key_encryption_algorithm"]))
        except ValueError:
            continue
        if len(cek) != _CIPHERS[name]:
            continue
        cipher, block = (algorithms.AES(cek), 128) if name.startswith("aes") else (TripleDES(cek), 64)
        try:
            decryptor = Cipher(cipher, modes.CBC(alg.encryption_iv)).decryptor()
            padded = decryptor.update(ciphertext) + decryptor.finalize()
            unpadder = sym_padding.PKCS7(block).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            continue
    raise TokenError(WRONG_KEY)


def open_envelope(data: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """The decrypted content of a .p7m addressed to `cert`. Raises TokenError with a message for the admin."""
    if len(data) > MAX_TOKEN_BYTES:
        raise TokenError(NOT_A_TOKEN)
    der = envelope_der(data)
    enveloped = _enveloped(der)
    recipients = _is_ours(enveloped, cert)
    if not recipients:
        raise TokenError(WRONG_KEY)
    try:
        return pkcs7.pkcs7_decrypt_der(der, cert, key, [])
    except Exception:
        # Unsupported cipher (3DES) or an encoding cryptography refuses: do it by hand.
        return _open_with_asn1(enveloped, recipients, key)


def read_token(data: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> ServerToken:
    """The OAuth credentials in an uploaded .p7m."""
    plain = open_envelope(data, cert, key)
    found = _MESSAGE.search(plain)
    return ServerToken.from_json(found.group(1).strip() if found else plain.strip())
