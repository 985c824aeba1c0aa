"""The request log's schema: its columns, the write statements and the append-only migrations."""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import orjson

from sidecar.records import RequestRecord

log = logging.getLogger("sidecar.store")

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))
COLS_SQL = ", ".join(COLUMNS)
JSON_COLUMNS = frozenset({"attempts", "cost_breakdown"})
_values = operator.itemgetter(*COLUMNS)
_JSON_AT = tuple(COLUMNS.index(c) for c in sorted(JSON_COLUMNS))
_STREAM = COLUMNS.index("stream")


def record_row(data: dict[str, Any]) -> tuple[Any, ...]:
    """A record's dict (`RequestRecord.to_dict`) as the ``requests`` row, in column order: one itemgetter call,
    because a generator over the columns cost ~10 µs on every request."""
    values = list(_values(data))
    for i in _JSON_AT:
        values[i] = orjson.dumps(values[i]).decode()
    values[_STREAM] = int(values[_STREAM])
    return tuple(values)


def row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ``requests`` row back as the record's dict (the inverse of `record_row`)."""
    data = dict(zip(COLUMNS, row))
    data["stream"] = bool(data["stream"])
    data["attempts"] = orjson.loads(data["attempts"])
    breakdown = data.get("cost_breakdown")
    data["cost_breakdown"] = orjson.loads(breakdown) if breakdown else None
    return data


INSERT_REQUEST = (f"INSERT OR REPLACE INTO requests ({COLS_SQL})"
                  f" VALUES ({', '.join('?' * len(COLUMNS))})")
# A record is often added twice (stream start, stream end) with different bodies known
# each time; keep whichever body a later add leaves out instead of wiping it.
UPSERT_BODIES = """
INSERT INTO bodies (request_id, request_body, response_body, truncated, headers) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (request_id) DO UPDATE SET
    request_body = COALESCE(excluded.request_body, request_body),
    response_body = COALESCE(excluded.response_body, response_body),
    truncated = MAX(truncated, excluded.truncated),
    headers = COALESCE(excluded.headers, headers)
"""


# --- migrations: append-only; never edit one that has shipped, add _m002_... instead ---

def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE requests (
            id TEXT PRIMARY KEY, ts TEXT NOT NULL, inbound TEXT NOT NULL,
            requested_model TEXT NOT NULL, provider TEXT, model TEXT,
            stream INTEGER NOT NULL DEFAULT 0, status INTEGER,
            latency_ms REAL, ttft_ms REAL,
            input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
            cache_write_tokens INTEGER, reasoning_tokens INTEGER,
            cost_usd REAL, usage_source TEXT, error TEXT, client TEXT, path TEXT,
            attempts TEXT NOT NULL DEFAULT '[]'
        )"""
    )
    # (ts, id) rather than ts alone: it is exactly the newest-first / keyset order.
    db.execute("CREATE INDEX idx_requests_ts ON requests (ts, id)")
    db.execute("CREATE INDEX idx_requests_provider_model ON requests (provider, model)")
    db.execute(
        """CREATE TABLE bodies (
            request_id TEXT PRIMARY KEY, request_body BLOB, response_body BLOB,
            truncated INTEGER NOT NULL DEFAULT 0
        )"""
    )


def _m002_cost_breakdown(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN cost_breakdown TEXT")


def _m003_headers(db: sqlite3.Connection) -> None:
    # {"request": {...}, "response": {...}} as JSON, secrets already redacted (bodies rows are optional, like these).
    db.execute("ALTER TABLE bodies ADD COLUMN headers TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial, _m002_cost_breakdown, _m003_headers]


def migrate(db: sqlite3.Connection) -> None:
    """Apply pending migrations, each in its own transaction with its user_version bump."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(f"request log schema v{version} is newer than this sidecar")
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("request log migrated: %s", migration.__name__)
