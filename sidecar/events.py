"""The event bus: live request events for the TUI, the control API's SSE stream and anything else.

`publish` is synchronous and never blocks or awaits: a slow subscriber must never stall the proxy.
Each subscriber gets a bounded queue; when it is full the oldest event is dropped and counted, and
the subscriber can catch up from the request history (the store) instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


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
        if not self._subs:
            return
        event = Event(type_, data)
        for sub in self._subs:
            q = sub.queue
            if q.full():
                q.get_nowait()  # drop the oldest: a slow reader must never stall the proxy
                sub.dropped += 1
            q.put_nowait(event)
