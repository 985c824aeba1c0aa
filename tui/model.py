"""The TUI's in-memory traffic model: a bounded ring of request summaries plus running totals.

No textual import: the feed writes into it from the network side, the UI drains its change log at
its own pace (at most ~10 Hz), so neither waits on the other. Bodies are never held here; the
detail screen fetches them from the sidecar on demand.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tui.row import RequestRow, parse_attempt, parse_epoch, record_id

__all__ = ["RING_SIZE", "Changes", "RequestRow", "Totals", "TrafficModel"]

RING_SIZE = 10_000
"""Summaries kept in memory; about 1 KB each, so ~10 MB at the cap (mitmproxy keeps everything and
its users keep running out of RAM: mitmproxy#4129)."""


@dataclass(slots=True)
class Totals:
    """Running totals over every request this TUI has seen (history + live).

    Kept incrementally and *not* reduced when the ring evicts a row: spend must not go down
    because old rows scrolled out of memory."""

    requests: int = 0
    in_flight: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    """Finished requests with token usage but no known price."""


@dataclass(slots=True)
class Changes:
    """What happened since the last `TrafficModel.drain()`; the UI applies it in one batch."""

    reset: bool = False
    """Too much changed to patch: rebuild the view from `TrafficModel.newest()`."""
    added: list[RequestRow] = field(default_factory=list)
    updated: list[RequestRow] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.reset or bool(self.added or self.updated or self.removed)


class TrafficModel:
    """Ring of the newest `capacity` request summaries keyed by id, plus totals and a change log.

    Every mutator validates its input and raises `ValueError` on a record without a usable id, so
    the feed can skip a malformed event without corrupting state."""

    def __init__(self, capacity: int = RING_SIZE) -> None:
        self.capacity = capacity
        self.totals = Totals()
        self._rows: OrderedDict[str, RequestRow] = OrderedDict()
        self._seq = itertools.count()
        self._floor: float = float("-inf")
        """Newest epoch evicted so far; history older than this is not re-added (it was seen)."""
        self._added: dict[str, None] = {}
        self._updated: set[str] = set()
        self._removed: set[str] = set()
        self._reset = False
        self.new_since_drain = 0
        """Rows added since the last drain; the paused view shows it as "+N new"."""

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, rid: object) -> bool:
        return rid in self._rows

    def get(self, rid: str) -> RequestRow | None:
        return self._rows.get(rid)

    def newest(self, n: int, where: Callable[[RequestRow], bool] | None = None) -> list[RequestRow]:
        """The `n` newest rows (of those `where` accepts, if given), newest first."""
        rows = self._rows.values() if where is None else filter(where, self._rows.values())
        return heapq.nlargest(n, rows, key=lambda r: r.order)

    # -- mutators -------------------------------------------------------------------------

    def start(self, ev: dict[str, Any]) -> RequestRow | None:
        """Apply `request_started`. Ignored when the id is already known (a replayed or late event
        must never turn a finished row back into a pending one)."""
        if record_id(ev.get("id")) in self._rows:
            return None
        row = RequestRow.new(ev, next(self._seq))
        row.start(ev)
        self._insert(row)
        return row

    def attempt(self, ev: dict[str, Any]) -> RequestRow | None:
        """Apply an `attempt` event to its pending row; the row shows the latest target tried."""
        row = self._rows.get(record_id(ev.get("request_id")))
        att = parse_attempt(ev)
        if row is None or not row.pending or att is None:
            return None
        row.attempts.append(att)
        row.provider, row.model = att["provider"], att["model"]
        self._touch(row.id)
        return row

    def finish(self, rec: dict[str, Any], *, from_history: bool = False) -> RequestRow | None:
        """Apply a full record (`request_finished` or a history row): update in place or insert."""
        rid = record_id(rec.get("id"))
        row = self._rows.get(rid)
        if row is None:
            full = len(self._rows) >= self.capacity
            if from_history and full and parse_epoch(rec.get("ts")) <= self._floor:
                return None  # already seen and evicted; re-adding would double-count spend
            row = RequestRow.from_record(rec, next(self._seq))
            self._insert(row)
            return row
        before = self._contribution(row)
        row.update(rec)
        self._account(before, self._contribution(row))
        self._touch(rid)
        return row

    def load_history(self, records: list[Any]) -> int:
        """Merge `/requests` output (newest first); returns how many records were usable."""
        ok = 0
        for rec in reversed(records):
            if isinstance(rec, dict):
                try:
                    self.finish(rec, from_history=True)
                    ok += 1
                except ValueError:
                    continue
        return ok

    def abandon_pending(self, reason: str) -> int:
        """Close rows that can never finish (the sidecar restarted under them)."""
        n = 0
        for row in self._rows.values():
            if row.pending:
                before = self._contribution(row)
                row.pending, row.error = False, reason
                self._account(before, self._contribution(row))
                self._touch(row.id)
                n += 1
        return n

    def drain(self) -> Changes:
        """Hand the UI everything that changed since the last call and start a new log."""
        if self._reset:
            changes = Changes(reset=True)
        else:
            changes = Changes(
                added=[self._rows[i] for i in self._added],
                updated=[self._rows[i] for i in self._updated if i not in self._added],
                removed=list(self._removed),
            )
        self._added, self._updated, self._removed = {}, set(), set()
        self._reset, self.new_since_drain = False, 0
        return changes

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _contribution(row: RequestRow) -> tuple[int, int, float, int]:
        """(in_flight, errors, cost, unpriced) this row adds to the totals."""
        if row.pending:
            return (1, 0, 0.0, 0)
        unpriced = int(row.cost_usd is None and row.has_usage)
        return (0, int(row.is_error), row.cost_usd or 0.0, unpriced)

    def _account(self, before: tuple[int, int, float, int], after: tuple[int, int, float, int]) -> None:
        t = self.totals
        t.in_flight += after[0] - before[0]
        t.errors += after[1] - before[1]
        t.cost_usd += after[2] - before[2]
        t.unpriced += after[3] - before[3]

    def _insert(self, row: RequestRow) -> None:
        self._rows[row.id] = row
        self.totals.requests += 1
        self._account((0, 0, 0.0, 0), self._contribution(row))
        self.new_since_drain += 1
        if not self._reset:
            self._added[row.id] = None
            # A long pause would grow the log without bound; past the ring size a rebuild is cheaper.
            if len(self._added) > self.capacity:
                self._reset = True
                self._added, self._updated, self._removed = {}, set(), set()
        while len(self._rows) > self.capacity:
            self._evict()

    def _evict(self) -> None:
        rid, old = self._rows.popitem(last=False)
        self._floor = max(self._floor, old.epoch)
        if old.pending:
            self.totals.in_flight -= 1
        if self._reset:
            return
        if rid in self._added:
            del self._added[rid]
        else:
            self._removed.add(rid)
        self._updated.discard(rid)

    def _touch(self, rid: str) -> None:
        if not self._reset and rid not in self._added:
            self._updated.add(rid)
