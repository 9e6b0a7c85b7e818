"""GET /mdm/t/{subdomain}/enroll: who gets a profile, and what is in it."""
from __future__ import annotations

import asyncio
import hashlib
import json
import plistlib
from datetime import timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from bramley.app import create_app
from bramley.db.base import utcnow
from bramley.mdm import enroll, pki
from bramley.mdm.models import EnrollmentToken, PushCertificate, TenantPKI
from bramley.secrets import service as secrets
from bramley.mdm.signature import load_signed_data, verify_signed_data
from bramley.simulator import scep_client
from tests.conftest import run_cli

PROFILE_TYPE = "application/x-apple-aspen-config"


def run(coro):
    return asyncio.run(coro)


def get(app, url: str, **params) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            return await c.get(url, params=params or None)

    return run(go())


def mint_code(db, handle, **kw) -> str:
    with db.unit_of_work() as s:
        return enroll.mint_enroll_code(s, handle.ctx(s), **kw)


@pytest.fixture
def app_with(settings):
    """An app on the same database with some settings changed."""
    made = []

    def _make(**overrides):
        application = create_app(settings.model_copy(update=overrides))
        made.append(application)
        return application

    yield _make
    for application in made:
        application.state.db.dispose()


def test_profile_needs_an_enrollment_code(app, make_tenant):
    handle = make_tenant()
    response = get(app, f"/mdm/t/{handle.subdomain}/enroll")
    assert (response.status_code, response.content) == (403, b"")
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code="AAAA-BBBB-CCCC-DDDD").status_code == 403


def test_enrollment_code_works_once(app, db, make_tenant):
    handle = make_tenant()
    code = mint_code(db, handle)
    first = get(app, f"/mdm/t/{handle.subdomain}/enroll", code=code)
    assert first.status_code == 200
    assert first.headers["content-type"] == PROFILE_TYPE
    assert first.headers["cache-control"] == "no-store"
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code=code).status_code == 403


def test_enrollment_code_is_forgiving_about_case_and_dashes(app, db, make_tenant):
    handle = make_tenant()
    code = mint_code(db, handle)
    relaxed = code.replace("-", "").lower()
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code=relaxed).status_code == 200


def test_expired_enrollment_code_is_refused(app, db, make_tenant):
    handle = make_tenant()
    code = mint_code(db, handle, ttl=timedelta(seconds=-1))
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code=code).status_code == 403


def test_enrollment_code_of_another_tenant_is_refused(app, db, make_tenant):
    handle, other = make_tenant(), make_tenant()
    code = mint_code(db, other)
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code=code).status_code == 403
    assert get(app, f"/mdm/t/{other.subdomain}/enroll", code=code).status_code == 200  # not burnt by the miss


def test_open_enrollment_needs_no_code(app_with, make_tenant):
    handle = make_tenant()
    open_app = app_with(open_enrollment=True)
    assert get(open_app, f"/mdm/t/{handle.subdomain}/enroll").status_code == 200
    assert get(open_app, f"/mdm/t/{handle.subdomain}/enroll", code="WRONG").status_code == 403


def test_profile_payloads(app, db, make_tenant):
    handle = make_tenant()
    sub = handle.subdomain
    profile = plistlib.loads(get(app, f"/mdm/t/{sub}/enroll", code=mint_code(db, handle)).content)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    root = scep_client.payload(profile, "com.apple.security.root")
    scep = scep_client.payload(profile, "com.apple.security.scep")
    mdm = scep_client.payload(profile, "com.apple.mdm")
    with db.unit_of_work() as s:
        ca = pki.ca_cert(s, handle.ctx(s))
    assert root["PayloadContent"] == ca.public_bytes(serialization.Encoding.DER)

    content = scep["PayloadContent"]
    assert content["URL"] == f"http://testserver/mdm/t/{sub}/scep"
    assert content["Name"] == sub
    assert len(content["Challenge"]) == 32
    assert (content["Keysize"], content["Key Type"], content["Key Usage"]) == (2048, "RSA", 5)
    cn = [value for rdn in content["Subject"] for oid, value in rdn if oid == "CN"]
    assert cn and sub in cn[0]

    assert mdm["IdentityCertificateUUID"] == scep["PayloadUUID"]
    assert mdm["ServerURL"] == f"http://testserver/mdm/t/{sub}/connect"
    assert mdm["CheckInURL"] == f"http://testserver/mdm/t/{sub}/checkin"
    assert mdm["SignMessage"] is True and mdm["CheckOutWhenRemoved"] is True
    assert mdm["AccessRights"] == 8191
    assert set(mdm["ServerCapabilities"]) == {"com.apple.mdm.per-user-connections", "com.apple.mdm.bootstraptoken"}
    assert mdm["Topic"].startswith("com.apple.mgmt.External.")
    uuids = [p["PayloadUUID"] for p in profile["PayloadContent"]] + [profile["PayloadUUID"]]
    assert len(set(uuids)) == len(uuids)


def test_placeholder_topic_is_stable_and_per_tenant(app, db, make_tenant):
    a, b = make_tenant(), make_tenant()

    def topic(handle):
        profile = plistlib.loads(get(app, f"/mdm/t/{handle.subdomain}/enroll", code=mint_code(db, handle)).content)
        return scep_client.payload(profile, "com.apple.mdm")["Topic"]

    assert topic(a) == topic(a) != topic(b)


