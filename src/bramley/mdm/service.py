"""Check-in protocol and command results (NanoMDM's service layer, in Python). No HTTP here.

The device door resolves the tenant from the URL and the identity certificate's hash from the request, then
calls `checkin()` or, for a turn of reports, `connect_turn()`; both run inside the turn's single transaction.
"""
from __future__ import annotations

import base64
import json
import logging

import orjson
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.db.raw import RawStatement, bound, dialect_of, fetch_all, fetch_one
from bramley.devices import service as devices
from bramley.mdm import inventory, queue
from bramley.mdm.models import CertAuth, Enrollment, PushCertificate
from bramley.mdm.protocol import (
    Authenticate, CheckinMessage, CheckOut, DeclarativeManagement, GetBootstrapToken, GetToken, Identity,
    ProtocolError, Report, SetBootstrapToken, TokenUpdate, UserAuthenticate, encode_plist,
)
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.mdm")


class IdentityMismatch(Exception):
    """The request's certificate is not the one bound to this enrollment. Refused (400), nothing changes."""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/xml"
    device_id: str | None = None  # the enrolled device that sent it: it checked in (see `mark_seen`)
    # Lost in a crash, what this request did would be done again, unasked: see `REPEATABLE_RESULTS`.
    repeatable: bool = False


# Commands that only ask the device what it is and has. A result of one that a crash took away leaves the command
# 'sent', and a sent command goes out again on the device's next check-in: the same question, the same answer.
# A turn of such results and Idle reports (which only move last-seen and re-offer what was put off) may commit
# without waiting for the disk; anything else, a check-in or the result of a command that changed the device,
# waits for it as always.
REPEATABLE_RESULTS = frozenset({"DeviceInformation", "SecurityInfo", "InstalledApplicationList", "ProfileList",
                                "CertificateList"})


def platform_of(product_name: str, model: str) -> str:
    name = product_name or model
    for prefix, platform in (("iPhone", "iPhone"), ("iPad", "iPad"), ("iPod", "iPhone"), ("AppleTV", "AppleTV")):
        if name.startswith(prefix):
            return platform
    return "Mac"


def _enrollment(db: Session, ctx: TenantContext, enrollment_id: str) -> Enrollment | None:
    return db.get(Enrollment, (ctx.tenant_id, enrollment_id))


def bound_enrollment(db: Session, ctx: TenantContext, cert_hash: str) -> str | None:
    return db.scalar(select(CertAuth.enrollment_id).where(CertAuth.tenant_id == ctx.tenant_id,
                                                          CertAuth.cert_sha256 == cert_hash))


def _check_identity(db: Session, ctx: TenantContext, cert_hash: str, ident: Identity) -> Enrollment:
    """The certificate must be bound to this device channel (user channels ride on their device's identity)."""
    bound = bound_enrollment(db, ctx, cert_hash)
    if bound is None or bound != ident.udid:
        raise IdentityMismatch(f"certificate not associated with {ident.udid}")
    enrollment = _enrollment(db, ctx, ident.udid)
    if enrollment is None:
        raise IdentityMismatch(f"unknown enrollment {ident.udid}")
    return enrollment


def tenant_topic(db: Session, ctx: TenantContext) -> str | None:
    return db.scalar(select(PushCertificate.topic).where(PushCertificate.tenant_id == ctx.tenant_id))


def checkin(db: Session, ctx: TenantContext, cert_hash: str, msg: CheckinMessage) -> Reply:
    if isinstance(msg, Authenticate):
        return authenticate(db, ctx, cert_hash, msg)
    enrollment = _check_identity(db, ctx, cert_hash, msg.identity)
    enrollment.last_seen_at = utcnow()
    reply = _checkin_message(db, ctx, enrollment, msg)
    reply.device_id = enrollment.device_id
    return reply


def mark_seen(db: Session, answered: list[tuple[TenantContext, Reply]]) -> None:
    """The devices that sent these answered requests checked in: last_check_in moves, per tenant in one batch
    (the device door calls this once per turn, before its commit)."""
    by_tenant: dict[str, tuple[TenantContext, list[str]]] = {}
    for ctx, reply in answered:
        if reply.device_id:
            by_tenant.setdefault(ctx.tenant_id, (ctx, []))[1].append(reply.device_id)
    for ctx, device_ids in by_tenant.values():
        devices.seen(db, ctx, device_ids)


