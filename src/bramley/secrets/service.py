"""Secrets at rest: store, read (audited when a person or token reads), delete, rotate. Flushes, never commits.

Values never reach a log line, an exception message or an audit event; only their kind does.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete as sql_delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.config import Settings
from bramley.db.base import utcnow
from bramley.devices import service as devices
from bramley.secrets import crypto
from bramley.secrets.crypto import KeyRing, MasterKey, SecretUnreadable
from bramley.secrets.models import Secret, TenantKey
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.secrets")

# Device secrets served by /api/v1/devices/{device_id}/secrets/…; other domains add their own kinds
# (scep_ca_key, escrow_key, apns_key, unlock_token, bootstrap_token) under owner types "tenant"/"enrollment".
BYPASS_CODE_USER = "bypass_code_user"
BYPASS_CODE_DEVICE = "bypass_code_device"
FILEVAULT_PRK = "filevault_prk"
UNLOCK_PIN = "unlock_pin"
RECOVERY_PASSWORD = "recovery_password"
DEVICE_KINDS = (BYPASS_CODE_USER, BYPASS_CODE_DEVICE, FILEVAULT_PRK, UNLOCK_PIN, RECOVERY_PASSWORD)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ROTATE_BATCH = 500


def _ring(db: Session) -> KeyRing:
    settings = db.info.get("settings")
    if not isinstance(settings, Settings):
        raise RuntimeError("secrets need a session from bramley.db.engine.Database (it carries the settings)")
    return crypto.keyring(settings)


def _check_names(owner_type: str, kinds: Iterable[str]) -> None:
    for name, limit in ((owner_type, 32), *((k, 48) for k in kinds)):
        if not _NAME.match(name) or len(name) > limit:
            raise ValueError(f"secret owner type / kind must match [a-z][a-z0-9_]* (max {limit}): {name!r}")


def _insert(db: Session):
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def _tenant_key(db: Session, tenant_id: str, *, lock: bool) -> TenantKey | None:
    query = select(TenantKey).where(TenantKey.tenant_id == tenant_id).execution_options(populate_existing=True)
    if lock:
        # Shared row lock: rotate_all (exclusive) waits for us, and we wait for it, so no value is ever
        # written under a data key version that a concurrent rotation is retiring.
        query = query.with_for_update(read=True)
    return db.scalar(query)


def _master_for_new_key(db: Session, ring: KeyRing) -> MasterKey:
    """The master key the other tenants' keys use, so a key made while rotate-key commits is not left behind
    under the retired one (the ring finds the new key in the key file, or staged beside it)."""
    in_use = master_key_ids(db)
    if not in_use or ring.master.id in in_use:
        return ring.master
    for key_id in sorted(in_use):
        found = ring.find_master(key_id)
        if found is not None:
            return found
    log.warning("tenant keys exist under master key(s) %s, none of them configured; new tenant keys are "
                "wrapped by master key %s", ",".join(sorted(in_use)), ring.master.id)
    return ring.master


def _create_tenant_key(db: Session, ring: KeyRing, tenant_id: str) -> TenantKey:
    if db.get_bind().dialect.name == "postgresql":
        # Waits out a running rotation (it holds EXCLUSIVE), so we see the master key it committed.
        db.execute(text("LOCK TABLE tenant_keys IN ROW EXCLUSIVE MODE"))
    master = _master_for_new_key(db, ring)
    values = {"tenant_id": tenant_id, "version": 1, "master_key_id": master.id, "created_at": utcnow(),
              "wrapped_key": crypto.wrap_data_key(master, tenant_id, 1, crypto.generate_key())}
    # A concurrent first write for the same tenant may win the insert; then we use its key.
    db.execute(_insert(db)(TenantKey).values(**values).on_conflict_do_nothing(index_elements=["tenant_id"]))
    key = _tenant_key(db, tenant_id, lock=True)
    assert key is not None
    return key


def _aead(ring: KeyRing, key: TenantKey):
    return ring.data_key(key.tenant_id, key.version, key.master_key_id, key.wrapped_key)


def put(db: Session, ctx: TenantContext, *, owner_type: str, owner_id: str, kind: str, value: bytes | str) -> None:
    """Store (or replace) one value, encrypted under the tenant's data key."""
    _check_names(owner_type, [kind])
    plaintext = value.encode() if isinstance(value, str) else bytes(value)
    ring = _ring(db)
    key = _tenant_key(db, ctx.tenant_id, lock=True) or _create_tenant_key(db, ring, ctx.tenant_id)
    nonce, ciphertext = crypto.seal(_aead(ring, key), plaintext,
                                    crypto.value_aad(ctx.tenant_id, owner_type, str(owner_id), kind))
    now = utcnow()
    row = {"tenant_id": ctx.tenant_id, "owner_type": owner_type, "owner_id": str(owner_id), "kind": kind,
           "nonce": nonce, "ciphertext": ciphertext, "key_version": key.version, "created_at": now, "updated_at": now}
    stmt = _insert(db)(Secret).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "owner_type", "owner_id", "kind"],
        set_={"nonce": stmt.excluded.nonce, "ciphertext": stmt.excluded.ciphertext,
              "key_version": stmt.excluded.key_version, "updated_at": stmt.excluded.updated_at})
    db.execute(stmt)
    log.debug("stored secret %s of %s %s (tenant %s)", kind, owner_type, owner_id, ctx.tenant_id)


