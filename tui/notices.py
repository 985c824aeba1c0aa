"""The sidecar's notices on the TUI side: a bounded store for the event log (`E`) and the toast throttle.

No textual import. The feed writes ``notice`` events (and the ``/_sidecar/notices`` catch-up on every
(re)connect) into `NoticeStore`; the event-log screen redraws when `NoticeStore.version` moves; the app hands
new live notices to `Toaster`, which decides what becomes a toast. Notices loaded from history never toast:
they happened while the TUI was away and are in the event log instead.

A notice the sidecar merged (an error storm) comes again with the same ``id`` and a larger ``count``; it
updates in place here, and only the increase counts towards toasts.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["LEVELS", "Notice", "NoticeStore", "Toast", "Toaster", "level_rank"]

LEVELS = ("debug", "info", "warning", "error", "critical")
CAPACITY = 1000
"""Notices kept; the sidecar keeps its last 500, so this holds a reconnect's worth and more."""
MAX_NEW = 200
"""Undrained live notices kept for toasts; past it the oldest are dropped (a toast per 2 s cannot show more)."""


def level_rank(level: str) -> int:
    """0 for debug … 4 for critical; an unknown level ranks as warning (a newer sidecar's level is not noise)."""
    try:
        return LEVELS.index(level)
    except ValueError:
        return 2


@dataclass(slots=True)
class Notice:
    id: str
    ts: str
    level: str
    source: str
    kind: str
    message: str
    count: int = 1
    provider: str | None = None
    last_ts: str | None = None
    """When the last merged copy happened (count > 1)."""
    order: int = 0

    @classmethod
    def parse(cls, data: Any) -> Notice:
        """From a ``notice`` event or history entry; `ValueError` when it lacks an id, a time or a message."""
        if not isinstance(data, dict):
            raise ValueError("notice is not an object")
        nid, ts, message = data.get("id"), data.get("ts"), data.get("message")
        if not isinstance(nid, (str, int)) or isinstance(nid, bool) or not isinstance(ts, str) \
                or not isinstance(message, str):
            raise ValueError("notice without id, ts or message")
        count = data.get("count")
        provider, last_ts = data.get("provider"), data.get("last_ts")

        def text(key: str, default: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) and value else default

        return cls(
            id=str(nid), ts=ts, level=text("level", "warning").lower(), source=text("source", "sidecar"),
            kind=text("kind", "log"), message=message,
            count=count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1,
            provider=provider if isinstance(provider, str) else None,
            last_ts=last_ts if isinstance(last_ts, str) else None,
        )

    @property
    def rank(self) -> int:
        return level_rank(self.level)

    def local_time(self) -> str:
        """HH:MM:SS on the user's clock, like the traffic list."""
        try:
            return datetime.fromisoformat(self.ts.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
        except (ValueError, OverflowError, OSError):
            return "??:??:??"


class NoticeStore:
    """The newest `capacity` notices by id, plus the live ones not yet handed to the toaster."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Notice] = OrderedDict()
        self._seq = itertools.count()
        self._new: list[tuple[Notice, int]] = []
        self.version = 0
        """Moves on every change; screens redraw when it differs from what they drew."""

    def __len__(self) -> int:
        return len(self._items)

    def apply(self, data: Any, *, live: bool = True) -> Notice:
        """Add or update one notice; a live one (not history) is queued for `drain_new` with its count
        increase. Raises `ValueError` on a malformed notice, leaving the store as it was."""
        incoming = Notice.parse(data)
        known = self._items.get(incoming.id)
        if known is not None:
            delta = max(0, incoming.count - known.count)
            known.count = max(known.count, incoming.count)
            known.last_ts = incoming.last_ts or known.last_ts
            if live and delta:
                self._queue(known, delta)
            self.version += delta > 0
            return known
        incoming.order = next(self._seq)
        self._items[incoming.id] = incoming
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        if live:
            self._queue(incoming, incoming.count)
        self.version += 1
        return incoming

    def load(self, notices: list[Any]) -> int:
        """Merge ``/_sidecar/notices`` output (newest first); returns how many were usable. Never toasts."""
        ok = 0
        for data in reversed(notices):
            try:
                self.apply(data, live=False)
                ok += 1
            except ValueError:
                continue
        return ok

    def newest(self, min_level: str = "debug") -> list[Notice]:
        """Newest first, by the sidecar's time (a live notice can arrive before older catch-up ones)."""
        floor = level_rank(min_level)
        rows = [n for n in self._items.values() if n.rank >= floor]
        rows.sort(key=lambda n: (n.ts, n.order), reverse=True)
        return rows

    def drain_new(self) -> list[tuple[Notice, int]]:
        """Live notices (with how much each one's count grew) since the last call."""
        new, self._new = self._new, []
        return new

    def _queue(self, notice: Notice, delta: int) -> None:
        self._new.append((notice, delta))
        if len(self._new) > MAX_NEW:
            del self._new[: len(self._new) - MAX_NEW]


@dataclass(frozen=True, slots=True)
class Toast:
    title: str
    message: str
    severity: str = "warning"


TOAST_KINDS: dict[str, tuple[str, str]] = {
    "budget": ("Budget", "budget alerts"),
    "missing_key": ("Missing key", "requests without a key"),
    "failover": ("Failover", "failovers"),
}
"""Which notice kinds toast, most urgent first: (title, plural for a coalesced toast)."""


class Toaster:
    """At most one toast per `gap` seconds; what arrives in between is coalesced per kind ("3 failovers").

    Args:
        gap: Seconds between toasts.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(self, gap: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = gap
        self._clock = clock
        self._last = float("-inf")
        self._pending: dict[str, tuple[int, Notice]] = {}

    def offer(self, notice: Notice, delta: int = 1) -> None:
        if notice.kind not in TOAST_KINDS or delta <= 0:
            return
        count, _ = self._pending.get(notice.kind, (0, notice))
        self._pending[notice.kind] = (count + delta, notice)

    def due(self) -> Toast | None:
        """The next toast, if one is pending and the last was at least `gap` ago."""
        now = self._clock()
        if not self._pending or now - self._last < self.gap:
            return None
        kind = next(k for k in TOAST_KINDS if k in self._pending)
        count, latest = self._pending.pop(kind)
        title, plural = TOAST_KINDS[kind]
        self._last = now
        message = latest.message if count == 1 else f"{count} {plural}; latest: {latest.message}"
        return Toast(title, message)

    def pump(self, store: NoticeStore) -> Toast | None:
        """Take the store's new live notices and return the toast to show now, if any."""
        for notice, delta in store.drain_new():
            self.offer(notice, delta)
        return self.due()
