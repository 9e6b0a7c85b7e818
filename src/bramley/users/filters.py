"""SCIM filter trees (parsed by scim2-models) as SQL WHERE clauses over directory users and groups.

Every attribute a filter may name is mapped here to a column; anything else is an error, never "match all"
(an ignored filter would make an IdP link the wrong account). Attribute names and schema URNs are matched
case-insensitively; values compare case-insensitively unless the attribute is caseExact (id, externalId, ...).
A missing value (NULL) never equals anything, so `not (x eq "a")` matches users without an x, as the RFC reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from scim2_models.path import (AttrPath, CompareOperator as Op, Comparison, FilterNode, FilterVisitor,
                               LogicalExpr, LogicalOperator, Not, Present, ValuePath)
from sqlalchemy import and_, false, func, not_, or_, select, true

from bramley.users.models import DirectoryGroup, GroupMember, User, UserEmail

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"


class FilterError(ValueError):
    """The filter names something we cannot filter on, or compares it in a way its type forbids."""


@dataclass(frozen=True)
class Column:
    column: object
    fold: bool = False  # compare lower-cased (caseExact false)
    folded: bool = False  # the column already holds the lower-cased value


# lower-cased attribute path -> column
USER_COLUMNS = {
    "id": Column(User.id),
    "username": Column(User.user_name_key, fold=True, folded=True),
    "externalid": Column(User.external_id),
    "displayname": Column(User.display_name, fold=True),
    "title": Column(User.job_title, fold=True),
    "active": Column(User.active),
    "name.formatted": Column(User.formatted_name, fold=True),
    "name.givenname": Column(User.given_name, fold=True),
    "name.familyname": Column(User.family_name, fold=True),
    "name.middlename": Column(User.middle_name, fold=True),
    "meta.created": Column(User.created_at),
    "meta.lastmodified": Column(User.updated_at),
    f"{ENTERPRISE}:employeenumber": Column(User.employee_number, fold=True),
    f"{ENTERPRISE}:department": Column(User.department, fold=True),
    f"{ENTERPRISE}:manager.value": Column(User.manager_id),
    f"{ENTERPRISE}:manager": Column(User.manager_id),
}
EMAIL_COLUMNS = {
    "value": Column(UserEmail.value_key, fold=True, folded=True),
    "type": Column(UserEmail.type, fold=True),
    "primary": Column(UserEmail.primary),
}
USER_GROUP_COLUMNS = {  # users' read-only `groups`, seen from the membership side
    "value": Column(GroupMember.group_id),
    "display": Column(DirectoryGroup.display_name_key, fold=True, folded=True),
}
GROUP_COLUMNS = {
    "id": Column(DirectoryGroup.id),
    "displayname": Column(DirectoryGroup.display_name_key, fold=True, folded=True),
    "externalid": Column(DirectoryGroup.external_id),
    "meta.created": Column(DirectoryGroup.created_at),
    "meta.lastmodified": Column(DirectoryGroup.updated_at),
}
MEMBER_COLUMNS = {
    "value": Column(GroupMember.user_id),
    "display": Column(GroupMember.display, fold=True),
    "type": Column(GroupMember.type, fold=True),
}


def _key(path: AttrPath, core: str, extension: str | None) -> str:
    uri = (path.uri or "").lower()
    name = ".".join(p.lower() for p in (path.attr, path.sub_attr) if p)
    if uri in ("", core):
        return name
    if extension is not None and uri == extension:
        return f"{extension}:{name}"
    raise FilterError(f"unknown schema {path.uri}")


def _datetime(value) -> datetime:
    if not isinstance(value, str):
        raise FilterError("a dateTime is compared with a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{value!r} is not a dateTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _kind(column) -> type:
    """bool, datetime or str: what a column's values are in Python (TypeDecorators included)."""
    kind = column.type
    return getattr(kind, "impl_instance", kind).python_type


def compare(col: Column, op: Op, value, label: str):
    """One comparison, NULL-safe: a missing value matches `ne` and nothing else."""
    column = col.column
    kind = _kind(column)
    if kind is bool:
        if not isinstance(value, bool) or op not in (Op.eq, Op.ne):
            raise FilterError(f"{label} is a boolean: only eq and ne with true or false")
    elif kind is datetime:
        if op in (Op.co, Op.sw, Op.ew):
            raise FilterError(f"{label} is a dateTime: co, sw and ew do not apply")
        value = _datetime(value) if value is not None else None
    elif value is not None and not isinstance(value, str):
        raise FilterError(f"{label} is a string: compare it with a string")
    if value is None:
        if op is Op.eq:
            return column.is_(None)
        if op is Op.ne:
            return column.is_not(None)
        raise FilterError(f"null only compares with eq and ne ({label})")
    if col.fold and isinstance(value, str):
        value = value.lower()
        if not col.folded:
            column = func.lower(column)
    if op is Op.ne:
        return or_(col.column.is_(None), column != value)
    clause = {
        Op.eq: lambda: column == value,
        Op.co: lambda: column.contains(value, autoescape=True),
        Op.sw: lambda: column.startswith(value, autoescape=True),
        Op.ew: lambda: column.endswith(value, autoescape=True),
        Op.gt: lambda: column > value,
        Op.ge: lambda: column >= value,
        Op.lt: lambda: column < value,
        Op.le: lambda: column <= value,
    }[op]()
    return and_(col.column.is_not(None), clause)


