"""The request log: one SQLite row per client request, written off the event loop.

The proxy calls `RequestStore.add()` on the hot path of every LLM call, so `add()` only
snapshots the record and enqueues it; a single writer thread owns the write connection
and commits batches (one transaction per ~50 ms or 256 rows). Reads open their own
read-only connections, which WAL lets run concurrently with the writer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from .records import RequestRecord

log = logging.getLogger("sidecar.store")

FLUSH_INTERVAL = 0.05
"""Seconds a batch may stay open after its first row: bounds how stale reads can be."""
BATCH_MAX = 256
BUSY_TIMEOUT_S = 5.0

_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))
_COLS_SQL = ", ".join(_COLUMNS)
_JSON_COLUMNS = frozenset({"attempts", "cost_breakdown"})
_INSERT_REQUEST = (f"INSERT OR REPLACE INTO requests ({_COLS_SQL})"
                   f" VALUES ({', '.join('?' * len(_COLUMNS))})")
# A record is often added twice (stream start, stream end) with different bodies known
# each time; keep whichever body a later add leaves out instead of wiping it.
_UPSERT_BODIES = """
INSERT INTO bodies (request_id, request_body, response_body, truncated) VALUES (?, ?, ?, ?)
ON CONFLICT (request_id) DO UPDATE SET
    request_body = COALESCE(excluded.request_body, request_body),
    response_body = COALESCE(excluded.response_body, response_body),
    truncated = MAX(truncated, excluded.truncated)
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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial, _m002_cost_breakdown]


def _migrate(db: sqlite3.Connection) -> None:
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


# Queue items: a _Row from add(), a callable from flush() (called once everything queued
# before it is committed), or _STOP from close().
_Row = tuple[tuple[Any, ...], tuple[Any, ...] | None]  # (requests row, bodies row or None)
_STOP = object()


