"""SCIM operations on Users and Groups: parse with scim2-models, call the users/groups services, shape the answer.

Each function runs inside the request's one transaction and returns an `Outcome`; any ScimError rolls the whole
request back (a PATCH applies all its operations or none).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scim2_models import Context, SCIMException, ScimFilter
from pydantic import ValidationError
from sqlalchemy import false
from sqlalchemy.orm import Session

from bramley.errors import Conflict
from bramley.scim import resources, schema
from bramley.scim.errors import ScimError, bad, not_found
from bramley.tenancy.context import TenantContext
from bramley.users import filters, groups
from bramley.users import service as users

DEFAULT_COUNT = 100


@dataclass
class Query:
    """A list or search request's parameters, already checked."""

    filter: str | None = None
    start_index: int = 1
    count: int = DEFAULT_COUNT
    attributes: str | list | None = None
    excluded: str | list | None = None


@dataclass
class Outcome:
    status: int
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    resource_type: str | None = None
    resource_id: str | None = None
    summary: dict = field(default_factory=dict)


@dataclass
class Call:
    """Who is calling and how our URLs look to them."""

    ctx: TenantContext
    integration_tag: dict
    base: str
    if_match: str | None = None
    if_none_match: str | None = None


def _etag_matches(header: str | None, version: int) -> bool:
    if header is None:
        return True
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/").strip('"') == str(version) for t in tags)


def _check_if_match(call: Call, row) -> None:
    if call.if_match is not None and not _etag_matches(call.if_match, row.version or 1):
        raise ScimError(412, f"the resource is at version {resources.version_tag(row.version or 1)}")


def _parse_filter(text: str | None):
    if text is None or not text.strip():
        return None
    if "\x00" in text:
        raise ScimError(400, "filter contains a NUL character", "invalidFilter")
    try:
        return ScimFilter(text).ast
    except (SCIMException, ValueError) as exc:
        raise ScimError(400, f"invalid filter: {exc}", "invalidFilter") from None


def _where(build, tenant_id: str, node):
    try:
        return build(tenant_id, node)
    except filters.FilterError as exc:
        raise ScimError(400, str(exc), "invalidFilter") from None


def _list(total: int, start: int, docs: list[dict]) -> dict:
    return {"schemas": [schema.LIST_SCHEMA], "totalResults": total, "startIndex": start, "itemsPerPage": len(docs),
            "Resources": docs}


def _conflict(exc: Conflict) -> ScimError:
    return ScimError(409, exc.message, "uniqueness")


# --- users ----------------------------------------------------------------------------------------------------

def _user_docs(db: Session, call: Call, rows, q: Query, *, fresh: users.Profile | None = None) -> list[dict]:
    """Rows as SCIM JSON. `fresh`: the profile a user was just created from (its emails are known and it is in
    no group yet, so no query is needed)."""
    attributes = resources.parse_attribute_list(q.attributes, resources.CORE_USER_LOWER)
    excluded = resources.parse_attribute_list(q.excluded, resources.CORE_USER_LOWER)
    ids = [u.id for u in rows]
    if fresh is not None:
        emails, memberships = {ids[0]: fresh.emails}, {}
    else:
        emails = users.emails_of(db, call.ctx, ids)
        need = resources.wants(attributes, "groups") if attributes else not resources.wants(excluded, "groups")
        memberships = groups.groups_of_users(db, call.ctx, ids) if need else {}
    return [resources.project(resources.user_doc(u, emails[u.id], memberships.get(u.id), call.base),
                              attributes, excluded) for u in rows]


def _user_outcome(db: Session, call: Call, user, status: int = 200, q: Query | None = None,
                  fresh: users.Profile | None = None, **extra) -> Outcome:
    doc = _user_docs(db, call, [user], q or Query(), fresh=fresh)[0]
    headers = {"ETag": resources.version_tag(user.version or 1)}
    if status == 201:
        headers["Location"] = f"{call.base}/Users/{user.id}"
    return Outcome(status, doc, headers, "User", user.id, **extra)


