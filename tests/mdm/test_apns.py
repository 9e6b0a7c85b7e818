"""The APNs provider against the mock APNs: exact requests, certificate and token auth, HTTP/2 over TLS,
and the checks on uploaded push credentials."""
from __future__ import annotations

import asyncio
import base64
import glob
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from bramley.mdm import apns
from bramley.simulator.mock_apns import MockAPNs, make_push_certificate, serve_mock_apns, serve_mock_apns_h2

TOPIC = "com.apple.mgmt.External.2f6c1c5e-8d3a-4b59-9a0e-5c1d2e3f4a5b"
TOKEN = "a1" * 32
MAGIC = "5B4F0C3E-7B0A-4A34-9D7E-1F2A3B4C5D6E"


@pytest.fixture(scope="module")
def push_cert() -> apns.CertificateInfo:
    cert_pem, key_pem = make_push_certificate(TOPIC)
    return apns.parse_certificate(cert_pem, key_pem)


@pytest.fixture(scope="module")
def cert_creds(push_cert) -> apns.Credentials:
    return apns.Credentials(topic=push_cert.topic, auth_type="certificate", key_pem=push_cert.key_pem,
                            cert_pem=push_cert.cert_pem)


@pytest.fixture(scope="module")
def mock_server():
    with serve_mock_apns(MockAPNs(topic=TOPIC)) as running:
        yield running


@pytest.fixture
def mock(mock_server) -> MockAPNs:
    mock_server.mock.reset()
    return mock_server.mock


async def _push(creds, url, *targets, **kwargs) -> list[apns.PushResult]:
    async with apns.APNsProvider(creds, base_url=url, **kwargs) as provider:
        return await provider.push_many(targets)


def test_push_sends_exactly_what_apple_documents(mock_server, mock, cert_creds):
    before = int(time.time())
    [result] = asyncio.run(_push(cert_creds, mock_server.url, (TOKEN, MAGIC), expiration=3600))
    assert result.ok and result.apns_id
    [push] = mock.pushes(TOKEN)
    assert push.body == b'{"mdm":"5B4F0C3E-7B0A-4A34-9D7E-1F2A3B4C5D6E"}'
    assert json.loads(push.body) == {"mdm": MAGIC}
    assert (push.topic, push.push_type, push.priority, push.headers["content-type"]) == (
        TOPIC, "mdm", "10", "application/json")
    assert before + 3600 <= int(push.expiration) <= int(time.time()) + 3600
    assert "authorization" not in push.headers  # certificate auth: the TLS client certificate is the credential
    assert push.push_magic == MAGIC and push.apns_id == result.apns_id


def test_error_reasons_come_back_typed(mock_server, mock, cert_creds):
    tokens = {reason: f"{i:02x}" * 32 for i, reason in enumerate(
        ["Unregistered", "BadDeviceToken", "TooManyRequests", "ServiceUnavailable", "BadCertificate", "BadTopic"])}
    for reason, token in tokens.items():
        mock.fail(token, reason)
    results = asyncio.run(_push(cert_creds, mock_server.url, *((t, MAGIC) for t in tokens.values())))
    got = {r.token_hex: (r.status, r.reason, r.token_dead, r.retryable, r.credentials_refused) for r in results}
    assert [got[tokens[reason]] for reason in tokens] == [
        (410, "Unregistered", True, False, False),
        (400, "BadDeviceToken", True, False, False),
        (429, "TooManyRequests", False, True, False),
        (503, "ServiceUnavailable", False, True, False),
        (403, "BadCertificate", False, False, True),
        (400, "BadTopic", False, False, False),
    ]
    assert mock.pushes() == []


def test_mock_refuses_what_apns_refuses(mock_server, mock):
    import httpx

    url = f"{mock_server.url}/3/device/{TOKEN}"
    ok = {"apns-topic": TOPIC, "apns-push-type": "mdm"}
    cases = [
        ({"apns-push-type": "mdm"}, b'{"mdm":"x"}', 400, "MissingTopic"),
        ({**ok, "apns-push-type": "alert"}, b'{"mdm":"x"}', 400, "InvalidPushType"),
        (ok, b'{"mdm":"x","aps":{}}', 400, "BadPayload"),
        (ok, b'{"mdm":1}', 400, "BadPayload"),
        (ok, b"", 400, "PayloadEmpty"),
        ({**ok, "apns-topic": "com.apple.mgmt.External.other"}, b'{"mdm":"x"}', 400, "DeviceTokenNotForTopic"),
    ]
    for headers, body, status, reason in cases:
        response = httpx.post(url, headers=headers, content=body)
        assert (response.status_code, response.json()) == (status, {"reason": reason})
    no_type = httpx.post(url, headers={"apns-topic": TOPIC}, content=b'{"mdm":"x"}')  # absent push type is fine
    assert no_type.status_code == 200
    gone = "ff" * 32
    mock.fail(gone, "Unregistered")
    response = httpx.post(f"{mock_server.url}/3/device/{gone}", headers=ok, content=b'{"mdm":"x"}')
    assert response.status_code == 410 and response.json()["reason"] == "Unregistered"
    assert isinstance(response.json()["timestamp"], int)