def _checkin_message(db: Session, ctx: TenantContext, enrollment: Enrollment, msg: CheckinMessage) -> Reply:
    if isinstance(msg, TokenUpdate):
        return token_update(db, ctx, enrollment, msg)
    if isinstance(msg, CheckOut):
        return check_out(db, ctx, enrollment, msg)
    if isinstance(msg, UserAuthenticate):
        return Reply(410)  # decline network-user channels: no user digest auth is offered
    if isinstance(msg, SetBootstrapToken):
        from bramley.secrets import service as secrets

        if msg.token:
            secrets.put(db, ctx, owner_type="enrollment", owner_id=enrollment.id, kind="bootstrap_token",
                        value=msg.token)
        else:
            secrets.delete(db, ctx, owner_type="enrollment", owner_id=enrollment.id, kind="bootstrap_token")
        return Reply()
    if isinstance(msg, GetBootstrapToken):
        from bramley.secrets import service as secrets

        token = secrets.get(db, ctx, owner_type="enrollment", owner_id=enrollment.id, kind="bootstrap_token",
                            audited=False)
        return Reply(body=encode_plist({"BootstrapToken": token or b""}))
    if isinstance(msg, DeclarativeManagement):
        return declarative(db, ctx, enrollment, msg)
    if isinstance(msg, GetToken):
        return Reply(400)  # no token service (com.apple.maid etc.) is offered
    raise ProtocolError("unhandled message")


def authenticate(db: Session, ctx: TenantContext, cert_hash: str, msg: Authenticate) -> Reply:
    ident = msg.identity
    if ident.is_user_channel:
        raise ProtocolError("Authenticate on a user channel")
    topic = tenant_topic(db, ctx)
    if topic and msg.topic != topic:
        raise ProtocolError("topic is not this tenant's")
    bound = bound_enrollment(db, ctx, cert_hash)
    if bound is not None and bound != ident.udid:
        raise IdentityMismatch("certificate already bound to another device")
    device = devices.enroll(
        db, ctx, udid=ident.udid, serial_number=msg.serial_number, platform=platform_of(msg.product_name, msg.model),
        model=msg.model_name or msg.model or msg.product_name, model_identifier=msg.product_name or msg.model,
        device_name=msg.device_name, os_version=msg.os_version, os_build=msg.build_version,
        mdm_enabled=False)  # "enrolled" only from the first TokenUpdate (Authenticate may precede a failed install)
    from bramley.blueprints import rules

    rules.device_enrolled(db, ctx, device.id)  # a device whose user is in a group follows its assignment rule
    now = utcnow()
    enrollment = _enrollment(db, ctx, ident.udid)
    if enrollment is None:
        enrollment = Enrollment(tenant_id=ctx.tenant_id, id=ident.udid, device_id=device.id, type="device",
                                udid=ident.udid, created_at=now)
        db.add(enrollment)
    # Re-enrollment: old pending work is dropped and the channel stays off until TokenUpdate (Apple's rule).
    channels = [ident.udid, *db.scalars(select(Enrollment.id).where(Enrollment.tenant_id == ctx.tenant_id,
                                                                     Enrollment.parent_id == ident.udid))]
    queue.deactivate(db, ctx, channels)
    db.execute(update(Enrollment).where(Enrollment.tenant_id == ctx.tenant_id, Enrollment.id.in_(channels))
               .values(enabled=False))
    enrollment.device_id, enrollment.topic, enrollment.enabled = device.id, msg.topic, False
    enrollment.token_update_tally, enrollment.authenticated_at, enrollment.last_seen_at = 0, now, now
    enrollment.checked_out_at = None
    enrollment.last_authenticate = {k: v for k, v in msg.raw.items() if isinstance(v, (str, int, bool))}
    if bound is None:
        db.add(CertAuth(tenant_id=ctx.tenant_id, cert_sha256=cert_hash, enrollment_id=ident.udid, created_at=now))
    db.flush()
    return Reply()