def test_topic_comes_from_the_push_certificate(app, db, make_tenant):
    handle = make_tenant()
    topic = "com.apple.mgmt.External.1b2c3d4e-0000-4000-8000-00000000abcd"
    with db.unit_of_work() as s:
        s.add(PushCertificate(tenant_id=handle.id, topic=topic))
    profile = plistlib.loads(get(app, f"/mdm/t/{handle.subdomain}/enroll", code=mint_code(db, handle)).content)
    assert scep_client.payload(profile, "com.apple.mdm")["Topic"] == topic


def test_each_profile_has_a_fresh_challenge_stored_hashed(app, db, make_tenant):
    handle = make_tenant()
    challenges = []
    for _ in range(2):
        profile = plistlib.loads(get(app, f"/mdm/t/{handle.subdomain}/enroll", code=mint_code(db, handle)).content)
        challenges.append(scep_client.payload(profile, "com.apple.security.scep")["PayloadContent"]["Challenge"])
    assert challenges[0] != challenges[1]
    with db.unit_of_work() as s:
        rows = list(s.scalars(select(EnrollmentToken).where(EnrollmentToken.tenant_id == handle.id,
                                                             EnrollmentToken.kind == "scep_challenge")))
    assert {r.token_hash for r in rows} == {hashlib.sha256(c.encode()).hexdigest() for c in challenges}
    assert all(r.used_at is None and r.expires_at > utcnow() for r in rows)


def test_profile_download_provisions_a_tenant_made_without_pki(app, db, make_tenant):
    handle = make_tenant()
    with db.unit_of_work() as s:
        s.delete(s.get(TenantPKI, handle.id))
        secrets.delete(s, handle.ctx(s), owner_type="tenant", owner_id=handle.id)
    profile = plistlib.loads(get(app, f"/mdm/t/{handle.subdomain}/enroll", code=mint_code(db, handle)).content)
    with db.unit_of_work() as s:
        ca = pki.ca_cert(s, handle.ctx(s))
    assert scep_client.payload(profile, "com.apple.security.root")["PayloadContent"] == \
        ca.public_bytes(serialization.Encoding.DER)


def test_public_url_setting_names_the_urls(app_with, make_tenant):
    handle = make_tenant()
    public = app_with(public_url="https://mdm.example.com/", open_enrollment=True)
    profile = plistlib.loads(get(public, f"/mdm/t/{handle.subdomain}/enroll").content)
    mdm = scep_client.payload(profile, "com.apple.mdm")
    assert mdm["ServerURL"] == f"https://mdm.example.com/mdm/t/{handle.subdomain}/connect"
    assert scep_client.payload(profile, "com.apple.security.scep")["PayloadContent"]["URL"] == \
        f"https://mdm.example.com/mdm/t/{handle.subdomain}/scep"


def _signing_files(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bramley profile signing")])
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "signing.pem", tmp_path / "signing.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, cert_path, key_path


def test_profile_is_signed_when_a_signing_identity_is_configured(app_with, make_tenant, tmp_path):
    handle = make_tenant()
    cert, cert_path, key_path = _signing_files(tmp_path)
    signing = app_with(enroll_signing_cert=cert_path, enroll_signing_key=key_path, open_enrollment=True)
    response = get(signing, f"/mdm/t/{handle.subdomain}/enroll")
    assert response.status_code == 200 and response.headers["content-type"] == PROFILE_TYPE
    assert not response.content.startswith(b"<?xml")
    result = verify_signed_data(load_signed_data(response.content))
    assert result.cert == cert
    profile = scep_client.parse_profile(response.content)
    assert scep_client.payload(profile, "com.apple.mdm")["SignMessage"] is True


def test_signed_profile_enrolls_a_device(app_with, make_tenant, tmp_path):
    handle = make_tenant()
    _, cert_path, key_path = _signing_files(tmp_path)
    signing = app_with(enroll_signing_cert=cert_path, enroll_signing_key=key_path, open_enrollment=True)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=signing), base_url="http://testserver") as c:
            return await scep_client.enroll(c, f"http://testserver/mdm/t/{handle.subdomain}/enroll")

    identity = run(go())
    identity.cert.verify_directly_issued_by(identity.ca_cert)


def test_cli_mints_a_working_enrollment_code(app, settings, make_tenant):
    handle = make_tenant()
    out = json.loads(run_cli(settings, "mdm", "enroll-code", "--tenant", handle.subdomain, "--json").stdout)
    assert out["url"] == f"/mdm/t/{handle.subdomain}/enroll?code={out['code']}"
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code=out["code"]).status_code == 200
    assert get(app, f"/mdm/t/{handle.subdomain}/enroll", code=out["code"]).status_code == 403


def test_cli_refuses_an_unknown_blueprint(settings, make_tenant):
    handle = make_tenant()
    proc = run_cli(settings, "mdm", "enroll-code", "--tenant", handle.subdomain,
                   "--blueprint", "00000000-0000-4000-8000-000000000000", check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr
