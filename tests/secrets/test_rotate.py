"""`bramley secrets rotate-key`: new data keys, every value re-encrypted, the key file replaced, old key useless."""
from __future__ import annotations

import base64
import stat
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from bramley.db.engine import Database
from bramley.secrets import crypto
from bramley.secrets import service as secrets
from bramley.secrets.models import Secret, TenantKey
from tests.conftest import run_cli
from tests.secrets.conftest import new_tenant


def _fill(database: Database) -> dict:
    """Two tenants with device and tenant-level secrets; returns {(tenant, owner_type, owner, kind): value}."""
    stored = {}
    for _ in range(2):
        ctx = new_tenant(database)
        with database.unit_of_work() as s:
            for i in range(3):
                device = str(uuid.uuid4())
                for kind in ("filevault_prk", "bypass_code_user", "unlock_pin"):
                    value = f"{kind}-{i}-{uuid.uuid4().hex}"
                    secrets.put(s, ctx, owner_type="device", owner_id=device, kind=kind, value=value)
                    stored[(ctx, "device", device, kind)] = value
            value = f"scep-{uuid.uuid4().hex}"
            secrets.put(s, ctx, owner_type="tenant", owner_id=ctx.tenant_id, kind="scep_ca_key", value=value)
            stored[(ctx, "tenant", ctx.tenant_id, "scep_ca_key")] = value
    return stored


def _read_all(database: Database, stored: dict) -> dict:
    with database.unit_of_work() as s:
        return {k: secrets.get(s, k[0], owner_type=k[1], owner_id=k[2], kind=k[3], audited=False).decode()
                for k in stored}


def _rows(database: Database) -> dict:
    with database.unit_of_work() as s:
        return {(r.tenant_id, r.owner_type, r.owner_id, r.kind): (r.nonce, r.ciphertext, r.key_version)
                for r in s.scalars(select(Secret))}


def _keys(database: Database) -> dict:
    with database.unit_of_work() as s:
        return {k.tenant_id: (k.wrapped_key, k.version, k.master_key_id) for k in s.scalars(select(TenantKey))}


def _flat(text: str) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(text.split())


def _no_values_in(text: str, stored: dict) -> None:
    for value in stored.values():
        assert value not in text


def test_rotate_key_reencrypts_everything_and_replaces_the_key_file(private_settings, private_db):
    stored = _fill(private_db)
    key_file = private_settings.data_dir / crypto.KEY_FILE
    old_master = crypto.read_key_file(key_file)
    rows_before, keys_before = _rows(private_db), _keys(private_db)

    proc = run_cli(private_settings, "secrets", "rotate-key")

    # Other domains may store tenant secrets too (the tenant CA): count what the database holds.
    assert (f"rotated data keys of {len(keys_before)} tenants; re-encrypted {len(rows_before)} secrets"
            in proc.stdout)
    assert len(keys_before) == 2 and len(rows_before) >= len(stored)
    _no_values_in(proc.stdout + proc.stderr, stored)
    new_master = crypto.read_key_file(key_file)
    assert new_master.material != old_master.material and new_master.id in proc.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (private_settings.data_dir / crypto.STAGED_KEY_FILE).exists()
    rows_after, keys_after = _rows(private_db), _keys(private_db)
    assert rows_after.keys() == rows_before.keys()
    for pk, (nonce, ciphertext, version) in rows_after.items():
        assert ciphertext != rows_before[pk][1] and version == 2
    assert {v[1:] for v in keys_after.values()} == {(2, new_master.id)}
    # This process still had the old key loaded: it follows the rotation and reads every value back.
    assert _read_all(private_db, stored) == {k: v for k, v in stored.items()}

    for tenant_id, (wrapped, version, _) in keys_after.items():
        with pytest.raises(crypto.SecretUnreadable):
            crypto.unwrap_data_key(old_master, tenant_id, version, wrapped)
        # Nor does the retired data key open what was re-encrypted.
        old_data_key = crypto.unwrap_data_key(old_master, tenant_id, 1, keys_before[tenant_id][0])
        some = next((pk, row) for pk, row in rows_after.items() if pk[0] == tenant_id)
        with pytest.raises(crypto.SecretUnreadable):
            crypto.open_sealed(crypto.AESGCM(old_data_key), some[1][0], some[1][1], crypto.value_aad(*some[0]))


def test_old_master_key_no_longer_reads(private_settings, private_db):
    stored = _fill(private_db)
    old = crypto.read_key_file(private_settings.data_dir / crypto.KEY_FILE)
    run_cli(private_settings, "secrets", "rotate-key")
    with_old = Database(private_settings.model_copy(
        update={"secret_key": SecretStr(base64.b64encode(old.material).decode())}))
    try:
        (ctx, owner_type, owner_id, kind) = next(iter(stored))
        with pytest.raises(crypto.MasterKeyError):
            with with_old.unit_of_work() as s:
                secrets.get(s, ctx, owner_type=owner_type, owner_id=owner_id, kind=kind, audited=False)
    finally:
        with_old.dispose()


