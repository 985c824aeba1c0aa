"""Budgets: daily / monthly USD caps, globally, per provider and per client, enforced on the request path.

Why it looks like this:

- **Spend so far comes from the store, once.** At start, month-to-date cost per (UTC day, provider, client) is
  read in a thread; from then on every finished request adds its cost in memory (`finished`). The request path
  only reads dicts; the one await it may do is on that initial load, in the first instant after start.
- **A client** is the record's ``client`` label (``X-Sidecar-Client``, else the user agent). A budget named
  ``claude-cli`` also covers a user agent ``claude-cli/1.0.3 (external, cli)``: the label's product token counts.
- **Overspend is bounded to one in-flight request per client.** Each admitted request reserves a pessimistic
  cost (input ≈ chars/2 tokens, output = its ``max_tokens`` or 16,384, at the target's catalog price ×1.25).
  While a budget's spend + all reservations + this one fit under its cap, requests run concurrently. When it
  does not fit (or the price is unknown), the request waits until its client has nothing else in flight, then
  is checked again: so the requests in flight when a cap is crossed are at most one per client, beyond those
  whose pessimistic reservations fit under the cap. Warn mode never waits.
- Requests whose price is unknown add nothing to a budget (their cost is unknown, not $0): price them with a
  ``[prices]`` override to budget them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.ir import Usage
from sidecar.config import Budgets, Limits
from sidecar.util import spawn, utc_now_iso

log = logging.getLogger("sidecar.budgets")

DEFAULT_MAX_OUTPUT = 16_384
RESERVE_FACTOR = 1.25


@dataclass(frozen=True, slots=True)
class Exhausted:
    """A budget a request falls under that has no money left for this period."""

    scope: str  # "global" | "provider openai" | "client claude-code"
    period: str  # "daily" | "monthly"
    limit: float
    spent: float
    resets: datetime

    def message(self) -> str:
        return (f"{self.period} budget for {self.scope} exhausted: ${self.spent:.4f} spent of ${self.limit:.4f}; "
                f"resets at {self.resets.isoformat().replace('+00:00', 'Z')}")

    def retry_after(self, now: datetime | None = None) -> int:
        return max(1, int((self.resets - (now or datetime.now(UTC))).total_seconds()) + 1)


def _periods(now: datetime) -> tuple[tuple[str, str, datetime], ...]:
    """(period name, key, reset time) for today and this month, in UTC."""
    day = now.strftime("%Y-%m-%d")
    tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return (("daily", day, tomorrow), ("monthly", day[:7], next_month))


class BudgetBook:
    def __init__(self, budgets: Budgets, store: Any | None) -> None:
        self.cfg = budgets
        self._spent: dict[tuple[str, str], float] = {}  # (scope, period key) -> USD
        self._reserved: dict[str, float] = {}  # scope -> USD reserved by requests in flight
        self._inflight: dict[str, int] = {}  # client -> admitted requests in flight
        self._holds: dict[str, tuple[str, list[str], float]] = {}  # request id -> (client, scopes, reserved)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._loaded: asyncio.Task[None] | None = None
        if budgets.any and store is not None:
            self._loaded = spawn(self._load(store, utc_now_iso()), name="budgets-load")

    async def _load(self, store: Any, cutoff: str) -> None:
        month_start = datetime.now(UTC).strftime("%Y-%m-01")
        try:
            rows = await asyncio.to_thread(store.cost_by_day_provider_client, month_start, cutoff)
        except Exception as exc:  # a missing or unreadable log starts budgets at zero, loudly
            log.warning("budgets start at $0: the request log could not be read (%s)", exc)
            return
        for day, provider, client, cost in rows:
            self._add(day, provider, client, cost)

    # --- scopes ---

    def _client_budget(self, client: str | None) -> str | None:
        if not client or not self.cfg.clients:
            return None
        if client in self.cfg.clients:
            return client
        token = client.split("/", 1)[0].split(" ", 1)[0]
        return token if token in self.cfg.clients else None

    def _scopes(self, providers: list[str], client: str | None) -> list[tuple[str, Limits]]:
        scopes = [("global", self.cfg.total)]
        scopes += [(f"provider {p}", self.cfg.providers[p]) for p in dict.fromkeys(providers) if p in self.cfg.providers]
        name = self._client_budget(client)
        if name is not None:
            scopes.append((f"client {name}", self.cfg.clients[name]))
        return [(s, lim) for s, lim in scopes if lim.daily_usd is not None or lim.monthly_usd is not None]

    def _add(self, day: str, provider: str | None, client: str | None, cost: float) -> None:
        scopes = ["global"] + ([f"provider {provider}"] if provider else [])
        name = self._client_budget(client)
        if name is not None:
            scopes.append(f"client {name}")
        for scope in scopes:
            for key in (day, day[:7]):
                self._spent[scope, key] = self._spent.get((scope, key), 0.0) + cost

    def spent(self, scope: str, period_key: str) -> float:
        return self._spent.get((scope, period_key), 0.0)

    # --- the request path ---

    def exhausted(self, providers: list[str], client: str | None, extra: float = 0.0) -> Exhausted | None:
        """The first cap this request falls under whose spend (+ ``extra`` reserved) has reached it."""
        now = datetime.now(UTC)
        for scope, limits in self._scopes(providers, client):
            for period, key, resets in _periods(now):
                limit = limits.daily_usd if period == "daily" else limits.monthly_usd
                if limit is None:
                    continue
                spent = self.spent(scope, key)
                held = self._reserved.get(scope, 0.0) + extra if extra else 0.0
                if spent >= limit or (extra and spent + held > limit):
                    return Exhausted(scope, period, limit, spent, resets)
        return None

    async def admit(self, request_id: str, providers: list[str], client: str | None,
                    reserve: float | None) -> Exhausted | None:
        """None = go ahead (the caller must call `finished` later); else the budget that blocks it.

        Block mode only; see the module docstring for the concurrency rule."""
        if self._loaded is not None and not self._loaded.done():
            await asyncio.shield(self._loaded)
        scopes = [s for s, _ in self._scopes(providers, client)]
        if not scopes:
            return None
        who = client or ""
        while True:
            blocked = self.exhausted(providers, client)
            if blocked is not None:
                return blocked
            fits = reserve is not None and self.exhausted(providers, client, extra=reserve) is None
            if fits or not self._inflight.get(who):
                break
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(who, []).append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters.get(who, ()):
                    self._waiters[who].remove(fut)
        held = reserve or 0.0
        for s in scopes:
            self._reserved[s] = self._reserved.get(s, 0.0) + held
        self._inflight[who] = self._inflight.get(who, 0) + 1
        self._holds[request_id] = (who, scopes, held)
        return None

    async def warnings(self, providers: list[str], client: str | None) -> Exhausted | None:
        if self._loaded is not None and not self._loaded.done():
            await asyncio.shield(self._loaded)
        return self.exhausted(providers, client)

    def finished(self, request_id: str, ts: str, provider: str | None, client: str | None,
                 cost: float | None) -> None:
        """A request ended (any outcome): count its cost and let its client's next request go."""
        if cost:
            self._add(ts[:10], provider, client, cost)
        hold = self._holds.pop(request_id, None)
        if hold is None:
            return
        who, scopes, held = hold
        for s in scopes:
            self._reserved[s] = max(0.0, self._reserved.get(s, 0.0) - held)
        self._inflight[who] -= 1
        if self._inflight[who] <= 0:
            del self._inflight[who]
            for fut in self._waiters.pop(who, []):
                if not fut.done():
                    fut.set_result(None)