def list_users(db: Session, call: Call, q: Query) -> Outcome:
    where = _where(filters.user_where, call.ctx.tenant_id, _parse_filter(q.filter))
    total, rows = users.find(db, call.ctx, where, offset=q.start_index - 1, limit=q.count)
    return Outcome(200, _list(total, q.start_index, _user_docs(db, call, rows, q)), summary={"results": total})


def _user(db: Session, call: Call, user_id: str):
    user = users.get(db, call.ctx, user_id)
    if user is None:
        raise not_found(f"User {user_id} not found")
    return user


def get_user(db: Session, call: Call, user_id: str, q: Query) -> Outcome:
    user = _user(db, call, user_id)
    if call.if_none_match is not None and _etag_matches(call.if_none_match, user.version or 1):
        return Outcome(304, None, {"ETag": resources.version_tag(user.version or 1)}, "User", user.id)
    return _user_outcome(db, call, user, q=q)


def create_user(db: Session, call: Call, body: dict, q: Query) -> Outcome:
    profile = resources.user_profile(body, Context.RESOURCE_CREATION_REQUEST)
    try:
        user = users.create_directory_user(db, call.ctx, profile, integration=call.integration_tag)
    except Conflict as exc:
        raise _conflict(exc) from None
    return _user_outcome(db, call, user, 201, q, fresh=profile, summary=_profile_summary(profile, ["created"]))


def _profile_summary(profile: users.Profile, changed: list[str]) -> dict:
    """What changed, with values only for attributes that explain a user's state (never secrets)."""
    out: dict = {"changed": changed, "userName": profile.user_name}
    if profile.active is not None and ("active" in changed or "created" in changed):
        out["active"] = profile.active
    if profile.external_id is not None:
        out["externalId"] = profile.external_id
    return out


def replace_user(db: Session, call: Call, user_id: str, body: dict, q: Query) -> Outcome:
    user = _user(db, call, user_id)
    _check_if_match(call, user)
    # Omitted `active` keeps the status: deactivation must be said, never inferred from a missing attribute.
    profile = resources.user_profile(body, Context.RESOURCE_REPLACEMENT_REQUEST)
    try:
        changed = users.apply_profile(db, call.ctx, user, profile,
                                      keep_active=not any(k.lower() == "active" for k in body))
    except Conflict as exc:
        raise _conflict(exc) from None
    return _user_outcome(db, call, user, 200, q, summary=_profile_summary(profile, changed))


def patch_user(db: Session, call: Call, user_id: str, body: dict, q: Query) -> Outcome:
    user = _user(db, call, user_id)
    _check_if_match(call, user)
    patch = resources.parse_patch(body, schema.User)
    doc = resources.user_doc(user, users.emails_of(db, call.ctx, [user.id])[user.id], None, call.base)
    resource = resources.user_model(doc)
    _apply_patch(patch, resource)
    if not resource.user_name:
        raise ScimError(400, "userName is required and cannot be removed", "mutability")
    profile = resources.profile_from(resource)
    try:
        changed = users.apply_profile(db, call.ctx, user, profile)
    except Conflict as exc:
        raise _conflict(exc) from None
    return _user_outcome(db, call, user, 200, q, summary=_profile_summary(profile, changed))


def _apply_patch(patch, resource) -> None:
    if patch is None:
        return
    try:
        with resources.POLICY:
            patch.patch(resource)
    except (SCIMException, ValidationError) as exc:
        raise resources.scim_error(exc) from None
    except (ValueError, TypeError) as exc:
        raise bad(str(exc)) from None


def delete_user(db: Session, call: Call, user_id: str) -> Outcome:
    user = _user(db, call, user_id)
    _check_if_match(call, user)
    summary = {"changed": ["deleted"], "userName": user.user_name}
    users.delete_directory_user(db, call.ctx, user)
    return Outcome(204, None, {}, "User", user_id, summary)


# --- groups ---------------------------------------------------------------------------------------------------

