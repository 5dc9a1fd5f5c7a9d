"""The sandbox CRM's storage: SQLite tables for customers, owners, call activities and tasks.

This is the "server side" of the sandbox: it enforces what a real CRM would (unique keys,
required fields, a credential, injectable faults such as rate limits) so that the connector in
front of it is exercised like a real one. Several worker processes share one file safely
(WAL mode, short transactions, a busy timeout).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FAULT_KINDS", "SandboxStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    object_type TEXT NOT NULL DEFAULT 'Contact',
    name TEXT,
    phone TEXT,
    phone_e164 TEXT,
    owner_id TEXT,
    created_key TEXT UNIQUE,
    created_by_acw INTEGER NOT NULL DEFAULT 0,
    fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_phone ON customers(phone_e164);
CREATE TABLE IF NOT EXISTS owners (
    id TEXT PRIMARY KEY,
    email TEXT UNIQUE,
    name TEXT
);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    customer_id INTEGER REFERENCES customers(id),
    owner_id TEXT,
    subject TEXT NOT NULL,
    direction TEXT,
    outcome TEXT,
    duration REAL,
    disposition TEXT,
    recording_url TEXT,
    body TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL DEFAULT '{}',
    call_time TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updates INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    activity_id INTEGER REFERENCES activities(id),
    customer_id INTEGER REFERENCES customers(id),
    owner_id TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'not_started',
    due_at TEXT NOT NULL,
    reminder_at TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    kind TEXT PRIMARY KEY,
    remaining INTEGER NOT NULL,
    retry_after REAL NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

FAULT_KINDS = ("rate_limit", "unavailable", "expired_session", "reject")
"""Faults an operator or a test can inject: each fires on the next N requests."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SandboxStore:
    """Thread-safe access to one sandbox CRM file."""

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    # -- the CRM's own bookkeeping ---------------------------------------------------------
    def record_request(self, operation: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO requests(operation, at) VALUES (?, ?)", (operation, _now()))

    def take_fault(self) -> tuple[str, float] | None:
        """Consume one pending fault, if any: (kind, retry_after)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT kind, remaining, retry_after FROM faults WHERE remaining > 0 LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE faults SET remaining = remaining - 1 WHERE kind = ?", (row[0],))
            return str(row[0]), float(row[2])

    def inject_fault(self, kind: str, times: int = 1, retry_after: float = 1.0) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO faults(kind, remaining, retry_after) VALUES (?, ?, ?) "
                "ON CONFLICT(kind) DO UPDATE SET remaining = excluded.remaining, "
                "retry_after = excluded.retry_after",
                (kind, times, retry_after),
            )

    def set_chaos(self, **chaos: Any) -> None:
        """Make the CRM misbehave at random until :meth:`clear_chaos` (fault-injection tests).

        Keys (all optional): ``rate`` (fraction of requests that fail before reaching the
        CRM), ``weights`` ({"unavailable", "rate_limit", "timeout": weight}), ``retry_after``
        (seconds a 429 asks for), ``timeout`` (seconds a timed-out request hangs first),
        ``lost_response`` (fraction of writes that commit but answer a timeout),
        ``crash_after_write`` (fraction of writes after which the calling process is killed
        with SIGKILL), ``latency`` (seconds added to every request), ``down_until`` (Unix
        time until which every request fails with 503: maintenance).
        """
        self.set_setting("chaos", json.dumps(chaos))

    def chaos(self) -> dict[str, Any]:
        raw = self.setting("chaos")
        return dict(json.loads(raw)) if raw else {}

    def clear_chaos(self) -> None:
        self.set_setting("chaos", None)

    def setting(self, name: str) -> str | None:
        rows = self.query("SELECT value FROM settings WHERE name = ?", (name,))
        return str(rows[0]["value"]) if rows else None

    def set_setting(self, name: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE name = ?", (name,))
            else:
                db.execute(
                    "INSERT INTO settings(name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )

    # -- seed data ---------------------------------------------------------------------------
    def add_customer(
        self,
        *,
        name: str,
        phone: str,
        phone_e164: str | None,
        object_type: str = "Contact",
        owner_id: str | None = None,
        created_key: str | None = None,
        created_by_acw: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> int:
        with self.transaction() as db:
            if created_key is not None:
                row = db.execute(
                    "SELECT id FROM customers WHERE created_key = ?", (created_key,)
                ).fetchone()
                if row is not None:
                    return int(row[0])
            cur = db.execute(
                "INSERT INTO customers(object_type, name, phone, phone_e164, owner_id, "
                "created_key, created_by_acw, fields, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    object_type,
                    name,
                    phone,
                    phone_e164,
                    owner_id,
                    created_key,
                    int(created_by_acw),
                    json.dumps(dict(fields or {})),
                    _now(),
                    _now(),
                ),
            )
            return int(cur.lastrowid or 0)

    def add_owner(self, owner_id: str, email: str, name: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO owners(id, email, name) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET email = excluded.email, name = excluded.name",
                (owner_id, email.lower(), name),
            )

    # -- views -------------------------------------------------------------------------------
    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every table as rows (for ``acw-sync sandbox show``)."""
        return {
            "customers": self.query("SELECT * FROM customers ORDER BY id"),
            "activities": self.query("SELECT * FROM activities ORDER BY id"),
            "tasks": self.query("SELECT * FROM tasks ORDER BY id"),
            "owners": self.query("SELECT * FROM owners ORDER BY id"),
        }

    def request_count(self) -> int:
        return int(self.query("SELECT COUNT(*) AS n FROM requests")[0]["n"])
