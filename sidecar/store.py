"""The request log: one SQLite row per client request, written off the event loop.

The proxy calls `RequestStore.add()` on the hot path of every LLM call, so `add()` only
snapshots the record and enqueues it; a single writer thread owns the write connection
and commits batches (one transaction per ~50 ms or 256 rows). Reads open their own
read-only connections, which WAL lets run concurrently with the writer.

When the database cannot be written (disk full, read-only, data dir removed) the proxy carries on: the
writer holds records in a bounded in-memory backlog, logs one warning per outage, retries with backoff
and writes the backlog in order once it can (sidecar/store_backlog.py); `health()` reports the state.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from sidecar import store_stats
from sidecar.records import RequestRecord
from sidecar.store_backlog import DEFAULT_LIMIT, Backlog, Outage, Row, describe, is_outage, keeps_connection
from sidecar.store_schema import COLS_SQL, COLUMNS, insert_rows, migrate, record_row, row_dict

log = logging.getLogger("sidecar.store")

FLUSH_INTERVAL = 0.05
"""Seconds a batch may stay open after its first row: bounds how stale reads can be."""
BATCH_MAX = 256
BUSY_TIMEOUT_S = 5.0
SPEND_KEYS = store_stats.SPEND_KEYS
"""Re-exported: the CLI's spend report imports it from here."""

# Queue items: a Row from add(), a callable from flush() (called once everything queued
# before it is committed, or held in the backlog during an outage), or _STOP from close().
_STOP = object()
_ID, _TS = COLUMNS.index("id"), COLUMNS.index("ts")
_FILTERABLE = {c: COLUMNS.index(c) for c in ("provider", "model", "status")}


class _Unwritable(Exception):
    """The database itself refused a write; ``handled`` leading rows were committed or dropped as bad."""

    def __init__(self, cause: BaseException, handled: int) -> None:
        super().__init__(describe(cause))
        self.cause, self.handled = cause, handled


