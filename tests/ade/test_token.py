"""Server-token parsing and OAuth signing, without a database or network."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bramley.ade import service
from bramley.ade.client import oauth_header, oauth_signature
from bramley.ade.token import NO_CREDENTIALS, NOT_A_TOKEN, WRONG_KEY, TokenError, envelope_der, read_token
from bramley.simulator.fake_ade import server_token_p7m
from bramley.tenancy.context import TenantContext

TOKEN = {"consumer_key": "CK_1", "consumer_secret": "CS_1", "access_token": "AT_1", "access_secret": "AS_1",
         "access_token_expiry": "2027-06-14T23:53:04Z"}


@pytest.fixture(scope="module")
def pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = service._build_cert(TenantContext("t", "acme", "us"), key)
    return cert, key


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("cipher", ["aes256_cbc", "aes128_cbc", "tripledes_3key"])
def test_apple_style_smime_token_opens(pair, cipher):
    cert, key = pair
    p7m = server_token_p7m(_pem(cert), TOKEN, cipher=cipher)
    assert p7m.startswith(b"MIME-Version") or b"Content-Type: application/pkcs7-mime" in p7m
    token = read_token(p7m, cert, key)
    assert (token.consumer_key, token.consumer_secret, token.access_token, token.access_secret) == (
        "CK_1", "CS_1", "AT_1", "AS_1")
    assert token.access_token_expiry.isoformat() == "2027-06-14T23:53:04+00:00"
    assert "CS_1" not in repr(token) and "AS_1" not in repr(token)


def test_der_pem_and_bare_base64_forms_open(pair):
    cert, key = pair
    der = envelope_der(server_token_p7m(_pem(cert), TOKEN))
    b64 = base64.encodebytes(der)
    for form in (der, b64, b"-----BEGIN PKCS7-----\n" + b64 + b"-----END PKCS7-----\n"):
        assert read_token(form, cert, key).consumer_key == "CK_1"


def test_a_token_for_another_certificate_is_wrong_key(pair):
    cert, key = pair
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = service._build_cert(TenantContext("u", "other", "us"), other_key)
    with pytest.raises(TokenError) as err:
        read_token(server_token_p7m(_pem(other), TOKEN), cert, key)
    assert str(err.value) == WRONG_KEY


@pytest.mark.parametrize("junk", [b"", b"   ", b"\x30\x82", b"plain text", b"A" * 100_000,
                                  b"Content-Type: x\r\n\r\n!!!"])
def test_garbage_is_not_a_token(pair, junk):
    with pytest.raises(TokenError) as err:
        read_token(junk, *pair)
    assert str(err.value) == NOT_A_TOKEN


def test_an_envelope_without_credentials_is_refused(pair):
    cert, key = pair
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.serialization import pkcs7

    for content in (b"hello", json.dumps({"consumer_key": "x"}).encode(), b"[1, 2]"):
        der = (pkcs7.PKCS7EnvelopeBuilder().set_data(content).add_recipient(cert)
               .set_content_encryption_algorithm(algorithms.AES128)
               .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
        with pytest.raises(TokenError) as err:
            read_token(der, cert, key)
        assert str(err.value) == NO_CREDENTIALS
    # Bare JSON inside (no MESSAGE markers) is accepted.
    der = (pkcs7.PKCS7EnvelopeBuilder().set_data(json.dumps(TOKEN).encode()).add_recipient(cert)
           .set_content_encryption_algorithm(algorithms.AES128)
           .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    assert read_token(der, cert, key).access_token == "AT_1"


def test_oauth_signature_matches_rfc_5849():
    params = {"file": "vacation.jpg", "size": "original", "oauth_consumer_key": "dpf43f3p2l4k3l03",
              "oauth_token": "nnch734d00sl2jdk", "oauth_signature_method": "HMAC-SHA1",
              "oauth_timestamp": "1191242096", "oauth_nonce": "kllo9940pd9333jh", "oauth_version": "1.0"}
    assert oauth_signature("GET", "http://photos.example.net/photos", params, "kd94hf93k423kf44",
                           "pfkkdhi9sl3r4s00") == "tR3+Ty81lMeYAr/Fid0kMTYa/WM="


def test_oauth_header_names_the_adm_realm_and_never_the_secrets():
    from bramley.ade.token import ServerToken

    token = ServerToken("CK", "CS_secret", "AT", "AS_secret", None)
    header = oauth_header("GET", "https://mdmenrollment.apple.com/session", token, timestamp=1, nonce="n")
    assert header.startswith('OAuth realm="ADM", ') and 'oauth_consumer_key="CK"' in header
    assert "CS_secret" not in header and "AS_secret" not in header


def test_der_ending_in_a_whitespace_byte_still_opens(pair):
    cert, key = pair
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.serialization import pkcs7

    data = json.dumps(TOKEN).encode()
    for _ in range(5000):
        der = (pkcs7.PKCS7EnvelopeBuilder().set_data(data).add_recipient(cert)
               .set_content_encryption_algorithm(algorithms.AES128)
               .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
        if der[-1:].isspace():
            break
    assert der[-1:].isspace()
    assert read_token(der, cert, key).consumer_key == "CK_1"
