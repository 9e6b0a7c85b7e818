"""Background jobs: coalescing enqueue, claim under a lease, complete, fail with backoff, handlers per kind.

Life of a job row: enqueued (pending) → claimed (locked_until set, attempts + 1) → deleted when it succeeds,
or back to pending with a later run_after when it fails, or dead (dead_at set) when it runs out of attempts.
A claim whose lease ran out (crashed worker) is claimed again. Handlers must therefore be idempotent.
"""
from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, event, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bramley.db.base import utcnow
from bramley.jobs.models import Job

# Rows per INSERT: 9 parameters a row stays under SQLite's 32,766 and PostgreSQL's 65,535 bind parameters.
BULK_CHUNK = 3000
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ClaimedJob:
    """A snapshot of a claimed row. `attempts` (this claim's number) fences complete/fail against stale workers."""

    id: int
    tenant_id: str
    kind: str
    dedup_key: str
    payload: dict
    attempts: int
    created_at: datetime


class Retry(Exception):
    """Run the job again later: after `delay` seconds, or after the kind's backoff when None."""

    def __init__(self, reason: str, *, delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class GiveUp(Exception):
    """The job cannot succeed (bad input, missing configuration): mark it dead now."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# A handler gets the worker environment and a batch of jobs of its kind. It returns None when all succeeded,
# or {job_id: Retry | GiveUp} for the ones that did not. Raising fails the whole batch (Retry/GiveUp as given,
# anything else as a Retry with backoff). It may be sync (run in a thread) or async.
Outcomes = Mapping[int, Retry | GiveUp] | None
Handler = Callable[[Any, list[ClaimedJob]], Outcomes | Awaitable[Outcomes]]


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler
    max_attempts: int = 8
    backoff_base: float = 5.0  # seconds before the first retry (jittered)
    backoff_cap: float = 3600.0
    batch_size: int = 500


REGISTRY: dict[str, Kind] = {}


def register(name: str, handler: Handler, *, max_attempts: int = 8, backoff_base: float = 5.0,
             backoff_cap: float = 3600.0, batch_size: int = 500) -> Kind:
    """Make `handler` run the jobs of kind `name` (replacing an earlier registration)."""
    kind = Kind(name, handler, max_attempts, backoff_base, backoff_cap, batch_size)
    REGISTRY[name] = kind
    return kind


@dataclass(frozen=True)
class Periodic:
    """Housekeeping a worker runs every `every` (queue compaction, ...): `fn(session, settings)` returns how many
    rows it touched. Idempotent, so two workers running it at about the same time do no harm."""

    name: str
    fn: Callable[[Session, Any], int]
    every: timedelta


PERIODIC: dict[str, Periodic] = {}


def register_periodic(name: str, fn: Callable[[Session, Any], int], *, every: timedelta) -> Periodic:
    task = Periodic(name, fn, every)
    PERIODIC[name] = task
    return task


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with equal jitter: between half and all of min(cap, base * 2^(attempt-1))."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


# --- enqueue ---------------------------------------------------------------------------------------------

def _insert(db: Session):
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def enqueue(db: Session, *, tenant_id: str, kind: str, dedup_key: str, payload: dict | None = None,
            run_after: datetime | None = None) -> None:
    """Add a job unless one with the same (tenant, kind, dedup_key) is pending (then nothing changes)."""
    enqueue_many(db, tenant_id=tenant_id, kind=kind, items={dedup_key: payload or {}}, run_after=run_after)


def enqueue_many(db: Session, *, tenant_id: str, kind: str, items: Mapping[str, dict] | Iterable[str],
                 run_after: datetime | None = None) -> None:
    """Coalescing bulk enqueue: one INSERT ... ON CONFLICT statement per 3,000 keys.

    `items` maps dedup keys to payloads, or is just keys (empty payloads). A key already pending keeps its
    row, payload and run_after; if that row is being run right now it is flagged to run once more, because
    the running attempt may have started before the work this enqueue announces existed.
    """
    if not isinstance(items, Mapping):
        items = dict.fromkeys(items, None)
    if not items:
        return
    now = utcnow()
    due = run_after or now
    rows = [{"tenant_id": tenant_id, "kind": kind, "dedup_key": key, "payload": payload or {}, "run_after": due,
             "attempts": 0, "last_error": "", "rerun": False, "created_at": now} for key, payload in items.items()]
    insert = _insert(db)
    for start in range(0, len(rows), BULK_CHUNK):
        stmt = insert(Job).values(rows[start:start + BULK_CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=[Job.tenant_id, Job.kind, Job.dedup_key], index_where=Job.dead_at.is_(None),
            set_={"rerun": True}, where=Job.locked_until.is_not(None))
        db.execute(stmt)
    db.info[_ENQUEUED] = True


# --- claim, complete, fail -------------------------------------------------------------------------------

_sqlite_claim_lock = threading.Lock()


def _due(kinds: Collection[str] | None, now: datetime):
    due = select(Job.id).where(Job.dead_at.is_(None), Job.run_after <= now,
                               or_(Job.locked_until.is_(None), Job.locked_until <= now))
    if kinds is not None:
        due = due.where(Job.kind.in_(list(kinds)))
    return due


def has_due(db: Session, *, kinds: Collection[str] | None = None, now: datetime | None = None) -> bool:
    """Is anything due? A read: an idle worker polls with this, so it never takes SQLite's write lock idly."""
    return db.scalar(_due(kinds, now or utcnow()).limit(1)) is not None


def claim(db: Session, *, limit: int, lease: float, kinds: Collection[str] | None = None,
          now: datetime | None = None) -> list[ClaimedJob]:
    """Take up to `limit` due jobs for `lease` seconds, oldest due first.

    PostgreSQL: the due rows are picked FOR UPDATE SKIP LOCKED, so any number of workers claim side by side
    and never get the same job. SQLite has one writer; a process lock keeps in-process claimers in line too.
    Commit right after claiming so other workers see the lease.
    """
    now = now or utcnow()
    is_pg = db.get_bind().dialect.name == "postgresql"
    due = _due(kinds, now).order_by(Job.run_after, Job.id).limit(limit)
    if is_pg:
        due = due.with_for_update(skip_locked=True)
    stmt = (update(Job).where(Job.id.in_(due.scalar_subquery()))
            .values(locked_until=now + timedelta(seconds=lease), attempts=Job.attempts + 1)
            .returning(Job.id, Job.tenant_id, Job.kind, Job.dedup_key, Job.payload, Job.attempts, Job.created_at,
                       Job.run_after))
    if is_pg:
        rows = db.execute(stmt, execution_options={"synchronize_session": False}).all()
    else:
        with _sqlite_claim_lock:
            rows = db.execute(stmt, execution_options={"synchronize_session": False}).all()
    rows.sort(key=lambda r: (r.run_after, r.id))
    return [ClaimedJob(r.id, r.tenant_id, r.kind, r.dedup_key, r.payload or {}, r.attempts, r.created_at)
            for r in rows]


def complete(db: Session, jobs: Sequence[ClaimedJob], *, now: datetime | None = None) -> None:
    """Finished: delete the rows, except those enqueued again meanwhile, which become due at once."""
    now = now or utcnow()
    for start in range(0, len(jobs), BULK_CHUNK):
        fence = tuple_(Job.id, Job.attempts).in_([(j.id, j.attempts) for j in jobs[start:start + BULK_CHUNK]])
        db.execute(delete(Job).where(fence, Job.rerun.is_(False)), execution_options={"synchronize_session": False})
        db.execute(update(Job).where(fence, Job.rerun.is_(True))
                   .values(rerun=False, attempts=0, locked_until=None, run_after=now, last_error=""),
                   execution_options={"synchronize_session": False})


@dataclass(frozen=True)
class Failure:
    job: ClaimedJob
    error: str
    delay: float | None = None  # None: the kind's backoff
    give_up: bool = False


def fail(db: Session, failures: Sequence[Failure], *, now: datetime | None = None,
         rng: random.Random | None = None) -> list[tuple[int, datetime | None]]:
    """Failed: due again after a backoff, or dead once out of attempts (or given up).

    A job enqueued again while it ran is never made dead: its attempts restart, as for a fresh job.
    Returns (job id, next run_after or None when dead) per failure.
    """
    if not failures:
        return []
    now = now or utcnow()
    params, result = [], []
    for f in failures:
        kind = REGISTRY.get(f.job.kind) or Kind(f.job.kind, _no_handler)
        dead = f.give_up or f.job.attempts >= kind.max_attempts
        delay = f.delay if f.delay is not None else backoff(
            f.job.attempts, base=kind.backoff_base, cap=kind.backoff_cap, rng=rng)
        run_after = now + timedelta(seconds=delay)
        params.append({"b_id": f.job.id, "b_attempts": f.job.attempts, "b_run_after": run_after,
                       "b_dead_at": now if dead else None, "b_error": f.error[:MAX_ERROR_CHARS]})
        result.append((f.job.id, None if dead else run_after))
    table = Job.__table__
    dead_at = bindparam("b_dead_at", type_=table.c.dead_at.type)
    stmt = (update(table).where(table.c.id == bindparam("b_id"), table.c.attempts == bindparam("b_attempts"))
            .values(locked_until=None, run_after=bindparam("b_run_after"), last_error=bindparam("b_error"),
                    dead_at=case((table.c.rerun.is_(True), None), else_=dead_at),
                    attempts=case((table.c.rerun.is_(True), 0), else_=table.c.attempts),
                    rerun=False))
    db.execute(stmt, params)
    return result


def _no_handler(_env, _jobs):  # pragma: no cover - placeholder for kinds nobody registered
    raise GiveUp("no handler registered")


def purge_dead(db: Session, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete dead jobs older than the retention."""
    cutoff = (now or utcnow()) - older_than
    return db.execute(delete(Job).where(Job.dead_at.is_not(None), Job.dead_at < cutoff),
                      execution_options={"synchronize_session": False}).rowcount or 0


def counts(db: Session, *, kind: str | None = None) -> dict[str, int]:
    """How many jobs are pending, running and dead (for status output and tests)."""
    now = utcnow()
    state = case((Job.dead_at.is_not(None), "dead"),
                 (Job.locked_until.is_not(None) & (Job.locked_until > now), "running"), else_="pending")
    stmt = select(state, func.count()).group_by(state)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    out = {"pending": 0, "running": 0, "dead": 0}
    out.update({k: n for k, n in db.execute(stmt).all()})
    return out


# --- wake-ups --------------------------------------------------------------------------------------------
# An in-process worker sleeps between polls; a commit that enqueued something wakes it at once, so an
# interactive action (lock this Mac) does not wait for the next poll. Other processes still poll.

_ENQUEUED = "bramley.jobs.enqueued"
_wake_listeners: set[Callable[[], None]] = set()
_wake_lock = threading.Lock()


def add_wake_listener(fn: Callable[[], None]) -> None:
    with _wake_lock:
        _wake_listeners.add(fn)


def remove_wake_listener(fn: Callable[[], None]) -> None:
    with _wake_lock:
        _wake_listeners.discard(fn)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_ENQUEUED, False):
        with _wake_lock:
            listeners = list(_wake_listeners)
        for fn in listeners:
            fn()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_ENQUEUED, None)
