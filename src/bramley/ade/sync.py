"""The ADE sync worker: one `ade.sync` job per integration (reference §9.4).

A run signs in with the token (keeping Apple's latest session token between runs), pages through Apple's feed
and stores each page with the cursor in one transaction, so a crash resumes where it stopped:
`fetch` (every device assigned to the server) until `more_to_follow` is false, then `sync` (added / modified /
deleted since). An expired or invalid cursor starts a fresh fetch; devices that fetch no longer lists are marked
deleted, since the events that said so were lost with the cursor. Then the integration's enrollment profile is
assigned to the devices that need it, 1,000 serials per call. A finished run schedules the next one on a fixed
grid (setting `ade_sync_interval_seconds`), so however many times a sync is requested, one schedule remains.

A run holds a lease on its integration (`sync_locked_until`): two workers never page the same cursor at once.
"""
from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bramley.ade import service
from bramley.ade.client import CURSOR_RESET_CODES, DEPClient, DEPError, MAX_FETCH_LIMIT
from bramley.ade.models import ADEDevice, ADEIntegration
from bramley.ade.token import ServerToken, parse_expiry
from bramley.config import Settings
from bramley.db.base import utcnow
from bramley.db.engine import Database
from bramley.jobs import service as jobs
from bramley.jobs.service import ClaimedJob, Retry
from bramley.tenancy.context import TenantContext

log = logging.getLogger("bramley.ade.sync")

KIND = service.SYNC_KIND
LEASE = timedelta(minutes=15)
MAX_PAGES_PER_RUN = 500  # then the run ends and the next one continues from the stored cursor
ASSIGN_BATCH = 1000  # Apple's maximum serials per profile call
MAX_ASSIGN_ATTEMPTS = 3
HTTP_TIMEOUT = 30.0


class Busy(Exception):
    """Another worker is syncing this integration right now."""


class Broken(Exception):
    """Apple refused the token or the account (recorded on the integration as BROKEN)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass
class SyncReport:
    added: int = 0
    modified: int = 0
    deleted: int = 0
    assigned: int = 0
    assignment_failures: int = 0
    restarted_fetch: bool = False
    complete: bool = True  # False: stopped at MAX_PAGES_PER_RUN, more is waiting


@dataclass
class _State:
    ctx: TenantContext
    integration_id: str
    token: ServerToken
    cursor: str | None
    phase: str
    profile_uuid: str | None
    profile: dict = field(default_factory=dict)


def next_slot(now: datetime, interval: float) -> datetime:
    """The next point of the fixed sync grid after `now` (every run and request lands on the same one)."""
    epoch = now.timestamp()
    return datetime.fromtimestamp((math.floor(epoch / interval) + 1) * interval, tz=timezone.utc)


def _profile(row: ADEIntegration) -> dict:
    """The Setup Assistant profile for this server's devices (reference §9.3 profile fields)."""
    profile = {
        "profile_name": f"Bramley {row.server_name}".strip()[:255] or "Bramley",
        "url": row.profile_url,
        "is_supervised": True,
        "is_mandatory": True,
        "is_mdm_removable": False,
        "await_device_configured": True,
        "auto_advance_setup": False,
        "is_multi_user": False,
        "org_magic": row.id,
        "department": row.org_name[:255],
        "language": "en",
        "region": "US",
        "skip_setup_items": [],
    }
    if row.phone:
        profile["support_phone_number"] = row.phone
    if row.email:
        profile["support_email_address"] = row.email
    return profile


# -- database steps (each one transaction, run in a worker thread) ----------------------------------------------

def _begin(database: Database, tenant_id: str, integration_id: str, now: datetime) -> _State | None:
    from bramley.tenancy import service as tenants

    with database.unit_of_work() as s:
        tenant = tenants.get(s, tenant_id)
        if tenant is None or s.get(ADEIntegration, integration_id) is None:
            return None  # deleted since the job was queued: nothing to do
        ctx = tenants.system_context(tenant)
        took = s.execute(update(ADEIntegration).where(
            ADEIntegration.tenant_id == tenant_id, ADEIntegration.id == integration_id,
            or_(ADEIntegration.sync_locked_until.is_(None), ADEIntegration.sync_locked_until < now))
            .values(sync_locked_until=now + LEASE), execution_options={"synchronize_session": False}).rowcount
        if not took:
            raise Busy(integration_id)
        row = s.scalar(select(ADEIntegration).where(ADEIntegration.id == integration_id)
                       .execution_options(populate_existing=True))
        if row.tenant_id != tenant_id:
            return None
        token = service.load_token(s, ctx, integration_id)
        if token is None:
            return None
        if row.phase == "fetch" and row.cursor is None:
            row.fetch_started_at = now
        return _State(ctx, integration_id, token, row.cursor, row.phase, row.profile_uuid, _profile(row))


