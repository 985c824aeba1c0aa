"""What the request log does while its database cannot be written: hold records in memory, retry, report.

A full disk, a read-only or vanished data dir, or a corrupt file must never fail a request: the proxy keeps
answering, the writer thread parks rows in a bounded `Backlog` (oldest dropped first, and counted), and the
`Outage` tracks since when, why, and when to try again (exponential backoff, so a full disk costs one
failed transaction per few seconds, not one per request). Both live on the writer thread; readers in other
threads (the control API, `health()`) only take snapshots under the backlog's lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from typing import Any

from sidecar.util import utc_now_iso

DEFAULT_LIMIT = 50_000
"""Records held in memory during an outage. A record row is ~1 KB in memory, so ~50 MB at worst: about a
day of a busy coding agent (one request every 2 s), long enough for someone to notice and free the disk."""
BODY_BUDGET = 64 * 1024 * 1024
"""Bytes of request/response bodies held in total. Bodies are capped per record (256 KiB each by default),
so without this 50k records could hold 25 GB; beyond it, held records keep their metadata but not bodies."""
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
"""Retry backoff bounds: quick recovery from a blip, then one attempt every 5 s while the disk stays full."""

Row = tuple[tuple[Any, ...], tuple[Any, ...] | None]
"""(requests row, bodies row or None), as the store queues them."""

_KEEP_CONNECTION = frozenset({"SQLITE_FULL", "SQLITE_BUSY", "SQLITE_LOCKED"})


def is_outage(exc: BaseException) -> bool:
    """True when the database itself cannot be written (retry later, keep the rows), as opposed to one bad
    row (IntegrityError and friends: drop that row, keep going)."""
    if isinstance(exc, (sqlite3.OperationalError, OSError)):
        return True  # disk full, read-only, I/O error, locked, unable to open, dir missing or replaced
    return type(exc) is sqlite3.DatabaseError  # e.g. "database disk image is malformed"


def keeps_connection(exc: BaseException) -> bool:
    """Whether retrying can reuse the connection: a full disk or a lock clears by itself, while a read-only,
    moved or unopenable file needs a fresh connection to see the file that is there now."""
    return getattr(exc, "sqlite_errorname", None) in _KEEP_CONNECTION


def describe(exc: BaseException) -> str:
    """A short cause for logs and `/health`: SQLite's own words, or the OS error (paths only, no data)."""
    text = str(exc) or type(exc).__name__
    return text[:300]


class Backlog:
    """Records waiting for the database, oldest first; bounded by count and by body bytes."""

    def __init__(self, limit: int = DEFAULT_LIMIT, *, body_budget: int = BODY_BUDGET) -> None:
        self.limit = max(1, limit)
        """At least one: the newest record is what the next retry tests the database with."""
        self.body_budget = body_budget
        self.dropped = 0
        """Records dropped (oldest first) because the backlog was full; lost for good."""
        self.bodies_dropped = 0
        """Records held without their bodies because the body budget was spent."""
        self._rows: deque[Row] = deque()
        self._body_bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def extend(self, rows: list[Row]) -> int:
        """Hold ``rows`` behind the ones already held; returns how many old ones were dropped to make room."""
        dropped = 0
        with self._lock:
            for requests_row, bodies in rows:
                size = _body_size(bodies)
                if size and self._body_bytes + size > self.body_budget:
                    bodies, size = None, 0
                    self.bodies_dropped += 1
                self._rows.append((requests_row, bodies))
                self._body_bytes += size
                while len(self._rows) > self.limit:
                    self._body_bytes -= _body_size(self._rows.popleft()[1])
                    dropped += 1
            self.dropped += dropped
        return dropped

    def head(self, n: int) -> list[Row]:
        """The oldest ``n`` held rows (still held until `pop_head`)."""
        with self._lock:
            return [self._rows[i] for i in range(min(n, len(self._rows)))]

    def pop_head(self, n: int) -> None:
        """Forget the oldest ``n`` rows: they are committed (or were bad rows, logged and dropped)."""
        with self._lock:
            for _ in range(min(n, len(self._rows))):
                self._body_bytes -= _body_size(self._rows.popleft()[1])

    def snapshot(self) -> list[Row]:
        """A copy for readers in other threads."""
        with self._lock:
            return list(self._rows)


def _body_size(bodies: tuple[Any, ...] | None) -> int:
    if bodies is None:
        return 0
    return len(bodies[1] or b"") + len(bodies[2] or b"") + len(bodies[4] or b"")


class Outage:
    """Whether the database is writable, since when, why, and when the writer should try again."""

    def __init__(self) -> None:
        self.active = False
        self.since: str | None = None
        """ISO time the current outage began; None while writable."""
        self.last_error: str | None = None
        """The most recent write failure (kept after recovery, for the record)."""
        self.drops_reported = False
        """Whether this outage's first drop has been logged (one warning per outage, not one per record)."""
        self._started = 0.0
        self._delay = RETRY_FIRST_S
        self._retry_at = 0.0

    def begin(self, error: str) -> None:
        self.active, self.since, self.last_error = True, utc_now_iso(), error
        self.drops_reported = False
        self._started = time.monotonic()
        self._delay = RETRY_FIRST_S
        self._retry_at = self._started + self._delay

    def failed_again(self, error: str) -> None:
        self.last_error = error
        self._delay = min(self._delay * 2, RETRY_MAX_S)
        self._retry_at = time.monotonic() + self._delay

    def end(self) -> float:
        """Back to writable; returns how long the outage lasted in seconds."""
        self.active, self.since = False, None
        return time.monotonic() - self._started

    def due(self) -> bool:
        return self.active and time.monotonic() >= self._retry_at

    def retry_now(self) -> None:
        self._retry_at = 0.0

    def wait_s(self) -> float | None:
        """How long the writer may block waiting for new rows: forever while writable, else until the retry."""
        if not self.active:
            return None
        return max(0.0, self._retry_at - time.monotonic())
