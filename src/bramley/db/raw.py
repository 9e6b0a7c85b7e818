"""Hot-path reads on the driver's own cursor, inside the session's transaction, or on a reader outside any session
(PostgreSQL's AsyncReader, SQLiteReader).

For the two statements every device-list request runs (token by hash, the page's documents) SQLAlchemy's
execution layer (parameter processing, result wrapping, type processors) cost more than SQLite took to run them.
Statements here are plain SQL with `:name` parameters; the caller converts the few typed columns itself.
"""
from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections import deque
from datetime import datetime, timezone

import orjson
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.string import ByteaBinaryLoader
from psycopg.waiting import Ready, Wait
from sqlalchemy.orm import Session

_NAMED = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


class RawStatement:
    """One SQL text, rendered once per driver parameter style (sqlite3: `:name`, psycopg: `%(name)s`), or a
    PostgreSQL text of its own where the dialects differ."""

    def __init__(self, sql: str, *, postgresql: str | None = None):
        self.sqlite = sql
        self.postgresql = _NAMED.sub(r"%(\1)s", (postgresql or sql).replace("%", "%%"))

    def text_for(self, dialect: str) -> str:
        return self.postgresql if dialect == "postgresql" else self.sqlite


_DRIVER = "bramley.raw.driver"


def _driver(db: Session):
    """The DBAPI connection of the session's transaction (beginning it, and SQLite's BEGIN, like any query) and
    its dialect name. Looked up once per transaction: Session.connection() cost more than a short statement."""
    transaction = db.get_transaction()
    cached = db.info.get(_DRIVER)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1], cached[2]
    connection = db.connection()
    found = db.info[_DRIVER] = (db.get_transaction(), connection.connection.dbapi_connection, connection.dialect.name)
    return found[1], found[2]


def dialect_of(db: Session) -> str:
    """The session's database: "sqlite" or "postgresql"."""
    return _driver(db)[1]


def fetch_one(db: Session, statement: RawStatement, params: dict) -> tuple | None:
    """One row."""
    driver, dialect = _driver(db)
    cursor = driver.cursor()
    try:
        cursor.execute(statement.text_for(dialect), params)
        return cursor.fetchone()
    finally:
        cursor.close()


def execute(db: Session, statement: RawStatement, params: dict) -> int:
    """A statement whose rows are not wanted (UPDATE, DELETE, INSERT): the number of rows it touched."""
    driver, dialect = _driver(db)
    cursor = driver.cursor()
    try:
        cursor.execute(statement.text_for(dialect), params)
        return cursor.rowcount
    finally:
        cursor.close()


def execute_many(db: Session, statement: RawStatement, rows: list[dict]) -> None:
    """One statement for many parameter sets: a single round trip on PostgreSQL (psycopg pipelines them)."""
    if not rows:
        return
    driver, dialect = _driver(db)
    cursor = driver.cursor()
    try:
        cursor.executemany(statement.text_for(dialect), rows)
    finally:
        cursor.close()


