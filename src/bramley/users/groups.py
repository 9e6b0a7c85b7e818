"""Directory groups (pushed by an IdP) and their members: the groups blueprint assignment rules match on.

Deleting a group deletes its membership rows only, never users. Every membership change tells the blueprint
rules which users it touched, in the same transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete as sql_delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.db.base import is_uuid, tenant_row, utcnow
from bramley.errors import Conflict, NotFound
from bramley.tenancy.context import TenantContext
from bramley.users.models import DirectoryGroup, GroupMember, User
from bramley.users.service import user_name_key

log = logging.getLogger("bramley.users.groups")


@dataclass(frozen=True)
class Member:
    user_id: str
    display: str | None = None
    type: str | None = None


def _taken(name: str) -> Conflict:
    return Conflict("displayName", f"a group named {name} already exists")


def _known_users(db: Session, ctx: TenantContext, members: list[Member]) -> list[Member]:
    """Members that are users of this tenant, once each. Unknown ids are dropped (with a warning) rather than
    failing a whole push: IdPs only push members that are also assigned users."""
    ids = list(dict.fromkeys(m.user_id for m in members if is_uuid(m.user_id)))
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        known.update(db.scalars(select(User.id).where(User.tenant_id == ctx.tenant_id,
                                                      User.id.in_(ids[start:start + 500]))))
    out: dict[str, Member] = {}
    for m in members:
        if m.user_id in known:
            out.setdefault(m.user_id, m)
        else:
            log.warning("group member %s is not a user of this tenant; ignored", m.user_id)
    return list(out.values())


def _memberships_changed(db: Session, ctx: TenantContext, user_ids: set[str]) -> None:
    if user_ids:
        from bramley.blueprints import rules

        rules.memberships_changed(db, ctx, sorted(user_ids))


def create(db: Session, ctx: TenantContext, *, display_name: str, external_id: str | None = None,
           members: list[Member] = (), integration_id: str | None = None) -> DirectoryGroup:
    key = user_name_key(display_name)
    if db.scalar(select(DirectoryGroup.id).where(DirectoryGroup.tenant_id == ctx.tenant_id,
                                                 DirectoryGroup.display_name_key == key)):
        raise _taken(display_name)
    now = utcnow()
    group = DirectoryGroup(tenant_id=ctx.tenant_id, display_name=display_name, display_name_key=key,
                           external_id=external_id, integration_id=integration_id, version=1, created_at=now,
                           updated_at=now)
    try:
        with db.begin_nested():
            db.add(group)
            db.flush()
    except IntegrityError:
        raise _taken(display_name) from None
    kept = _known_users(db, ctx, list(members))
    db.add_all(GroupMember(tenant_id=ctx.tenant_id, group_id=group.id, user_id=m.user_id, display=m.display,
                           type=m.type) for m in kept)
    db.flush()
    audit.record(db, ctx, action="create", target_type="user_group", target_id=group.id,
                 new_state={"display_name": display_name, "members": len(kept)})
    _memberships_changed(db, ctx, {m.user_id for m in kept})
    return group


def get(db: Session, ctx: TenantContext, group_id: str) -> DirectoryGroup | None:
    return tenant_row(db, DirectoryGroup, ctx.tenant_id, group_id)


def get_or_raise(db: Session, ctx: TenantContext, group_id: str) -> DirectoryGroup:
    group = get(db, ctx, group_id)
    if group is None:
        raise NotFound("group")
    return group


def get_many(db: Session, ctx: TenantContext, ids: list[str]) -> dict[str, DirectoryGroup]:
    ids = [i for i in ids if is_uuid(i)]
    if not ids:
        return {}
    return {g.id: g for g in db.scalars(select(DirectoryGroup).where(DirectoryGroup.tenant_id == ctx.tenant_id,
                                                                    DirectoryGroup.id.in_(ids)))}


def find(db: Session, ctx: TenantContext, where, *, offset: int, limit: int) -> tuple[int, list[DirectoryGroup]]:
    query = select(DirectoryGroup).where(DirectoryGroup.tenant_id == ctx.tenant_id, where)
    total = db.scalar(select(func.count()).select_from(query.with_only_columns(DirectoryGroup.id).subquery()))
    if limit <= 0 or offset >= total:
        return total, []
    rows = list(db.scalars(query.order_by(DirectoryGroup.created_at, DirectoryGroup.id).offset(offset).limit(limit)))
    return total, rows


def members_of(db: Session, ctx: TenantContext, group_ids: list[str]) -> dict[str, list[Member]]:
    out: dict[str, list[Member]] = {gid: [] for gid in group_ids}
    for start in range(0, len(group_ids), 500):
        rows = db.execute(select(GroupMember.group_id, GroupMember.user_id, GroupMember.display, GroupMember.type)
                          .where(GroupMember.tenant_id == ctx.tenant_id,
                                 GroupMember.group_id.in_(group_ids[start:start + 500]))
                          .order_by(GroupMember.group_id, GroupMember.user_id))
        for gid, uid, display, kind in rows:
            out[gid].append(Member(uid, display, kind))
    return out


def groups_of_users(db: Session, ctx: TenantContext, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{user_id: [(group_id, display_name), ...]}: a user's read-only `groups`."""
    out: dict[str, list[tuple[str, str]]] = {uid: [] for uid in user_ids}
    for start in range(0, len(user_ids), 500):
        rows = db.execute(select(GroupMember.user_id, DirectoryGroup.id, DirectoryGroup.display_name)
                          .join(DirectoryGroup, DirectoryGroup.id == GroupMember.group_id)
                          .where(GroupMember.tenant_id == ctx.tenant_id,
                                 GroupMember.user_id.in_(user_ids[start:start + 500]))
                          .order_by(GroupMember.user_id, DirectoryGroup.display_name_key))
        for uid, gid, name in rows:
            out[uid].append((gid, name))
    return out


