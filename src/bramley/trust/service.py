"""Device trust in the server: live verdicts, the per-tenant window, agent reports, and the audit trail of changes.

The API evaluates the rule live from the device columns, so an answer is never stale. Changes are found by
comparing a fresh evaluation with the verdict recorded last (`trust_verdicts`): right away for the device an
agent report concerns, and for the whole tenant in a sweep job every few minutes, which also catches what only
time changes (a device going quiet past the window) and what MDM check-ins changed.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.db.base import utcnow
from bramley.devices import service as devices
from bramley.devices.service import Posture
from bramley.errors import InvalidField, NotFound, RuleViolation
from bramley.jobs import service as jobs
from bramley.tenancy.context import TenantContext
from bramley.trust import rules
from bramley.trust.models import TrustSettings, TrustVerdict

log = logging.getLogger("bramley.trust")

KIND = "trust.evaluate"
AGENT_BUNDLE_ID = "dev.bramley.agent"  # how the agent shows in a Mac's installed-application list
SWEEP_SECONDS = 300  # how often a tenant's verdicts are re-evaluated for the audit trail
CHUNK = 5000


# --- settings --------------------------------------------------------------------------------------------

def _settings_row(db: Session, ctx: TenantContext) -> TrustSettings | None:
    return db.get(TrustSettings, ctx.tenant_id)


def window_days(db: Session, ctx: TenantContext) -> int:
    row = _settings_row(db, ctx)
    return row.window_days if row else rules.DEFAULT_WINDOW_DAYS


def get_settings(db: Session, ctx: TenantContext) -> dict:
    return {"window_days": window_days(db, ctx)}


def _ensure_settings(db: Session, ctx: TenantContext) -> TrustSettings:
    row = _settings_row(db, ctx)
    if row is None:
        row = TrustSettings(tenant_id=ctx.tenant_id, window_days=rules.DEFAULT_WINDOW_DAYS, updated_at=utcnow())
        db.add(row)
        db.flush()
    return row


def update_settings(db: Session, ctx: TenantContext, *, window_days_value) -> dict:
    """Change the window (days a device may go without reporting). Audited; a sweep re-evaluates the tenant."""
    if isinstance(window_days_value, bool) or not isinstance(window_days_value, int):
        raise InvalidField({"window_days": ["A valid integer is required."]})
    if not rules.MIN_WINDOW_DAYS <= window_days_value <= rules.MAX_WINDOW_DAYS:
        raise InvalidField({"window_days": [f"Ensure this value is between {rules.MIN_WINDOW_DAYS} and "
                                            f"{rules.MAX_WINDOW_DAYS}."]})
    row = _ensure_settings(db, ctx)
    previous = row.window_days
    if previous != window_days_value:
        row.window_days, row.updated_at = window_days_value, utcnow()
        audit.record(db, ctx, action="update", target_type="trust_settings", target_id=ctx.tenant_id,
                     new_state={"window_days": window_days_value}, metadata={"previous": {"window_days": previous}})
        request_sweep(db, ctx)
    return get_settings(db, ctx)


# --- live verdicts (the API) -----------------------------------------------------------------------------

def facts_of(p: Posture) -> rules.Facts:
    return rules.Facts(serial_number=p.serial_number, known=True, last_check_in=p.last_check_in,
                       agent_installed=p.agent_installed, mdm_enabled=p.mdm_enabled, is_removed=p.is_removed)


def verdict_dict(posture: Posture | None, serial_number: str, verdict: rules.Verdict, *, window: int,
                 now: datetime) -> dict:
    return {
        "device_id": posture.device_id if posture else None,
        "serial_number": posture.serial_number if posture else serial_number,
        "device_name": posture.device_name if posture else None,
        "platform": posture.platform if posture else None,
        "verified": verdict.verified,
        "failed_rules": [f.as_dict() for f in verdict.failed],
        "window_days": window,
        "evaluated_at": rules.iso_z(now),
    }


def _dicts(postures: list[Posture], *, window: int, now: datetime) -> list[dict]:
    return [verdict_dict(p, p.serial_number, rules.evaluate(facts_of(p), now=now, window_days=window),
                         window=window, now=now) for p in postures]


def lookup(db: Session, ctx: TenantContext, serial_number: str, *, verified: bool | None = None) -> list[dict]:
    """Every verdict for this serial number; an unknown serial gets one (not verified: not managed here)."""
    serial = serial_number.strip()
    now, window = utcnow(), window_days(db, ctx)
    _, found = devices.postures(db, ctx, serial_numbers=sorted({serial, serial.upper()}))
    results = _dicts(found, window=window, now=now) if found else [
        verdict_dict(None, serial, rules.evaluate(rules.Facts(serial, known=False), now=now), window=window, now=now)]
    return [r for r in results if verified is None or r["verified"] == verified]


def list_page(db: Session, ctx: TenantContext, *, verified: bool | None, limit: int,
              offset: int) -> tuple[int, list[dict]]:
    now, window = utcnow(), window_days(db, ctx)
    total, found = devices.postures(db, ctx, trusted_since=now - timedelta(days=window), trusted=verified,
                                    limit=limit, offset=offset, with_count=True)
    return total or 0, _dicts(found, window=window, now=now)


def get_device(db: Session, ctx: TenantContext, device_id: str) -> dict:
    _, found = devices.postures(db, ctx, device_ids=[device_id])
    if not found:
        raise NotFound("device")
    return _dicts(found, window=window_days(db, ctx), now=utcnow())[0]


# --- recorded verdicts and the audit trail ---------------------------------------------------------------

def _record(db: Session, ctx: TenantContext, postures: list[Posture], stored: dict[str, TrustVerdict], *,
            window: int, now: datetime, audit_new: bool) -> tuple[int, int]:
    """Compare fresh verdicts with the recorded ones; store and audit what changed. (changes, verified)."""
    new_rows, changes, verified = [], 0, 0
    for p in postures:
        verdict = rules.evaluate(facts_of(p), now=now, window_days=window)
        verified += verdict.verified
        before = stored.get(p.device_id)
        if before is not None and before.verified == verdict.verified and \
                list(before.failed_rules or []) == verdict.failed_rules:
            continue
        if before is None:
            new_rows.append({"tenant_id": ctx.tenant_id, "device_id": p.device_id, "verified": verdict.verified,
                             "failed_rules": verdict.failed_rules, "changed_at": now})
            if not audit_new:
                continue
        else:
            previous = {"verified": before.verified, "failed_rules": list(before.failed_rules or [])}
            before.verified, before.failed_rules, before.changed_at = verdict.verified, verdict.failed_rules, now
        changes += 1
        audit.record(db, ctx, action="create" if before is None else "update", target_type="device",
                     target_id=p.device_id, target_component="trust",
                     new_state={"serial_number": p.serial_number, "verified": verdict.verified,
                                "failed_rules": verdict.failed_rules, "reasons": verdict.reasons},
                     metadata={"previous": None if before is None else previous, "window_days": window})
    for start in range(0, len(new_rows), CHUNK):
        db.execute(insert(TrustVerdict), new_rows[start:start + CHUNK])
    db.flush()
    return changes, verified


def evaluate_devices(db: Session, ctx: TenantContext, device_ids: list[str]) -> int:
    """Re-evaluate these devices now (an agent report changed them). Returns the changes recorded."""
    _, found = devices.postures(db, ctx, device_ids=device_ids)
    if not found:
        return 0
    stored = {v.device_id: v for v in db.scalars(select(TrustVerdict).where(
        TrustVerdict.tenant_id == ctx.tenant_id, TrustVerdict.device_id.in_([p.device_id for p in found])))}
    row = _settings_row(db, ctx)
    return _record(db, ctx, found, stored, window=row.window_days if row else rules.DEFAULT_WINDOW_DAYS,
                   now=utcnow(), audit_new=bool(row and row.baseline_at))[0]


def evaluate_tenant(db: Session, ctx: TenantContext, *, now: datetime | None = None) -> dict:
    """Re-evaluate every device of the tenant. The first run records a silent baseline; later runs audit each
    change, a newly seen device's first verdict included. Verdicts of deleted devices are dropped."""
    now = now or utcnow()
    row = _ensure_settings(db, ctx)
    _, found = devices.postures(db, ctx)
    stored = {v.device_id: v for v in db.scalars(select(TrustVerdict).where(TrustVerdict.tenant_id == ctx.tenant_id))}
    changes, verified = _record(db, ctx, found, stored, window=row.window_days, now=now,
                                audit_new=row.baseline_at is not None)
    gone = list(stored.keys() - {p.device_id for p in found})
    for start in range(0, len(gone), CHUNK):
        db.execute(delete(TrustVerdict).where(TrustVerdict.tenant_id == ctx.tenant_id,
                                              TrustVerdict.device_id.in_(gone[start:start + CHUNK])))
    baseline = row.baseline_at is None
    row.baseline_at = row.baseline_at or now
    row.last_sweep_at = now
    return {"devices": len(found), "verified": verified, "changes": changes, "baseline": baseline,
            "window_days": row.window_days}