class RequestStore:
    def __init__(self, path: Path, *, body_cap: int = 256 * 1024) -> None:
        self.path = Path(path)
        self.body_cap = body_cap
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- lifecycle ---

    def open(self) -> None:
        """Connect, migrate and start the writer. Runs on the caller so errors surface."""
        if self._thread is not None or self._closed:
            raise RuntimeError("RequestStore.open() called twice or after close()")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_S)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.warning("request log is in %s mode, not WAL; readers may block writes", mode)
            # WAL + synchronous=NORMAL: COMMIT appends to the WAL without an fsync, so a power
            # loss or OS crash may lose the last few transactions, but a process crash (even
            # kill -9) cannot: committed pages are already in the kernel's page cache.
            conn.execute("PRAGMA synchronous=NORMAL")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="sidecar-store-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Commit everything queued, stop the writer and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        # An add() or flush() racing with close may have queued behind _STOP.
        leftovers: list[_Row] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, tuple):
                leftovers.append(item)
            elif callable(item):
                _notify(item)
        if self._conn is None:
            if leftovers:
                log.warning("request log never opened; dropping %d records", len(leftovers))
            return
        if leftovers:
            self._write(leftovers)
        self._conn.close()
        self._conn = None

    # --- writes ---

    def add(self, record: RequestRecord, *, request_body: bytes | None = None,
            response_body: bytes | None = None, data: dict[str, Any] | None = None) -> None:
        """Snapshot `record` (later mutation doesn't leak in) and enqueue it; never waits.

        ``data`` is ``record.to_dict()`` when the caller already made it (it is not modified)."""
        if self._closed:
            log.warning("request log closed; dropping request %s", record.id)
            return
        if data is None:
            data = record.to_dict()
        row = tuple(
            int(data[c]) if c == "stream" else orjson.dumps(data[c]).decode() if c in _JSON_COLUMNS else data[c]
            for c in _COLUMNS
        )
        bodies = None
        if request_body is not None or response_body is not None:
            req, req_cut = self._cap(request_body)
            resp, resp_cut = self._cap(response_body)
            bodies = (record.id, req, resp, int(req_cut or resp_cut))
        self._queue.put((row, bodies))

    def _cap(self, body: bytes | None) -> tuple[bytes | None, bool]:
        return (None, False) if body is None else (bytes(body[: self.body_cap]),
                                                   len(body) > self.body_cap)

    async def flush(self) -> None:
        """Wait, without blocking the loop, until everything added so far is committed."""
        if self._nothing_to_flush():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():  # the awaiting task may have been cancelled
                future.set_result(None)

        self._queue.put(lambda: loop.call_soon_threadsafe(resolve))
        await future

    def flush_sync(self, timeout: float = 5.0) -> None:
        """Blocking flush for threads and shutdown paths; TimeoutError if the writer lags."""
        if self._nothing_to_flush():
            return
        event = threading.Event()
        self._queue.put(event.set)
        if not event.wait(timeout):
            raise TimeoutError(f"request log not flushed within {timeout}s")

    def _nothing_to_flush(self) -> bool:
        """True when there is nothing to wait for (closed: close() committed everything)."""
        if self._closed:
            return True
        if self._thread is None:
            raise RuntimeError("RequestStore.open() has not been called")
        return False

    def _run(self) -> None:
        """Writer loop: block for a first item, then gather until 50 ms, 256 rows or a barrier."""
        while True:
            item = self._queue.get()
            batch: list[_Row] = []
            deadline = time.monotonic() + FLUSH_INTERVAL
            try:
                while isinstance(item, tuple):
                    batch.append(item)
                    remaining = deadline - time.monotonic()
                    if len(batch) >= BATCH_MAX or remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        item = None
                if batch:
                    self._write(batch)
            except Exception:  # never let the writer die silently
                log.exception("request log writer: unexpected error; %d rows lost", len(batch))
            if item is _STOP:
                return
            if callable(item):
                _notify(item)

    def _write(self, batch: list[_Row]) -> None:
        """One transaction per batch; if it fails, retry row by row so one bad row costs one."""
        assert self._conn is not None
        try:
            self._insert(batch)
            return
        except Exception:
            log.warning("request log batch of %d failed; retrying row by row", len(batch))
        for row in batch:
            try:
                self._insert([row])
            except Exception:
                log.exception("request log: dropping request %s", row[0][0])

    def _insert(self, batch: list[_Row]) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            conn.executemany(_INSERT_REQUEST, [row for row, _ in batch])
            conn.executemany(_UPSERT_BODIES, [b for _, b in batch if b is not None])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # --- reads (synchronous; callers use asyncio.to_thread) ---

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A fresh read-only connection per call (never the writer's, safe in any thread), in
        one read transaction so multi-query answers come from a single WAL snapshot."""
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _to_dict(row: tuple[Any, ...]) -> dict[str, Any]:
        data = dict(zip(_COLUMNS, row))
        data["stream"] = bool(data["stream"])
        data["attempts"] = orjson.loads(data["attempts"])
        breakdown = data.get("cost_breakdown")
        data["cost_breakdown"] = orjson.loads(breakdown) if breakdown else None
        return data

    def recent(self, limit: int = 50, *, before: str | None = None, provider: str | None = None,
               model: str | None = None, status: int | None = None) -> list[dict[str, Any]]:
        """Newest first. `before` is a record id (keyset page); an unknown id yields []."""
        where: list[str] = []
        args: list[Any] = []
        if before is not None:
            where.append("(ts, id) < (SELECT ts, id FROM requests WHERE id = ?)")
            args.append(before)
        for column, value in (("provider", provider), ("model", model), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = (f"SELECT {_COLS_SQL} FROM requests WHERE {' AND '.join(where) or '1'}"
               " ORDER BY ts DESC, id DESC LIMIT ?")
        with self.reader() as conn:
            rows = conn.execute(sql, [*args, limit]).fetchall()
        return [self._to_dict(row) for row in rows]

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One record plus its (already redacted, possibly truncated) bodies."""
        cols = ", ".join(f"r.{c}" for c in _COLUMNS)
        sql = (f"SELECT {cols}, b.request_body, b.response_body, b.truncated FROM requests r"
               " LEFT JOIN bodies b ON b.request_id = r.id WHERE r.id = ?")
        with self.reader() as conn:
            row = conn.execute(sql, (request_id,)).fetchone()
        if row is None:
            return None
        data = self._to_dict(row[: len(_COLUMNS)])
        req, resp, truncated = row[len(_COLUMNS):]
        text = lambda b: None if b is None else bytes(b).decode("utf-8", "replace")  # noqa: E731
        data.update(request_body=text(req), response_body=text(resp),
                    bodies_truncated=bool(truncated))
        return data

    def stats(self, since: str | None = None) -> dict[str, Any]:
        """Totals and per provider / model since `since` (ISO 8601; None = all time).

        Aggregates in Python over the selected rows (one query, ~11 values per row), which
        nearest-rank percentiles need anyway: O(n) time and memory, ~0.1 s per 50k rows.
        Fine for a local log; move sums into SQL if it ever gets much bigger.
        """
        where, args = ("WHERE ts >= ?", [_ts_key(since)]) if since else ("", [])
        with self.reader() as conn:
            rows = conn.execute(f"SELECT {_STAT_COLS} FROM requests {where}", args).fetchall()
        by_provider: dict[str | None, list[tuple[Any, ...]]] = {}
        by_model: dict[tuple[str | None, str | None], list[tuple[Any, ...]]] = {}
        for row in rows:
            by_provider.setdefault(row[0], []).append(row)
            by_model.setdefault((row[0], row[1]), []).append(row)
        providers = [{"provider": p, **_summarize(rs)} for p, rs in by_provider.items()]
        models = [{"provider": p, "model": m, **_summarize(rs)} for (p, m), rs in by_model.items()]
        return {
            "since": since,
            "totals": _summarize(rows),
            "by_provider": sorted(providers, key=_rank),
            "by_model": sorted(models, key=_rank),
        }

    def spend_by_day(self, days: int = 30) -> list[dict[str, Any]]:
        """Per UTC day (today and the `days - 1` before it), provider and model; oldest first.

        Beyond the listed keys each row carries `unpriced_requests`, and `cost_usd` is None
        when the day's only tokens were unpriced, so unknown spend never reads as $0.
        """
        first_day = datetime.now(timezone.utc).date() - timedelta(days=days - 1)
        sql = f"""SELECT substr(ts, 1, 10) AS day, provider, model, COUNT(*), TOTAL(cost_usd),
            SUM(cost_usd IS NOT NULL), COALESCE(SUM(input_tokens), 0),
            COALESCE(SUM(output_tokens), 0), SUM({_UNPRICED})
            FROM requests WHERE ts >= ? GROUP BY day, provider, model
            ORDER BY day, TOTAL(cost_usd) DESC, COUNT(*) DESC, provider, model"""
        with self.reader() as conn:
            rows = conn.execute(sql, (first_day.isoformat(),)).fetchall()
        return [
            {"day": day, "provider": provider, "model": model, "requests": n,
             "cost_usd": _cost(cost, priced, unpriced), "input_tokens": tokens_in,
             "output_tokens": tokens_out, "unpriced_requests": unpriced}
            for day, provider, model, n, cost, priced, tokens_in, tokens_out, unpriced in rows
        ]

    def cost_by_day_provider_client(self, since_day: str, before_ts: str) -> list[tuple[str, str | None, str | None, float]]:
        """Priced spend per (UTC day, provider, client) from `since_day` up to (not incl.) `before_ts`;
        what budgets start from. Unpriced rows add nothing: their cost is unknown, not $0."""
        sql = """SELECT substr(ts, 1, 10) AS day, provider, client, TOTAL(cost_usd) FROM requests
            WHERE ts >= ? AND ts < ? AND cost_usd IS NOT NULL GROUP BY day, provider, client"""
        with self.reader() as conn:
            return conn.execute(sql, (since_day, before_ts)).fetchall()

    def spend_totals(self, days: int, by: str) -> list[dict[str, Any]]:
        """Totals per `by` (day | provider | model | client) over today and the `days - 1` UTC days before;
        `cost_usd` is None when a group's only usage was unpriced (see `_cost`)."""
        key = SPEND_KEYS[by]
        first_day = datetime.now(timezone.utc).date() - timedelta(days=days - 1)
        sql = f"""SELECT {key} AS k, COUNT(*), TOTAL(cost_usd), SUM(cost_usd IS NOT NULL),
            {", ".join(f"COALESCE(SUM({t}), 0)" for t in _TOKENS)}, SUM({_UNPRICED}),
            SUM(usage_source = 'estimated'), SUM(status IS NULL OR status >= 400)
            FROM requests WHERE ts >= ? GROUP BY k ORDER BY {"k" if by == "day" else "TOTAL(cost_usd) DESC, k"}"""
        with self.reader() as conn:
            rows = conn.execute(sql, (first_day.isoformat(),)).fetchall()
        out = []
        for k, n, cost, priced, *rest in rows:
            tokens, (unpriced, estimated, errors) = rest[:len(_TOKENS)], rest[len(_TOKENS):]
            out.append({by: k, "requests": n, "errors": errors, **dict(zip(_TOKENS, tokens)),
                        "cost_usd": _cost(cost, priced, unpriced), "unpriced_requests": unpriced,
                        "estimated_requests": estimated})
        return out


def _notify(done: Callable[[], None]) -> None:
    try:
        done()
    except Exception:  # e.g. the event loop that was flushing has since closed
        log.debug("request log: flush waiter gone", exc_info=True)


# --- stats helpers ---

_UNPRICED = (
    "cost_usd IS NULL AND COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)"
    " + COALESCE(cache_read_tokens, 0) + COALESCE(cache_write_tokens, 0) > 0"
)
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens")
_STAT_COLS = f"provider, model, status, {', '.join(_TOKENS)}, cost_usd, latency_ms, ttft_ms"


SPEND_KEYS = {"day": "substr(ts, 1, 10)", "provider": "provider", "model": "provider || '/' || model",
              "client": "client"}


def _ts_key(since: str) -> str:
    """Normalise `since` to naive UTC ISO text, a lower bound that compares correctly as a
    string against stored UTC timestamps whether they end in Z, +00:00 or nothing."""
    moment = datetime.fromisoformat(since)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat()


def _summarize(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """One stats bucket from rows shaped like _STAT_COLS."""
    costs = [r[8] for r in rows if r[8] is not None]
    unpriced = sum(1 for r in rows if r[8] is None and any(r[3:7]))  # tokens, but no price
    latency = [r[9] for r in rows if r[9] is not None]
    ttft = [r[10] for r in rows if r[10] is not None]
    return {
        "requests": len(rows),
        "errors": sum(1 for r in rows if r[2] is None or r[2] >= 400),
        **{key: sum(r[3 + i] or 0 for r in rows) for i, key in enumerate(_TOKENS)},
        "cost_usd": _cost(sum(costs), len(costs), unpriced),
        "unpriced_requests": unpriced,
        "latency_ms_p50": _percentile(latency, 50),
        "latency_ms_p95": _percentile(latency, 95),
        "ttft_ms_p50": _percentile(ttft, 50),
        "ttft_ms_p95": _percentile(ttft, 95),
    }


def _cost(total: float, priced: int, unpriced: int) -> float | None:
    """Sum of priced rows; None if nothing was priced but some usage was (unknown != $0)."""
    return None if not priced and unpriced else float(total)


def _percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: always a value that was actually observed."""
    if not values:
        return None
    values.sort()
    return values[max(1, math.ceil(len(values) * p / 100)) - 1]


def _rank(item: dict[str, Any]) -> tuple[Any, ...]:
    return (-(item["cost_usd"] or 0.0), -item["requests"],
            str(item["provider"]), str(item.get("model")))
