"""API tokens: create (value shown once), authenticate by hash, list, revoke."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.auth.models import ApiToken
from bramley.db.base import utcnow
from bramley.db.raw import AsyncReader, RawStatement, as_json, as_utc, fetch_one
from bramley.errors import InvalidField, NotFound
from bramley.tenancy.context import TenantContext

# Writing last_used_at on every request would make each GET a write; once a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(value: str) -> str:
    return hashlib.sha256(value.strip().encode()).hexdigest()


@dataclass
class CreatedToken:
    token: ApiToken
    value: str


def create(
    db: Session,
    ctx: TenantContext,
    *,
    description: str,
    permissions: list[tuple[str, str]],
    all_access: bool = False,
    known: set[tuple[str, str]] | None = None,
    expires_at: datetime | None = None,
) -> CreatedToken:
    """Create a token. `known` is the route catalogue; a permission outside it is refused."""
    if not description or not description.strip():
        raise InvalidField({"description": ["This field is required."]})
    if not all_access and not permissions:
        raise InvalidField({"permissions": ["Select at least one permission."]})
    if known is not None:
        unknown = [f"{m} {p}" for m, p in permissions if (m, p) not in known]
        if unknown:
            raise InvalidField({"permissions": [f"Unknown permission: {u}" for u in unknown]})
    value = str(uuid.uuid4())  # Iru tokens are UUID-shaped; some callers check the shape.
    token = ApiToken(
        tenant_id=ctx.tenant_id,
        token_hash=hash_token(value),
        description=description.strip(),
        all_access=all_access,
        permissions=sorted([list(p) for p in set(permissions)]),
        expires_at=expires_at,
    )
    db.add(token)
    db.flush()
    audit.record(
        db, ctx, action="create", target_type="api_token", target_id=token.id,
        new_state={"description": token.description, "all_access": all_access,
                   "permissions": [{"path": p, "http_method": m} for m, p in token.permissions]},
    )
    return CreatedToken(token, value)


@dataclass(frozen=True)
class Credential:
    """What the door needs of a live token: a plain row, since every API request loads one."""

    id: str
    tenant_id: str
    description: str
    all_access: bool
    permissions: list
    last_used_at: datetime | None


# Read on the driver's cursor as a plain row: every API request loads one (db/raw.py says why).
_BY_HASH = RawStatement("SELECT id, tenant_id, description, all_access, permissions, last_used_at, expires_at, "
                        "revoked_at FROM api_tokens WHERE token_hash = :token_hash")


def authenticate(db: Session, value: str) -> Credential | None:
    """The live token with this value, or None (unknown, revoked or expired)."""
    return _live(fetch_one(db, _BY_HASH, {"token_hash": hash_token(value)}))


async def authenticate_on(reader: AsyncReader, value: str) -> Credential | None:
    """`authenticate` on PostgreSQL's AsyncReader: for requests that read the token in no transaction of theirs."""
    return _live(await reader.fetch_one(_BY_HASH, {"token_hash": hash_token(value)}))


# A pure read that needs the token's tenant can come in the same round trip as the token (`authenticate_along`):
# the token's row, as one JSON array, leads the statement's rows. The statement names the tenant as `{tenant}`,
# which is the live token's tenant or nothing (its rows are then empty; the caller answers 401 anyway).
_TOKEN_ARRAY = ("SELECT json_build_array(id, tenant_id, description, all_access, permissions, last_used_at, "
                "expires_at, revoked_at)::text FROM api_tokens WHERE token_hash = :token_hash")
_TOKEN_TENANT = "(SELECT tenant_id FROM api_tokens WHERE token_hash = :token_hash AND revoked_at IS NULL)"
_along: dict[str, RawStatement] = {}


async def authenticate_along(reader: AsyncReader, value: str, statement: str, params: dict,
                             ) -> tuple[Credential | None, list[bytes]]:
    """`authenticate_on` and a read of the token's tenant (`statement`, PostgreSQL, one text column, `{tenant}`
    for the tenant) in one statement: the credential (None: not live) and the statement's column as bytes.

    The read runs before the door has looked at the token: the caller must drop the rows unless it lets the
    request in. An expired token's read is wasted (a rare request); a revoked one reads nothing.
    """
    composed = _along.get(statement)
    if composed is None:
        composed = _along[statement] = RawStatement(
            f"({_TOKEN_ARRAY}) UNION ALL ({statement.format(tenant=_TOKEN_TENANT)})")
    rows = await reader.fetch_all(composed, {**params, "token_hash": hash_token(value)}, text_as_bytes=True)
    # The token's array leads (PostgreSQL appends a UNION ALL's branches in order); told apart by its first
    # byte all the same, since a document is an object.
    if not rows or not rows[0][0].startswith(b"["):
        return None, []
    token = _live(tuple(orjson.loads(rows[0][0])))
    return token, [doc for doc, in rows[1:]] if token is not None else []


def _live(row: tuple | None) -> Credential | None:
    if row is None:
        return None
    token_id, tenant_id, description, all_access, permissions, last_used_at, expires_at, revoked_at = row
    if revoked_at is not None:
        return None
    expires_at = as_utc(expires_at)
    if expires_at is not None and expires_at <= utcnow():
        return None
    return Credential(token_id, tenant_id, description, bool(all_access), as_json(permissions) or [],
                      as_utc(last_used_at))


def use_is_due(token: Credential) -> bool:
    return token.last_used_at is None or utcnow() - token.last_used_at > LAST_USED_RESOLUTION


def mark_used(db: Session, token_id: str) -> None:
    """Record the last use in its own small write, so a GET stays a pure read."""
    db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def allows(token: Credential, method: str, path: str) -> bool:
    return token.all_access or [method, path] in token.permissions


def get_all(db: Session, ctx: TenantContext) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.tenant_id == ctx.tenant_id).order_by(ApiToken.created_at)))


def get_any(db: Session, token_id: str) -> ApiToken | None:
    return db.get(ApiToken, token_id)


def revoke(db: Session, ctx: TenantContext, token_id: str) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None or token.tenant_id != ctx.tenant_id:
        raise NotFound("token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(db, ctx, action="delete", target_type="api_token", target_id=token.id,
                     new_state={"description": token.description})
    return token