def group_ids_of_user(db: Session, ctx: TenantContext, user_id: str) -> set[str]:
    return set(db.scalars(select(GroupMember.group_id).where(GroupMember.tenant_id == ctx.tenant_id,
                                                             GroupMember.user_id == user_id)))


def update(db: Session, ctx: TenantContext, group: DirectoryGroup, *, display_name: str,
           external_id: str | None, members: list[Member] | None) -> list[str]:
    """Set the name, externalId and (unless None) the exact member set; returns what changed."""
    changed: list[str] = []
    if display_name != group.display_name:
        key = user_name_key(display_name)
        other = db.scalar(select(DirectoryGroup.id).where(DirectoryGroup.tenant_id == ctx.tenant_id,
                                                          DirectoryGroup.display_name_key == key))
        if other is not None and other != group.id:
            raise _taken(display_name)
        group.display_name, group.display_name_key = display_name, key
        changed.append("displayName")
    if external_id != group.external_id:
        group.external_id = external_id
        changed.append("externalId")
    touched: set[str] = set()
    if members is not None:
        current = {m.user_id: m for m in members_of(db, ctx, [group.id])[group.id]}
        wanted = {m.user_id: m for m in _known_users(db, ctx, members)}
        gone = [uid for uid in current if uid not in wanted]
        added = [m for uid, m in wanted.items() if uid not in current]
        relabelled = [m for uid, m in wanted.items() if uid in current and current[uid] != m]
        if gone or relabelled:
            db.execute(sql_delete(GroupMember).where(GroupMember.tenant_id == ctx.tenant_id,
                                                     GroupMember.group_id == group.id,
                                                     GroupMember.user_id.in_(gone + [m.user_id for m in relabelled])))
        db.add_all(GroupMember(tenant_id=ctx.tenant_id, group_id=group.id, user_id=m.user_id, display=m.display,
                               type=m.type) for m in added + relabelled)
        if gone or added or relabelled:
            changed.append("members")
        touched = set(gone) | {m.user_id for m in added}
    if not changed:
        return []
    group.version = (group.version or 1) + 1
    group.updated_at = utcnow()
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise _taken(display_name) from None
    state: dict = {"changed": changed, "display_name": group.display_name}
    if "members" in changed:
        state["members_added"] = len(touched - set(gone)) if members is not None else 0
        state["members_removed"] = len(gone) if members is not None else 0
    audit.record(db, ctx, action="update", target_type="user_group", target_id=group.id, new_state=state)
    _memberships_changed(db, ctx, touched)
    return changed


def delete(db: Session, ctx: TenantContext, group: DirectoryGroup) -> None:
    """Remove the group and its membership rows; its users stay (Okta's "Delete the group in the target app")."""
    former = set(db.scalars(select(GroupMember.user_id).where(GroupMember.tenant_id == ctx.tenant_id,
                                                              GroupMember.group_id == group.id)))
    db.execute(sql_delete(GroupMember).where(GroupMember.tenant_id == ctx.tenant_id, GroupMember.group_id == group.id))
    db.delete(group)
    db.flush()
    audit.record(db, ctx, action="delete", target_type="user_group", target_id=group.id,
                 new_state={"display_name": group.display_name, "members": len(former)})
    _memberships_changed(db, ctx, former)


def forget_user(db: Session, ctx: TenantContext, user_id: str) -> None:
    """A deleted user leaves every group (their groups' versions move on)."""
    group_ids = list(group_ids_of_user(db, ctx, user_id))
    if not group_ids:
        return
    db.execute(sql_delete(GroupMember).where(GroupMember.tenant_id == ctx.tenant_id, GroupMember.user_id == user_id))
    now = utcnow()
    for group in get_many(db, ctx, group_ids).values():
        group.version = (group.version or 1) + 1
        group.updated_at = now