def _row(s: Session, state: _State) -> ADEIntegration | None:
    return s.scalar(select(ADEIntegration).where(ADEIntegration.tenant_id == state.ctx.tenant_id,
                                                 ADEIntegration.id == state.integration_id))


def _save_cursor(database: Database, state: _State, *, restart: bool = False) -> None:
    with database.unit_of_work() as s:
        row = _row(s, state)
        if row is None:
            return
        row.cursor, row.phase = state.cursor, state.phase
        if restart:
            row.fetch_started_at = utcnow()


def _copy_apple_fields(row: ADEDevice, apple: dict, new: bool) -> None:
    def text(name: str, limit: int) -> str:
        value = apple.get(name)
        return str(value)[:limit] if value is not None else ""

    row.model = text("model", 255)
    row.description = text("description", 255)
    row.color = text("color", 64)
    row.device_family = text("device_family", 32)
    row.os = text("os", 32)
    row.device_assigned_by = text("device_assigned_by", 320)
    row.device_assigned_date = parse_expiry(apple.get("device_assigned_date"))
    row.profile_status = text("profile_status", 16) or "empty"
    row.profile_uuid = text("profile_uuid", 64)
    row.profile_assign_time = parse_expiry(apple.get("profile_assign_time"))
    row.profile_push_time = parse_expiry(apple.get("profile_push_time"))
    if new:  # after that the asset tag is ours to edit (PATCH)
        row.asset_tag = text("asset_tag", 255) if apple.get("asset_tag") is not None else None


def _save_page(database: Database, state: _State, devices: list[dict], *, fetching: bool, fetch_done: bool,
               report: SyncReport) -> None:
    """Apply one page of Apple's feed and move the cursor, in one transaction."""
    with database.unit_of_work() as s:
        row = _row(s, state)
        if row is None:
            return
        now = utcnow()
        serials = list(dict.fromkeys(str(d["serial_number"])[:64] for d in devices))
        existing = {d.serial_number: d for d in s.scalars(select(ADEDevice).where(
            ADEDevice.tenant_id == row.tenant_id, ADEDevice.integration_id == row.id,
            ADEDevice.serial_number.in_(serials)))} if serials else {}
        for apple in devices:
            serial = str(apple["serial_number"])[:64]
            op = "added" if fetching else str(apple.get("op_type") or "modified")
            device = existing.get(serial)
            if op == "deleted":
                if device is not None and device.deleted_at is None:
                    device.deleted_at, device.needs_assignment, device.updated_at = now, False, now
                    report.deleted += 1
                continue
            new = device is None
            if new:
                device = ADEDevice(tenant_id=row.tenant_id, integration_id=row.id, serial_number=serial,
                                   blueprint_id=None if row.use_blueprint_routing else row.blueprint_id,
                                   use_blueprint_routing=row.use_blueprint_routing, failed_assignment_attempts=0,
                                   needs_assignment=False, created_at=now)
                s.add(device)
                existing[serial] = device
            if new or device.deleted_at is not None:
                report.added += 1
                device.deleted_at, device.failed_assignment_attempts = None, 0
            else:
                report.modified += 1
            _copy_apple_fields(device, apple, new)
            device.updated_at = now
            if fetching:
                device.seen_at = now
            if op == "added" or new:
                # Added to this server: it gets our profile unless it already has the current one.
                device.needs_assignment = not device.profile_uuid or device.profile_uuid != row.profile_uuid
            elif device.profile_status == "empty":
                device.needs_assignment = True  # modified and left without a profile
        s.flush()
        if fetch_done and row.fetch_started_at is not None:
            # A fresh fetch lists every device still assigned: whatever it did not list was removed meanwhile.
            gone = s.execute(update(ADEDevice).where(
                ADEDevice.tenant_id == row.tenant_id, ADEDevice.integration_id == row.id,
                ADEDevice.deleted_at.is_(None),
                or_(ADEDevice.seen_at.is_(None), ADEDevice.seen_at < row.fetch_started_at))
                .values(deleted_at=now, needs_assignment=False, updated_at=now),
                execution_options={"synchronize_session": False}).rowcount or 0
            report.deleted += gone
            row.fetch_started_at = None
        row.cursor, row.phase = state.cursor, state.phase


