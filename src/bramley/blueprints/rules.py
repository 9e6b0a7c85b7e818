"""Blueprint assignment rules: "members of group G get blueprint B", in order, first match wins.

A device follows its user's first matching rule when its user changes, when that user's group memberships
change, and when it enrolls (or when an admin asks for a re-evaluation). Each move is audited with the rule that
caused it. A blueprint an admin set by hand (the Update Device call) pins the device: rules leave it alone
unless the rule says `override_manual`. No matching rule leaves the blueprint as it is.
"""
from __future__ import annotations

from sqlalchemy import delete as sql_delete, select
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.blueprints import service as blueprints
from bramley.blueprints.rules_models import AssignmentRule, BlueprintSource
from bramley.db.base import is_uuid, utcnow
from bramley.errors import InvalidField, NotFound
from bramley.tenancy.context import TenantContext

MANUAL, RULE = "manual", "rule"


def _state(rule: AssignmentRule) -> dict:
    return {"position": rule.position, "group_id": rule.group_id, "blueprint_id": rule.blueprint_id,
            "override_manual": rule.override_manual}


def list_rules(db: Session, ctx: TenantContext) -> list[AssignmentRule]:
    return list(db.scalars(select(AssignmentRule).where(AssignmentRule.tenant_id == ctx.tenant_id)
                           .order_by(AssignmentRule.position, AssignmentRule.created_at)))


def get_or_raise(db: Session, ctx: TenantContext, rule_id: str) -> AssignmentRule:
    rule = db.get(AssignmentRule, rule_id) if is_uuid(rule_id) else None
    if rule is None or rule.tenant_id != ctx.tenant_id:
        raise NotFound("assignment rule")
    return rule


def _check_targets(db: Session, ctx: TenantContext, group_id, blueprint_id) -> None:
    from bramley.users import groups

    errors: dict[str, list[str]] = {}
    if group_id is not None and (not isinstance(group_id, str) or groups.get(db, ctx, group_id) is None):
        errors["group_id"] = [f'Invalid pk "{group_id}" - object does not exist.']
    if blueprint_id is not None and (not isinstance(blueprint_id, str)
                                     or blueprints.get(db, ctx, blueprint_id) is None):
        errors["blueprint_id"] = [f'Invalid pk "{blueprint_id}" - object does not exist.']
    if errors:
        raise InvalidField(errors)


