"""Jobs: coalescing enqueue, claims under a lease, completion, backoff, dead jobs, the worker loop.

Each test uses kinds of its own, so claims never touch another test's jobs in the shared database.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from bramley.db.base import utcnow
from bramley.jobs import service as jobs
from bramley.jobs.models import Job
from bramley.jobs.service import Failure, GiveUp, Retry
from bramley.jobs.worker import Worker

TENANT = "00000000-0000-4000-8000-00000000j0b5"


@pytest.fixture
def kind() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def rows(db, kind: str) -> list[Job]:
    with db.unit_of_work() as s:
        return list(s.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))


class StatementCounter:
    def __init__(self, engine, table: str):
        self.engine, self.table, self.statements = engine, table, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO " + self.table.upper()):
            self.statements.append(statement)


def test_enqueue_same_key_while_pending_adds_nothing(db, kind):
    for n in range(3):
        with db.unit_of_work() as s:
            jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="enr-1", payload={"n": n})
    found = rows(db, kind)
    assert [(j.dedup_key, j.payload, j.attempts) for j in found] == [("enr-1", {"n": 0}, 0)]


def test_bulk_enqueue_of_1000_keys_is_one_statement_and_coalesces(db, kind):
    keys = [f"enr-{i}" for i in range(1000)]
    with StatementCounter(db.engine, "jobs") as counter, db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=keys + keys[:10])
    assert len(counter.statements) == 1
    with db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=keys[:500])
    assert sorted(j.dedup_key for j in rows(db, kind)) == sorted(keys)


def test_claim_takes_due_jobs_once_until_the_lease_runs_out(db, kind):
    now = utcnow()
    with db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=["a", "b"], run_after=now)
        jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="later", run_after=now + timedelta(minutes=5))
    with db.unit_of_work() as s:
        first = jobs.claim(s, limit=10, lease=30, kinds=[kind], now=now)
    assert sorted(j.dedup_key for j in first) == ["a", "b"] and {j.attempts for j in first} == {1}
    with db.unit_of_work() as s:
        assert jobs.claim(s, limit=10, lease=30, kinds=[kind], now=now + timedelta(seconds=29)) == []
    # The worker died: after the lease, the jobs are claimed again (and "later" is due by then too).
    with db.unit_of_work() as s:
        again = jobs.claim(s, limit=10, lease=30, kinds=[kind], now=now + timedelta(minutes=6))
    assert sorted((j.dedup_key, j.attempts) for j in again) == [("a", 2), ("b", 2), ("later", 1)]


def test_complete_deletes_and_a_stale_claim_cannot_complete(db, kind):
    now = utcnow()
    with db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=["a", "b"], run_after=now)
    with db.unit_of_work() as s:
        stale = jobs.claim(s, limit=10, lease=1, kinds=[kind], now=now)
    with db.unit_of_work() as s:
        fresh = jobs.claim(s, limit=10, lease=60, kinds=[kind], now=now + timedelta(seconds=2))
    with db.unit_of_work() as s:
        jobs.complete(s, stale)  # the first worker finally finishes: the second one owns the jobs now
    assert len(rows(db, kind)) == 2
    with db.unit_of_work() as s:
        jobs.complete(s, fresh)
    assert rows(db, kind) == []
    with db.unit_of_work() as s:  # done jobs free their key
        jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="a")
    assert [j.dedup_key for j in rows(db, kind)] == ["a"]


def test_enqueue_while_running_runs_the_job_once_more(db, kind):
    now = utcnow()
    with db.unit_of_work() as s:
        jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="a", run_after=now)
    with db.unit_of_work() as s:
        claimed = jobs.claim(s, limit=1, lease=60, kinds=[kind], now=now)
    with db.unit_of_work() as s:  # new work arrives while the job runs
        jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="a")
    with db.unit_of_work() as s:
        jobs.complete(s, claimed, now=now)
    [row] = rows(db, kind)
    assert (row.rerun, row.attempts, row.locked_until) == (False, 0, None)
    with db.unit_of_work() as s:
        assert [j.dedup_key for j in jobs.claim(s, limit=1, lease=60, kinds=[kind], now=now)] == ["a"]


def test_failures_back_off_exponentially_with_jitter_then_die(db, kind):
    jobs.register(kind, lambda env, batch: None, max_attempts=3, backoff_base=10, backoff_cap=15)
    now = utcnow()
    with db.unit_of_work() as s:
        jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="a", run_after=now)
    delays = []
    for attempt in (1, 2):
        with db.unit_of_work() as s:
            [job] = jobs.claim(s, limit=1, lease=60, kinds=[kind], now=now)
            assert job.attempts == attempt
            [(_, run_after)] = jobs.fail(s, [Failure(job, "boom")], now=now)
        delays.append((run_after - now).total_seconds())
        with db.unit_of_work() as s:  # not due before its backoff
            assert jobs.claim(s, limit=1, lease=60, kinds=[kind], now=run_after - timedelta(seconds=1)) == []
        now = run_after
    assert 5 <= delays[0] <= 10 and 7.5 <= delays[1] <= 15  # base 10: ceiling 10, then 20 capped at 15
    with db.unit_of_work() as s:
        [job] = jobs.claim(s, limit=1, lease=60, kinds=[kind], now=now)
        assert jobs.fail(s, [Failure(job, "boom again")], now=now) == [(job.id, None)]
    [row] = rows(db, kind)
    assert row.dead_at is not None and row.last_error == "boom again" and row.attempts == 3
    with db.unit_of_work() as s:  # dead jobs are never claimed, and no longer block their key
        assert jobs.claim(s, limit=5, lease=60, kinds=[kind], now=now + timedelta(days=1)) == []
        jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="a")
    assert [(j.dedup_key, j.dead_at is None) for j in rows(db, kind)] == [("a", False), ("a", True)]
    with db.unit_of_work() as s:
        assert jobs.purge_dead(s, older_than=timedelta(days=7), now=now + timedelta(days=8)) >= 1
    assert [j.dead_at for j in rows(db, kind)] == [None]


def test_backoff_is_capped_and_jittered():
    rng = random.Random(7)
    values = [jobs.backoff(n, base=2, cap=60, rng=rng) for n in range(1, 12)]
    assert 1 <= values[0] <= 2 and 2 <= values[1] <= 4
    assert all(30 <= v <= 60 for v in values[6:])
    assert len({round(v, 6) for v in values[6:]}) > 1  # jittered, not a fixed schedule


def test_two_claimers_never_get_the_same_job(db, kind):
    with db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=[f"k{i}" for i in range(400)])
    got: list[list[int]] = [[], [], [], []]
    barrier = threading.Barrier(len(got))

    def claimer(index: int) -> None:
        barrier.wait()
        while True:
            with db.unit_of_work() as s:
                batch = jobs.claim(s, limit=7, lease=300, kinds=[kind])
            if not batch:
                return
            got[index].extend(j.id for j in batch)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(got))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    all_ids = [i for ids in got for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 400
    if db.dialect == "postgresql":
        assert sum(1 for ids in got if ids) > 1  # SKIP LOCKED lets them work side by side


def test_worker_runs_handlers_and_a_failing_job_does_not_block_others(db, kind):
    seen: list[str] = []

    def handler(env, batch):
        seen.extend(j.dedup_key for j in batch)
        return {j.id: (GiveUp("bad input") if j.dedup_key == "bad" else Retry("later", delay=60))
                for j in batch if j.dedup_key in ("bad", "flaky")}

    jobs.register(kind, handler)
    with db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=["ok1", "bad", "flaky", "ok2"])

    async def run():
        async with Worker(db, kinds=[kind]) as worker:
            return await worker.drain()

    assert asyncio.run(run()) == 4
    assert sorted(seen) == ["bad", "flaky", "ok1", "ok2"]
    left = {j.dedup_key: j for j in rows(db, kind)}
    assert set(left) == {"bad", "flaky"}
    assert left["bad"].dead_at is not None and left["bad"].last_error == "bad input"
    assert left["flaky"].dead_at is None and left["flaky"].run_after > utcnow() + timedelta(seconds=50)


def test_worker_retries_a_batch_whose_handler_raises(db, kind):
    async def handler(env, batch):
        raise RuntimeError("database on fire")

    jobs.register(kind, handler, backoff_base=30)
    with db.unit_of_work() as s:
        jobs.enqueue_many(s, tenant_id=TENANT, kind=kind, items=["a", "b"])

    async def run():
        async with Worker(db, kinds=[kind]) as worker:
            return await worker.drain()

    assert asyncio.run(run()) == 2
    assert {(j.attempts, j.last_error, j.dead_at) for j in rows(db, kind)} == {
        (1, "RuntimeError: database on fire", None)}


def test_worker_thread_wakes_on_commit_without_waiting_for_the_poll(db, kind):
    done = threading.Event()
    jobs.register(kind, lambda env, batch: done.set())
    worker = Worker(db, kinds=[kind], poll_interval=60)
    worker.start_in_thread()
    try:
        time.sleep(0.2)  # let it go to sleep on its 60 s poll
        started = time.monotonic()
        with db.unit_of_work() as s:
            jobs.enqueue(s, tenant_id=TENANT, kind=kind, dedup_key="now")
        assert done.wait(10)
        assert time.monotonic() - started < 10
    finally:
        worker.stop_thread()
    deadline = time.time() + 5
    while rows(db, kind) and time.time() < deadline:
        time.sleep(0.05)
    assert rows(db, kind) == []
