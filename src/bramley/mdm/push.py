"""MDM pushes: coalesced push jobs per enrollment, the job handler that sends them, the tenant's push credentials.

A push only tells a device "check in"; it carries no command. So pushes coalesce: however many commands are
queued for an enrollment, one push job is pending for it (dedup key = enrollment id), and APNs itself keeps
only the newest push per offline device. Enqueueing for many devices is one bulk statement.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from bramley.audit import service as audit
from bramley.db.base import utcnow
from bramley.errors import InvalidField
from bramley.jobs import service as jobs
from bramley.jobs.service import ClaimedJob, GiveUp, Retry
from bramley.mdm import apns
from bramley.mdm.models import Enrollment, PushCertificate
from bramley.secrets import service as secrets
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.mdm.push")

KIND = "apns.push"
SECRET_KIND = "apns_key"  # the push certificate's private key, or the token-auth .p8 key; owner: the tenant
# A refused certificate needs an operator; retrying every few seconds would only hammer APNs.
CREDENTIALS_RETRY_SECONDS = 900.0


# --- asking for pushes -----------------------------------------------------------------------------------

def request_push(db: Session, ctx: TenantContext, enrollment_ids: Iterable[str]) -> None:
    """Push these enrollments soon: one bulk, coalescing job insert (an enrollment already waiting is left as is).

    Runs in the caller's transaction, so the push is only sent if the commands it announces commit.
    """
    jobs.enqueue_many(db, tenant_id=ctx.tenant_id, kind=KIND, items=list(dict.fromkeys(enrollment_ids)))


def clear_push_invalid(db: Session, ctx: TenantContext, enrollment_ids: Iterable[str]) -> None:
    """A new TokenUpdate arrived: pushes may go to these enrollments again (setting the column does the same)."""
    ids = list(enrollment_ids)
    if ids:
        db.execute(update(Enrollment).where(Enrollment.tenant_id == ctx.tenant_id, Enrollment.id.in_(ids))
                   .values(push_invalid=False), execution_options={"synchronize_session": False})


def _mark_invalid(db: Session, tenant_id: str, dead: list[tuple[str, str]]) -> None:
    # Only the token APNs refused: a TokenUpdate that raced the push has already brought a good one.
    table = Enrollment.__table__
    db.execute(update(table).where(table.c.tenant_id == tenant_id, table.c.id == bindparam("b_id"),
                                   table.c.token_hex == bindparam("b_token")).values(push_invalid=True),
               [{"b_id": enrollment_id, "b_token": token} for enrollment_id, token in dead])


# --- push credentials ------------------------------------------------------------------------------------

def _invalid(field: str, exc: apns.CredentialError) -> InvalidField:
    return InvalidField({field: [str(exc)]})


def _save(db: Session, ctx: TenantContext, *, key_pem: str, **values) -> PushCertificate:
    row = db.get(PushCertificate, ctx.tenant_id)
    if row is None:
        row = PushCertificate(tenant_id=ctx.tenant_id)
        db.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    secrets.put(db, ctx, owner_type="tenant", owner_id=ctx.tenant_id, kind=SECRET_KIND, value=key_pem)
    audit.record(db, ctx, action="update", target_type="tenant", target_id=ctx.tenant_id,
                 target_component="apns", new_state={"topic": row.topic, "auth_type": row.auth_type,
                                                     "not_after": row.not_after.isoformat() if row.not_after else None})
    db.flush()
    return row


def save_certificate(db: Session, ctx: TenantContext, *, cert_pem: bytes, key_pem: bytes,
                     now: datetime | None = None) -> PushCertificate:
    """Store the tenant's MDM push certificate (topic = subject UID) and its key; raises InvalidField."""
    try:
        info = apns.parse_certificate(cert_pem, key_pem, now=now)
    except apns.CredentialError as exc:
        raise _invalid("certificate", exc) from None
    return _save(db, ctx, key_pem=info.key_pem, topic=info.topic, auth_type="certificate", cert_pem=info.cert_pem,
                 key_id="", team_id="", not_after=info.not_after)


def save_token_key(db: Session, ctx: TenantContext, *, key_pem: bytes, key_id: str, team_id: str,
                   topic: str) -> PushCertificate:
    """Store token-auth credentials (.p8 key, key id, team id) and the topic to push on; raises InvalidField."""
    errors = {name: [f"{name.replace('_', ' ')} is required"]
              for name, value in (("key_id", key_id), ("team_id", team_id), ("topic", topic)) if not value.strip()}
    if errors:
        raise InvalidField(errors)
    try:
        pem = apns.parse_token_key(key_pem)
    except apns.CredentialError as exc:
        raise _invalid("key", exc) from None
    return _save(db, ctx, key_pem=pem, topic=topic.strip(), auth_type="token", cert_pem="", key_id=key_id.strip(),
                 team_id=team_id.strip(), not_after=None)


def get_certificate(db: Session, ctx: TenantContext) -> PushCertificate | None:
    return db.get(PushCertificate, ctx.tenant_id)


def load_credentials(db: Session, ctx: TenantContext) -> apns.Credentials | None:
    """The tenant's push credentials with the key decrypted (unaudited: Bramley itself uses it), or None."""
    row = get_certificate(db, ctx)
    if row is None:
        return None
    key = secrets.get(db, ctx, owner_type="tenant", owner_id=ctx.tenant_id, kind=SECRET_KIND, audited=False)
    if key is None:
        return None
    return apns.Credentials(topic=row.topic, auth_type=row.auth_type, key_pem=key.decode(), cert_pem=row.cert_pem,
                            key_id=row.key_id, team_id=row.team_id)