def fetch_all(db: Session, statement: RawStatement, params: dict, *, text_as_bytes: bool = False) -> list[tuple]:
    """All rows. `text_as_bytes` (PostgreSQL) asks for text columns in binary format, loaded as the UTF-8 bytes
    the server sent instead of decoded into str (for documents that go out as bytes again)."""
    driver, dialect = _driver(db)
    cursor = driver.cursor()
    try:
        if text_as_bytes and dialect == "postgresql":
            _load_text_as_bytes(cursor)
            cursor.execute(statement.text_for(dialect), params, binary=True)
        else:
            cursor.execute(statement.text_for(dialect), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _load_text_as_bytes(context) -> None:
    # Binary text is its UTF-8 bytes: bytea's binary loader hands them over as they are (this cursor or connection).
    context.adapters.register_loader("text", ByteaBinaryLoader)


class _ReaderConnection(psycopg.AsyncConnection):
    """An AsyncConnection that waits for a result with one registration on the event loop.

    PostgreSQL sends a result in 8 kB writes as it produces the rows, so a device page (~230 kB) comes in a dozen
    or more pieces. psycopg's own wait registers and unregisters the socket with the loop, and resumes its
    generators, for every piece: a fifth of a device-list request's CPU. Here the socket stays registered while the
    answer comes in, each piece is only read into libpq's buffer, and psycopg's generator resumes once the result
    is complete. Only for the AsyncReader's plain statements (no COPY, no pipeline, no notifications).
    """

    async def wait(self, gen, interval: float | None = None, timeout: float | None = None):
        if timeout is not None:  # psycopg's own bounded waits (cancelling a query) keep its waiting
            return await super().wait(gen, timeout=timeout)
        try:
            state = next(gen)
        except StopIteration as done:
            return done.value
        loop = asyncio.get_running_loop()
        pgconn = self.pgconn
        fd = pgconn.socket
        finished = loop.create_future()
        watched = _NOTHING

        def watch(wanted) -> None:
            nonlocal state, watched
            state = wanted
            if (wanted & Wait.R) != (watched & Wait.R):
                loop.add_reader(fd, readable) if wanted & Wait.R else loop.remove_reader(fd)
            if (wanted & Wait.W) != (watched & Wait.W):
                loop.add_writer(fd, resume, Ready.W) if wanted & Wait.W else loop.remove_writer(fd)
            watched = wanted

        def readable() -> None:
            if state == Wait.R:  # waiting for a result: read this piece; wake the generator once it is whole
                try:
                    pgconn.consume_input()
                    if pgconn.is_busy():
                        return
                except psycopg.Error:
                    pass  # the generator meets the same error and raises it as psycopg would
            resume(Ready.R)

        def resume(ready) -> None:
            if finished.done():
                return
            try:
                watch(gen.send(ready))
            except StopIteration as done:
                watch(_NOTHING)
                finished.set_result(done.value)
            except BaseException as exc:
                watch(_NOTHING)
                finished.set_exception(exc)

        watch(state)
        try:
            return await finished
        finally:
            watch(_NOTHING)


_NOTHING = 0  # no Wait flag: nothing registered
READER_INPUT_BUFFER = 512 * 1024


async def _widen_input_buffer(conn: psycopg.AsyncConnection) -> None:
    """Grow libpq's input buffer once, for the connection's life, by reading one value of that size.

    libpq reads the socket only into the free room of its buffer, which stays at 16 kB while the messages are
    small (a device page is 300 rows of under 1 kB), so a 230 kB page took 15 reads, each a wake-up of our
    callback; it grows the buffer to fit a larger message and never shrinks it. With room for a page, a read takes
    whatever has arrived: 3 to 4 per page."""
    cursor = conn.cursor()
    await cursor.execute("SELECT repeat('x', %s)", (READER_INPUT_BUFFER,))
    await cursor.fetchall()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncReader:
    """A few autocommit psycopg AsyncConnections for reads run right on the event loop (PostgreSQL only).

    On the hottest reads (the door's token, the whole-fleet device page) the session's way cost more CPU than the
    statements: a worker-thread hop per step, BEGIN and COMMIT round trips, the pool's checkout. Here a statement
    is one round trip on the event loop, and it is its own transaction: use it only for reads that need no
    snapshot shared with other statements, and never for a request's writes (those stay in its session).

    Connections open on first need, up to `size`; a task finding all busy waits for the next one released. Not
    tied to one event loop (test clients run one per request): a connection serves one task at a time, and a
    waiting task is woken on its own loop.
    """

    dialect = "postgresql"

    def __init__(self, conninfo: str, size: int, *, options: str = ""):
        self._conninfo = conninfo
        self._options = options  # libpq's: server settings for each connection
        self._size = size
        self._idle: list[psycopg.AsyncConnection] = []
        self._open = 0
        self._waiting: deque[asyncio.Future] = deque()

    async def fetch_one(self, statement: RawStatement, params: dict) -> tuple | None:
        conn = await self._acquire()
        try:
            cursor = conn.cursor()
            await cursor.execute(statement.postgresql, params)
            return await cursor.fetchone()
        finally:
            self._release(conn)

    async def fetch_all(self, statement: RawStatement, params: dict, *, text_as_bytes: bool = False) -> list[tuple]:
        """All rows; `text_as_bytes` as for fetch_all on a session."""
        conn = await self._acquire()
        try:
            cursor = conn.cursor()  # its connection loads binary text as bytes (see _acquire)
            await cursor.execute(statement.postgresql, params, binary=text_as_bytes)
            return await cursor.fetchall()
        finally:
            self._release(conn)

    async def _acquire(self) -> psycopg.AsyncConnection:
        while True:
            if self._idle:
                return self._idle.pop()
            if self._open < self._size:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._slot_freed()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over just as the task was cancelled
                    self._pass_on(waiter.result())
                raise
            if conn is not None:
                return conn
            # None: a connection was dropped, so there is room to open one: go round again.

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await _ReaderConnection.connect(self._conninfo, autocommit=True, options=self._options)
        try:
            # Once per connection, not per cursor (a cursor that registers a loader copies the map). Text in
            # text format still loads as str: only fetch_all's `text_as_bytes` asks for binary.
            _load_text_as_bytes(conn)
            await _widen_input_buffer(conn)
        except BaseException:
            conn.pgconn.finish()
            raise
        return conn

    def _release(self, conn: psycopg.AsyncConnection) -> None:
        # Anything but idle (a statement cut off by a cancelled request, a lost server) is not reusable.
        if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            self._discard(conn)
        else:
            self._pass_on(conn)

    def _pass_on(self, conn: psycopg.AsyncConnection | None) -> None:
        """Give a free connection (None: room for a new one) to the longest waiting task, else keep it idle."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if waiter.done():
                continue
            loop = waiter.get_loop()
            try:
                if loop is _running_loop():
                    loop.call_soon(self._hand_over, waiter, conn)  # no wake-up write: this loop is awake
                else:
                    loop.call_soon_threadsafe(self._hand_over, waiter, conn)
                return
            except RuntimeError:  # its event loop has closed
                continue
        if conn is not None:
            self._idle.append(conn)

    def _hand_over(self, waiter: asyncio.Future, conn: psycopg.AsyncConnection | None) -> None:
        if waiter.done():  # cancelled while the hand-over was on its way
            self._pass_on(conn)
        else:
            waiter.set_result(conn)

    def _slot_freed(self) -> None:
        self._open -= 1
        self._pass_on(None)

    def _discard(self, conn: psycopg.AsyncConnection) -> None:
        """Drop a connection. A broken one means the server may have restarted, so the idle ones go too: one
        failed request instead of one per stale connection, as SQLAlchemy's pool does."""
        dropped = [conn]
        if conn.broken or conn.closed:
            dropped += self._idle
            self._idle = []
        for c in dropped:
            c.pgconn.finish()  # closes at once, no await: this may run on another loop than c's last statement
            self._slot_freed()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            await conn.close()


class SQLiteReader:
    """SQLite's counterpart of the AsyncReader, for the same reads (the door's token, the whole-fleet page): a
    connection of its own per thread, in autocommit mode, each statement its own read of the latest commit (WAL).

    A session's way cost half the worker's CPU of a whole-fleet page: the pool's checkout, BEGIN and COMMIT through
    SQLAlchemy's events, the session's bookkeeping. The statements run right on the event loop, as SQLite's reads
    do anyway (auth.door.run_db): a read in WAL mode never waits for a lock. Reads only (query_only)."""

    dialect = "sqlite"

    def __init__(self, path: str):
        self._path = path
        self._local = threading.local()  # test clients run each request's loop in a thread of their own

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=30000")  # a checkpoint can hold the WAL index for a moment
            self._local.conn = conn
        return conn

    async def fetch_one(self, statement: RawStatement, params: dict) -> tuple | None:
        return self._connection().execute(statement.sqlite, params).fetchone()

    async def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()


def insert_rows(db: Session, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Append many rows: PostgreSQL's COPY (one stream, no per-row statement), executemany on SQLite."""
    connection = db.connection()
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        if connection.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               rows)
    finally:
        cursor.close()


def bound(db: Session, column, value):
    """`value` as SQLAlchemy would send it for `column` on this session's database (a stored timestamp's text on
    SQLite, JSON text, ...): rows written on the driver's cursor then read back like any other."""
    dialect = db.get_bind().dialect
    key = (column, dialect.name)
    try:
        process = _processors[key]
    except KeyError:
        process = _processors[key] = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process else value


_processors: dict = {}  # (column, dialect name) -> its bind processor: looking one up cost more than using it


def as_utc(value) -> datetime | None:
    """A UTCDateTime column as the driver returns it: a datetime (psycopg) or SQLite's stored text."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def as_json(value):
    """A JSON column as the driver returns it: decoded already (psycopg, JSONB) or SQLite's stored text."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value