class RequestStore:
    def __init__(self, path: Path, *, body_cap: int = 256 * 1024, backlog: int = DEFAULT_LIMIT) -> None:
        self.path = Path(path)
        self.body_cap = body_cap
        self.on_health_change: Callable[[dict[str, Any]], None] | None = None
        """Called (on the writer thread) with `health()` when writability changes; must not block."""
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._barrier = threading.Event()
        """Set with every barrier (flush, close): it ends the writer's gathering nap at once."""
        self._backlog = Backlog(backlog)
        self._outage = Outage()

    # --- lifecycle ---

    def open(self) -> None:
        """Connect, migrate and start the writer. Runs on the caller so errors surface."""
        if self._thread is not None or self._closed:
            raise RuntimeError("RequestStore.open() called twice or after close()")
        self._conn = self._connect()
        self._thread = threading.Thread(target=self._run, name="sidecar-store-writer", daemon=True)
        self._thread.start()

    def set_backlog_limit(self, limit: int) -> None:
        """How many records to hold in memory while the database is unwritable (``[store] backlog``)."""
        self._backlog.limit = max(1, limit)

    def _connect(self) -> sqlite3.Connection:
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
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._file_id = _file_id(self.path)
        return conn

    def close(self) -> None:
        """Commit everything queued, stop the writer and close the connection. Idempotent.

        Records still held because the database stays unwritable are lost, with one error naming how many."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._barrier.set()
            self._thread.join()
        # An add() or flush() racing with close may have queued behind _STOP.
        leftovers: list[Row] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, tuple):
                leftovers.append(item)
            elif callable(item):
                _notify(item)
        if self._thread is None:
            if leftovers:
                log.warning("request log never opened; dropping %d records", len(leftovers))
            return
        if leftovers:
            self._write(leftovers)
        if self._outage.active:
            self._outage.retry_now()
            self._retry()
        if self._outage.active:
            log.error("request log still not writable at shutdown (%s): %d held records are lost",
                      self._outage.last_error, len(self._backlog))
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def health(self) -> dict[str, Any]:
        """Whether records reach the database; during an outage how many wait in memory, and why.

        ``dropped`` counts records lost because the backlog was full (since start); ``since`` is when the
        current outage began (None while writable); ``last_error`` stays after recovery."""
        return {
            "writable": not self._outage.active,
            "backlog": len(self._backlog),
            "backlog_limit": self._backlog.limit,
            "dropped": self._backlog.dropped,
            "bodies_dropped": self._backlog.bodies_dropped,
            "last_error": self._outage.last_error,
            "since": self._outage.since,
        }

    # --- writes ---

    def add(self, record: RequestRecord, *, request_body: bytes | None = None,
            response_body: bytes | None = None, data: dict[str, Any] | None = None,
            headers: Callable[[], dict[str, Any] | None] | None = None) -> None:
        """Snapshot `record` (later mutation doesn't leak in) and enqueue it; never waits.

        ``data`` is ``record.to_dict()`` when the caller already made it (it is not modified). ``headers`` makes
        ``{"request": {...}, "response": {...}}`` with secrets redacted; it is called in the writer thread, so
        the request path only hands over references to headers nobody changes any more."""
        if self._closed:
            log.warning("request log closed; dropping request %s", record.id)
            return
        if data is None:
            data = record.to_dict()
        row = record_row(data)
        bodies = None
        if request_body is not None or response_body is not None or headers is not None:
            req, req_cut = self._cap(request_body)
            resp, resp_cut = self._cap(response_body)
            bodies = (record.id, req, resp, int(req_cut or resp_cut), headers)
        self._queue.put((row, bodies))

    def _cap(self, body: bytes | None) -> tuple[bytes | None, bool]:
        return (None, False) if body is None else (bytes(body[: self.body_cap]),
                                                   len(body) > self.body_cap)

    async def flush(self) -> None:
        """Wait, without blocking the loop, until everything added so far is committed — or, while the
        database is unwritable, held in the backlog (see `health()`), so a full disk never hangs a caller."""
        if self._nothing_to_flush():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():  # the awaiting task may have been cancelled
                future.set_result(None)

        self._queue.put(lambda: loop.call_soon_threadsafe(resolve))
        self._barrier.set()
        await future

    def flush_sync(self, timeout: float = 5.0) -> None:
        """Blocking flush for threads and shutdown paths; TimeoutError if the writer lags."""
        if self._nothing_to_flush():
            return
        event = threading.Event()
        self._queue.put(event.set)
        self._barrier.set()
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
        """Writer loop: block for a first item (during an outage only until the next retry is due), then
        gather until 50 ms, 256 rows or a barrier."""
        while True:
            try:
                item = self._queue.get(timeout=self._outage.wait_s())
            except queue.Empty:
                item = None
            batch: list[Row] = []
            deadline = time.monotonic() + FLUSH_INTERVAL
            try:
                while isinstance(item, tuple):
                    batch.append(item)
                    remaining = deadline - time.monotonic()
                    if len(batch) >= BATCH_MAX or remaining <= 0:
                        break
                    item = self._next_in_batch(remaining)
                if batch:
                    self._write(batch)
                else:
                    self._retry()
            except Exception:  # never let the writer die silently
                log.exception("request log writer: unexpected error; %d rows lost", len(batch))
            if item is _STOP:
                return
            if callable(item):
                _notify(item)

    def _next_in_batch(self, remaining: float) -> Any:
        """The next queued item, or None once ``remaining`` seconds have passed without a barrier.

        Naps instead of waiting on the queue: a thread waiting on it is woken by every `add`, which costs the
        event loop a futex call and a GIL hand-off per request; while the writer naps, adds wake nobody."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        self._barrier.wait(remaining)
        self._barrier.clear()
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _write(self, batch: list[Row]) -> None:
        """Commit a batch; while the database is unwritable, hold it behind the rows already held (order kept)."""
        batch = [_with_headers_rendered(row) for row in batch]
        if self._outage.active:
            self._hold(batch)
            self._retry()
            return
        try:
            self._commit(batch)
        except _Unwritable as exc:
            self._outage.begin(describe(exc.cause))
            self._after_failure(exc.cause)
            log.warning("request log %s is not writable (%s); the proxy carries on, holding up to %d records "
                        "in memory and retrying until it is", self.path, self._outage.last_error, self._backlog.limit)
            self._hold(batch[exc.handled:])
            self._changed()

    def _retry(self) -> None:
        """If a retry is due, write the held rows oldest first; all written ends the outage."""
        if not self._outage.due():
            return
        written = 0
        while len(self._backlog):
            rows = self._backlog.head(BATCH_MAX)
            try:
                self._commit(rows)
            except _Unwritable as exc:
                self._backlog.pop_head(exc.handled)
                self._outage.failed_again(describe(exc.cause))
                self._after_failure(exc.cause)
                return
            self._backlog.pop_head(len(rows))
            written += len(rows)
        seconds = self._outage.end()
        log.info("request log writable again after %.1fs: %d held records written, %d dropped in all",
                 seconds, written, self._backlog.dropped)
        self._changed()

    def _hold(self, rows: list[Row]) -> None:
        if self._backlog.extend(rows) and not self._outage.drops_reported:
            self._outage.drops_reported = True
            log.warning("request log backlog is full (%d records): dropping the oldest until the database is "
                        "writable again ([store] backlog raises the bound)", self._backlog.limit)

    def _after_failure(self, cause: BaseException) -> None:
        if self._conn is not None and not keeps_connection(cause):
            self._drop_connection()  # the next retry opens whatever file is there by then

    def _changed(self) -> None:
        callback = self.on_health_change
        if callback is not None:
            try:
                callback(self.health())
            except Exception:  # e.g. the event loop it forwards to has closed
                log.debug("request log: health listener failed", exc_info=True)

    def _commit(self, batch: list[Row]) -> None:
        """One transaction per batch; if it fails, retry row by row so one bad row costs one.

        Raises `_Unwritable` when the database itself cannot be written (nothing about the rows)."""
        try:
            self._ensure_connection()
            self._insert(batch)
            return
        except Exception as exc:
            if is_outage(exc):
                raise _Unwritable(exc, 0) from None
            log.warning("request log batch of %d failed; retrying row by row", len(batch))
        for i, row in enumerate(batch):
            try:
                self._insert([row])
            except Exception as exc:
                if is_outage(exc):
                    raise _Unwritable(exc, i) from None
                log.exception("request log: dropping request %s", row[0][0])

    def _ensure_connection(self) -> None:
        """Reconnect when the database file was deleted or replaced under the open connection: SQLite would
        go on writing into the unlinked file, and every row from then on would silently vanish with it."""
        vanished = False
        if self._conn is not None:
            if self._file_id is not None and _file_id(self.path) == self._file_id:
                return
            self._drop_connection()
            vanished = True
        self._conn = self._connect()
        if vanished and not self._outage.active:
            log.warning("request log %s was removed or replaced while in use; writing to a new one", self.path)

    def _drop_connection(self) -> None:
        conn, self._conn, self._file_id = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                log.debug("request log: closing a failed connection", exc_info=True)

    def _insert(self, batch: list[Row]) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            insert_rows(conn, [row for row, _ in batch], [b for _, b in batch if b is not None])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # --- reads (synchronous; callers use asyncio.to_thread) ---
    #
    # During an outage the newest records exist only in the backlog. recent() and get() merge them in
    # (the backlog's version wins: it is the newer one), so /_sidecar/requests never pretends they do not
    # exist; when the file cannot even be read, the backlog is all they return. The aggregates (stats,
    # spend) count committed rows only: they catch up when the backlog is written.

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

    def _held(self) -> dict[str, list[Row]]:
        """Backlog entries by record id, oldest first ({} while writable: the common case costs nothing)."""
        held: dict[str, list[Row]] = {}
        if len(self._backlog):
            for entry in self._backlog.snapshot():
                held.setdefault(entry[0][_ID], []).append(entry)
        return held

    def recent(self, limit: int = 50, *, before: str | None = None, provider: str | None = None,
               model: str | None = None, status: int | None = None) -> list[dict[str, Any]]:
        """Newest first. `before` is a record id (keyset page); an unknown id yields []."""
        held = self._held()
        wanted = {c: v for c, v in (("provider", provider), ("model", model), ("status", status)) if v is not None}
        anchor = (held[before][-1][0][_TS], before) if before in held else None
        where = [f"{column} = ?" for column in wanted]
        try:
            with self.reader() as conn:
                if before is not None and anchor is None:
                    anchor = conn.execute("SELECT ts, id FROM requests WHERE id = ?", (before,)).fetchone()
                    if anchor is None:
                        return []
                if anchor is not None:
                    where.append("(ts, id) < (?, ?)")
                sql = (f"SELECT {COLS_SQL} FROM requests WHERE {' AND '.join(where) or '1'}"
                       " ORDER BY ts DESC, id DESC LIMIT ?")
                rows = conn.execute(sql, [*wanted.values(), *(anchor or ()), limit + len(held)]).fetchall()
        except sqlite3.Error:
            if not held and not self._outage.active:
                raise
            if before is not None and anchor is None:
                return []
            rows = []  # the file cannot even be read: the held records are all there is
        if held:
            newest = [versions[-1][0] for versions in held.values()]
            newest = [r for r in newest if all(r[_FILTERABLE[c]] == v for c, v in wanted.items())
                      and (anchor is None or (r[_TS], r[_ID]) < tuple(anchor))]
            rows = [r for r in rows if r[_ID] not in held] + newest
            rows.sort(key=lambda r: (r[_TS], r[_ID]), reverse=True)
        return [row_dict(row) for row in rows[:limit]]

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One record plus its (already redacted, possibly truncated) bodies."""
        held = self._held().get(request_id, [])
        cols = ", ".join(f"r.{c}" for c in COLUMNS)
        sql = (f"SELECT {cols}, b.request_body, b.response_body, b.truncated, b.headers FROM requests r"
               " LEFT JOIN bodies b ON b.request_id = r.id WHERE r.id = ?")
        try:
            with self.reader() as conn:
                row = conn.execute(sql, (request_id,)).fetchone()
        except sqlite3.Error:
            if not held:
                raise
            row = None
        if row is None and not held:
            return None
        req, resp, truncated, headers = row[len(COLUMNS):] if row is not None else (None, None, 0, None)
        for _, bodies in held:  # the same upsert the database would do: later bodies win, none wipes one
            if bodies is not None:
                req = bodies[1] if bodies[1] is not None else req
                resp = bodies[2] if bodies[2] is not None else resp
                truncated = max(truncated or 0, bodies[3])
                headers = bodies[4] if bodies[4] is not None else headers
        data = row_dict(held[-1][0] if held else row[: len(COLUMNS)])
        text = lambda b: None if b is None else bytes(b).decode("utf-8", "replace")  # noqa: E731
        data.update(request_body=text(req), response_body=text(resp),
                    bodies_truncated=bool(truncated), headers=orjson.loads(headers) if headers else None)
        return data

    # --- aggregates: sidecar/store_stats.py (committed rows only) ---

    def stats(self, since: str | None = None) -> dict[str, Any]:
        """Totals and per provider / model since `since` (ISO 8601; None = all time)."""
        return store_stats.stats(self, since)

    def spend_by_day(self, days: int = 30) -> list[dict[str, Any]]:
        """Per UTC day, provider and model over the last `days` days; oldest first."""
        return store_stats.spend_by_day(self, days)

    def cost_by_day_provider_client(self, since_day: str, before_ts: str) -> list[tuple[str, str | None, str | None, float]]:
        """Priced spend per (UTC day, provider, client); what budgets start from."""
        return store_stats.cost_by_day_provider_client(self, since_day, before_ts)

    def spend_totals(self, days: int, by: str) -> list[dict[str, Any]]:
        """Totals per `by` (day | provider | model | client) over the last `days` UTC days."""
        return store_stats.spend_totals(self, days, by)


def _file_id(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` now (device, inode); None when nothing (readable) is there."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _with_headers_rendered(row: Row) -> Row:
    """Run a queued row's header callable (see `add`) in the writer thread: JSON bytes, or None."""
    requests_row, bodies = row
    if bodies is None or not callable(bodies[4]):
        return row
    headers = bodies[4]()
    return requests_row, (*bodies[:4], orjson.dumps(headers) if headers else None)


def _notify(done: Callable[[], None]) -> None:
    try:
        done()
    except Exception:  # e.g. the event loop that was flushing has since closed
        log.debug("request log: flush waiter gone", exc_info=True)
