"""Aggregate queries over the request log: totals, percentiles and spend, for the control API and the CLI.

Each runs on one read-only WAL snapshot (`RequestStore.reader`) and counts committed rows only; records held
in memory during a write outage (see sidecar/store_backlog.py) are counted once they reach the database.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sidecar.store import RequestStore


def stats(store: RequestStore, since: str | None = None) -> dict[str, Any]:
    """Totals and per provider / model since `since` (ISO 8601; None = all time).

    Aggregates in Python over the selected rows (one query, ~11 values per row), which
    nearest-rank percentiles need anyway: O(n) time and memory, ~0.1 s per 50k rows.
    Fine for a local log; move sums into SQL if it ever gets much bigger.
    """
    where, args = ("WHERE ts >= ?", [_ts_key(since)]) if since else ("", [])
    with store.reader() as conn:
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


def spend_by_day(store: RequestStore, days: int = 30) -> list[dict[str, Any]]:
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
    with store.reader() as conn:
        rows = conn.execute(sql, (first_day.isoformat(),)).fetchall()
    return [
        {"day": day, "provider": provider, "model": model, "requests": n,
         "cost_usd": _cost(cost, priced, unpriced), "input_tokens": tokens_in,
         "output_tokens": tokens_out, "unpriced_requests": unpriced}
        for day, provider, model, n, cost, priced, tokens_in, tokens_out, unpriced in rows
    ]


def cost_by_day_provider_client(store: RequestStore, since_day: str, before_ts: str) -> list[tuple[str, str | None, str | None, float]]:
    """Priced spend per (UTC day, provider, client) from `since_day` up to (not incl.) `before_ts`;
    what budgets start from. Unpriced rows add nothing: their cost is unknown, not $0."""
    sql = """SELECT substr(ts, 1, 10) AS day, provider, client, TOTAL(cost_usd) FROM requests
        WHERE ts >= ? AND ts < ? AND cost_usd IS NOT NULL GROUP BY day, provider, client"""
    with store.reader() as conn:
        return conn.execute(sql, (since_day, before_ts)).fetchall()


def spend_totals(store: RequestStore, days: int, by: str) -> list[dict[str, Any]]:
    """Totals per `by` (day | provider | model | client) over today and the `days - 1` UTC days before;
    `cost_usd` is None when a group's only usage was unpriced (see `_cost`)."""
    key = SPEND_KEYS[by]
    first_day = datetime.now(timezone.utc).date() - timedelta(days=days - 1)
    sql = f"""SELECT {key} AS k, COUNT(*), TOTAL(cost_usd), SUM(cost_usd IS NOT NULL),
        {", ".join(f"COALESCE(SUM({t}), 0)" for t in _TOKENS)}, SUM({_UNPRICED}),
        SUM(usage_source = 'estimated'), SUM(status IS NULL OR status >= 400)
        FROM requests WHERE ts >= ? GROUP BY k ORDER BY {"k" if by == "day" else "TOTAL(cost_usd) DESC, k"}"""
    with store.reader() as conn:
        rows = conn.execute(sql, (first_day.isoformat(),)).fetchall()
    out = []
    for k, n, cost, priced, *rest in rows:
        tokens, (unpriced, estimated, errors) = rest[:len(_TOKENS)], rest[len(_TOKENS):]
        out.append({by: k, "requests": n, "errors": errors, **dict(zip(_TOKENS, tokens)),
                    "cost_usd": _cost(cost, priced, unpriced), "unpriced_requests": unpriced,
                    "estimated_requests": estimated})
    return out


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