class _StaleVersion(Exception):
    pass


def _read(db: Session, ring: KeyRing, tenant_id: str, owner_type: str, owner_id: str,
          kinds: list[str]) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = dict.fromkeys(kinds)
    rows = list(db.execute(select(Secret.kind, Secret.nonce, Secret.ciphertext, Secret.key_version).where(
        Secret.tenant_id == tenant_id, Secret.owner_type == owner_type, Secret.owner_id == owner_id,
        Secret.kind.in_(kinds))))
    if not rows:
        return found
    key = _tenant_key(db, tenant_id, lock=False)
    if key is None:
        raise SecretUnreadable(f"tenant {tenant_id} has stored secrets but no data key")
    aead = _aead(ring, key)
    for kind, nonce, ciphertext, version in rows:
        if version != key.version:
            raise _StaleVersion
        found[kind] = crypto.open_sealed(aead, nonce, ciphertext,
                                         crypto.value_aad(tenant_id, owner_type, owner_id, kind))
    return found


def get_many(db: Session, ctx: TenantContext, *, owner_type: str, owner_id: str, kinds: Iterable[str],
             audited: bool) -> dict[str, bytes | None]:
    """Several values of one owner (None where nothing is stored); one audit event when `audited`."""
    kinds = list(dict.fromkeys(kinds))
    _check_names(owner_type, kinds)
    ring = _ring(db)
    try:
        found = _read(db, ring, ctx.tenant_id, owner_type, str(owner_id), kinds)
    except _StaleVersion:
        # A rotation committed between our two reads (read committed): both reads again see one state.
        try:
            found = _read(db, ring, ctx.tenant_id, owner_type, str(owner_id), kinds)
        except _StaleVersion:
            raise SecretUnreadable(f"secrets of {owner_type} {owner_id} do not match their tenant's key version") \
                from None
    if audited:
        audit.record(db, ctx, action="read", target_type=owner_type, target_id=str(owner_id),
                     target_component="secrets",
                     metadata={"secret_kinds": kinds, "stored": [k for k in kinds if found[k] is not None],
                               "reader_id": ctx.actor_id, "reader_type": ctx.actor_type,
                               "reader_name": ctx.actor_name})
    log.debug("read secrets %s of %s %s (tenant %s, audited=%s)", ",".join(kinds), owner_type, owner_id,
              ctx.tenant_id, audited)
    return found


def get(db: Session, ctx: TenantContext, *, owner_type: str, owner_id: str, kind: str,
        audited: bool) -> bytes | None:
    """One value, or None. Pass audited=True whenever a person or an API token will see it."""
    return get_many(db, ctx, owner_type=owner_type, owner_id=owner_id, kinds=[kind], audited=audited)[kind]


def delete(db: Session, ctx: TenantContext, *, owner_type: str, owner_id: str, kind: str | None = None) -> int:
    """Delete one kind, or every secret of the owner (kind=None). Returns how many went."""
    _check_names(owner_type, [kind] if kind else [])
    stmt = sql_delete(Secret).where(Secret.tenant_id == ctx.tenant_id, Secret.owner_type == owner_type,
                                    Secret.owner_id == str(owner_id))
    if kind:
        stmt = stmt.where(Secret.kind == kind)
    return db.execute(stmt, execution_options={"synchronize_session": False}).rowcount or 0


