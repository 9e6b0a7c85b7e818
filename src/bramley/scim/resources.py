"""Rows as SCIM JSON (and back): the one mapper GET, list, PUT and PATCH share.

Rendering builds plain dicts straight from rows (a list page must not validate a model per user). Parsing goes
through the scim2-models resources of `schema`, leniently: Okta and Entra quirks are normalised first. A User
body of plain values (the provisioning hot path) is read without them, to the same result (`user_profile`).
"""
from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError
from scim2_models import Context, Error, PatchOp, SCIMException, ScimPolicy

from bramley.scim import schema
from bramley.scim.errors import ScimError, bad
from bramley.users.groups import Member
from bramley.users.service import Email, Profile

ENT = schema.ENTERPRISE_SCHEMA
ENT_LOWER = ENT.lower()
CORE_USER_LOWER = schema.USER_SCHEMA.lower()
CORE_GROUP_LOWER = schema.GROUP_SCHEMA.lower()
# Lenient in: Entra's legacy member removal by value, its "first work email" replace, unknown attributes.
POLICY = ScimPolicy(unknown=ScimPolicy.Unknown.ignore, remove_value_as_filter=ScimPolicy.RemoveValue.apply,
                    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create)
READ_ONLY_INPUT = {"id", "meta", "groups", "password"}
MAX_TEXT = 255


def scim_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def _meta(kind: str, row, location: str) -> dict:
    return {"resourceType": kind, "created": scim_time(row.created_at), "lastModified": scim_time(row.updated_at),
            "location": location, "version": version_tag(row.version or 1)}


def _compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def user_doc(user, emails, groups: list[tuple[str, str]] | None, base: str) -> dict:
    doc: dict = {"schemas": [schema.USER_SCHEMA], "id": user.id}
    if user.external_id is not None:
        doc["externalId"] = user.external_id
    doc["userName"] = user.user_name or user.email
    name = _compact({"formatted": user.formatted_name, "familyName": user.family_name,
                     "givenName": user.given_name, "middleName": user.middle_name})
    if name:
        doc["name"] = name
    if user.display_name is not None:
        doc["displayName"] = user.display_name
    if user.job_title is not None:
        doc["title"] = user.job_title
    if user.scim_active is not None:
        doc["active"] = user.scim_active
    elif user.integration_id is None:  # not provisioned by a directory (the seed): its status as Iru shows it
        doc["active"] = bool(user.active and not user.archived)
    if emails:
        doc["emails"] = [_compact({"value": e.value, "type": e.type, "primary": e.primary}) for e in emails]
    if groups:
        doc["groups"] = [{"value": gid, "$ref": f"{base}/Groups/{gid}", "display": name} for gid, name in groups]
    ent = _compact({"employeeNumber": user.employee_number, "department": user.department,
                    "manager": {"value": user.manager_id} if user.manager_id is not None else None})
    if ent:
        doc["schemas"].append(ENT)
        doc[ENT] = ent
    doc["meta"] = _meta("User", user, f"{base}/Users/{user.id}")
    return doc


def group_doc(group, members: list[Member] | None, base: str) -> dict:
    doc: dict = {"schemas": [schema.GROUP_SCHEMA], "id": group.id}
    if group.external_id is not None:
        doc["externalId"] = group.external_id
    doc["displayName"] = group.display_name
    if members:
        doc["members"] = [_compact({"value": m.user_id, "$ref": f"{base}/Users/{m.user_id}", "type": m.type,
                                    "display": m.display}) for m in members]
    doc["meta"] = _meta("Group", group, f"{base}/Groups/{group.id}")
    return doc


# --- attributes / excludedAttributes ----------------------------------------------------------------------------

def parse_attribute_list(raw: str | list | None, core: str) -> list[tuple[str, str | None]]:
    """'userName,name.givenName,urn:…:enterprise:2.0:User:department' -> [(top, sub)], lower-cased."""
    if not raw:
        return []
    items = raw if isinstance(raw, list) else raw.split(",")
    out = []
    for item in items:
        path = str(item).strip().lower()
        if not path:
            continue
        if path.startswith("urn:"):
            if path == ENT_LOWER:
                out.append((ENT_LOWER, None))
                continue
            if path.startswith(ENT_LOWER + ":"):
                out.append((ENT_LOWER, path[len(ENT_LOWER) + 1:].split(".")[0]))
                continue
            if path.startswith(core + ":"):
                path = path[len(core) + 1:]
            else:
                continue  # an attribute of a schema we do not serve: nothing to return
        top, _, sub = path.partition(".")
        out.append((top, sub or None))
    return out