def test_rotating_twice_keeps_values(private_settings, private_db):
    stored = _fill(private_db)
    run_cli(private_settings, "secrets", "rotate-key")
    run_cli(private_settings, "secrets", "rotate-key")
    assert {v[1] for v in _keys(private_db).values()} == {3}
    assert _read_all(private_db, stored) == stored


def _env_db(private_settings, material: bytes) -> Database:
    return Database(private_settings.model_copy(
        update={"secret_key": SecretStr(base64.b64encode(material).decode())}))


def test_with_secret_key_setting_only_data_keys_rotate(private_settings, private_db):
    material = crypto.generate_key()
    env = base64.b64encode(material).decode()
    database = _env_db(private_settings, material)
    try:
        stored = _fill(database)
        before = _rows(database)
        proc = run_cli(private_settings, "secrets", "rotate-key", BRAMLEY_SECRET_KEY=env)
        assert f"re-encrypted {len(before)} secrets" in proc.stdout and "unchanged" in proc.stdout
        assert env not in proc.stdout + proc.stderr
        assert not (private_settings.data_dir / crypto.KEY_FILE).exists()
        after = _rows(database)
        assert all(after[pk][1] != before[pk][1] and after[pk][2] == 2 for pk in before)
        assert {v[2] for v in _keys(database).values()} == {crypto.MasterKey(material, "t").id}
        assert _read_all(database, stored) == stored
    finally:
        database.dispose()


def test_with_secret_key_setting_new_master_key_rewraps(private_settings, private_db):
    old, new = crypto.generate_key(), crypto.generate_key()
    database = _env_db(private_settings, old)
    try:
        stored = _fill(database)
        new_b64 = base64.b64encode(new).decode()
        proc = run_cli(private_settings, "secrets", "rotate-key", "--new-master-key", new_b64,
                       BRAMLEY_SECRET_KEY=base64.b64encode(old).decode())
        assert "set BRAMLEY_SECRET_KEY to the new key" in proc.stdout
        assert new_b64 not in proc.stdout + proc.stderr
        with pytest.raises(crypto.MasterKeyError):
            _read_all(database, stored)  # still configured with the old key
    finally:
        database.dispose()
    restarted = _env_db(private_settings, new)
    try:
        assert _read_all(restarted, stored) == stored
    finally:
        restarted.dispose()


def test_failed_rotation_changes_nothing(private_settings, private_db):
    stored = _fill(private_db)
    key_file = private_settings.data_dir / crypto.KEY_FILE
    old_key_text = key_file.read_text()
    victim = next(k for k in stored if k[1] == "device")
    with private_db.unit_of_work() as s:
        s.execute(update(Secret).where(Secret.tenant_id == victim[0].tenant_id, Secret.owner_id == victim[2],
                                       Secret.kind == victim[3]).values(ciphertext=b"\x00" * 40))
    before, keys_before = _rows(private_db), _keys(private_db)

    proc = run_cli(private_settings, "secrets", "rotate-key", check=False)

    assert proc.returncode == 1 and "rotation rolled back" in _flat(proc.stderr)
    _no_values_in(proc.stdout + proc.stderr, stored)
    assert key_file.read_text() == old_key_text
    assert not (private_settings.data_dir / crypto.STAGED_KEY_FILE).exists()
    assert _rows(private_db) == before and _keys(private_db) == keys_before
    rest = {k: v for k, v in stored.items() if k != victim}
    assert _read_all(private_db, rest) == rest


def test_rotation_interrupted_before_the_key_file_rename_recovers(private_settings, private_db):
    stored = _fill(private_db)
    staged = crypto.stage_master_key(private_settings)
    with private_db.unit_of_work() as s:  # committed, but the process "died" before promoting the file
        secrets.rotate_all(s, new_master=staged)
    assert _read_all(private_db, stored) == stored  # servers find the staged key
    run_cli(private_settings, "secrets", "rotate-key")
    assert not (private_settings.data_dir / crypto.STAGED_KEY_FILE).exists()
    assert {v[1] for v in _keys(private_db).values()} == {3}
    assert _read_all(private_db, stored) == stored


def test_new_master_key_option_needs_the_setting(private_settings, private_db):
    proc = run_cli(private_settings, "secrets", "rotate-key", "--new-master-key",
                   base64.b64encode(crypto.generate_key()).decode(), check=False)
    assert proc.returncode == 1 and "key file is replaced automatically" in _flat(proc.stderr)