def test_one_pending_push_per_token_newest_wins(mock_server, mock, cert_creds):
    asyncio.run(_push(cert_creds, mock_server.url, (TOKEN, "first")))
    asyncio.run(_push(cert_creds, mock_server.url, (TOKEN, "second")))
    assert [p.push_magic for p in mock.pushes(TOKEN)] == ["first", "second"]
    assert mock.take(TOKEN).push_magic == "second"
    assert mock.take(TOKEN) is None


def test_a_device_waiting_for_its_push_wakes_up(mock_server, mock, cert_creds):
    async def device():
        return await mock.next_push(TOKEN, timeout=10)

    async def scenario():
        waiting = asyncio.create_task(device())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await _push(cert_creds, mock_server.url, (TOKEN, MAGIC))
        return await waiting

    push = asyncio.run(scenario())
    assert push is not None and push.push_magic == MAGIC
    assert mock.wait(TOKEN, timeout=0.05) is None  # taken: nothing pending any more


def test_token_auth_sends_an_es256_jwt_apple_can_verify(mock_server, mock):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    creds = apns.Credentials(topic=TOPIC, auth_type="token", key_pem=apns.parse_token_key(pem), key_id="ABC123DEFG",
                             team_id="DEF123GHIJ")
    [result] = asyncio.run(_push(creds, mock_server.url, (TOKEN, MAGIC)))
    assert result.ok
    scheme, jwt = mock.pushes(TOKEN)[0].headers["authorization"].split(" ")
    assert scheme == "bearer"

    def part(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    header, claims, signature = jwt.split(".")
    assert json.loads(part(header)) == {"alg": "ES256", "kid": "ABC123DEFG"}
    body = json.loads(part(claims))
    assert body["iss"] == "DEF123GHIJ" and abs(body["iat"] - time.time()) < 60
    raw = part(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.public_key().verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if bad


def test_no_key_material_is_left_on_disk(cert_creds):
    before = set(glob.glob("/dev/shm/bramley-apns-*")) | set(glob.glob("/tmp/bramley-apns-*"))
    apns.client_ssl_context(cert_creds)
    after = set(glob.glob("/dev/shm/bramley-apns-*")) | set(glob.glob("/tmp/bramley-apns-*"))
    assert after == before


def _server_cert(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_http2_over_tls_with_the_push_certificate_as_client_certificate(tmp_path, push_cert, cert_creds):
    server_cert, server_key = _server_cert(tmp_path)
    client_ca = tmp_path / "push-cert.pem"  # the server trusts exactly our push certificate, as APNs trusts Apple's
    client_ca.write_text(push_cert.cert_pem)
    with serve_mock_apns_h2(MockAPNs(topic=TOPIC), certfile=server_cert, keyfile=server_key,
                            client_ca=client_ca) as running:
        [result] = asyncio.run(_push(cert_creds, running.url, (TOKEN, MAGIC), ca_file=server_cert))
        assert result.ok
        assert running.mock.pushes(TOKEN)[0].http_version == "2"
        # Without the certificate the TLS handshake fails: no answer, which is retryable.
        other_cert, other_key = make_push_certificate(TOPIC)
        stranger = apns.parse_certificate(other_cert, other_key)
        creds = apns.Credentials(topic=TOPIC, auth_type="certificate", key_pem=stranger.key_pem,
                                 cert_pem=stranger.cert_pem)
        [refused] = asyncio.run(_push(creds, running.url, (TOKEN, MAGIC), ca_file=server_cert))
        assert refused.status == 0 and refused.retryable
        assert len(running.mock.requests) == 1


# --- uploaded credentials ----------------------------------------------------------------------------------

def test_topic_is_read_from_the_certificate_subject_uid(push_cert):
    assert push_cert.topic == TOPIC
    assert push_cert.key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_a_key_of_another_certificate_is_refused():
    cert, _ = make_push_certificate(TOPIC)
    _, other_key = make_push_certificate(TOPIC)
    with pytest.raises(apns.CredentialError, match="does not belong to the certificate"):
        apns.parse_certificate(cert, other_key)


def test_an_expired_certificate_is_refused():
    now = datetime.now(timezone.utc)
    cert, key = make_push_certificate(TOPIC, not_before=now - timedelta(days=400), not_after=now - timedelta(days=1))
    with pytest.raises(apns.CredentialError, match="expired on"):
        apns.parse_certificate(cert, key)


def test_a_certificate_without_topic_or_garbage_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a push cert")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with pytest.raises(apns.CredentialError, match="no UID"):
        apns.parse_certificate(cert.public_bytes(serialization.Encoding.PEM), key_pem)
    with pytest.raises(apns.CredentialError, match="not a PEM X.509"):
        apns.parse_certificate(b"hello", key_pem)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(apns.CredentialError, match="encrypted"):
        apns.parse_certificate(cert.public_bytes(serialization.Encoding.PEM), encrypted)
    with pytest.raises(apns.CredentialError, match="EC P-256"):
        _, rsa_key = make_push_certificate(TOPIC)
        apns.parse_token_key(rsa_key)
