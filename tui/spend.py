"""Spend figures for the Spend screen: time windows, tolerant parsing of `/stats`, the projection.

No textual import. Windows are UTC days, as the sidecar's budgets and `sidecar spend` count them:
"today" starts at 00:00 UTC, "7 days" is today and the six days before. An unknown price stays
unknown: a bucket whose usage was all unpriced has `cost_usd = None` and shows as "?", and
`unpriced` counts the requests whose cost is missing from every dollar figure.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Bucket:
    """One row of spend: a provider, a model, or a window's total."""

    name: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    unpriced: int = 0

    @classmethod
    def parse(cls, d: Any, name: str) -> Bucket:
        if not isinstance(d, dict):
            return cls(name)

        def num(key: str) -> int:
            v = d.get(key)
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

        cost = d.get("cost_usd")
        return cls(
            name=name,
            requests=num("requests"),
            errors=num("errors"),
            input_tokens=num("input_tokens"),
            output_tokens=num("output_tokens"),
            cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            unpriced=num("unpriced_requests"),
        )


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    since: datetime
    totals: Bucket
    by_provider: list[Bucket] = field(default_factory=list)
    by_model: list[Bucket] = field(default_factory=list)

    @classmethod
    def parse(cls, label: str, since: datetime, stats: dict[str, Any]) -> Window:
        providers = [
            Bucket.parse(d, str(d.get("provider") or "?"))
            for d in _list(stats.get("by_provider"))
        ]
        models = [
            Bucket.parse(d, f"{d.get('provider') or '?'}/{d.get('model') or '?'}")
            for d in _list(stats.get("by_model"))
        ]
        return cls(label, since, Bucket.parse(stats.get("totals"), label), providers, models)


def _list(v: Any) -> list[dict[str, Any]]:
    return [d for d in v if isinstance(d, dict)] if isinstance(v, list) else []


def day_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def windows(now: datetime) -> list[tuple[str, datetime]]:
    """(label, since) for today, 7 days and 30 days, all starting at a UTC midnight."""
    today = day_start(now)
    return [("today", today), ("7 days", today - timedelta(days=6)), ("30 days", today - timedelta(days=29))]


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Projection:
    month_to_date: float | None
    per_day: float | None
    """Average daily spend over the rate window (the time it covers so far)."""
    days_left: float
    projected: float | None
    unpriced: int
    """Requests in the month so far whose cost is unknown (not in any figure)."""


def projection(now: datetime, month: Bucket, rate_window: Window) -> Projection:
    """Month to date plus the rate window's daily average for the rest of the month.

    The rate is the window's cost divided by the time it covers so far (6–7 days for "7 days",
    since today is partial), so one expensive morning does not read as a whole expensive day."""
    now = now.astimezone(timezone.utc)
    start = month_start(now)
    days_in_month = calendar.monthrange(start.year, start.month)[1]
    end = start + timedelta(days=days_in_month)
    days_left = (end - now).total_seconds() / DAY_S
    elapsed = max((now - rate_window.since).total_seconds() / DAY_S, 1 / 24)
    cost = rate_window.totals.cost_usd
    per_day = None if cost is None else cost / elapsed
    mtd = month.cost_usd
    projected = None if per_day is None or mtd is None else mtd + per_day * days_left
    return Projection(mtd, per_day, days_left, projected, month.unpriced)