def reservation(prices: Any, provider: str, model: str, input_chars: int, max_tokens: int | None) -> float | None:
    """A pessimistic cost for a request about to run; None when the price is unknown."""
    usage = Usage(input=input_chars // 2 + 1, output=max_tokens or DEFAULT_MAX_OUTPUT)
    cost = prices.cost(provider, model, usage)
    return None if cost is None else cost * RESERVE_FACTOR


def budget_status(cfg: Budgets, book: BudgetBook) -> dict[str, Any]:
    """What ``GET /_sidecar/budgets`` answers: each cap with spend so far and its reset time."""
    now = datetime.now(UTC)
    scopes = [("global", cfg.total)] + [(f"provider {p}", lim) for p, lim in cfg.providers.items()]
    scopes += [(f"client {c}", lim) for c, lim in cfg.clients.items()]
    out = []
    for scope, limits in scopes:
        for period, key, resets in _periods(now):
            limit = limits.daily_usd if period == "daily" else limits.monthly_usd
            if limit is not None:
                spent = book.spent(scope, key)
                out.append({"scope": scope, "period": period, "limit_usd": limit, "spent_usd": round(spent, 6),
                            "remaining_usd": round(max(0.0, limit - spent), 6),
                            "resets": resets.isoformat().replace("+00:00", "Z")})
    return {"mode": cfg.mode, "budgets": out}