# --- the job handler -------------------------------------------------------------------------------------

async def _provider(env, ctx: TenantContext, row: PushCertificate, db: Session) -> apns.APNsProvider | None:
    """One provider per tenant (= topic), kept by the worker and rebuilt when the credentials change."""
    cache: dict = env.state.setdefault("apns.providers", {})
    if not cache:
        async def _close_all() -> None:
            for _, provider in list(cache.values()):
                await provider.aclose()
            cache.clear()
        env.on_close(_close_all)
    fingerprint = (row.topic, row.auth_type, row.updated_at)
    cached = cache.get(ctx.tenant_id)
    if cached and cached[0] == fingerprint:
        return cached[1]
    creds = load_credentials(db, ctx)
    if creds is None:
        return None
    settings = env.settings
    provider = apns.APNsProvider(creds, base_url=settings.apns_url, concurrency=settings.apns_concurrency,
                                 timeout=settings.apns_timeout_seconds, expiration=settings.apns_expiration_seconds,
                                 ca_file=settings.apns_ca_file)
    cache[ctx.tenant_id] = (fingerprint, provider)
    if cached:
        await cached[1].aclose()
    return provider


async def _push_tenant(env, tenant_id: str, batch: list[ClaimedJob]) -> dict[int, Retry | GiveUp]:
    from bramley.tenancy import service as tenants

    with env.db.unit_of_work() as s:
        tenant = tenants.get(s, tenant_id)
        if tenant is None:
            return {}  # tenant deleted: nothing to push
        ctx = tenants.system_context(tenant)
        row = get_certificate(s, ctx)
        provider = await _provider(env, ctx, row, s) if row is not None else None
        rows = {r.id: r for r in s.execute(
            select(Enrollment.id, Enrollment.token_hex, Enrollment.push_magic, Enrollment.topic,
                   Enrollment.enabled, Enrollment.push_invalid)
            .where(Enrollment.tenant_id == tenant_id, Enrollment.id.in_([j.dedup_key for j in batch])))}
    if provider is None:
        log.warning("tenant %s has no APNs push certificate: %d pushes dropped (bramley apns upload)",
                    tenant_id, len(batch))
        return {}
    targets: list[tuple[ClaimedJob, str, str]] = []
    for job in batch:
        r = rows.get(job.dedup_key)
        # Gone, checked out, never sent a TokenUpdate, or APNs called the token dead: nothing to wake.
        if r is None or not r.enabled or not r.token_hex or not r.push_magic or r.push_invalid:
            continue
        if r.topic and r.topic != provider.creds.topic:
            log.warning("enrollment %s of tenant %s enrolled on topic %s, the push certificate's is %s: not pushed",
                        r.id, tenant_id, r.topic, provider.creds.topic)
            continue
        targets.append((job, r.token_hex, r.push_magic))
    results = await provider.push_many([(token, magic) for _, token, magic in targets])

    outcomes: dict[int, Retry | GiveUp] = {}
    dead: list[tuple[str, str]] = []
    refused: apns.PushResult | None = None
    for (job, token, _), result in zip(targets, results):
        if result.ok:
            continue
        what = f"APNs {result.status} {result.reason}".strip()
        if result.token_dead:
            dead.append((job.dedup_key, token))
        elif result.credentials_refused:
            refused = result
            outcomes[job.id] = Retry(what, delay=CREDENTIALS_RETRY_SECONDS)
        elif result.retryable:
            outcomes[job.id] = Retry(what)
        else:
            outcomes[job.id] = GiveUp(what)
    if refused is not None:
        # The alert: nothing reaches this tenant's devices until an operator uploads a valid certificate.
        log.error("APNs refused the push credentials of tenant %s (topic %s): %s %s; renew or re-upload them "
                  "with `bramley apns upload`", tenant_id, provider.creds.topic, refused.status, refused.reason)
    if dead:
        log.info("tenant %s: APNs says %d push tokens are dead; not pushing them until their next TokenUpdate",
                 tenant_id, len(dead))
        with env.db.unit_of_work() as s:
            _mark_invalid(s, tenant_id, dead)
    return outcomes


async def handle_push_jobs(env, batch: list[ClaimedJob]) -> dict[int, Retry | GiveUp]:
    """Job handler: one enrollment query and one bounded fan-out per tenant in the batch."""
    by_tenant: dict[str, list[ClaimedJob]] = defaultdict(list)
    for job in batch:
        by_tenant[job.tenant_id].append(job)
    outcomes: dict[int, Retry | GiveUp] = {}
    parts = await asyncio.gather(*(_push_tenant(env, t, js) for t, js in by_tenant.items()), return_exceptions=True)
    for (tenant_id, tenant_jobs), part in zip(by_tenant.items(), parts):
        if isinstance(part, BaseException):
            # One tenant's trouble (unreadable key, ...) must not hold back the others' pushes.
            log.error("pushes for tenant %s failed: %s: %s", tenant_id, type(part).__name__, part)
            outcomes.update({job.id: Retry(f"{type(part).__name__}: {part}") for job in tenant_jobs})
        else:
            outcomes.update(part)
    return outcomes


jobs.register(KIND, handle_push_jobs, max_attempts=6, backoff_base=5.0, backoff_cap=600.0, batch_size=1000)
