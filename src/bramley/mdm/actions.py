"""Device actions as MDM commands: checks in Iru's order, then enqueue, escrow and one push."""
from __future__ import annotations

import plistlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.devices import service as devices
from bramley.errors import ActionRefused, RuleViolation
from bramley.mdm import queue
from bramley.mdm.commands import ACTIONS, DeviceFacts
from bramley.mdm.models import Enrollment
from bramley.tenancy.context import TenantContext

NOT_ALLOWED = "Command is not allowed for current device"
ALREADY_RUNNING = "Command already running"
ALREADY_LOCKED = "This device is already locked."


def device_enrollment(db: Session, ctx: TenantContext, device_id: str) -> Enrollment | None:
    return db.scalar(select(Enrollment).where(Enrollment.tenant_id == ctx.tenant_id, Enrollment.device_id == device_id,
                                              Enrollment.type == "device").order_by(Enrollment.created_at.desc()))


def _unlock_token(db: Session, ctx: TenantContext, enrollment: Enrollment) -> bytes | None:
    from bramley.secrets import service as secrets

    return secrets.get(db, ctx, owner_type="enrollment", owner_id=enrollment.id, kind="unlock_token", audited=False)


def perform(db: Session, ctx: TenantContext, device_id: str, name: str, body: dict, *, base_url: str) -> dict | None:
    """Run one action on one device. Returns the reply body (None = empty 200)."""
    from bramley.mdm import push

    action = ACTIONS[name]
    device = devices.get_or_raise(db, ctx, device_id)
    if device.platform not in action.platforms:
        raise ActionRefused(NOT_ALLOWED)
    enrollment = device_enrollment(db, ctx, device.id)
    if enrollment is None or not enrollment.enabled:
        raise ActionRefused(NOT_ALLOWED)
    if action.supervised and not device.supervised:
        raise ActionRefused(NOT_ALLOWED)
    if action.lost_mode and device.lost_mode_status != "ENABLED":
        raise RuleViolation("Device is not in lost mode.")
    unlock = _unlock_token(db, ctx, enrollment) if action.unlock_token else None
    if action.unlock_token and not unlock:
        raise ActionRefused(NOT_ALLOWED)
    facts = DeviceFacts(platform=device.platform, supervised=device.supervised,
                        lost_mode=device.lost_mode_status == "ENABLED", has_unlock_token=bool(unlock))
    plan = action.plan(body, facts)
    pending = queue.pending_types(db, ctx, enrollment.id)
    if name == "lock" and "DeviceLock" in pending and device.platform == "Mac":
        # A lock is still on its way: hand back its PIN rather than sending a second one.
        payload = queue.pending_fields(db, ctx, enrollment.id, "DeviceLock")
        pin = plistlib.loads(payload)["Command"].get("PIN") if payload else None
        return {"PIN": pin} if pin else None
    if name == "lock" and enrollment.locked_at is not None:
        raise ActionRefused(ALREADY_LOCKED)  # it acknowledged a lock and has not been heard from since
    if action.exclusive and any(rt in pending for rt, _ in plan.commands):
        raise ActionRefused(ALREADY_RUNNING)
    targets = [queue.Target(enrollment.id, device.id)]
    uuids = []
    for request_type, fields in plan.commands:
        if request_type in pending:  # routine commands (inventory) are not queued twice
            continue
        if request_type == "ClearPasscode":
            fields = {**fields, "UnlockToken": unlock}
        elif request_type == "InstallEnterpriseApplication":
            fields = {**fields, "ManifestURL": f"{base_url}/agent/manifest.plist"}
        elif request_type == "InstallProfile":
            from bramley.mdm import enroll

            fields = {**fields, "Payload": enroll.build_profile(db, ctx, base_url=base_url)}
        uuids.append(queue.enqueue(db, ctx, targets, request_type, fields, action=name))
    if plan.store_pin:
        from bramley.secrets import service as secrets

        secrets.put(db, ctx, owner_type="device", owner_id=device.id, kind="unlock_pin", value=plan.store_pin)
    if plan.lost_mode_status is not None:
        devices.report(db, ctx, device.id, columns={"lost_mode_status": plan.lost_mode_status})
    push.request_push(db, ctx, [enrollment.id])
    audit.record(db, ctx, action="update", target_type="device", target_id=device.id, target_component="actions",
                 new_state={"action": name, "commands": uuids})
    return plan.reply


def perform_bulk(db: Session, ctx: TenantContext, device_ids: list[str] | None, name: str, body: dict) -> dict:
    """One action for many devices: one command body per request type, bulk queue rows, one push each.

    Only actions without per-device secrets or replies qualify (inventory, restart, blank push, ...).
    """
    from bramley.mdm import push

    action = ACTIONS[name]
    if action.unlock_token or name in ("lock", "erase", "renewmdmprofile", "reinstallagent"):
        raise RuleViolation(f"{name} is sent one device at a time.")
    query = select(Enrollment.id, Enrollment.device_id).where(Enrollment.tenant_id == ctx.tenant_id,
                                                             Enrollment.type == "device", Enrollment.enabled.is_(True))
    if device_ids is not None:
        query = query.where(Enrollment.device_id.in_(device_ids))
    rows = db.execute(query).all()
    platforms = devices.platforms_for(db, ctx, [d for _, d in rows])
    by_platform: dict[str, list[queue.Target]] = {}
    for enrollment_id, device_id in rows:
        platform = platforms.get(device_id)
        if platform in action.platforms:
            by_platform.setdefault(platform, []).append(queue.Target(enrollment_id, device_id))
    uuids = []
    for platform, targets in by_platform.items():
        plan = action.plan(body, DeviceFacts(platform=platform, supervised=True, lost_mode=False,
                                             has_unlock_token=False))
        for request_type, fields in plan.commands:
            uuids.append(queue.enqueue(db, ctx, targets, request_type, fields, action=name))
    enrolled = [t.enrollment_id for ts in by_platform.values() for t in ts]
    push.request_push(db, ctx, enrolled)
    audit.record(db, ctx, action="update", target_type="device", target_id="*", target_component="actions",
                 new_state={"action": name, "devices": len(enrolled), "commands": uuids})
    return {"devices": len(enrolled), "commands": uuids}
