"""Secrets at rest: values round-trip, the database holds only ciphertext, and ciphertext is bound to its row."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from bramley.audit.models import AuditEvent
from bramley.secrets import service as secrets
from bramley.secrets.crypto import SecretUnreadable
from bramley.secrets.models import Secret, TenantKey
from bramley.tenancy.context import TenantContext


def _value(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def _put(handle, owner_id: str, kind: str, value, owner_type: str = "device"):
    with handle.db.unit_of_work() as s:
        secrets.put(s, handle.ctx(s), owner_type=owner_type, owner_id=owner_id, kind=kind, value=value)


def _get(handle, owner_id: str, kind: str, owner_type: str = "device", audited: bool = False):
    with handle.db.unit_of_work() as s:
        return secrets.get(s, handle.ctx(s), owner_type=owner_type, owner_id=owner_id, kind=kind, audited=audited)


def _row(handle, owner_id: str, kind: str) -> Secret:
    with handle.db.unit_of_work() as s:
        return s.scalars(select(Secret).where(Secret.tenant_id == handle.id, Secret.owner_id == owner_id,
                                              Secret.kind == kind)).one()


def test_values_round_trip_as_bytes(make_tenant):
    t = make_tenant()
    device = str(uuid.uuid4())
    prk = _value("PRK")
    _put(t, device, "filevault_prk", prk)
    _put(t, device, "bootstrap_token", b"\x00\xffraw bytes")
    assert _get(t, device, "filevault_prk") == prk.encode()
    assert _get(t, device, "bootstrap_token") == b"\x00\xffraw bytes"
    assert _get(t, device, "unlock_pin") is None
    assert _get(t, str(uuid.uuid4()), "filevault_prk") is None


def test_put_replaces_and_delete_removes(make_tenant):
    t = make_tenant()
    device = str(uuid.uuid4())
    _put(t, device, "unlock_pin", "111111")
    _put(t, device, "unlock_pin", "222222")
    _put(t, device, "recovery_password", _value("pw"))
    assert _get(t, device, "unlock_pin") == b"222222"
    with t.db.unit_of_work() as s:
        assert secrets.delete(s, t.ctx(s), owner_type="device", owner_id=device, kind="unlock_pin") == 1
    assert _get(t, device, "unlock_pin") is None
    assert _get(t, device, "recovery_password") is not None
    with t.db.unit_of_work() as s:
        assert secrets.delete(s, t.ctx(s), owner_type="device", owner_id=device) == 1
    assert _get(t, device, "recovery_password") is None


def test_database_holds_ciphertext_not_the_value(make_tenant):
    t = make_tenant()
    device = str(uuid.uuid4())
    value = _value("ALBC")
    _put(t, device, "bypass_code_user", value)
    row = _row(t, device, "bypass_code_user")
    assert value.encode() not in row.ciphertext and value.encode() not in row.nonce
    assert len(row.ciphertext) == len(value) + 16  # AES-GCM: same length plus a 16-byte tag
    with t.db.unit_of_work() as s:
        key = s.get(TenantKey, t.id)
        assert len(key.wrapped_key) == 12 + 32 + 16 and key.version == 1
    # Storing the same value twice gives different ciphertext (fresh nonce).
    _put(t, device, "bypass_code_user", value)
    assert _row(t, device, "bypass_code_user").ciphertext != row.ciphertext


@pytest.mark.parametrize("target", ["other device", "other kind", "other tenant"])
def test_ciphertext_moved_to_another_row_does_not_decrypt(make_tenant, target):
    t, other_tenant = make_tenant(), make_tenant()
    device, other_device = str(uuid.uuid4()), str(uuid.uuid4())
    _put(t, device, "filevault_prk", _value("PRK"))
    dest = {"other device": (t, other_device, "filevault_prk"),
            "other kind": (t, device, "recovery_password"),
            "other tenant": (other_tenant, device, "filevault_prk")}[target]
    owner, dest_device, dest_kind = dest
    _put(owner, dest_device, dest_kind, "placeholder")
    stolen = _row(t, device, "filevault_prk")
    with t.db.unit_of_work() as s:
        s.execute(update(Secret).where(Secret.tenant_id == owner.id, Secret.owner_id == dest_device,
                                       Secret.kind == dest_kind)
                  .values(nonce=stolen.nonce, ciphertext=stolen.ciphertext))
    with pytest.raises(SecretUnreadable) as caught:
        _get(owner, dest_device, dest_kind)
    assert "PRK" not in str(caught.value)


def test_tampered_ciphertext_does_not_decrypt(make_tenant):
    t = make_tenant()
    device = str(uuid.uuid4())
    _put(t, device, "unlock_pin", "123456")
    row = _row(t, device, "unlock_pin")
    flipped = bytes([row.ciphertext[0] ^ 1]) + row.ciphertext[1:]
    with t.db.unit_of_work() as s:
        s.execute(update(Secret).where(Secret.tenant_id == t.id, Secret.owner_id == device)
                  .values(ciphertext=flipped))
    with pytest.raises(SecretUnreadable):
        _get(t, device, "unlock_pin")


def test_tenants_have_separate_data_keys(make_tenant):
    a, b = make_tenant(), make_tenant()
    device = str(uuid.uuid4())
    _put(a, device, "unlock_pin", "123456")
    _put(b, device, "unlock_pin", "654321")
    assert _get(a, device, "unlock_pin") == b"123456" and _get(b, device, "unlock_pin") == b"654321"
    with a.db.unit_of_work() as s:
        ka, kb = s.get(TenantKey, a.id), s.get(TenantKey, b.id)
        assert ka.wrapped_key != kb.wrapped_key and ka.master_key_id == kb.master_key_id


def test_audited_read_names_reader_and_kind_never_the_value(make_tenant):
    t = make_tenant()
    device = str(uuid.uuid4())
    value = _value("PW")
    _put(t, device, "recovery_password", value)
    with t.db.unit_of_work() as s:
        base = t.ctx(s)
        admin = TenantContext(base.tenant_id, base.subdomain, base.region, actor_id="adm-1", actor_type="admin",
                              actor_name="Ada Admin")
        assert secrets.get(s, admin, owner_type="device", owner_id=device, kind="recovery_password",
                           audited=True) == value.encode()
        secrets.get(s, base, owner_type="device", owner_id=device, kind="recovery_password", audited=False)
    with t.db.unit_of_work() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.tenant_id == t.id,
                                                         AuditEvent.target_component == "secrets")))
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.target_type, event.target_id) == ("read", "device", device)
    assert (event.actor_id, event.actor_type, event.actor_name) == ("adm-1", "admin", "Ada Admin")
    assert event.meta["secret_kinds"] == ["recovery_password"] and event.meta["reader_name"] == "Ada Admin"
    assert value not in repr(event.meta) + repr(event.new_state)


def test_bad_owner_type_or_kind_is_refused(make_tenant):
    t = make_tenant()
    with pytest.raises(ValueError):
        _put(t, "x", "unlock|pin", "1")
    with pytest.raises(ValueError):
        _put(t, "x", "unlock_pin", "1", owner_type="Device|x")