def _pending_assignments(database: Database, state: _State, after_pk: int) -> list[tuple[int, str]]:
    with database.unit_of_work(write=False) as s:
        return [(pk, serial) for pk, serial in s.execute(
            select(ADEDevice.pk, ADEDevice.serial_number).where(
                ADEDevice.tenant_id == state.ctx.tenant_id, ADEDevice.integration_id == state.integration_id,
                ADEDevice.needs_assignment.is_(True), ADEDevice.deleted_at.is_(None), ADEDevice.pk > after_pk)
            .order_by(ADEDevice.pk).limit(ASSIGN_BATCH))]


def _save_profile(database: Database, state: _State) -> None:
    with database.unit_of_work() as s:
        row = _row(s, state)
        if row is not None:
            row.profile_uuid = state.profile_uuid


def _record_assignments(database: Database, state: _State, statuses: dict[str, str], report: SyncReport) -> None:
    with database.unit_of_work() as s:
        now = utcnow()
        rows = s.scalars(select(ADEDevice).where(
            ADEDevice.tenant_id == state.ctx.tenant_id, ADEDevice.integration_id == state.integration_id,
            ADEDevice.serial_number.in_(list(statuses))))
        for device in rows:
            status = statuses[device.serial_number]
            device.last_assignment_status = status
            device.assignment_status_received_at = now
            if status == "SUCCESS":
                device.profile_status, device.profile_uuid = "assigned", state.profile_uuid or ""
                device.profile_assign_time = now.replace(microsecond=0)
                device.failed_assignment_attempts, device.needs_assignment = 0, False
                report.assigned += 1
            else:
                device.failed_assignment_attempts = (device.failed_assignment_attempts or 0) + 1
                # NOT_ACCESSIBLE: no longer on this server (a deleted event follows); others: try a few runs.
                device.needs_assignment = (status != "NOT_ACCESSIBLE"
                                           and device.failed_assignment_attempts < MAX_ASSIGN_ATTEMPTS)
                report.assignment_failures += 1
            device.updated_at = now


def _finish(database: Database, state: _State, settings: Settings, *, broken: str | None = None,
            schedule: bool) -> None:
    with database.unit_of_work() as s:
        row = _row(s, state)
        if row is None:
            return
        now = utcnow()
        row.sync_locked_until = None
        if broken is not None:
            row.status, row.status_reason, row.status_received_at = "BROKEN", broken, now
        elif schedule:
            row.status, row.status_reason, row.status_received_at = "SUCCESS", None, now
            row.last_device_sync = now
        if schedule:
            slot = next_slot(now, settings.ade_sync_interval_seconds)
            jobs.enqueue(s, tenant_id=row.tenant_id, kind=KIND, dedup_key=f"{row.id}:{int(slot.timestamp())}",
                         payload={"integration_id": row.id}, run_after=slot)


# -- the run -----------------------------------------------------------------------------------------------------

async def _restart(database: Database, state: _State, report: SyncReport) -> None:
    if report.restarted_fetch:
        raise DEPError(400, "CURSOR_RESET_LOOP")  # a fresh cursor failed too: let the job back off
    log.info("ADE integration %s: cursor expired or invalid; fetching every device again", state.integration_id)
    report.restarted_fetch = True
    state.cursor, state.phase = None, "fetch"
    await asyncio.to_thread(_save_cursor, database, state, restart=True)


async def _pull(client: DEPClient, database: Database, state: _State, report: SyncReport) -> None:
    for _ in range(MAX_PAGES_PER_RUN):
        fetching = state.phase == "fetch"
        try:
            if fetching:
                page = await client.fetch_devices(state.cursor, MAX_FETCH_LIMIT)
            elif state.cursor is None:
                await _restart(database, state, report)
                continue
            else:
                page = await client.sync_devices(state.cursor, MAX_FETCH_LIMIT)
        except DEPError as exc:
            if fetching and exc.code == "EXHAUSTED_CURSOR":
                state.phase = "sync"
                await asyncio.to_thread(_save_cursor, database, state)
                continue
            if exc.status == 400 and exc.code in CURSOR_RESET_CODES:
                await _restart(database, state, report)
                continue
            raise
        state.cursor = page.cursor
        fetch_done = fetching and not page.more_to_follow
        if fetch_done:
            state.phase = "sync"
        await asyncio.to_thread(_save_page, database, state, page.devices, fetching=fetching,
                                fetch_done=fetch_done, report=report)
        if not fetching and not page.more_to_follow:
            return
    report.complete = False