def _group_docs(db: Session, call: Call, rows, q: Query) -> list[dict]:
    attributes = resources.parse_attribute_list(q.attributes, resources.CORE_GROUP_LOWER)
    excluded = resources.parse_attribute_list(q.excluded, resources.CORE_GROUP_LOWER)
    # Entra reads groups with excludedAttributes=members: honouring it also saves the member query.
    need = resources.wants(attributes, "members") if attributes else not resources.wants(excluded, "members")
    members = groups.members_of(db, call.ctx, [g.id for g in rows]) if need else {}
    return [resources.project(resources.group_doc(g, members.get(g.id), call.base), attributes, excluded)
            for g in rows]


def _group_outcome(db: Session, call: Call, group, status: int = 200, q: Query | None = None, **extra) -> Outcome:
    doc = _group_docs(db, call, [group], q or Query())[0]
    headers = {"ETag": resources.version_tag(group.version or 1)}
    if status == 201:
        headers["Location"] = f"{call.base}/Groups/{group.id}"
    return Outcome(status, doc, headers, "Group", group.id, **extra)


def list_groups(db: Session, call: Call, q: Query) -> Outcome:
    where = _where(filters.group_where, call.ctx.tenant_id, _parse_filter(q.filter))
    total, rows = groups.find(db, call.ctx, where, offset=q.start_index - 1, limit=q.count)
    return Outcome(200, _list(total, q.start_index, _group_docs(db, call, rows, q)), summary={"results": total})


def _group(db: Session, call: Call, group_id: str):
    group = groups.get(db, call.ctx, group_id)
    if group is None:
        raise not_found(f"Group {group_id} not found")
    return group


def get_group(db: Session, call: Call, group_id: str, q: Query) -> Outcome:
    group = _group(db, call, group_id)
    if call.if_none_match is not None and _etag_matches(call.if_none_match, group.version or 1):
        return Outcome(304, None, {"ETag": resources.version_tag(group.version or 1)}, "Group", group.id)
    return _group_outcome(db, call, group, q=q)


def _group_fields(model: schema.Group) -> tuple[str, str | None]:
    name = resources._text(model.display_name, "displayName")
    if not name or not name.strip():
        raise ScimError(400, "displayName is required", "invalidValue")
    return name, resources._text(model.external_id, "externalId")


def create_group(db: Session, call: Call, body: dict, q: Query) -> Outcome:
    model = resources.parse_group(body, Context.RESOURCE_CREATION_REQUEST)
    name, external_id = _group_fields(model)
    members = resources.members_from(model)
    try:
        group = groups.create(db, call.ctx, display_name=name, external_id=external_id, members=members,
                              integration_id=call.integration_tag.get("uuid"))
    except Conflict as exc:
        raise _conflict(exc) from None
    return _group_outcome(db, call, group, 201, q, summary={"changed": ["created"], "displayName": name,
                                                           "members_added": [m.user_id for m in members]})


def _group_update(db: Session, call: Call, group, name: str, external_id, members) -> dict:
    before = set()
    if members is not None:
        before = {m.user_id for m in groups.members_of(db, call.ctx, [group.id])[group.id]}
    try:
        changed = groups.update(db, call.ctx, group, display_name=name, external_id=external_id, members=members)
    except Conflict as exc:
        raise _conflict(exc) from None
    summary: dict = {"changed": changed, "displayName": group.display_name}
    if members is not None and "members" in changed:
        after = {m.user_id for m in groups.members_of(db, call.ctx, [group.id])[group.id]}
        summary["members_added"] = sorted(after - before)
        summary["members_removed"] = sorted(before - after)
    return summary


def replace_group(db: Session, call: Call, group_id: str, body: dict, q: Query) -> Outcome:
    group = _group(db, call, group_id)
    _check_if_match(call, group)
    model = resources.parse_group(body, Context.RESOURCE_REPLACEMENT_REQUEST)
    name, external_id = _group_fields(model)
    summary = _group_update(db, call, group, name, external_id, resources.members_from(model))
    return _group_outcome(db, call, group, 200, q, summary=summary)


