"""The sync client's local snapshot: one SQLite file in the state directory.

`devices` holds what the last successful sync saw, the facts the rule needs per device record; `integration`
holds the sync's state (ok, failing, needs_attention), times and last error. A sync replaces `devices` in one
transaction only after it read the whole fleet, so a failed sync can never lose or empty the snapshot, and a
reader (`bramley trust check`) in another process sees either the old snapshot or the new one (WAL).
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "trust.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    serial_key TEXT NOT NULL,          -- serial number upper-cased: what `check` looks up
    device_id TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    device_name TEXT,
    platform TEXT,
    last_check_in TEXT,                -- as the API wrote it
    agent_installed INTEGER NOT NULL,
    mdm_enabled INTEGER NOT NULL,
    is_removed INTEGER NOT NULL,
    agent_last_check_in TEXT,          -- from device details, when read
    PRIMARY KEY (serial_key, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS integration (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT,
    token_fingerprint TEXT,
    state TEXT NOT NULL DEFAULT 'waiting',
    window_days INTEGER,
    last_attempt_at TEXT,
    last_success_at TEXT,
    last_error TEXT,
    last_error_status INTEGER,
    last_error_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    devices INTEGER,
    verified INTEGER,
    sync_seconds REAL,
    notified_at TEXT
);
INSERT OR IGNORE INTO integration (id) VALUES (1);
"""

COLUMNS = ("serial_key", "device_id", "serial_number", "device_name", "platform", "last_check_in",
           "agent_installed", "mdm_enabled", "is_removed", "agent_last_check_in")
INTEGRATION_FIELDS = ("url", "token_fingerprint", "state", "window_days", "last_attempt_at", "last_success_at",
                      "last_error", "last_error_status", "last_error_at", "failures", "next_attempt_at", "devices",
                      "verified", "sync_seconds", "notified_at")


@dataclass
class Row:
    """One device record as the snapshot keeps it."""

    device_id: str
    serial_number: str
    device_name: str | None
    platform: str | None
    last_check_in: str | None
    agent_installed: bool
    mdm_enabled: bool
    is_removed: bool
    agent_last_check_in: str | None = None

    def as_tuple(self) -> tuple:
        return (self.serial_number.strip().upper(), self.device_id, self.serial_number, self.device_name,
                self.platform, self.last_check_in, int(self.agent_installed), int(self.mdm_enabled),
                int(self.is_removed), self.agent_last_check_in)

    @classmethod
    def from_tuple(cls, t: tuple) -> "Row":
        return cls(t[1], t[2], t[3], t[4], t[5], bool(t[6]), bool(t[7]), bool(t[8]), t[9])


class Snapshot:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.state_dir / FILE_NAME
        fresh = not self.path.exists()
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        if fresh:
            os.chmod(self.path, 0o600)  # a fleet inventory: the admin's eyes only
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the integration's state ---------------------------------------------------------------------

    def integration(self) -> dict:
        row = self.conn.execute(f"SELECT {', '.join(INTEGRATION_FIELDS)} FROM integration WHERE id = 1").fetchone()
        return dict(zip(INTEGRATION_FIELDS, row))

    def update_integration(self, **fields) -> None:
        self._update(fields)

    def _update(self, fields: dict) -> None:
        unknown = set(fields) - set(INTEGRATION_FIELDS)
        if unknown:
            raise ValueError(f"unknown integration fields {sorted(unknown)}")
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            self.conn.execute(f"UPDATE integration SET {assignments} WHERE id = 1", list(fields.values()))

    # --- the device records --------------------------------------------------------------------------

    def replace(self, rows: Iterable[Row], **integration_fields) -> int:
        """Swap in a whole new fleet and the integration fields that go with it, atomically."""
        tuples = [r.as_tuple() for r in rows]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM devices")
            self.conn.executemany(f"INSERT OR REPLACE INTO devices ({', '.join(COLUMNS)}) "
                                  f"VALUES ({', '.join('?' * len(COLUMNS))})", tuples)
            self._update(integration_fields)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return len(tuples)

    def rows(self) -> list[Row]:
        return [Row.from_tuple(t) for t in self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM devices")]

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM devices").fetchone()[0]

    def lookup(self, serial_number: str) -> list[Row]:
        cursor = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM devices WHERE serial_key = ?",
                                   (serial_number.strip().upper(),))
        return [Row.from_tuple(t) for t in cursor]