def wants(paths: list[tuple[str, str | None]], key: str) -> bool:
    return any(top == key.lower() for top, _ in paths)


ALWAYS = {"id", "schemas"}


def project(doc: dict, attributes: list[tuple[str, str | None]], excluded: list[tuple[str, str | None]]) -> dict:
    """Apply `attributes` (keep only those) or else `excludedAttributes` (drop those); id and schemas stay."""
    keys = {k.lower(): k for k in doc}
    if attributes:
        wanted: dict[str, set | None] = {}
        for top, sub in attributes:
            if top in wanted and wanted[top] is None:
                continue
            wanted[top] = None if sub is None else (wanted.get(top) or set()) | {sub}
        out = {}
        for k, v in doc.items():
            lk = k.lower()
            if lk in ALWAYS:
                out[k] = v
            elif lk in wanted:
                out[k] = v if wanted[lk] is None else _pick(v, wanted[lk])
        return out
    if excluded:
        out = dict(doc)
        for top, sub in excluded:
            key = keys.get(top)
            if key is None or top in ALWAYS:
                continue
            if sub is None:
                out.pop(key, None)
            else:
                out[key] = _drop(out[key], sub)
        return out
    return doc


def _pick(value, subs: set[str]):
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in subs}
    if isinstance(value, list):
        return [_pick(v, subs) for v in value]
    return value


def _drop(value, sub: str):
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() != sub}
    if isinstance(value, list):
        return [_drop(v, sub) for v in value]
    return value


# --- input ------------------------------------------------------------------------------------------------------

def _bool(value, where: str):
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _check_schemas(body: dict, core: str) -> None:
    listed = body.get("schemas")
    if listed is None:
        raise bad("schemas is required", "invalidSyntax")
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        raise bad("schemas must be a list of schema URNs", "invalidSyntax")
    if core.lower() not in {s.lower() for s in listed}:
        raise bad(f"schemas must include {core}", "invalidSyntax")


def normalize_resource(body: dict, core: str) -> dict:
    """A POST/PUT body as scim2-models should see it: read-only input ignored, string booleans and Entra's string
    manager fixed, unknown schema URNs (Microsoft's ADSCIM group URN among them) dropped."""
    _check_schemas(body, core)
    out: dict = {}
    for key, value in body.items():
        lower = key.lower()
        if lower in READ_ONLY_INPUT or lower == "schemas":
            continue
        if lower.startswith("urn:"):
            if lower == ENT_LOWER and core == schema.USER_SCHEMA:
                out[ENT] = _normalize_enterprise(value)
            continue  # another schema's attributes: not ours to store
        if lower == "active":
            value = _bool(value, "active")
        out[key] = value
    out["schemas"] = [core] + ([ENT] if ENT in out else [])
    return out


def _normalize_enterprise(value):
    if not isinstance(value, dict):
        raise bad(f"{ENT} must be an object")
    fixed = dict(value)
    for key in list(fixed):
        if key.lower() == "manager" and isinstance(fixed[key], str):
            fixed[key] = {"value": fixed[key]}
    return fixed