def patch_group(db: Session, call: Call, group_id: str, body: dict, q: Query) -> Outcome:
    group = _group(db, call, group_id)
    _check_if_match(call, group)
    patch = resources.parse_patch(body, schema.Group)
    members = groups.members_of(db, call.ctx, [group.id])[group.id]
    model = resources.group_model(resources.group_doc(group, members, call.base))
    _apply_patch(patch, model)
    if not model.display_name:
        raise ScimError(400, "displayName is required and cannot be removed", "mutability")
    name, external_id = _group_fields(model)
    summary = _group_update(db, call, group, name, external_id, resources.members_from(model))
    return _group_outcome(db, call, group, 200, q, summary=summary)


def delete_group(db: Session, call: Call, group_id: str) -> Outcome:
    group = _group(db, call, group_id)
    _check_if_match(call, group)
    summary = {"changed": ["deleted"], "displayName": group.display_name}
    groups.delete(db, call.ctx, group)
    return Outcome(204, None, {}, "Group", group_id, summary)


# --- search ---------------------------------------------------------------------------------------------------

def search(db: Session, call: Call, q: Query, kinds: tuple[str, ...]) -> Outcome:
    """POST /.search over one resource type or, at the root, Users then Groups as one ordered list."""
    node = _parse_filter(q.filter)
    wheres = {}
    for kind, build in (("User", filters.user_where), ("Group", filters.group_where)):
        if kind in kinds:
            try:
                wheres[kind] = build(call.ctx.tenant_id, node)
            except filters.FilterError as exc:
                if len(kinds) == 1:
                    raise ScimError(400, str(exc), "invalidFilter") from None
                wheres[kind] = false()  # an attribute only the other type has: no match here (RFC 7644 §3.4.2.1)
    if len(kinds) > 1 and node is not None and all(w is false() for w in wheres.values()):
        raise ScimError(400, "no resource type has the attributes this filter names", "invalidFilter")
    offset, room, total, docs = q.start_index - 1, q.count, 0, []
    if "User" in wheres:
        user_total, rows = users.find(db, call.ctx, wheres["User"], offset=offset, limit=room)
        docs += _user_docs(db, call, rows, q)
        total += user_total
        offset, room = max(0, offset - user_total), room - len(rows)
    if "Group" in wheres:
        group_total, rows = groups.find(db, call.ctx, wheres["Group"], offset=offset, limit=room)
        docs += _group_docs(db, call, rows, q)
        total += group_total
    return Outcome(200, _list(total, q.start_index, docs), summary={"results": total})


def search_body(body: dict) -> Query:
    listed = body.get("schemas")
    if not isinstance(listed, list) or schema.SEARCH_SCHEMA.lower() not in {str(s).lower() for s in listed}:
        raise bad(f"schemas must include {schema.SEARCH_SCHEMA}", "invalidSyntax")
    get = {k.lower(): v for k, v in body.items()}
    flt = get.get("filter")
    if flt is not None and not isinstance(flt, str):
        raise ScimError(400, "filter must be a string", "invalidFilter")
    return page_query(flt, get.get("startindex"), get.get("count"), get.get("attributes"),
                      get.get("excludedattributes"))


def page_query(flt, start, count, attributes, excluded) -> Query:
    def number(value, name: str):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise bad(f"{name} must be an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad(f"{name} must be an integer") from None

    start_index = number(start, "startIndex")
    size = number(count, "count")
    for value, name in ((attributes, "attributes"), (excluded, "excludedAttributes")):
        if value is not None and not isinstance(value, (str, list)):
            raise bad(f"{name} must be a list of attribute paths")
    return Query(
        filter=flt,
        start_index=max(1, start_index or 1) if start_index is None or start_index < 2**31 else 2**31 - 1,
        count=DEFAULT_COUNT if size is None else max(0, min(size, schema.MAX_RESULTS)),
        attributes=attributes or None,
        excluded=excluded or None,
    )
