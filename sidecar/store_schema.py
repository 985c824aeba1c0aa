"""The request log's schema: its columns, the write statements and the append-only migrations."""

from __future__ import annotations

import functools
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


# Rows go in as multi-row statements (`insert_rows`): SQLite applies the rows of one VALUES list in order, so a
# record added twice in one batch (stream start, stream end) ends as the later add, as with one row per statement.
_INSERT_REQUESTS = f"INSERT OR REPLACE INTO requests ({COLS_SQL}) VALUES "
_REQUEST_VALUES = f"({', '.join('?' * len(COLUMNS))})"
_INSERT_BODIES = "INSERT INTO bodies (request_id, request_body, response_body, truncated, headers) VALUES "
_BODIES_VALUES = "(?, ?, ?, ?, ?)"
# A record is often added twice (stream start, stream end) with different bodies known
# each time; keep whichever body a later add leaves out instead of wiping it.
_BODIES_ON_CONFLICT = """
ON CONFLICT (request_id) DO UPDATE SET
    request_body = COALESCE(excluded.request_body, request_body),
    response_body = COALESCE(excluded.response_body, response_body),
    truncated = MAX(truncated, excluded.truncated),
    headers = COALESCE(excluded.headers, headers)
"""
CHUNK_SIZES = (64, 16, 4, 1)
"""Rows per statement: a batch is cut into these, so a handful of statement shapes stay in sqlite3's statement
cache (64 rows × 22 columns today is far below SQLite's 32,766 parameters)."""


@functools.cache
def _requests_sql(rows: int) -> str:
    return _INSERT_REQUESTS + ", ".join([_REQUEST_VALUES] * rows)


@functools.cache
def _bodies_sql(rows: int) -> str:
    return _INSERT_BODIES + ", ".join([_BODIES_VALUES] * rows) + _BODIES_ON_CONFLICT


def insert_rows(conn: sqlite3.Connection, requests: list[tuple[Any, ...]], bodies: list[tuple[Any, ...]]) -> None:
    """Write ``requests`` rows and ``bodies`` rows (the caller holds the transaction), many rows per statement.

    Why not ``executemany``: it releases and re-takes the GIL around every row's step, and on a busy proxy each
    re-take waits for the event loop thread to hand the GIL over (a futex wake and a context switch per row, a
    stall of the loop each time). One statement per chunk takes the GIL back once per chunk."""
    for sql_for, rows in ((_requests_sql, requests), (_bodies_sql, bodies)):
        start, total = 0, len(rows)
        for size in CHUNK_SIZES:
            while total - start >= size:
                conn.execute(sql_for(size), [value for row in rows[start:start + size] for value in row])
                start += size


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
