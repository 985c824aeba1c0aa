"""Keeps a `TrafficModel` in sync with a running sidecar: history first, then the live event stream.

No textual import. The feed writes into the model as events arrive (cheap dict updates) and never
calls into the UI; the UI polls `Feed.status` and drains the model's change log at its own rate,
so a slow terminal can neither stall this loop nor, through it, the proxy.

Connection cycle: `/health` (listen address, restart detection) → open `/events` → load
`/requests?limit=N` and `/notices` → apply events until the stream ends. On any failure: wait with
exponential backoff and start over; reloading history on every reconnect is how the TUI catches up on
what happened while it was away.

While connected, a side task keeps `FeedStatus.budget` (the tightest budget's money left) current from
`/budgets`: at once, soon after each priced request or budget notice, and every `BUDGET_POLL_S` anyway
(a new day or month resets caps without any event).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from typing import Any

import orjson

from tui.client import ControlClient, ControlError, SSEEvent, describe_error
from tui.model import TrafficModel
from tui.notices import NoticeStore

HISTORY_LIMIT = 500
STABLE_S = 5.0
"""A connection that lasted this long resets the backoff; one that drops at once (a sidecar
accepting then closing) keeps backing off instead of reloading history in a tight loop."""
BUDGET_POLL_S = 5.0
BUDGET_MIN_S = 1.0
"""Budget reads after priced requests are at most this frequent, however busy the proxy is."""


@dataclasses.dataclass(frozen=True, slots=True)
class BudgetLeft:
    """The configured cap with the least money left (`tightest_budget`)."""

    remaining_usd: float
    limit_usd: float
    period: str
    """daily | monthly"""
    scope: str
    """global | provider X | client Y"""


def tightest_budget(entries: list[dict[str, Any]]) -> BudgetLeft | None:
    """The `/budgets` entry with the least remaining (daily before monthly on a tie); None without any."""
    best: BudgetLeft | None = None
    for e in entries:
        remaining, limit = e.get("remaining_usd"), e.get("limit_usd")
        if not isinstance(remaining, (int, float)) or not isinstance(limit, (int, float)):
            continue
        left = BudgetLeft(float(remaining), float(limit), str(e.get("period", "")), str(e.get("scope", "")))
        if best is None or (left.remaining_usd, left.period != "daily") < (best.remaining_usd, best.period != "daily"):
            best = left
    return best


class FeedState(enum.Enum):
    CONNECTING = "connecting"
    """Never connected yet (the sidecar may simply not be running)."""
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    """Was connected, lost the sidecar, retrying; the rows on screen are what we had."""


@dataclasses.dataclass(slots=True)
class FeedStatus:
    """What the status bar shows about the connection. Replaced, never mutated, so the UI can
    compare by identity to skip redundant repaints."""

    state: FeedState
    url: str
    listen: str | None = None
    version: str | None = None
    error: str | None = None
    retry_at: float | None = None
    """`time.monotonic()` of the next attempt, for a live countdown."""
    skipped: int = 0
    """Malformed events skipped since start."""
    proxy_paused: bool = False
    """The sidecar's emergency brake (`/health`'s `paused`, kept current by events and polls)."""
    budget: BudgetLeft | None = None
    """The tightest configured budget; None when none is configured (or the sidecar predates budgets)."""

    def describe(self, now: float | None = None) -> str:
        """`connected to …`, or `connecting to … (retrying in 2s: connection refused)`."""
        where = self.listen or self.url
        if self.state is FeedState.CONNECTED:
            return f"connected to {where}"
        verb = "connecting to" if self.state is FeedState.CONNECTING else "reconnecting to"
        detail = ""
        if self.retry_at is not None:
            left = max(0.0, self.retry_at - (time.monotonic() if now is None else now))
            detail = f"retrying in {left:.0f}s" if left >= 1 else "retrying"
            if self.error:
                detail += f": {self.error}"
        return f"{verb} {where} ({detail})" if detail else f"{verb} {where}"


class Feed:
    """Follows one sidecar forever (until cancelled), reconnecting with capped exponential backoff.

    Args:
        client: Control API client; also used by the detail screen, so the feed does not close it.
        model: Where history and events land.
        history_limit: Records loaded on every (re)connect.
        backoff: (first, max) seconds between attempts; tests pass tiny values.
        notices: Where `notice` events and the `/notices` catch-up land.
    """

    def __init__(
        self,
        client: ControlClient,
        model: TrafficModel,
        *,
        history_limit: int = HISTORY_LIMIT,
        backoff: tuple[float, float] = (0.5, 10.0),
        notices: NoticeStore | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.notices = notices if notices is not None else NoticeStore()
        self._budgets_due = asyncio.Event()
        self.history_limit = history_limit
        self.backoff = backoff
        self.status = FeedStatus(FeedState.CONNECTING, client.url)
        self.store_health: dict[str, Any] | None = None
        """The sidecar's request-log state (`/health`'s `store_health`, or a `store` event): the banner's source."""
        self.connects = 0
        """Successful connections so far (the first load counts)."""
        self._started_at: str | None = None
        self._since = 0.0
        """`time.monotonic()` of the last successful connect."""

    def _set(self, **changes: Any) -> None:
        self.status = dataclasses.replace(self.status, **changes)

    async def run(self) -> None:
        delay = self.backoff[0]
        while True:
            try:
                await self._follow()
                error = "event stream ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad cycle (bug or network) must not end the feed
                error = describe_error(exc)
            if self.status.state is FeedState.CONNECTED and time.monotonic() - self._since >= STABLE_S:
                delay = self.backoff[0]  # it worked for a while: retry quickly
            state = FeedState.CONNECTING if self.connects == 0 else FeedState.RECONNECTING
            self._set(state=state, error=error, retry_at=time.monotonic() + delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _follow(self) -> None:
        health = await self.client.health()
        started_at = health.get("started_at")
        if self._started_at is not None and started_at != self._started_at:
            # A new sidecar process: requests that were in flight in the old one never finish.
            self.model.abandon_pending("sidecar restarted")
        self._started_at = started_at if isinstance(started_at, str) else None
        listen = health.get("listen")
        version = health.get("version")
        self.note_health(health)
        async with self.client.events() as events:
            self.model.load_history(await self.client.recent(self.history_limit))
            await self._catch_up_notices()
            self.connects += 1
            self._since = time.monotonic()
            self._set(
                state=FeedState.CONNECTED,
                listen=listen if isinstance(listen, str) else None,
                version=version if isinstance(version, str) else None,
                error=None,
                retry_at=None,
            )
            budgets = asyncio.create_task(self._follow_budgets(), name="feed-budgets")
            try:
                async for ev in events:
                    self.apply(ev)
            finally:
                budgets.cancel()
                await asyncio.gather(budgets, return_exceptions=True)

    async def _catch_up_notices(self) -> None:
        """What the sidecar noticed while this TUI was away; an older sidecar without `/notices` is fine."""
        try:
            data = await self.client.get_json("/_sidecar/notices")
        except ControlError:
            return
        if isinstance(data, dict) and isinstance(data.get("notices"), list):
            self.notices.load(data["notices"])

    async def _follow_budgets(self) -> None:
        """Runs beside the event loop of one connection; see the module docstring for when it reads."""
        while True:
            self._budgets_due.clear()
            try:
                self.note_budgets(await self.client.budgets())
            except asyncio.CancelledError:
                raise
            except ControlError:  # no /budgets (an older sidecar) or a refusal: show no budget
                self.note_budgets([])
            except Exception:  # a network hiccup: keep showing the last figure; the feed reconnects if needed
                pass
            await asyncio.sleep(BUDGET_MIN_S)
            try:
                await asyncio.wait_for(self._budgets_due.wait(), BUDGET_POLL_S - BUDGET_MIN_S)
            except TimeoutError:
                pass

    def note_budgets(self, entries: list[dict[str, Any]]) -> None:
        """Take the tightest cap from a `/budgets` answer."""
        budget = tightest_budget(entries)
        if budget != self.status.budget:
            self._set(budget=budget)

    def note_health(self, health: dict[str, Any]) -> None:
        """Take `paused` from a `/health` answer (the feed's own, or the app's periodic poll)."""
        paused = bool(health.get("paused", False))
        if isinstance(store := health.get("store_health"), dict):
            self.store_health = store
        if paused != self.status.proxy_paused:
            self._set(proxy_paused=paused)

    def apply(self, ev: SSEEvent) -> bool:
        """Apply one event to the model; a malformed one is counted and skipped, never raised."""
        try:
            data = orjson.loads(ev.data)
            if not isinstance(data, dict):
                raise ValueError("event data is not an object")
            if ev.event == "request_started":
                self.model.start(data)
            elif ev.event == "attempt":
                self.model.attempt(data)
            elif ev.event == "request_finished":
                self.model.finish(data)
                if data.get("cost_usd"):
                    self._budgets_due.set()
            elif ev.event == "notice":
                if self.notices.apply(data).kind == "budget":
                    self._budgets_due.set()
            elif ev.event == "store":
                self.store_health = data
            elif ev.event in ("paused", "resumed"):
                self._set(proxy_paused=ev.event == "paused")
            elif ev.event == "hello":
                if isinstance(v := data.get("version"), str):
                    self._set(version=v)
            # Unknown types are ignored: a newer sidecar may send events this TUI predates.
        except (ValueError, TypeError, KeyError):
            self._set(skipped=self.status.skipped + 1)
            return False
        return True
