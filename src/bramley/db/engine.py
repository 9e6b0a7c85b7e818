"""Engine and transactions: one transaction per request (get_db) or job (unit_of_work)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bramley.config import Settings


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

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # pysqlite's implicit transactions do not cover reads; start our own so a request sees one snapshot.
            # Writers take the write lock up front (IMMEDIATE): a deferred read that later upgrades to a write
            # fails at once with SQLITE_BUSY when another writer committed meanwhile; busy_timeout can't help it.
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}".strip())

        # Let SQLAlchemy, not pysqlite, own BEGIN/COMMIT.
        @event.listens_for(engine, "connect", insert=True)
        def _sqlite_autocommit_off(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        return engine
    # No pool_pre_ping: with psycopg it costs three round trips (BEGIN, SELECT 1, ROLLBACK) on every request, more
    # than the device list's own queries. After a database restart the first query on a stale connection fails
    # and SQLAlchemy invalidates the whole pool: one failed request per worker process instead of a ping per request.
    return create_engine(url, pool_size=10, max_overflow=20)


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
