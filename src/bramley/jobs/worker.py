"""The worker loop: claim due jobs, run their handlers, record the outcome.

`bramley serve` runs one in a background thread (setting `run_worker`); `bramley worker` runs it standalone,
as many times as wanted (PostgreSQL hands each job to one claimer). A failing or slow job never blocks the
others: failures are rescheduled with backoff, and a handler that overruns its lease is cut off.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bramley.config import Settings
from bramley.db.base import utcnow
from bramley.db.engine import Database
from bramley.jobs import service as jobs
from bramley.jobs.service import ClaimedJob, Failure, GiveUp, Kind, Retry

log = logging.getLogger("bramley.jobs")

# Modules that register handlers when imported.
HANDLER_MODULES = ("bramley.mdm.push", "bramley.mdm.housekeeping", "bramley.trust.service", "bramley.ade.sync")
PURGE_EVERY = timedelta(hours=1)


def load_handlers() -> dict[str, Kind]:
    for name in HANDLER_MODULES:
        importlib.import_module(name)
    return jobs.REGISTRY


class WorkerEnv:
    """What handlers get besides their jobs: the database, settings, and per-worker state (client pools).

    Handlers may keep long-lived objects in `state` and register an async closer for them with `on_close`.
    """

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self.state: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                await closer()
            except Exception:  # pragma: no cover - best effort on shutdown
                log.exception("closing worker resource failed")
        self.state.clear()


class Worker:
    def __init__(self, db: Database, settings: Settings | None = None, *, kinds: list[str] | None = None,
                 batch_size: int | None = None, poll_interval: float | None = None, lease: float | None = None,
                 concurrency: int | None = None):
        self.db = db
        self.settings = settings or db.settings
        registry = load_handlers()
        self.kinds = list(kinds) if kinds is not None else None
        self._registry = registry
        self.batch_size = batch_size or self.settings.worker_batch_size
        self.poll_interval = poll_interval if poll_interval is not None else self.settings.worker_poll_seconds
        self.lease = lease or self.settings.worker_lease_seconds
        self.concurrency = concurrency or self.settings.worker_concurrency
        self.env = WorkerEnv(db, self.settings)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._last_run: dict[str, datetime] = {}  # periodic task name -> when this worker last ran it

    async def __aenter__(self) -> "Worker":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.env.aclose()

    # --- one round -------------------------------------------------------------------------------------

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Claim one batch of due jobs and run it. Returns how many jobs were claimed."""
        kinds = self.kinds if self.kinds is not None else list(self._registry)
        if not kinds:
            return 0
        with self.db.unit_of_work() as s:
            if not jobs.has_due(s, kinds=kinds, now=now):
                return 0
        # A new transaction whose first statement writes (SQLite: no read-to-write upgrade to fail).
        with self.db.unit_of_work() as s:
            claimed = jobs.claim(s, limit=self.batch_size, lease=self.lease, kinds=kinds, now=now)
        if not claimed:
            return 0
        by_kind: dict[str, list[ClaimedJob]] = defaultdict(list)
        for job in claimed:
            by_kind[job.kind].append(job)
        batches = []
        for name, group in by_kind.items():
            kind = self._registry[name]
            for start in range(0, len(group), kind.batch_size):
                batches.append(self._run_batch(kind, group[start:start + kind.batch_size], now))
        await asyncio.gather(*batches)
        return len(claimed)

    async def drain(self, *, now: datetime | None = None, max_rounds: int = 1000) -> int:
        """Run rounds until nothing is due (tests, `bramley worker --once`). Returns jobs claimed."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once(now=now)
            if not n:
                break
            total += n
        return total

    async def _run_batch(self, kind: Kind, batch: list[ClaimedJob], now: datetime | None) -> None:
        try:
            if inspect.iscoroutinefunction(kind.handler):
                coro = kind.handler(self.env, batch)
            else:
                coro = asyncio.to_thread(kind.handler, self.env, batch)
            outcomes = await asyncio.wait_for(coro, timeout=self.lease * 0.9) or {}
        except (Retry, GiveUp) as exc:
            outcomes = {job.id: exc for job in batch}
        except asyncio.TimeoutError:
            log.warning("jobs %s: batch of %d ran past its lease; retrying later", kind.name, len(batch))
            outcomes = {job.id: Retry("timed out") for job in batch}
        except Exception as exc:
            log.exception("jobs %s: handler failed on a batch of %d", kind.name, len(batch))
            outcomes = {job.id: Retry(f"{type(exc).__name__}: {exc}") for job in batch}
        done = [job for job in batch if job.id not in outcomes]
        failures = []
        for job in batch:
            outcome = outcomes.get(job.id)
            if isinstance(outcome, GiveUp):
                failures.append(Failure(job, outcome.reason, give_up=True))
            elif isinstance(outcome, Retry):
                failures.append(Failure(job, outcome.reason, delay=outcome.delay))
        try:
            with self.db.unit_of_work() as s:
                jobs.complete(s, done, now=now)
                results = jobs.fail(s, failures, now=now)
        except Exception:
            # The leases run out and the jobs are claimed again: handlers are idempotent.
            log.exception("jobs %s: recording the outcome of %d jobs failed", kind.name, len(batch))
            return
        for (job_id, run_after), failure in zip(results, failures):
            if run_after is None:
                log.error("jobs %s: job %s (%s) is dead after %d attempts: %s", kind.name, job_id,
                          failure.job.dedup_key, failure.job.attempts, failure.error)

    # --- the loop ----------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until `stop` is set; wake early when this process commits an enqueue."""
        self._stop = stop or asyncio.Event()
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        listener = lambda: loop.call_soon_threadsafe(self._wake.set)  # noqa: E731
        jobs.add_wake_listener(listener)
        try:
            await asyncio.gather(*(self._loop_one(i) for i in range(self.concurrency)))
        finally:
            jobs.remove_wake_listener(listener)
            await self.aclose()

    async def _loop_one(self, index: int) -> None:
        assert self._stop is not None and self._wake is not None
        while not self._stop.is_set():
            self._wake.clear()
            try:
                n = await self.run_once()
                if index == 0:
                    self._housekeeping()
            except Exception:
                log.exception("jobs: worker round failed")
                n = 0
            if n >= self.batch_size:
                continue  # more is probably due
            stop_wait = asyncio.ensure_future(self._stop.wait())
            wake_wait = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({stop_wait, wake_wait}, timeout=self.poll_interval,
                               return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            wake_wait.cancel()

    def _housekeeping(self, *, now: datetime | None = None) -> None:
        """Purge long-dead jobs and run each registered periodic task when it is due (one failing task does not
        stop the others or the job loop)."""
        now = now or utcnow()
        due = [jobs.Periodic("jobs.purge_dead", self._purge_dead, PURGE_EVERY), *jobs.PERIODIC.values()]
        for task in due:
            last = self._last_run.get(task.name)
            if last is not None and now - last < task.every:
                continue
            self._last_run[task.name] = now
            try:
                with self.db.unit_of_work() as s:
                    touched = task.fn(s, self.settings)
            except Exception:
                log.exception("jobs: periodic task %s failed", task.name)
                continue
            if touched:
                log.info("jobs: %s touched %d rows", task.name, touched)

    @staticmethod
    def _purge_dead(s, settings: Settings) -> int:
        return jobs.purge_dead(s, older_than=timedelta(days=settings.jobs_dead_retention_days))

    # --- in a thread (bramley serve) --------------------------------------------------------------------

    def start_in_thread(self) -> None:
        """Run the loop in a daemon thread with its own event loop (the server's loop is left alone)."""
        if self._thread is not None:
            return
        ready = threading.Event()

        def _main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            stop = asyncio.Event()
            self._stop = stop
            ready.set()
            try:
                loop.run_until_complete(self.run(stop))
            finally:
                loop.close()

        self._thread = threading.Thread(target=_main, name="bramley-worker", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop_thread(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None
