"""ADE: the tenant's token key pair, integrations (server tokens) and their devices. Flushes, never commits.

A server token's OAuth credentials live in the secrets service (owner "ade_integration", kind "server_token");
the tenant's private key too (owner "tenant", kind "ade_key"). Neither reaches a log, an error or a reply.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bramley.ade import render
from bramley.ade.client import DEPClient, DEPError
from bramley.ade.models import ADEDevice, ADEIntegration, ADEKey
from bramley.ade.token import ServerToken, TokenError, read_token
from bramley.apiutil import MAX_OFFSET
from bramley.audit import service as audit
from bramley.blueprints import service as blueprints
from bramley.config import Settings
from bramley.db.base import is_uuid, tenant_row, utcnow
from bramley.devices import service as devices
from bramley.errors import DetailError, InvalidField, NotFound
from bramley.jobs import service as jobs
from bramley.secrets import service as secrets
from bramley.tenancy.context import TenantContext
from bramley.users import service as users

log = logging.getLogger("bramley.ade")

KEY_KIND = "ade_key"
TOKEN_OWNER = "ade_integration"
TOKEN_KIND = "server_token"
SYNC_KIND = "ade.sync"
PAGE_SIZE = 300
KEY_VALIDITY = timedelta(days=3650)
APPLE_TIMEOUT = 20.0  # seconds for the upload's own calls to Apple (session + account)
FAMILIES = ("Mac", "iPad", "iPhone", "AppleTV")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _settings(db: Session) -> Settings:
    settings = db.info.get("settings")
    if not isinstance(settings, Settings):
        raise RuntimeError("ADE needs a session from bramley.db.engine.Database (it carries the settings)")
    return settings


# -- the tenant's key pair ---------------------------------------------------------------------------------------

def public_certificate(db: Session, ctx: TenantContext) -> str | None:
    """The PEM certificate admins upload to Apple Business Manager, or None before it is made."""
    row = db.get(ADEKey, ctx.tenant_id)
    return row.cert_pem if row is not None else None


def _build_cert(ctx: TenantContext, key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bramley"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Bramley {ctx.subdomain} ADE")])
    now = utcnow()
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=10)).not_valid_after(now + KEY_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=True,
                                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def ensure_key(db: Session, ctx: TenantContext) -> str:
    """Make the tenant's ADE key pair unless it exists; returns the certificate PEM. Safe against a racing twin:
    only the transaction whose insert wins stores a private key."""
    existing = public_certificate(db, ctx)
    if existing is not None:
        return existing
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _build_cert(ctx, key).public_bytes(serialization.Encoding.PEM).decode()
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    won = db.execute(insert(ADEKey).values(tenant_id=ctx.tenant_id, cert_pem=pem, created_at=utcnow())
                     .on_conflict_do_nothing(index_elements=["tenant_id"]).returning(ADEKey.tenant_id)).first()
    if won is None:
        db.expire_all()
        return public_certificate(db, ctx) or pem
    secrets.put(db, ctx, owner_type="tenant", owner_id=ctx.tenant_id, kind=KEY_KIND,
                value=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    audit.record(db, ctx, action="create", target_type="tenant", target_id=ctx.tenant_id,
                 target_component="ade_public_key", new_state={"certificate_subject": f"Bramley {ctx.subdomain} ADE"})
    return pem


def _key_pair(db: Session, ctx: TenantContext) -> tuple[x509.Certificate, rsa.RSAPrivateKey] | None:
    pem = public_certificate(db, ctx)
    raw = secrets.get(db, ctx, owner_type="tenant", owner_id=ctx.tenant_id, kind=KEY_KIND, audited=False)
    if pem is None or raw is None:
        return None
    return x509.load_pem_x509_certificate(pem.encode()), serialization.load_pem_private_key(raw, password=None)


# -- uploads -----------------------------------------------------------------------------------------------------

@dataclass
class TokenUpload:
    """What the create/renew form carried: `fields` holds only the fields sent (renew updates only those)."""

    fields: dict = field(default_factory=dict)  # blueprint_id, phone, email, use_blueprint_routing (a bool)
    file: bytes | None = None
    filename: str = ""
    file_is_text: bool = False  # a plain form field named `file`, not a file part


def _defaults(db: Session, ctx: TenantContext, row: ADEIntegration | None, given: dict,
              errors: dict[str, list[str]]) -> dict:
    """The default blueprint / routing / support contacts to apply, or field errors. Choosing a blueprint turns
    routing off; turning routing on clears the blueprint; without routing a blueprint is required."""
    if "use_blueprint_routing" in given:
        routing = bool(given["use_blueprint_routing"])
    elif given.get("blueprint_id"):
        routing = False
    else:
        routing = row.use_blueprint_routing if row is not None else False
    out: dict = {"use_blueprint_routing": routing}
    if routing:
        out["blueprint_id"] = None
    elif given.get("blueprint_id"):
        bp = blueprints.get(db, ctx, given["blueprint_id"]) if isinstance(given["blueprint_id"], str) else None
        if bp is None:
            errors["blueprint_id"] = [f'Invalid pk "{given["blueprint_id"]}" - object does not exist.']
        else:
            out["blueprint_id"] = bp.id
    elif "blueprint_id" in given or row is None or row.blueprint_id is None:
        errors["blueprint_id"] = ["This field is required."]
    for name, limit in (("email", 320), ("phone", 64)):
        if name not in given:
            continue
        value = given[name]
        if value is not None and not isinstance(value, str):
            errors[name] = ["Not a valid string."]
            continue
        value = (value or "").strip()
        if len(value) > limit:
            errors[name] = [f"Ensure this field has no more than {limit} characters."]
        elif name == "email" and value and not _EMAIL.match(value):
            errors[name] = ["Enter a valid email address."]
        out[name] = value
    return out


def _check_file(form: TokenUpload, errors: dict[str, list[str]]) -> None:
    if form.file_is_text:
        errors["file"] = ["The submitted data was not a file. Check the encoding type on the form."]
    elif form.file is None:
        errors["file"] = ["No file was submitted."]
    elif not form.file.strip():
        errors["file"] = ["The submitted file is empty."]


def _open_token(db: Session, ctx: TenantContext, data: bytes) -> ServerToken:
    pair = _key_pair(db, ctx)
    if pair is None:
        raise InvalidField({"file": ["This tenant has no ADE public key yet. Download it (GET /api/v1/integrations/"
                                     "apple/ade/public_key), add it to the MDM server in Apple Business Manager, then "
                                     "upload the token Apple gives you."]})
    try:
        return read_token(data, *pair)
    except TokenError as exc:
        raise InvalidField({"file": [str(exc)]}) from None


async def _fetch_account(settings: Settings, token: ServerToken) -> dict:
    async with httpx.AsyncClient(timeout=APPLE_TIMEOUT) as http:
        return await DEPClient(settings.ade_url, token, http=http).account()


def _account(db: Session, token: ServerToken) -> dict:
    """Apple's GET /account for this token: proves the token works and names the server. Blocking: call it from
    a worker thread (the API's sync routes run in one), never from a running event loop."""
    try:
        return asyncio.run(_fetch_account(_settings(db), token))
    except DEPError as exc:
        if exc.account_problem:
            raise InvalidField({"file": [f"Apple refused this server token ({exc.code or exc.status}). Download a "
                                         "new token from Apple Business Manager; if it persists, check that the "
                                         "terms and conditions there are accepted."]}) from None
        raise DetailError(f"Apple's device enrollment service answered {exc.status} {exc.code}; try again later."
                          ) from None
    except httpx.HTTPError as exc:
        log.warning("ADE account lookup failed: %s", type(exc).__name__)
        raise DetailError("Could not reach Apple's device enrollment service; try again later.") from None


def _text(value, limit: int) -> str:
    return str(value or "")[:limit]


def _apply_account(row: ADEIntegration, account: dict, token: ServerToken, filename: str) -> None:
    row.server_name = _text(account.get("server_name"), 255)
    row.server_uuid = _text(account.get("server_uuid"), 64)
    row.admin_id = _text(account.get("admin_id"), 320)
    row.org_name = _text(account.get("org_name"), 255)
    row.org_email = _text(account.get("org_email"), 320)
    row.org_phone = _text(account.get("org_phone"), 64)
    row.org_address = _text(account.get("org_address"), 2000)
    row.org_type = _text(account.get("org_type"), 32)
    row.org_id = _text(account.get("org_id"), 64)
    row.access_token_expiry = token.access_token_expiry
    row.stoken_file_name = _text(filename.replace("\x00", ""), 255)


def _apply(row: ADEIntegration, values: dict) -> None:
    for name, value in values.items():
        setattr(row, name, value)


def _state(row: ADEIntegration) -> dict:
    return {"server_name": row.server_name, "server_uuid": row.server_uuid, "blueprint_id": row.blueprint_id,
            "use_blueprint_routing": row.use_blueprint_routing, "phone": row.phone, "email": row.email,
            "stoken_file_name": row.stoken_file_name,
            "access_token_expiry": render.seconds_z(row.access_token_expiry)}


def _store_token(db: Session, ctx: TenantContext, row: ADEIntegration, token: ServerToken) -> None:
    secrets.put(db, ctx, owner_type=TOKEN_OWNER, owner_id=row.id, kind=TOKEN_KIND, value=token.to_json())


def load_token(db: Session, ctx: TenantContext, integration_id: str) -> ServerToken | None:
    """The decrypted OAuth credentials (unaudited: only Bramley's sync uses them)."""
    raw = secrets.get(db, ctx, owner_type=TOKEN_OWNER, owner_id=integration_id, kind=TOKEN_KIND, audited=False)
    return ServerToken.from_json(raw) if raw is not None else None


def create(db: Session, ctx: TenantContext, form: TokenUpload, *, profile_url: str) -> ADEIntegration:
    """Upload a server token: check the form, open the token, ask Apple who it belongs to, store, start a sync."""
    errors: dict[str, list[str]] = {}
    values = _defaults(db, ctx, None, form.fields, errors)
    _check_file(form, errors)
    if errors:
        raise InvalidField(errors)
    token = _open_token(db, ctx, form.file or b"")
    account = _account(db, token)
    server_uuid = _text(account.get("server_uuid"), 64)
    if db.scalar(select(ADEIntegration.id).where(ADEIntegration.tenant_id == ctx.tenant_id,
                                                 ADEIntegration.server_uuid == server_uuid)) is not None:
        raise InvalidField({"file": [f'An ADE integration for the MDM server "{account.get("server_name", "")}" '
                                     "already exists; renew that one instead."]})
    now = utcnow()
    row = ADEIntegration(tenant_id=ctx.tenant_id, status="SUCCESS", phase="fetch", profile_url=profile_url,
                         use_blueprint_routing=False, phone="", email="", created_at=now, updated_at=now)
    _apply_account(row, account, token, form.filename)
    _apply(row, values)
    try:
        with db.begin_nested():  # the same token uploaded twice at once: one wins, the other hears why
            db.add(row)
            db.flush()
    except IntegrityError:
        raise InvalidField({"file": [f'An ADE integration for the MDM server "{row.server_name}" already exists; '
                                     "renew that one instead."]}) from None
    _store_token(db, ctx, row, token)
    audit.record(db, ctx, action="create", target_type="ade_integration", target_id=row.id, new_state=_state(row))
    request_sync(db, ctx, row.id)
    return row


def renew(db: Session, ctx: TenantContext, integration_id: str, form: TokenUpload, *,
          profile_url: str) -> ADEIntegration:
    """A new token for the same MDM server (yearly): the integration, its devices and cursor stay."""
    row = get_or_raise(db, ctx, integration_id)
    errors: dict[str, list[str]] = {}
    values = _defaults(db, ctx, row, form.fields, errors)
    _check_file(form, errors)
    if errors:
        raise InvalidField(errors)
    token = _open_token(db, ctx, form.file or b"")
    account = _account(db, token)
    if _text(account.get("server_uuid"), 64) != row.server_uuid:
        raise InvalidField({"file": [f'This server token belongs to the MDM server "{account.get("server_name", "")}"'
                                     f', not to "{row.server_name}".']})
    _apply_account(row, account, token, form.filename)
    _apply(row, values)
    row.status, row.status_reason, row.status_received_at = "SUCCESS", None, None
    row.profile_url = profile_url or row.profile_url
    row.updated_at = utcnow()
    db.flush()
    _store_token(db, ctx, row, token)
    audit.record(db, ctx, action="update", target_type="ade_integration", target_id=row.id,
                 target_component="renew", new_state=_state(row))
    request_sync(db, ctx, row.id)
    return row


def update(db: Session, ctx: TenantContext, integration_id: str, changes: dict) -> ADEIntegration:
    """PATCH: any of blueprint_id, phone, email, use_blueprint_routing."""
    row = get_or_raise(db, ctx, integration_id)
    errors: dict[str, list[str]] = {}
    values = _defaults(db, ctx, row, changes, errors)
    if errors:
        raise InvalidField(errors)
    support_changed = any(name in values and values[name] != getattr(row, name) for name in ("phone", "email"))
    _apply(row, values)
    if support_changed:
        row.profile_uuid = None  # Setup Assistant shows them: the next sync defines a new profile
    row.updated_at = utcnow()
    db.flush()
    audit.record(db, ctx, action="update", target_type="ade_integration", target_id=row.id, new_state=_state(row))
    return row


def delete(db: Session, ctx: TenantContext, integration_id: str) -> None:
    """Forget the token and its device records (Apple keeps the devices assigned to the server in ABM)."""
    row = get_or_raise(db, ctx, integration_id)
    removed = db.execute(sql_delete(ADEDevice).where(ADEDevice.tenant_id == ctx.tenant_id,
                                                     ADEDevice.integration_id == row.id),
                         execution_options={"synchronize_session": False}).rowcount or 0
    secrets.delete(db, ctx, owner_type=TOKEN_OWNER, owner_id=row.id)
    audit.record(db, ctx, action="delete", target_type="ade_integration", target_id=row.id,
                 new_state={"server_name": row.server_name, "server_uuid": row.server_uuid, "devices": removed})
    db.delete(row)
    db.flush()


def request_sync(db: Session, ctx: TenantContext, integration_id: str) -> None:
    """Sync this token with Apple soon (coalesced with a sync already waiting)."""
    jobs.enqueue(db, tenant_id=ctx.tenant_id, kind=SYNC_KIND, dedup_key=f"{integration_id}:now",
                 payload={"integration_id": integration_id})


# -- reads -------------------------------------------------------------------------------------------------------

def get(db: Session, ctx: TenantContext, integration_id: str) -> ADEIntegration | None:
    return tenant_row(db, ADEIntegration, ctx.tenant_id, integration_id)


def get_or_raise(db: Session, ctx: TenantContext, integration_id: str) -> ADEIntegration:
    row = get(db, ctx, integration_id)
    if row is None:
        raise NotFound("ade integration")
    return row


def list_page(db: Session, ctx: TenantContext, *, page: int) -> tuple[int, list[ADEIntegration]]:
    query = select(ADEIntegration).where(ADEIntegration.tenant_id == ctx.tenant_id)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    offset = (page - 1) * PAGE_SIZE
    if offset >= total or offset > MAX_OFFSET:
        return total, []
    rows = list(db.scalars(query.order_by(ADEIntegration.created_at, ADEIntegration.id)
                           .limit(PAGE_SIZE).offset(offset)))
    return total, rows


def _device_counts(db: Session, ctx: TenantContext, ids: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {i: {**dict.fromkeys(FAMILIES, 0), "total": 0} for i in ids}
    if not ids:
        return counts
    rows = db.execute(select(ADEDevice.integration_id, ADEDevice.device_family, func.count())
                      .where(ADEDevice.tenant_id == ctx.tenant_id, ADEDevice.integration_id.in_(ids),
                             ADEDevice.deleted_at.is_(None))
                      .group_by(ADEDevice.integration_id, ADEDevice.device_family))
    for integration_id, family, n in rows:
        bucket = counts[integration_id]
        if family in FAMILIES:
            bucket[family] += n
        bucket["total"] += n
    return counts


def integration_dicts(db: Session, ctx: TenantContext, rows: list[ADEIntegration]) -> list[dict]:
    counts = _device_counts(db, ctx, [r.id for r in rows])
    wanted = {r.blueprint_id for r in rows if r.blueprint_id and not r.use_blueprint_routing}
    found = {bid: blueprints.get(db, ctx, bid) for bid in wanted}
    return [render.integration(r, found.get(r.blueprint_id) if r.blueprint_id else None, counts[r.id])
            for r in rows]


def integration_dict(db: Session, ctx: TenantContext, row: ADEIntegration) -> dict:
    return integration_dicts(db, ctx, [row])[0]


# -- devices -----------------------------------------------------------------------------------------------------

@dataclass
class DeviceFilters:
    """GET /integrations/apple/ade/devices. Exact unless marked contains (as Iru documents them)."""

    blueprint_id: str | None = None  # contains
    user_id: str | None = None
    dep_account: str | None = None
    device_family: str | None = None
    model: str | None = None  # contains
    os: str | None = None
    profile_status: str | None = None
    serial_number: str | None = None  # contains


def _device_query(ctx: TenantContext, integration_id: str | None, f: DeviceFilters):
    query = select(ADEDevice).where(ADEDevice.tenant_id == ctx.tenant_id, ADEDevice.deleted_at.is_(None))
    if integration_id is not None:
        query = query.where(ADEDevice.integration_id == integration_id)
    if f.dep_account:
        if not is_uuid(f.dep_account):
            raise InvalidField({"dep_account": ["Enter a valid UUID."]})
        query = query.where(ADEDevice.integration_id == str(f.dep_account).lower())
    for name in ("user_id", "device_family", "os", "profile_status"):
        value = getattr(f, name)
        if value:
            query = query.where(getattr(ADEDevice, name) == value)
    for name in ("blueprint_id", "model", "serial_number"):
        value = getattr(f, name)
        if value:
            query = query.where(func.lower(getattr(ADEDevice, name)).contains(value.lower(), autoescape=True))
    return query


def list_devices(db: Session, ctx: TenantContext, *, integration_id: str | None = None,
                 filters: DeviceFilters | None = None, page: int = 1) -> tuple[int, list[dict]]:
    """One page (300) of ADE devices, oldest first; `integration_id` must be checked by the caller."""
    query = _device_query(ctx, integration_id, filters or DeviceFilters())
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    offset = (page - 1) * PAGE_SIZE
    if offset >= total or offset > MAX_OFFSET:
        return total, []
    rows = list(db.scalars(query.order_by(ADEDevice.pk).limit(PAGE_SIZE).offset(offset)))
    return total, device_dicts(db, ctx, rows)


def device_dicts(db: Session, ctx: TenantContext, rows: list[ADEDevice]) -> list[dict]:
    """Rendered rows: two queries for the whole page (their integrations, the managed devices by serial)."""
    ids = sorted({r.integration_id for r in rows})
    names = dict(db.execute(select(ADEIntegration.id, ADEIntegration.server_name)
                            .where(ADEIntegration.tenant_id == ctx.tenant_id, ADEIntegration.id.in_(ids))).all()) if ids else {}
    managed = devices.by_serials(db, ctx, [r.serial_number for r in rows])
    return [render.device(r, names.get(r.integration_id, ""), managed.get(r.serial_number)) for r in rows]


def get_device(db: Session, ctx: TenantContext, device_id: str) -> ADEDevice | None:
    if not is_uuid(device_id):
        return None
    return db.scalar(select(ADEDevice).where(ADEDevice.tenant_id == ctx.tenant_id, ADEDevice.id == str(device_id),
                                             ADEDevice.deleted_at.is_(None)))


def get_device_or_raise(db: Session, ctx: TenantContext, device_id: str) -> ADEDevice:
    row = get_device(db, ctx, device_id)
    if row is None:
        raise NotFound("ade device")
    return row


def device_dict(db: Session, ctx: TenantContext, device_id: str) -> dict:
    return device_dicts(db, ctx, [get_device_or_raise(db, ctx, device_id)])[0]


def update_device(db: Session, ctx: TenantContext, device_id: str, changes: dict) -> dict:
    """PATCH an ADE device: blueprint_id, user_id, asset_tag, use_blueprint_routing (legacy names mapped by the
    router). Where the device goes when it enrolls; Apple's own record is not changed."""
    row = get_device_or_raise(db, ctx, device_id)
    errors: dict[str, list[str]] = {}
    if "blueprint_id" in changes:
        value = changes["blueprint_id"]
        if value is None:
            row.blueprint_id = None
        else:
            bp = blueprints.get(db, ctx, value) if isinstance(value, str) else None
            if bp is None:
                errors["blueprint_id"] = [f'Invalid pk "{value}" - object does not exist.']
            else:
                row.blueprint_id = bp.id
                if "use_blueprint_routing" not in changes:
                    row.use_blueprint_routing = False
    if "user_id" in changes:
        value = changes["user_id"]
        if value is None or value == "":
            row.user_id = None
        else:
            user = users.resolve(db, ctx, value)
            if user is None:
                errors["user_id"] = [f'Invalid pk "{value}" - object does not exist.']
            else:
                row.user_id = user.id
    if "asset_tag" in changes:
        row.asset_tag = changes["asset_tag"]
    if "use_blueprint_routing" in changes:
        row.use_blueprint_routing = bool(changes["use_blueprint_routing"])
        if row.use_blueprint_routing:
            row.blueprint_id = None
    if errors:
        raise InvalidField(errors)
    row.updated_at = utcnow()
    db.flush()
    audit.record(db, ctx, action="update", target_type="ade_device", target_id=row.id,
                 new_state={"serial_number": row.serial_number, "blueprint_id": row.blueprint_id,
                            "user_id": row.user_id, "asset_tag": row.asset_tag,
                            "use_blueprint_routing": row.use_blueprint_routing})
    return device_dicts(db, ctx, [row])[0]


def for_serial(db: Session, ctx: TenantContext, serial_number: str) -> ADEDevice | None:
    """The live ADE record of a serial (the enrollment door asks which blueprint and user it should get)."""
    return db.scalar(select(ADEDevice).where(ADEDevice.tenant_id == ctx.tenant_id,
                                             ADEDevice.serial_number == serial_number,
                                             ADEDevice.deleted_at.is_(None)).order_by(ADEDevice.pk.desc()).limit(1))