def device_secrets(db: Session, ctx: TenantContext, device_id: str, kinds: Iterable[str]) -> dict[str, str | None]:
    """What the Iru secret endpoints return: the device must be this tenant's; every call is audited."""
    device = devices.get_or_raise(db, ctx, device_id)
    values = get_many(db, ctx, owner_type="device", owner_id=device.id, kinds=kinds, audited=True)
    return {k: (v.decode() if v is not None else None) for k, v in values.items()}


# -- rotation -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RotationReport:
    tenants: int
    secrets: int
    master_key_id: str
    master_key_changed: bool


def count_all(db: Session) -> tuple[int, int]:
    """(tenant keys, stored values) across every tenant: sizes the rotate-key progress bar."""
    return (db.scalar(select(func.count()).select_from(TenantKey)) or 0,
            db.scalar(select(func.count()).select_from(Secret)) or 0)


def master_key_ids(db: Session) -> set[str]:
    return set(db.scalars(select(TenantKey.master_key_id).distinct()))


def rotate_all(db: Session, *, new_master: MasterKey | None = None,
               progress: Callable[[int], None] | None = None) -> RotationReport:
    """Give every tenant a new data key (wrapped by `new_master`, else the configured master key) and
    re-encrypt every stored value under it, bumping key_version. One transaction: all or nothing."""
    ring = _ring(db)
    if db.get_bind().dialect.name == "postgresql":
        # Blocks puts (they share-lock their tenant key row) and new tenant keys until we commit.
        db.execute(text("LOCK TABLE tenant_keys IN EXCLUSIVE MODE"))
    target = new_master or ring.master
    keys = list(db.scalars(select(TenantKey).order_by(TenantKey.tenant_id).with_for_update()
                           .execution_options(populate_existing=True)))
    total = 0
    for key in keys:
        old = _aead(ring, key)
        fresh = crypto.generate_key()
        new_version = key.version + 1
        new = crypto.AESGCM(fresh)
        total += _reencrypt_tenant(db, key.tenant_id, key.version, new_version, old, new, progress)
        key.wrapped_key = crypto.wrap_data_key(target, key.tenant_id, new_version, fresh)
        key.master_key_id = target.id
        key.version = new_version
        key.rotated_at = utcnow()
    db.flush()
    return RotationReport(tenants=len(keys), secrets=total, master_key_id=target.id,
                          master_key_changed=target.id != ring.master.id)


def _reencrypt_tenant(db: Session, tenant_id: str, old_version: int, new_version: int, old, new,
                      progress: Callable[[int], None] | None) -> int:
    table = Secret.__table__
    stmt = (update(table)
            .where(and_(table.c.tenant_id == bindparam("t"), table.c.owner_type == bindparam("ot"),
                        table.c.owner_id == bindparam("oi"), table.c.kind == bindparam("k")))
            .values(nonce=bindparam("n"), ciphertext=bindparam("c"), key_version=new_version))
    done = 0
    while True:
        # Each batch moves its rows to new_version, so "still at old_version" is the cursor.
        rows = list(db.execute(
            select(table.c.owner_type, table.c.owner_id, table.c.kind, table.c.nonce, table.c.ciphertext)
            .where(table.c.tenant_id == tenant_id, table.c.key_version == old_version)
            .order_by(table.c.owner_type, table.c.owner_id, table.c.kind).limit(ROTATE_BATCH)))
        if not rows:
            break
        params = []
        for owner_type, owner_id, kind, nonce, ciphertext in rows:
            aad = crypto.value_aad(tenant_id, owner_type, owner_id, kind)
            n, c = crypto.seal(new, crypto.open_sealed(old, nonce, ciphertext, aad), aad)
            params.append({"t": tenant_id, "ot": owner_type, "oi": owner_id, "k": kind, "n": n, "c": c})
        db.execute(stmt, params)
        done += len(rows)
        if progress:
            progress(len(rows))
    left = db.scalar(select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id,
                                                                   table.c.key_version != new_version))
    if left:
        raise SecretUnreadable(f"{left} secrets of tenant {tenant_id} carry an unknown key version")
    return done