async def _assign(client: DEPClient, database: Database, state: _State, report: SyncReport) -> None:
    after, redefined = 0, False
    while True:
        batch = await asyncio.to_thread(_pending_assignments, database, state, after)
        if not batch:
            return
        if not state.profile_uuid:
            state.profile_uuid = await client.define_profile(state.profile)
            await asyncio.to_thread(_save_profile, database, state)
        try:
            statuses = await client.assign_profile(state.profile_uuid, [serial for _, serial in batch])
        except DEPError as exc:
            if exc.status in (400, 404) and "PROFILE" in exc.code and not redefined:
                state.profile_uuid, redefined = None, True  # Apple lost our profile: define it again
                continue
            raise
        await asyncio.to_thread(_record_assignments, database, state, statuses, report)
        after = batch[-1][0]


async def sync_integration(database: Database, settings: Settings, tenant_id: str, integration_id: str, *,
                           http: httpx.AsyncClient | None = None,
                           sessions: dict[str, str] | None = None) -> SyncReport | None:
    """One run for one integration. None when it no longer exists. Raises Busy, Broken, DEPError, httpx errors."""
    state = await asyncio.to_thread(_begin, database, tenant_id, integration_id, utcnow())
    if state is None:
        return None
    sessions = sessions if sessions is not None else {}
    own_http = http is None
    http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT)
    client = DEPClient(settings.ade_url, state.token, http=http, session_token=sessions.get(integration_id))
    report = SyncReport()
    try:
        await _pull(client, database, state, report)
        await _assign(client, database, state, report)
    except DEPError as exc:
        if exc.account_problem:
            log.warning("ADE integration %s of tenant %s: Apple refused the token (%s %s); it needs renewing or "
                        "the terms in Apple Business Manager accepting", integration_id, tenant_id, exc.status,
                        exc.code)
            await asyncio.to_thread(_finish, database, state, settings, broken=exc.code or str(exc.status),
                                    schedule=False)
            raise Broken(exc.code or str(exc.status)) from None
        await asyncio.to_thread(_finish, database, state, settings, schedule=False)
        raise
    except BaseException:
        await asyncio.to_thread(_finish, database, state, settings, schedule=False)
        raise
    finally:
        if client.session_token:
            sessions[integration_id] = client.session_token
        if own_http:
            await http.aclose()
    await asyncio.to_thread(_finish, database, state, settings, schedule=True)
    if not report.complete:
        await asyncio.to_thread(_request_more, database, state)
    log.info("ADE integration %s: +%d ~%d -%d devices, %d profiles assigned, %d assignment failures",
             integration_id, report.added, report.modified, report.deleted, report.assigned,
             report.assignment_failures)
    return report


def _request_more(database: Database, state: _State) -> None:
    with database.unit_of_work() as s:
        service.request_sync(s, state.ctx, state.integration_id)


# -- the job handler ---------------------------------------------------------------------------------------------

def _http(env) -> httpx.AsyncClient:
    client = env.state.get("ade.http")
    if client is None:
        client = env.state["ade.http"] = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        env.on_close(client.aclose)
    return client


async def handle_sync_jobs(env, batch: list[ClaimedJob]) -> dict[int, Retry]:
    sessions = env.state.setdefault("ade.sessions", {})
    outcomes: dict[int, Retry] = {}
    for job in batch:
        integration_id = str(job.payload.get("integration_id") or job.dedup_key.split(":")[0])
        try:
            await sync_integration(env.db, env.settings, job.tenant_id, integration_id, http=_http(env),
                                   sessions=sessions)
        except Busy:
            outcomes[job.id] = Retry("another sync of this integration is running", delay=60.0)
        except Broken:
            pass  # recorded on the integration (status BROKEN); a renewal queues the next sync
        except DEPError as exc:
            outcomes[job.id] = Retry(str(exc), delay=exc.retry_after)
        except httpx.HTTPError as exc:
            outcomes[job.id] = Retry(f"Apple unreachable: {type(exc).__name__}")
    return outcomes


jobs.register(KIND, handle_sync_jobs, max_attempts=20, backoff_base=30.0, backoff_cap=3600.0, batch_size=1)