def _bucket_time(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * SWEEP_SECONDS, timezone.utc)


def schedule_sweep(db: Session, ctx: TenantContext, *, now: datetime | None = None) -> None:
    """Make sure the tenant's next periodic sweep is queued (coalesced: one job per period)."""
    bucket = int((now or utcnow()).timestamp() // SWEEP_SECONDS) + 1
    jobs.enqueue(db, tenant_id=ctx.tenant_id, kind=KIND, dedup_key=f"sweep@{bucket}", run_after=_bucket_time(bucket))


def request_sweep(db: Session, ctx: TenantContext) -> None:
    jobs.enqueue(db, tenant_id=ctx.tenant_id, kind=KIND, dedup_key="sweep")


def handle_sweeps(env, batch) -> None:
    """Job handler: sweep each tenant once per batch, then queue its next sweep (the chain keeps itself going)."""
    from bramley.tenancy import service as tenants

    for tenant_id in sorted({job.tenant_id for job in batch}):
        with env.db.unit_of_work() as s:
            tenant = tenants.get(s, tenant_id)
            if tenant is None:
                continue  # tenant gone: the chain ends here
            ctx = tenants.system_context(tenant)
            summary = evaluate_tenant(s, ctx)
            schedule_sweep(s, ctx)
        if summary["changes"]:
            log.info("trust sweep of %s: %d changes (%d of %d verified)", tenant.subdomain, summary["changes"],
                     summary["verified"], summary["devices"])


jobs.register(KIND, handle_sweeps, max_attempts=5, backoff_base=30.0, backoff_cap=SWEEP_SECONDS, batch_size=50)


# --- the agent -------------------------------------------------------------------------------------------

def agent_report(db: Session, ctx: TenantContext, device_id: str, *, installed: bool, version: str = "") -> dict:
    """An agent check-in (installed) or its uninstall notice: device columns, then the device's verdict."""
    device = devices.get_or_raise(db, ctx, device_id)
    if device.platform != "Mac":
        raise RuleViolation("The Bramley agent runs on macOS only.")
    devices.agent_report(db, ctx, device.id, installed=installed, version=version)
    changes = evaluate_devices(db, ctx, [device.id])
    schedule_sweep(db, ctx)
    return {"device_id": device.id, "agent_installed": installed, "trust_changes": changes}


def apps_reported(db: Session, ctx: TenantContext, device_id: str, bundle_ids: set[str]) -> None:
    """The MDM app inventory of a Mac: an agent removed without its uninstall notice (deleted by hand, a
    reimage) is noticed here, so trust does not go on believing a device that no longer runs it."""
    device = devices.get(db, ctx, device_id)
    if device is not None and device.platform == "Mac" and device.agent_installed \
            and AGENT_BUNDLE_ID not in bundle_ids:
        agent_report(db, ctx, device.id, installed=False)