def token_update(db: Session, ctx: TenantContext, enrollment: Enrollment, msg: TokenUpdate) -> Reply:
    from bramley.mdm import push
    from bramley.secrets import service as secrets

    ident = msg.identity
    target = enrollment
    if ident.is_user_channel:
        target = _enrollment(db, ctx, ident.enrollment_id)
        if target is None:
            target = Enrollment(tenant_id=ctx.tenant_id, id=ident.enrollment_id, device_id=enrollment.device_id,
                                parent_id=enrollment.id, type="user", udid=ident.udid,
                                user_short_name=ident.user_short_name)
            db.add(target)
    first = target.token_update_tally == 0
    target.topic, target.token_hex, target.push_magic = msg.topic, msg.token.hex(), msg.push_magic
    target.enabled, target.push_invalid = True, False
    target.token_update_tally = (target.token_update_tally or 0) + 1
    target.awaiting_configuration = msg.awaiting_configuration
    target.last_seen_at, target.locked_at = utcnow(), None
    if msg.unlock_token:  # kept when later updates omit it
        secrets.put(db, ctx, owner_type="enrollment", owner_id=target.id, kind="unlock_token", value=msg.unlock_token)
    db.flush()
    if not ident.is_user_channel:
        devices.report(db, ctx, enrollment.device_id, columns={"mdm_enabled": True, "is_removed": False})
        if first:
            # Newly enrolled: learn what the device is, and fetch the bypass code while it can be read (15 days).
            inventory.enqueue_initial(db, ctx, enrollment)
            push.request_push(db, ctx, [enrollment.id])
    return Reply()


def check_out(db: Session, ctx: TenantContext, enrollment: Enrollment, msg: CheckOut) -> Reply:
    channels = [enrollment.id, *db.scalars(select(Enrollment.id).where(Enrollment.tenant_id == ctx.tenant_id,
                                                                        Enrollment.parent_id == enrollment.id))]
    db.execute(update(Enrollment).where(Enrollment.tenant_id == ctx.tenant_id, Enrollment.id.in_(channels))
               .values(enabled=False, checked_out_at=utcnow()))
    queue.deactivate(db, ctx, channels, reason="CheckedOut")
    devices.report(db, ctx, enrollment.device_id, columns={"mdm_enabled": False, "is_removed": True})
    return Reply()


def declarative(db: Session, ctx: TenantContext, enrollment: Enrollment, msg: DeclarativeManagement) -> Reply:
    token = f"{ctx.tenant_id[:8]}-0"
    if msg.endpoint == "tokens":
        body = {"SyncTokens": {"DeclarationsToken": token, "Timestamp": "2024-01-01T00:00:00Z"}}
        return Reply(body=json.dumps(body).encode(), content_type="application/json")
    if msg.endpoint == "declaration-items":
        body = {"Declarations": {"Activations": [], "Configurations": [], "Assets": [], "Management": []},
                "DeclarationsToken": token}
        return Reply(body=json.dumps(body).encode(), content_type="application/json")
    if msg.endpoint == "status":
        try:
            report = json.loads(msg.data or b"{}")
        except ValueError:
            raise ProtocolError("status report is not JSON") from None
        if not isinstance(report, dict):
            raise ProtocolError("status report is not an object")
        devices.report(db, ctx, enrollment.device_id, details={"declarative_status": report})
        return Reply()
    if msg.endpoint.startswith("declaration/"):
        return Reply(404)
    raise ProtocolError(f"unknown declarative endpoint {msg.endpoint!r}")


# The identity check of the connect path, and the channel's last-seen time, in one statement: the report's channel
# (a user channel sits on the same device) when this certificate is bound to its device; no row otherwise. On
# PostgreSQL one statement checks a whole turn's reports (see queue.py, "PostgreSQL answers ...").
_CHANNEL = RawStatement(
    "UPDATE mdm_enrollments SET last_seen_at = :now, locked_at = NULL FROM mdm_cert_auth c "
    "WHERE c.tenant_id = :tenant AND c.cert_sha256 = :cert AND c.enrollment_id = :udid "
    "AND mdm_enrollments.tenant_id = :tenant AND mdm_enrollments.id = :channel AND mdm_enrollments.udid = :udid "
    "RETURNING mdm_enrollments.device_id, mdm_enrollments.enabled, mdm_enrollments.type, "
    "mdm_enrollments.deferred")