def normalize_patch(body: dict) -> dict:
    """Entra's PATCH dialect as RFC 7644: lower-case ops, "True"/"False" booleans, a string manager."""
    listed = body.get("schemas")
    if not isinstance(listed, list) or schema.PATCH_SCHEMA.lower() not in {str(s).lower() for s in listed}:
        raise bad(f"schemas must include {schema.PATCH_SCHEMA}", "invalidSyntax")
    ops = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(ops, list):
        raise bad("Operations must be a list", "invalidSyntax")
    fixed = []
    for op in ops:
        if not isinstance(op, dict):
            raise bad("each operation must be an object", "invalidSyntax")
        op = {k.lower() if k.lower() in ("op", "path", "value") else k: v for k, v in op.items()}
        if isinstance(op.get("op"), str):
            op["op"] = op["op"].lower()
        path = op.get("path")
        lowered = path.lower() if isinstance(path, str) else None
        if lowered == "active":
            op["value"] = _bool(op.get("value"), "active")
        elif lowered in (f"{ENT_LOWER}:manager",) and isinstance(op.get("value"), str):
            op["value"] = {"value": op["value"]}
        elif path is None and isinstance(op.get("value"), dict):
            value = {}
            for k, v in op["value"].items():
                kl = k.lower()
                if kl == "active":
                    v = _bool(v, "active")
                elif kl == f"{ENT_LOWER}:manager" and isinstance(v, str):
                    v = {"value": v}
                elif kl == ENT_LOWER and isinstance(v, dict):
                    v = _normalize_enterprise(v)
                value[k] = v
            op["value"] = value
        fixed.append(op)
    return {"schemas": [schema.PATCH_SCHEMA], "Operations": fixed}


def scim_error(exc: Exception) -> ScimError:
    """A scim2-models or pydantic failure as our error (wrong types are invalidValue)."""
    if isinstance(exc, SCIMException):
        return ScimError(exc.status, exc.detail, exc.scim_type or None)
    if isinstance(exc, ValidationError):
        errors = Error.from_validation_errors(exc)
        first = errors[0] if errors else None
        detail = "; ".join(str(e.detail) for e in errors if e.detail) or "invalid value"
        return ScimError(int(first.status or 400) if first else 400, detail,
                         (first.scim_type if first and first.scim_type else "invalidValue"))
    return bad(str(exc))


def parse_user(body: dict, context: Context) -> schema.User:
    return _validate_user(normalize_resource(body, schema.USER_SCHEMA), context)


def _validate_user(normalized: dict, context: Context) -> schema.User:
    try:
        with POLICY:
            return schema.User.model_validate(normalized, scim_ctx=context)
    except (SCIMException, ValidationError) as exc:
        raise scim_error(exc) from None


def user_profile(body: dict, context: Context) -> Profile:
    """The profile a POST or PUT body describes.

    A body of plain values, as Okta and Entra send them, is read directly: scim2-models' validation cost more
    than the rest of a provisioning request's own work. Anything else (other spellings, coercible types, errors)
    goes through scim2-models; both give the same profile (tests/scim/test_resources.py compares them)."""
    normalized = normalize_resource(body, schema.USER_SCHEMA)
    plain = _plain_user(normalized)
    if plain is None:
        return profile_from(_validate_user(normalized, context))
    return _profile(**plain)


# What `_plain_user` reads itself: each attribute as the schema spells it, with the JSON type it holds.
_PLAIN_USER = {"schemas": list, "userName": str, "externalId": str, "displayName": str, "title": str,
               "active": bool, "name": dict, "emails": list, ENT: dict}
_PLAIN_NAME = {"formatted": str, "familyName": str, "givenName": str, "middleName": str}
_PLAIN_EMAIL = {"value": str, "type": str, "primary": bool}
_PLAIN_ENTERPRISE = {"employeeNumber": str, "department": str, "manager": dict}
_PLAIN_MANAGER = {"value": str}


def _plain_user(doc: dict) -> dict | None:
    """`_profile`'s arguments read straight from a normalized body, or None when scim2-models must decide: an
    attribute spelled otherwise or holding another type, a blank userName, a second primary email."""
    user = _plain_object(doc, _PLAIN_USER)
    if user is None or not user.get("userName") or not user["userName"].strip():
        return None
    name = _plain_object(user.get("name") or {}, _PLAIN_NAME)
    emails = [_plain_object(e, _PLAIN_EMAIL) for e in user.get("emails") or []]
    ent = _plain_object(user.get(ENT) or {}, _PLAIN_ENTERPRISE)
    manager = _plain_object(ent.get("manager") or {}, _PLAIN_MANAGER) if ent is not None else None
    if name is None or None in emails or ent is None or manager is None \
            or sum(e.get("primary") is True for e in emails) > 1:
        return None
    return dict(user_name=user["userName"], external_id=user.get("externalId"),
                display_name=user.get("displayName"), title=user.get("title"), active=user.get("active"),
                name={"formatted": name.get("formatted"), "given_name": name.get("givenName"),
                      "family_name": name.get("familyName"), "middle_name": name.get("middleName")},
                emails=[(e.get("value"), e.get("type"), e.get("primary")) for e in emails],
                department=ent.get("department"), employee_number=ent.get("employeeNumber"),
                manager_id=manager.get("value"))


