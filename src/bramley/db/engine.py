"""Engine and transactions: one transaction per request (get_db) or job (unit_of_work)."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bramley.config import Settings
from bramley.db.raw import AsyncReader, SQLiteReader


class WriteGate:
    """Writers queue here before SQLite's BEGIN IMMEDIATE: a thread lock within the process, an flock across the
    server's worker processes. SQLite's own busy handler polls with sleeps growing to 100 ms, so a few dozen
    writers racing for the lock spent most of their time asleep (17 check-ins/s); queued, each starts the moment
    the previous one commits. Released by whichever thread ends the transaction (the door commits in another
    worker thread than the one that began), hence a plain Lock. The timeout matches busy_timeout."""

    TIMEOUT = 30.0

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._path = path
        self._fd: int | None = None

    def enter(self) -> None:
        if not self._lock.acquire(timeout=self.TIMEOUT):
            raise sqlite3.OperationalError("database is locked (waited for other writers)")
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise

    def leave(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()


def make_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=16, max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets readers run beside the one writer; busy_timeout makes writers wait instead of failing.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        gate = WriteGate(settings.data_dir / "write.lock")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # pysqlite's implicit transactions do not cover reads; start our own so a request sees one snapshot.
            # Writers take the write lock up front (IMMEDIATE): a deferred read that later upgrades to a write
            # fails at once with SQLITE_BUSY when another writer committed meanwhile; busy_timeout can't help it.
            mode = conn.get_execution_options().get("sqlite_begin", "")
            if mode == "IMMEDIATE":
                gate.enter()
                conn.info["write_gate"] = True
            try:
                conn.exec_driver_sql(f"BEGIN {mode}".strip())
            except BaseException:
                _leave(conn)
                raise

        def _leave(conn):
            if conn.info.pop("write_gate", False):
                gate.leave()

        event.listen(engine, "commit", _leave)
        event.listen(engine, "rollback", _leave)

        # Let SQLAlchemy, not pysqlite, own BEGIN/COMMIT.
        @event.listens_for(engine, "connect", insert=True)
        def _sqlite_autocommit_off(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        return engine
    # No pool_pre_ping: with psycopg it costs three round trips (BEGIN, SELECT 1, ROLLBACK) on every request, more
    # than the device list's own queries. After a database restart the first query on a stale connection fails
    # and SQLAlchemy invalidates the whole pool: one failed request per worker process instead of a ping per request.
    return create_engine(url, pool_size=10, max_overflow=20)


# How the turns' connections plan (see Database.turn_of_work).
TURN_PLANNING = ("plan_cache_mode=force_generic_plan", "jit=off", "enable_seqscan=off", "enable_hashjoin=off",
                 "enable_mergejoin=off")

# Per process, beside the engine's pool: enough for the requests one worker has in flight at once.
READER_CONNECTIONS = 10
# The reader's statements (a token by its hash, a page by position) have one good plan whatever the values. Left
# to choose, PostgreSQL re-planned the device page on every execution (a generic plan cannot see its LIMIT, so it
# looks dearer than a custom one): a third of its CPU on that page.
READER_PLANNING = ("plan_cache_mode=force_generic_plan", "jit=off")


def _options(settings: tuple[str, ...]) -> str:
    """Server settings as libpq's `options` for every connection of a pool."""
    return " ".join(f"-c {setting}" for setting in settings)


class Database:
    """Holds the engine and session factory of one app instance."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings)
        # Services find the settings (e.g. the master key source) through session.info["settings"].
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False,
                                     info={"settings": settings})
        # For transactions known to write (non-GET requests, device check-ins, jobs, CLI): same pool.
        self.write_sessions = sessionmaker(self.engine.execution_options(sqlite_begin="IMMEDIATE"),
                                           expire_on_commit=False, autoflush=False, info={"settings": settings})
        # The door's token and the whole-fleet page, read on the event loop outside any session (db/raw.py).
        self.reader: AsyncReader | SQLiteReader
        self._turn_engine: Engine | None = None
        self._turn_sessions: sessionmaker | None = None
        self._turn_lock = threading.Lock()
        if self.engine.dialect.name == "postgresql":
            url = self.engine.url.set(drivername="postgresql")
            self.reader = AsyncReader(url.render_as_string(hide_password=False), size=READER_CONNECTIONS,
                                      options=_options(READER_PLANNING))
        else:
            self.reader = SQLiteReader(self.engine.url.database)

    @contextmanager
    def unit_of_work(self, *, write: bool = True, sessions: sessionmaker | None = None) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any exception. `write=False` for pure reads."""
        session = (sessions or (self.write_sessions if write else self.sessions))()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def turn_of_work(self):
        """unit_of_work for a door's turn (db/turns.py), whose statements take a whole turn's keys at once.

        On PostgreSQL on connections of their own that plan each prepared statement once
        (plan_cache_mode=force_generic_plan): knowing the arrays' lengths makes a custom plan look cheaper than the
        generic one, so the server planned every execution again, half its CPU per check-in. Only here: elsewhere
        a value's own plan can matter (one large tenant beside small ones).

        A generic plan cannot know how many keys a turn brings and assumes a hundred; for that many, scanning a
        table whose rows of interest are scattered (a device's queued commands) can look cheaper than looking
        each key up, and was chosen: a scan of the whole queue per turn. Every statement of a turn looks rows up
        by key, up to Turns.MAX_TURN of them, where index lookups are right at any table size: sequential scans,
        hash and merge joins are priced out (enable_*=off, a penalty, not a ban). No JIT either: a generic plan's
        estimates can pass jit_above_cost, and compiling took far longer than running."""
        if self.engine.dialect.name != "postgresql":
            return self.unit_of_work()
        if self._turn_sessions is None:
            with self._turn_lock:
                if self._turn_sessions is None:
                    engine = create_engine(self.engine.url, pool_size=4, max_overflow=8, connect_args={
                        "options": _options(TURN_PLANNING)})
                    self._turn_engine = engine
                    self._turn_sessions = sessionmaker(engine, expire_on_commit=False, autoflush=False,
                                                       info={"settings": self.settings, "turn": True})
        return self.unit_of_work(sessions=self._turn_sessions)

    def dispose(self) -> None:
        """Close every pooled connection (of the turns' engine too)."""
        self.engine.dispose()
        if self._turn_engine is not None:
            self._turn_engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


class OnDemandSession:
    """A session made on first use, for doors whose reads are mostly answered from caches: making and closing an
    unused session cost more than the rest of a cached check."""

    def __init__(self, factory):
        self._factory = factory
        self._session = None

    @property
    def used(self) -> bool:
        return self._session is not None

    def __getattr__(self, name: str):
        if self._session is None:
            self._session = self._factory()
        return getattr(self._session, name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
