"""The event bus: live request events for the TUI, the control API's SSE stream and anything else.

`publish` is synchronous and never blocks or awaits: a slow subscriber must never stall the proxy.
Each subscriber gets a bounded queue; when it is full the oldest event is dropped and counted, and
the subscriber can catch up from the request history (the store) instead.

Listeners (`add_listener`) are the other kind of consumer: plain functions called synchronously inside
`publish`, for cheap in-memory bookkeeping such as the `/metrics` counters, with no queue or task. They must
be fast and must not block; an exception in one is logged and swallowed, never raised into the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sidecar.events")

Listener = Callable[["Event"], None]


@dataclass(slots=True)
class Event:
    type: str
    """request_started | attempt | request_finished | log"""
    data: dict[str, Any]


@dataclass(slots=True, eq=False)
class Subscription:
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=2048))
    dropped: int = 0

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._listeners: tuple[Listener, ...] = ()
        """A tuple, replaced on change: a listener may add or remove listeners while `publish` iterates."""

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(event)`` synchronously inside every `publish`. ``fn`` must be quick, must not block and
        must not mutate ``event.data`` (subscribers share the same dict); its exceptions are logged, not raised."""
        self._listeners = (*self._listeners, fn)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners = tuple(f for f in self._listeners if f != fn)

    def subscribe(self, maxsize: int = 2048) -> Subscription:
        sub = Subscription(asyncio.Queue(maxsize=maxsize))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        if not self._subs and not self._listeners:
            return
        event = Event(type_, data)
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:  # a bookkeeping bug must never fail a request
                log.exception("event listener %r failed on %s", fn, type_)
        for sub in self._subs:
            q = sub.queue
            if q.full():
                q.get_nowait()  # drop the oldest: a slow reader must never stall the proxy
                sub.dropped += 1
            q.put_nowait(event)