class _Where(FilterVisitor):
    """Shared walk; subclasses say which columns and sub-tables exist."""

    columns: dict[str, Column]
    core: str
    extension: str | None = None

    def __init__(self, tenant_id: str):
        self.tenant_id = tenant_id

    def column(self, path: AttrPath) -> tuple[str, Column]:
        key = _key(path, self.core, self.extension)
        if key not in self.columns:
            raise FilterError(f"cannot filter on {path}")
        return key, self.columns[key]

    def multi(self, attr: str):
        """(columns, subquery builder) of a multi-valued attribute, or None."""
        return None

    def visit_comparison(self, node: Comparison):
        path = node.attr_path
        sub = self.multi(path.attr.lower()) if not path.uri or path.uri.lower() == self.core else None
        if sub is not None:
            columns, build = sub
            inner = (path.sub_attr or "value").lower()
            if inner not in columns:
                raise FilterError(f"cannot filter on {path}")
            return build(compare(columns[inner], node.op, node.value, str(path)))
        _, col = self.column(path)
        return compare(col, node.op, node.value, str(path))

    def visit_present(self, node: Present):
        path = node.attr_path
        sub = self.multi(path.attr.lower()) if not path.uri or path.uri.lower() == self.core else None
        if sub is not None:
            columns, build = sub
            inner = (path.sub_attr or "value").lower()
            if inner not in columns:
                raise FilterError(f"cannot filter on {path}")
            return build(columns[inner].column.is_not(None))
        key, col = self.column(path)
        if key == "active":  # a boolean is present when it has a value; ours always has one
            return true()
        clause = col.column.is_not(None)
        return and_(clause, col.column != "") if _kind(col.column) is str else clause

    def visit_not(self, node: Not):
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr):
        combine = and_ if node.op is LogicalOperator.and_ else or_
        return combine(*(self.visit(term) for term in node.terms))

    def visit_value_path(self, node: ValuePath):
        path = node.attr_path
        sub = self.multi(path.attr.lower()) if not path.uri or path.uri.lower() == self.core else None
        if sub is None or path.sub_attr:
            raise FilterError(f"cannot filter on {path}[...]")
        columns, build = sub
        return build(_Inner(columns).visit(node.val_filter))


class _Inner(FilterVisitor):
    """The filter inside `emails[...]` or `members[...]`: sub-attributes of one entry."""

    def __init__(self, columns: dict[str, Column]):
        self.columns = columns

    def _col(self, path: AttrPath) -> Column:
        name = path.attr.lower()
        if path.uri or path.sub_attr or name not in self.columns:
            raise FilterError(f"cannot filter on {path} here")
        return self.columns[name]

    def visit_comparison(self, node: Comparison):
        return compare(self._col(node.attr_path), node.op, node.value, str(node.attr_path))

    def visit_present(self, node: Present):
        return self._col(node.attr_path).column.is_not(None)

    def visit_not(self, node: Not):
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr):
        combine = and_ if node.op is LogicalOperator.and_ else or_
        return combine(*(self.visit(term) for term in node.terms))

    def visit_value_path(self, node: ValuePath):
        raise FilterError("a value filter cannot nest another")


class UserWhere(_Where):
    columns = USER_COLUMNS
    core = CORE_USER
    extension = ENTERPRISE

    def multi(self, attr: str):
        if attr == "emails":
            def emails(clause):
                return User.id.in_(select(UserEmail.user_id).where(UserEmail.tenant_id == self.tenant_id, clause))
            return EMAIL_COLUMNS, emails
        if attr == "groups":
            def groups(clause):
                inner = (select(GroupMember.user_id)
                         .join(DirectoryGroup, DirectoryGroup.id == GroupMember.group_id)
                         .where(GroupMember.tenant_id == self.tenant_id, clause))
                return User.id.in_(inner)
            return USER_GROUP_COLUMNS, groups
        return None


class GroupWhere(_Where):
    columns = GROUP_COLUMNS
    core = CORE_GROUP

    def multi(self, attr: str):
        if attr == "members":
            def members(clause):
                return DirectoryGroup.id.in_(select(GroupMember.group_id).where(
                    GroupMember.tenant_id == self.tenant_id, clause))
            return MEMBER_COLUMNS, members
        return None


def user_where(tenant_id: str, node: FilterNode | None):
    """The WHERE clause of a user filter (FilterError if it names what we do not store)."""
    return true() if node is None else UserWhere(tenant_id).visit(node)


def group_where(tenant_id: str, node: FilterNode | None):
    return true() if node is None else GroupWhere(tenant_id).visit(node)


def member_where(node: FilterNode):
    """The WHERE clause selecting membership rows (`members[value eq "..."]` in a PATCH remove)."""
    return _Inner(MEMBER_COLUMNS).visit(node)


NOTHING = false()
