"""The readers outside any session. PostgreSQL's AsyncReader: the same rows as the session's cursor, a bounded pool,
and no connection kept that a cancelled request or a lost server left unusable. SQLiteReader: each commit seen,
nothing written."""
from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest
from sqlalchemy import text

from bramley.db.raw import AsyncReader, RawStatement, SQLiteReader, fetch_all, fetch_one

DOCS = RawStatement("SELECT doc FROM devices WHERE tenant_id = :tenant ORDER BY position")
TYPED = RawStatement("SELECT id, tenant_id, all_access, permissions, created_at FROM api_tokens WHERE id = :id")
SLEEP = RawStatement("SELECT pg_sleep(:seconds)")
BACKEND = RawStatement("SELECT pg_backend_pid()")


@pytest.fixture
def reader(db):
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    # A pool of its own, so a test that breaks connections leaves the app's reader alone.
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return AsyncReader(url, size=2)


def test_rows_are_the_sessions_rows(reader, db, make_tenant):
    t = make_tenant(devices=5)
    with db.unit_of_work(write=False) as s:
        docs = fetch_all(s, DOCS, {"tenant": t.id}, text_as_bytes=True)
        typed = fetch_one(s, TYPED, {"id": t.token_id})
    assert len(docs) == 5 and all(isinstance(doc, bytes) for doc, in docs)
    assert asyncio.run(reader.fetch_all(DOCS, {"tenant": t.id}, text_as_bytes=True)) == docs
    assert asyncio.run(reader.fetch_one(TYPED, {"id": t.token_id})) == typed
    assert asyncio.run(reader.fetch_one(TYPED, {"id": "no-such-token"})) is None


def test_more_tasks_than_connections_wait_their_turn(reader):
    async def many():
        return await asyncio.gather(*(reader.fetch_one(SLEEP, {"seconds": 0.05}) for _ in range(6)))

    assert len(asyncio.run(many())) == 6
    assert reader._open <= 2


def test_a_cancelled_statement_does_not_leave_its_connection_behind(reader):
    async def cancelled_then_reused():
        slow = asyncio.create_task(reader.fetch_one(SLEEP, {"seconds": 5}))
        await asyncio.sleep(0.2)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        return await reader.fetch_one(RawStatement("SELECT 1"), {})

    assert asyncio.run(cancelled_then_reused()) == (1,)
    assert reader._open == 1


def test_a_lost_connection_fails_one_statement_then_the_reader_reconnects(reader, db):
    async def pids():
        return await asyncio.gather(reader.fetch_one(BACKEND, {}), reader.fetch_one(BACKEND, {}))

    first = asyncio.run(pids())
    with db.engine.connect() as conn:
        for (pid,) in first:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(psycopg.OperationalError):
        asyncio.run(reader.fetch_one(BACKEND, {}))
    # The broken connection took the idle one with it: the next statement gets a fresh connection.
    (pid,) = asyncio.run(reader.fetch_one(BACKEND, {}))
    assert pid not in {p for p, in first}


def test_a_waiting_task_is_served_from_another_event_loop(reader):
    """Test clients run an event loop per request: a connection opened on one loop serves the next."""
    assert asyncio.run(reader.fetch_one(BACKEND, {})) == asyncio.run(reader.fetch_one(BACKEND, {}))


def test_sqlite_reader_reads_each_commit_and_writes_nothing(db, make_tenant):
    """SQLite's reader (the door's token, the whole-fleet page): every statement sees the latest commit, even on a
    connection opened before it, and the connection cannot write."""
    if db.dialect != "sqlite":
        pytest.skip("SQLite only")
    reader = SQLiteReader(db.engine.url.database)
    t = make_tenant(devices=2)
    count = RawStatement("SELECT count(*) FROM devices WHERE tenant_id = :tenant")
    assert asyncio.run(reader.fetch_one(count, {"tenant": t.id})) == (2,)
    assert asyncio.run(reader.fetch_one(TYPED, {"id": t.token_id}))[0] == t.token_id
    with db.unit_of_work() as s:
        s.execute(text("DELETE FROM devices WHERE tenant_id = :tenant"), {"tenant": t.id})
    assert asyncio.run(reader.fetch_one(count, {"tenant": t.id})) == (0,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        asyncio.run(reader.fetch_one(RawStatement("DELETE FROM api_tokens"), {}))
    asyncio.run(reader.close())