_CHANNELS_PG = RawStatement(
    "UPDATE mdm_enrollments e SET last_seen_at = :now, locked_at = NULL FROM json_to_recordset(:rows::json) "
    "AS r(i int, t text, cert text, channel text, udid text) "
    "JOIN mdm_cert_auth c ON c.tenant_id = r.t AND c.cert_sha256 = r.cert AND c.enrollment_id = r.udid "
    "WHERE e.tenant_id = r.t AND e.id = r.channel AND e.udid = r.udid "
    "RETURNING r.i, e.device_id, e.enabled, e.type, e.deferred")


@dataclass
class Channel:
    """The enrollment a report arrived on, as the connect path reads it (no ORM object: most reports need none)."""

    id: str
    device_id: str
    udid: str
    type: str  # device | user
    enabled: bool
    deferred: bool = True  # has commands it said NotNow to (True when not known: they are looked for)


@dataclass
class ConnectRequest:
    """A report on the connect endpoint, from the holder of the certificate whose hash is `cert_hash`."""

    ctx: TenantContext
    cert_hash: str
    report: Report


def _channels(db: Session, requests: list[ConnectRequest]) -> list[Channel | None]:
    """Each report's channel, its identity checked and its last-seen time moved; None where the certificate is
    not bound to the report's device."""
    now = bound(db, Enrollment.last_seen_at, utcnow())
    found: list[Channel | None] = [None] * len(requests)
    if dialect_of(db) == "postgresql":
        rows = fetch_all(db, _CHANNELS_PG, {"now": now, "rows": orjson.dumps([
            {"i": i, "t": r.ctx.tenant_id, "cert": r.cert_hash, "channel": r.report.identity.enrollment_id,
             "udid": r.report.identity.udid} for i, r in enumerate(requests)]).decode()})
    else:
        rows = []
        for i, r in enumerate(requests):
            row = fetch_one(db, _CHANNEL, {"tenant": r.ctx.tenant_id, "cert": r.cert_hash, "now": now,
                                           "channel": r.report.identity.enrollment_id, "udid": r.report.identity.udid})
            if row is not None:
                rows.append((i, *row))
    for i, device_id, enabled, kind, deferred in rows:
        ident = requests[i].report.identity
        found[i] = Channel(ident.enrollment_id, device_id, ident.udid, kind, bool(enabled), bool(deferred))
    return found


def connect_turn(db: Session, requests: list[ConnectRequest]) -> list[Reply | IdentityMismatch]:
    """A turn of command results (or Idle), no channel twice, in one transaction: each is stored, its handler
    run, and the channel's next command handed out. Each report's reply, or the IdentityMismatch that refuses it
    (a refused report changed nothing).

    The hottest path of the server (every device, every exchange): plain SQL on the driver's cursor, a statement
    per step for the whole turn on PostgreSQL; the ORM only where a finished command's handler records what the
    device answered."""
    channels = _channels(db, requests)
    replies: list[Reply | IdentityMismatch] = [
        IdentityMismatch(f"certificate not bound to {r.report.identity.enrollment_id}") for r in requests]
    live = [i for i, channel in enumerate(channels) if channel is not None]
    outcomes = queue.record_results(db, [
        queue.Result(requests[i].ctx.tenant_id, channels[i].id, requests[i].report.status,
                     requests[i].report.command_uuid, requests[i].report.error_chain, channels[i].deferred)
        for i in live])
    handled = False
    for i, outcome in zip(live, outcomes):
        repeatable = outcome is None or not outcome.final or outcome.request_type in REPEATABLE_RESULTS
        replies[i] = Reply(device_id=channels[i].device_id, repeatable=repeatable)
        if outcome is not None and outcome.final:
            inventory.handle_result(db, requests[i].ctx, channels[i], outcome, requests[i].report)
            handled = True
    if handled:
        db.flush()  # before the queue is read again on the driver's cursor
    # An erased or checked-out channel (the handler may just have turned it off) gets no more work.
    open_channels = [i for i in live if channels[i].enabled]
    payloads = queue.next_commands(db, [(requests[i].ctx.tenant_id, channels[i].id) for i in open_channels])
    for i, payload in zip(open_channels, payloads):
        replies[i].body = payload or b""
    return replies


def decode_b64(value: str) -> bytes:
    return base64.b64decode(value)