def _position(value, count: int) -> int:
    """1-based; past the end means last."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidField({"position": ["Ensure this value is an integer greater than or equal to 1."]})
    return min(value, count)


def _place(rules: list[AssignmentRule], rule: AssignmentRule, position: int) -> None:
    """Put `rule` at `position` (1-based) and renumber the rest 1..n."""
    others = [r for r in rules if r.id != rule.id]
    others.insert(position - 1, rule)
    for i, r in enumerate(others, start=1):
        r.position = i


def create(db: Session, ctx: TenantContext, *, group_id: str, blueprint_id: str, position: int | None = None,
           override_manual: bool = False) -> AssignmentRule:
    missing = {k: ["This field is required."] for k, v in (("group_id", group_id), ("blueprint_id", blueprint_id))
               if v in (None, "")}
    if missing:
        raise InvalidField(missing)
    _check_targets(db, ctx, group_id, blueprint_id)
    rules = list_rules(db, ctx)
    now = utcnow()
    rule = AssignmentRule(tenant_id=ctx.tenant_id, group_id=group_id, blueprint_id=blueprint_id,
                          override_manual=bool(override_manual), position=len(rules) + 1, created_at=now,
                          updated_at=now)
    db.add(rule)
    _place(rules, rule, len(rules) + 1 if position is None else _position(position, len(rules) + 1))
    db.flush()
    audit.record(db, ctx, action="create", target_type="blueprint_assignment_rule", target_id=rule.id,
                 new_state=_state(rule))
    return rule


EDITABLE = ("group_id", "blueprint_id", "position", "override_manual")


def update(db: Session, ctx: TenantContext, rule_id: str, changes: dict) -> AssignmentRule:
    rule = get_or_raise(db, ctx, rule_id)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidField({k: ["This field cannot be changed."] for k in sorted(unknown)})
    _check_targets(db, ctx, changes.get("group_id"), changes.get("blueprint_id"))
    for name in ("group_id", "blueprint_id"):
        if name in changes:
            if changes[name] in (None, ""):
                raise InvalidField({name: ["This field may not be null."]})
            setattr(rule, name, changes[name])
    if "override_manual" in changes:
        if not isinstance(changes["override_manual"], bool):
            raise InvalidField({"override_manual": ["Must be a valid boolean."]})
        rule.override_manual = changes["override_manual"]
    if "position" in changes:
        rules = list_rules(db, ctx)
        _place(rules, rule, _position(changes["position"], len(rules)))
    rule.updated_at = utcnow()
    db.flush()
    audit.record(db, ctx, action="update", target_type="blueprint_assignment_rule", target_id=rule.id,
                 new_state=_state(rule))
    return rule


def delete(db: Session, ctx: TenantContext, rule_id: str) -> None:
    rule = get_or_raise(db, ctx, rule_id)
    rest = [r for r in list_rules(db, ctx) if r.id != rule.id]
    db.delete(rule)
    for i, r in enumerate(rest, start=1):
        r.position = i
    db.flush()
    audit.record(db, ctx, action="delete", target_type="blueprint_assignment_rule", target_id=rule.id,
                 new_state=_state(rule))


# --- evaluation ------------------------------------------------------------------------------------------------

def _sources(db: Session, ctx: TenantContext, device_ids: list[str]) -> dict[str, BlueprintSource]:
    out: dict[str, BlueprintSource] = {}
    for start in range(0, len(device_ids), 500):
        out.update((s.device_id, s) for s in db.scalars(select(BlueprintSource).where(
            BlueprintSource.tenant_id == ctx.tenant_id, BlueprintSource.device_id.in_(device_ids[start:start + 500]))))
    return out


def _record_source(db: Session, ctx: TenantContext, existing: BlueprintSource | None, device_id: str, source: str,
                   rule_id: str | None) -> None:
    if existing is None:
        db.add(BlueprintSource(tenant_id=ctx.tenant_id, device_id=device_id, source=source, rule_id=rule_id,
                               updated_at=utcnow()))
    else:
        existing.source, existing.rule_id, existing.updated_at = source, rule_id, utcnow()


def _evaluate(db: Session, ctx: TenantContext, rows: list[tuple[str, str | None, str | None]], reason: str) -> int:
    """Apply the first matching rule to each (device_id, user_id, blueprint_id); returns how many moved."""
    from bramley.devices import service as devices
    from bramley.users import groups

    rows = [r for r in rows if r[1]]
    if not rows:
        return 0
    rules = list_rules(db, ctx)
    if not rules:
        return 0
    memberships: dict[str, set[str]] = {}
    for uid, pairs in groups.groups_of_users(db, ctx, sorted({r[1] for r in rows})).items():
        memberships[uid] = {gid for gid, _ in pairs}
    sources = _sources(db, ctx, [r[0] for r in rows])
    moved = 0
    for device_id, user_id, blueprint_id in rows:
        rule = next((r for r in rules if r.group_id in memberships.get(user_id, ())), None)
        if rule is None or blueprint_id == rule.blueprint_id:
            continue
        source = sources.get(device_id)
        if source is not None and source.source == MANUAL and not rule.override_manual:
            continue  # an admin chose this blueprint by hand; the rule does not say to override that
        if blueprints.get(db, ctx, rule.blueprint_id) is None:
            continue  # the rule's blueprint was deleted: nothing to move to
        devices.assign_blueprint(db, ctx, device_id, rule.blueprint_id, metadata={
            "assignment_rule_id": rule.id, "assignment_rule_position": rule.position, "group_id": rule.group_id,
            "reason": reason, "previous_blueprint_id": blueprint_id})
        _record_source(db, ctx, source, device_id, RULE, rule.id)
        moved += 1
    db.flush()
    return moved


def device_updated(db: Session, ctx: TenantContext, device_id: str, *, blueprint_by_hand: bool,
                   user_changed: bool) -> None:
    """Called by the devices service after the Update Device call."""
    from bramley.devices import service as devices

    if blueprint_by_hand:
        _record_source(db, ctx, _sources(db, ctx, [device_id]).get(device_id), device_id, MANUAL, None)
        db.flush()
    if user_changed:
        _evaluate(db, ctx, devices.assignment_view(db, ctx, device_ids=[device_id]), "device_user_changed")


def device_enrolled(db: Session, ctx: TenantContext, device_id: str) -> None:
    from bramley.devices import service as devices

    _evaluate(db, ctx, devices.assignment_view(db, ctx, device_ids=[device_id]), "enrollment")


def memberships_changed(db: Session, ctx: TenantContext, user_ids: list[str]) -> None:
    """Called by the groups service when these users joined or left a group."""
    from bramley.devices import service as devices

    if not list_rules(db, ctx):
        return
    for start in range(0, len(user_ids), 500):
        _evaluate(db, ctx, devices.assignment_view(db, ctx, user_ids=user_ids[start:start + 500]),
                  "group_membership_changed")


def apply_all(db: Session, ctx: TenantContext) -> int:
    """Re-evaluate every device that has a user (after editing rules); returns how many moved."""
    from bramley.devices import service as devices

    return _evaluate(db, ctx, devices.assignment_view(db, ctx), "rules_applied")


def forget_device(db: Session, ctx: TenantContext, device_id: str) -> None:
    db.execute(sql_delete(BlueprintSource).where(BlueprintSource.tenant_id == ctx.tenant_id,
                                                 BlueprintSource.device_id == device_id))


def source_of(db: Session, ctx: TenantContext, device_id: str) -> dict | None:
    row = _sources(db, ctx, [device_id]).get(device_id)
    return None if row is None else {"source": row.source, "rule_id": row.rule_id}
