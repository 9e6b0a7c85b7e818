"""Hot-path reads on the driver's own cursor, inside the session's transaction.

For the two statements every device-list request runs (token by hash, the page's documents) SQLAlchemy's
execution layer (parameter processing, result wrapping, type processors) cost more than SQLite took to run them.
Statements here are plain SQL with `:name` parameters; the caller converts the few typed columns itself.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import orjson
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


def fetch_one(db: Session, statement: RawStatement, params: dict, *, binary: bool = False) -> tuple | None:
    """One row. `binary` asks psycopg for PostgreSQL's binary result format: a bytea then arrives as the bytes
    themselves, not hex text to decode (SQLite returns BLOBs as bytes anyway)."""
    connection = db.connection()  # begins the session's transaction (and SQLite's BEGIN) like any query
    dialect = connection.dialect.name
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        if binary and dialect == "postgresql":
            cursor.execute(statement.text_for(dialect), params, binary=True)
        else:
            cursor.execute(statement.text_for(dialect), params)
        return cursor.fetchone()
    finally:
        cursor.close()


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
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process else value


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