def _plain_object(value, types: dict[str, type]) -> dict | None:
    """`value` if it is an object of only these attributes, each null or of exactly its type; else None."""
    if type(value) is not dict:
        return None
    if not all(key in types and (v is None or type(v) is types[key]) for key, v in value.items()):
        return None
    return value


def parse_group(body: dict, context: Context) -> schema.Group:
    try:
        with POLICY:
            return schema.Group.model_validate(normalize_resource(body, schema.GROUP_SCHEMA), scim_ctx=context)
    except (SCIMException, ValidationError) as exc:
        raise scim_error(exc) from None


def parse_patch(body: dict, model):
    """The PatchOp, or None for an empty Operations list (a no-op: Microsoft's test traffic sends it)."""
    normalized = normalize_patch(body)
    if not normalized["Operations"]:
        return None
    try:
        with POLICY:
            return PatchOp[model].model_validate(normalized, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    except (SCIMException, ValidationError) as exc:
        raise scim_error(exc) from None


def _text(value, label: str, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"{label} must be a string")
    if len(value) > limit:
        raise bad(f"{label} is longer than {limit} characters")
    return value


def profile_from(user: schema.User) -> Profile:
    """The plain profile a (validated, possibly patched) User resource describes."""
    if not user.user_name or not user.user_name.strip():
        raise ScimError(400, "userName is required", "invalidValue")
    ent = user[schema.EnterpriseUser]
    name = user.name
    return _profile(
        user_name=user.user_name, external_id=user.external_id, display_name=user.display_name, title=user.title,
        active=user.active,
        name={"formatted": name.formatted, "given_name": name.given_name, "family_name": name.family_name,
              "middle_name": name.middle_name} if name else {},
        emails=[(e.value, e.type, e.primary) for e in user.emails or []],
        department=ent.department if ent else None, employee_number=ent.employee_number if ent else None,
        manager_id=ent.manager.value if ent and ent.manager else None)


def _profile(*, user_name, external_id, display_name, title, active, name: dict, emails: list[tuple],
             department, employee_number, manager_id) -> Profile:
    """A Profile from a User's plain values, lengths and types checked (emails first, then in schema order)."""
    checked_emails = [Email(_text(value, "emails.value", 320), _text(kind, "emails.type", 64), primary)
                      for value, kind, primary in emails if value is not None]
    return Profile(
        user_name=_text(user_name, "userName"),
        external_id=_text(external_id, "externalId"),
        display_name=_text(display_name, "displayName"),
        formatted_name=_text(name.get("formatted"), "name.formatted"),
        given_name=_text(name.get("given_name"), "name.givenName"),
        family_name=_text(name.get("family_name"), "name.familyName"),
        middle_name=_text(name.get("middle_name"), "name.middleName"),
        title=_text(title, "title"),
        active=active,
        emails=checked_emails,
        department=_text(department, "department"),
        employee_number=_text(employee_number, "employeeNumber"),
        manager_id=_text(manager_id, "manager.value"),
    )


def members_from(group: schema.Group) -> list[Member]:
    out = []
    for m in group.members or []:
        if not m.value:
            raise bad("members[].value is required")
        kind = _text(str(m.type) if m.type is not None else None, "members.type", 16)
        if kind is not None and kind.lower() != "user":
            raise bad("only users can be group members (nested groups are not supported)")
        out.append(Member(m.value, _text(m.display, "members.display"), kind))
    return out


def user_model(doc: dict) -> schema.User:
    """The stored user as a resource PATCH can work on (read-only `groups` and `meta` left out)."""
    data = {k: v for k, v in doc.items() if k not in ("groups", "meta")}
    with POLICY:  # no request context: the stored id must stay on the resource (PATCH compares against it)
        return schema.User.model_validate(data)


def group_model(doc: dict) -> schema.Group:
    data = {k: v for k, v in doc.items() if k != "meta"}
    if "members" in data:
        data["members"] = [{k: v for k, v in m.items() if k != "$ref"} for m in data["members"]]
    with POLICY:
        return schema.Group.model_validate(data)
