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
from bramley.db.raw import AsyncReader


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


# Per process, beside the engine's pool: enough for the requests one worker has in flight at once.
READER_CONNECTIONS = 10


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
        # PostgreSQL's reads on the event loop (db/raw.py says which and why). SQLite needs none: its reads
        # already run on the loop.
        self.reader: AsyncReader | None = None
        if self.engine.dialect.name == "postgresql":
            url = self.engine.url.set(drivername="postgresql")
            self.reader = AsyncReader(url.render_as_string(hide_password=False), size=READER_CONNECTIONS)

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any exception. `write=False` for pure reads."""
        session = (self.write_sessions if write else self.sessions)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

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
