"""Push jobs end to end: request_push → jobs table → worker → APNs provider → mock APNs.

Enrollments are inserted directly (this is the push layer's test); the worker is the real one, run in rounds.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from bramley.db.base import utcnow
from bramley.jobs.models import Job
from bramley.jobs.worker import Worker
from bramley.mdm import push
from bramley.mdm.models import Enrollment, PushCertificate
from bramley.secrets.models import Secret
from bramley.simulator.mock_apns import MockAPNs, make_push_certificate, serve_mock_apns
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def mock_server():
    with serve_mock_apns(MockAPNs()) as running:
        yield running


@pytest.fixture
def mock(mock_server) -> MockAPNs:
    mock_server.mock.reset()
    return mock_server.mock


@pytest.fixture(scope="module")
def cert_pair():
    topic = f"com.apple.mgmt.External.{uuid.uuid4()}"
    cert, key = make_push_certificate(topic)
    return topic, cert, key


class PushTenant:
    def __init__(self, handle, topic: str):
        self.handle, self.id, self.topic, self.db = handle, handle.id, topic, handle.db

    def enroll(self, count: int, **overrides) -> list[Enrollment]:
        made = []
        with self.db.unit_of_work() as s:
            for _ in range(count):
                udid = str(uuid.uuid4()).upper()
                values = {"tenant_id": self.id, "id": udid, "device_id": str(uuid.uuid4()), "type": "device",
                          "udid": udid, "topic": self.topic, "push_magic": str(uuid.uuid4()).upper(),
                          "token_hex": uuid.uuid4().hex + uuid.uuid4().hex, "enabled": True}
                values.update(overrides)
                row = Enrollment(**values)
                s.add(row)
                made.append(row)
        return made

    def request(self, enrollments) -> None:
        with self.db.unit_of_work() as s:
            push.request_push(s, self.handle.ctx(s), [e if isinstance(e, str) else e.id for e in enrollments])

    def jobs(self) -> list[Job]:
        with self.db.unit_of_work() as s:
            return list(s.scalars(select(Job).where(Job.tenant_id == self.id, Job.kind == push.KIND)))

    def enrollment(self, enrollment_id: str) -> Enrollment:
        with self.db.unit_of_work() as s:
            return s.get(Enrollment, (self.id, enrollment_id))


@pytest.fixture
def tenant(make_tenant, cert_pair) -> PushTenant:
    topic, cert, key = cert_pair
    handle = make_tenant(devices=0)
    with handle.db.unit_of_work() as s:
        push.save_certificate(s, handle.ctx(s), cert_pem=cert, key_pem=key)
    return PushTenant(handle, topic)


@pytest.fixture
def run_worker(db, settings, mock_server):
    """Run worker rounds until nothing is due (at `now`, to step over backoffs)."""
    worker_settings = settings.model_copy(update={"apns_url": mock_server.url})

    def _run(now=None) -> int:
        async def go():
            async with Worker(db, worker_settings, kinds=[push.KIND]) as worker:
                return await worker.drain(now=now)
        return asyncio.run(go())

    return _run


def test_push_key_is_stored_encrypted_with_the_topic_from_the_certificate(tenant, cert_pair):
    topic, _, key = cert_pair
    with tenant.db.unit_of_work() as s:
        row = s.get(PushCertificate, tenant.id)
        secret = s.scalar(select(Secret).where(Secret.tenant_id == tenant.id, Secret.kind == push.SECRET_KIND))
        creds = push.load_credentials(s, tenant.handle.ctx(s))
    assert (row.topic, row.auth_type) == (topic, "certificate") and row.not_after > utcnow()
    assert secret is not None and secret.owner_type == "tenant" and b"PRIVATE KEY" not in secret.ciphertext
    assert creds.topic == topic and "PRIVATE KEY" in creds.key_pem


def test_ten_requests_for_one_enrollment_make_one_push(tenant, mock, run_worker):
    [enrollment] = tenant.enroll(1)
    for _ in range(10):
        tenant.request([enrollment])
    assert len(tenant.jobs()) == 1
    run_worker()
    [sent] = mock.pushes(enrollment.token_hex)
    assert (sent.topic, sent.push_magic, sent.push_type) == (tenant.topic, enrollment.push_magic, "mdm")
    assert tenant.jobs() == []


def test_bulk_request_for_1000_enrollments_is_one_insert_and_one_push_each(tenant, mock, run_worker, db):
    enrollments = tenant.enroll(1000)
    inserts = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            inserts.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        tenant.request(enrollments)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(inserts) == 1 and len(tenant.jobs()) == 1000
    run_worker()
    pushed = [p.token for p in mock.pushes()]
    assert sorted(pushed) == sorted(e.token_hex for e in enrollments)  # each token exactly once
    assert tenant.jobs() == []


def test_unregistered_token_is_marked_invalid_and_not_pushed_again(tenant, mock, run_worker):
    dead, alive = tenant.enroll(2)
    mock.fail(dead.token_hex, "Unregistered")
    tenant.request([dead, alive])
    run_worker()
    assert tenant.enrollment(dead.id).push_invalid and not tenant.enrollment(alive.id).push_invalid
    assert tenant.jobs() == []  # a dead token is an answer, not a failure
    tenant.request([dead, alive])
    run_worker()
    assert len([r for r in mock.requests if r.token == dead.token_hex]) == 1
    assert len(mock.pushes(alive.token_hex)) == 2
    # A new TokenUpdate clears the mark: pushes go out again.
    mock.clear_failures()
    with tenant.db.unit_of_work() as s:
        push.clear_push_invalid(s, tenant.handle.ctx(s), [dead.id])
    tenant.request([dead])
    run_worker()
    assert len(mock.pushes(dead.token_hex)) == 1


def test_bad_device_token_is_marked_invalid(tenant, mock, run_worker):
    [enrollment] = tenant.enroll(1)
    mock.fail(enrollment.token_hex, "BadDeviceToken")
    tenant.request([enrollment])
    run_worker()
    assert tenant.enrollment(enrollment.id).push_invalid


def test_a_token_replaced_while_the_push_was_in_flight_stays_valid(tenant, db):
    [enrollment] = tenant.enroll(1)
    old = enrollment.token_hex
    with db.unit_of_work() as s:  # a TokenUpdate lands while the push to the old token is in flight
        s.get(Enrollment, (tenant.id, enrollment.id)).token_hex = "bb" * 32
    with db.unit_of_work() as s:  # then APNs answers 410 for the old token
        push._mark_invalid(s, tenant.id, [(enrollment.id, old)])
    assert not tenant.enrollment(enrollment.id).push_invalid


def test_service_unavailable_is_retried_with_backoff_then_succeeds(tenant, mock, run_worker):
    [enrollment] = tenant.enroll(1)
    mock.fail(enrollment.token_hex, "ServiceUnavailable", times=1)
    tenant.request([enrollment])
    before = utcnow()
    run_worker()
    [job] = tenant.jobs()
    assert (job.attempts, job.last_error, job.dead_at, job.locked_until) == (
        1, "APNs 503 ServiceUnavailable", None, None)
    assert before + timedelta(seconds=2) <= job.run_after <= utcnow() + timedelta(seconds=5)  # base 5 s, jittered
    run_worker()  # not due yet: nothing happens
    assert mock.pushes(enrollment.token_hex) == [] and len(tenant.jobs()) == 1
    run_worker(now=job.run_after + timedelta(seconds=1))
    assert len(mock.pushes(enrollment.token_hex)) == 1
    assert tenant.jobs() == []


def test_throttled_push_is_retried(tenant, mock, run_worker):
    [enrollment] = tenant.enroll(1)
    mock.fail(enrollment.token_hex, "TooManyRequests", times=2)
    tenant.request([enrollment])
    run_worker()
    [job] = tenant.jobs()
    run_worker(now=job.run_after + timedelta(seconds=1))
    [job] = tenant.jobs()
    assert job.attempts == 2 and job.run_after - utcnow() > timedelta(seconds=4)  # grows: base 5 s, doubled
    run_worker(now=job.run_after + timedelta(seconds=1))
    assert len(mock.pushes(enrollment.token_hex)) == 1 and tenant.jobs() == []


def test_refused_certificate_alerts_and_does_not_retry_hot(tenant, mock, run_worker, caplog):
    [enrollment] = tenant.enroll(1)
    mock.fail(enrollment.token_hex, "BadCertificate")
    tenant.request([enrollment])
    with caplog.at_level(logging.ERROR, logger="bramley.mdm.push"):
        run_worker()
    assert any("refused the push credentials" in r.getMessage() and tenant.id in r.getMessage()
               for r in caplog.records)
    [job] = tenant.jobs()
    assert job.run_after > utcnow() + timedelta(minutes=10)
    assert not tenant.enrollment(enrollment.id).push_invalid


def test_enrollments_without_a_usable_token_are_skipped(tenant, mock, run_worker):
    no_token = tenant.enroll(1, token_hex="")[0]
    invalid = tenant.enroll(1, push_invalid=True)[0]
    disabled = tenant.enroll(1, enabled=False)[0]
    other_topic = tenant.enroll(1, topic="com.apple.mgmt.External.someone-else")[0]
    good = tenant.enroll(1)[0]
    tenant.request([no_token, invalid, disabled, other_topic, good, "NOT-ENROLLED"])
    run_worker()
    assert [p.token for p in mock.requests] == [good.token_hex]
    assert tenant.jobs() == []


def test_tenant_without_push_certificate_pushes_nothing(make_tenant, mock, run_worker):
    handle = make_tenant(devices=0)
    bare = PushTenant(handle, "com.apple.mgmt.External.none")
    [enrollment] = bare.enroll(1)
    bare.request([enrollment])
    run_worker()
    assert mock.requests == [] and bare.jobs() == []


def test_other_tenants_requests_do_not_coalesce_with_ours(tenant, make_tenant, cert_pair, mock, run_worker):
    topic, cert, key = cert_pair
    handle = make_tenant(devices=0)
    with handle.db.unit_of_work() as s:
        push.save_certificate(s, handle.ctx(s), cert_pem=cert, key_pem=key)
    other = PushTenant(handle, topic)
    [mine] = tenant.enroll(1)
    [theirs] = other.enroll(1, id=mine.id, udid=mine.udid)  # same UDID in two tenants
    tenant.request([mine])
    other.request([theirs])
    run_worker()
    assert len(mock.pushes(mine.token_hex)) == 1 and len(mock.pushes(theirs.token_hex)) == 1


def test_token_auth_pushes_carry_a_provider_token(make_tenant, mock, run_worker):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    handle = make_tenant(devices=0)
    topic = f"com.apple.mgmt.External.{uuid.uuid4()}"
    p8 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with handle.db.unit_of_work() as s:
        push.save_token_key(s, handle.ctx(s), key_pem=p8, key_id="KEY1234567", team_id="TEAM123456", topic=topic)
    t = PushTenant(handle, topic)
    [enrollment] = t.enroll(1)
    t.request([enrollment])
    run_worker()
    [sent] = mock.pushes(enrollment.token_hex)
    assert sent.topic == topic and sent.headers["authorization"].startswith("bearer ey")


def test_worker_in_the_server_thread_delivers_a_push_soon_after_commit(tenant, mock, db, settings, mock_server):
    [enrollment] = tenant.enroll(1)
    worker = Worker(db, settings.model_copy(update={"apns_url": mock_server.url}), kinds=[push.KIND],
                    poll_interval=30)
    worker.start_in_thread()
    try:
        tenant.request([enrollment])
        delivered = mock.wait(enrollment.token_hex, timeout=10)  # the simulated device wakes up
    finally:
        worker.stop_thread()
    assert delivered is not None and delivered.push_magic == enrollment.push_magic


# --- bramley apns upload -------------------------------------------------------------------------------

def test_cli_upload_reads_the_topic_from_the_certificate(settings, make_tenant, tmp_path):
    handle = make_tenant(devices=0)
    topic = f"com.apple.mgmt.External.{uuid.uuid4()}"
    cert, key = make_push_certificate(topic)
    (tmp_path / "push.pem").write_bytes(cert)
    (tmp_path / "push.key").write_bytes(key)
    out = run_cli(settings, "apns", "upload", "--tenant", handle.subdomain, str(tmp_path / "push.pem"),
                  str(tmp_path / "push.key"))
    assert f"topic {topic}" in " ".join(out.stdout.split())
    shown = run_cli(settings, "apns", "show", "--tenant", handle.subdomain, "--json")
    import json

    data = json.loads(shown.stdout)
    assert (data["topic"], data["auth_type"]) == (topic, "certificate") and data["not_after"]


def test_cli_upload_refuses_a_key_that_does_not_match(settings, make_tenant, tmp_path):
    handle = make_tenant(devices=0)
    cert, _ = make_push_certificate()
    _, other_key = make_push_certificate()
    (tmp_path / "push.pem").write_bytes(cert)
    (tmp_path / "other.key").write_bytes(other_key)
    out = run_cli(settings, "apns", "upload", "--tenant", handle.subdomain, str(tmp_path / "push.pem"),
                  str(tmp_path / "other.key"), check=False)
    assert out.returncode == 1
    assert "certificate: the private key does not belong to the certificate" in " ".join(out.stderr.split())
    with handle.db.unit_of_work() as s:
        assert s.get(PushCertificate, handle.id) is None


def test_cli_upload_refuses_an_expired_certificate(settings, make_tenant, tmp_path):
    handle = make_tenant(devices=0)
    now = utcnow()
    cert, key = make_push_certificate(not_before=now - timedelta(days=400), not_after=now - timedelta(days=2))
    (tmp_path / "push.pem").write_bytes(cert)
    (tmp_path / "push.key").write_bytes(key)
    out = run_cli(settings, "apns", "upload", "--tenant", handle.subdomain, str(tmp_path / "push.pem"),
                  str(tmp_path / "push.key"), check=False)
    assert out.returncode == 1 and "expired on" in out.stderr


def test_cli_upload_token_auth(settings, make_tenant, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    handle = make_tenant(devices=0)
    p8 = tmp_path / "AuthKey_KEY1234567.p8"
    p8.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    missing = run_cli(settings, "apns", "upload", "--tenant", handle.subdomain, "--token-auth", str(p8), check=False)
    assert missing.returncode == 1 and "--key-id, --team-id and --topic" in missing.stderr
    run_cli(settings, "apns", "upload", "--tenant", handle.subdomain, "--token-auth", "--key-id", "KEY1234567",
            "--team-id", "TEAM123456", "--topic", "com.apple.mgmt.External.x", str(p8))
    with handle.db.unit_of_work() as s:
        row = s.get(PushCertificate, handle.id)
    assert (row.auth_type, row.key_id, row.team_id, row.topic) == (
        "token", "KEY1234567", "TEAM123456", "com.apple.mgmt.External.x")


def test_cli_worker_once_runs_due_pushes(settings, tenant, mock, mock_server):
    [enrollment] = tenant.enroll(1)
    tenant.request([enrollment])
    out = run_cli(settings, "worker", "--once", BRAMLEY_APNS_URL=mock_server.url)
    assert "ran " in out.stderr
    assert len(mock.pushes(enrollment.token_hex)) == 1
