"""What the sidecar has learnt about each provider from its own traffic: cool-downs, breakers, latency.

- **Cool-down**: a provider that answered 429/503 with ``Retry-After`` (or ``retry-after-ms``, or Gemini's
  ``RetryInfo.retryDelay``, or an Anthropic/OpenAI rate-limit reset header) is skipped until then.
- **Breaker**: after `FAILURES_TO_OPEN` failures in a row (connection errors, timeouts, 5xx), the provider is
  skipped for a while; when that time is up one request is let through as a probe (half-open): success closes
  the breaker, failure opens it again for twice as long (up to `MAX_OPEN_SECONDS`).
- **Latency**: an exponentially weighted moving average of time to first token per provider+model drives the
  ``lowest_latency`` strategy; recent samples give the percentiles that ``/_sidecar/stats`` shows.
- **Rate limits seen**: every outcome that comes with the provider's response headers hands them to
  `HealthBook.ratelimits` (`sidecar.ratelimits`), which keeps the latest quota figures per provider for the
  control API's provider pages.

All of it is in memory and cheap to update on every attempt; it is advice for routing, never a reason to drop a
request that has no other target (a single target in cool-down fails fast with a clear error instead).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sidecar.ratelimits import RateLimitBook

log = logging.getLogger("sidecar.health")

FAILURES_TO_OPEN = 5
FIRST_OPEN_SECONDS = 15.0
MAX_OPEN_SECONDS = 300.0
MAX_COOLDOWN_SECONDS = 600.0
"""A Retry-After longer than this is capped: a provider that says "come back tomorrow" is retried sooner."""
EWMA_ALPHA = 0.3
WINDOW = 200
"""Recent attempts kept per provider for error rates and percentiles."""


@dataclass(slots=True)
class ProviderHealth:
    provider: str
    consecutive_failures: int = 0
    breaker: str = "closed"
    """closed | open | half_open"""
    open_until: float = 0.0
    open_seconds: float = FIRST_OPEN_SECONDS
    probe_in_flight: bool = False
    cooldown_until: float = 0.0
    cooldown_reason: str | None = None
    recent: deque[tuple[bool, float]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    """(succeeded, duration_ms) of recent attempts."""
    ttft_ewma: dict[str, float] = field(default_factory=dict)
    """model → EWMA of time to first token (or total latency for non-streamed answers), ms."""


class HealthBook:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._providers: dict[str, ProviderHealth] = {}
        self.ratelimits = RateLimitBook(wall_clock)
        """The latest rate-limit headers per provider, fed by the outcomes below when they carry headers."""

    def get(self, provider: str) -> ProviderHealth:
        health = self._providers.get(provider)
        if health is None:
            health = self._providers[provider] = ProviderHealth(provider)
        return health

    # ------------------------------------------------------------------------------------------- decisions

    def unavailable(self, provider: str) -> str | None:
        """Why ``provider`` should be skipped right now, or None if it may be tried.

        A half-open breaker admits exactly one probe at a time; that call claims it.
        """
        health = self._providers.get(provider)
        if health is None:
            return None
        now = self._clock()
        if health.cooldown_until > now:
            return f"{provider} is cooling down for {health.cooldown_until - now:.0f}s ({health.cooldown_reason})"
        if health.breaker == "open":
            if now < health.open_until:
                return f"{provider}'s breaker is open for {health.open_until - now:.0f}s after repeated failures"
            health.breaker = "half_open"
        if health.breaker == "half_open":
            if health.probe_in_flight:
                return f"{provider}'s breaker is half-open and a probe request is in flight"
            health.probe_in_flight = True
        return None

    def may_try(self, provider: str) -> bool:
        """Whether `unavailable` would let ``provider`` be tried now, without claiming a half-open probe."""
        health = self._providers.get(provider)
        if health is None:
            return True
        now = self._clock()
        if health.cooldown_until > now:
            return False
        if health.breaker == "open" and now < health.open_until:
            return False
        return not (health.breaker != "closed" and health.probe_in_flight)

    def retry_after(self, providers: list[str]) -> float | None:
        """Seconds until the first of ``providers`` may be tried again, if all are unavailable."""
        now = self._clock()
        waits = []
        for p in providers:
            h = self._providers.get(p)
            if h is None:
                return None
            waits.append(max(h.cooldown_until, h.open_until if h.breaker == "open" else 0.0) - now)
        return max(min(waits), 0.0) if waits else None

    def ttft(self, provider: str, model: str) -> float | None:
        health = self._providers.get(provider)
        return health.ttft_ewma.get(model) if health else None

    # ------------------------------------------------------------------------------------------- outcomes

    def success(self, provider: str, model: str, *, duration_ms: float, ttft_ms: float | None,
                headers: Mapping[str, str] | None = None, status: int | None = None) -> None:
        if headers is not None:
            self.ratelimits.observe(provider, headers, status)
        health = self.get(provider)
        health.recent.append((True, duration_ms))
        health.consecutive_failures = 0
        if health.breaker != "closed":
            health.breaker, health.open_seconds = "closed", FIRST_OPEN_SECONDS
            log.info("%s breaker closed: it answers again", provider, extra={"notice": "breaker", "provider": provider})
        health.probe_in_flight = False
        sample = ttft_ms if ttft_ms is not None else duration_ms
        old = health.ttft_ewma.get(model)
        health.ttft_ewma[model] = sample if old is None else old + EWMA_ALPHA * (sample - old)

    def failure(self, provider: str, *, status: int | None, duration_ms: float,
                headers: Mapping[str, str] | None = None, body: bytes = b"") -> None:
        """Record a failed attempt. Only provider-side failures count towards the breaker; a 4xx the request
        caused is not the provider's fault (and is not reported here)."""
        if headers is not None:
            self.ratelimits.observe(provider, headers, status)
        health = self.get(provider)
        health.recent.append((False, duration_ms))
        now = self._clock()
        wait = retry_after_seconds(headers or {}, body) if status in (429, 503, 529) else None
        if wait:
            wait = min(wait, MAX_COOLDOWN_SECONDS)
            if now + wait > health.cooldown_until:
                health.cooldown_until = now + wait
                health.cooldown_reason = f"HTTP {status}, retry after {wait:g}s"
        health.consecutive_failures += 1
        if health.breaker == "half_open":
            health.open_seconds = min(health.open_seconds * 2, MAX_OPEN_SECONDS)
            health.breaker, health.open_until = "open", now + health.open_seconds
            log.warning("%s breaker open again for %gs: its probe failed", provider, health.open_seconds,
                        extra={"notice": "breaker", "provider": provider})
        elif health.breaker == "closed" and health.consecutive_failures >= FAILURES_TO_OPEN:
            health.breaker, health.open_until = "open", now + health.open_seconds
            log.warning("%s breaker opened for %gs after %d failures in a row", provider, health.open_seconds,
                        health.consecutive_failures, extra={"notice": "breaker", "provider": provider})
        health.probe_in_flight = False

    def alive(self, provider: str, *, headers: Mapping[str, str] | None = None, status: int | None = None) -> None:
        """The provider answered properly, though not with success (a 4xx the request caused)."""
        if headers is not None:
            self.ratelimits.observe(provider, headers, status)
        health = self._providers.get(provider)
        if health is not None:
            health.consecutive_failures = 0
            if health.breaker != "closed":
                health.breaker, health.open_seconds = "closed", FIRST_OPEN_SECONDS
                log.info("%s breaker closed: it answers again", provider,
                         extra={"notice": "breaker", "provider": provider})
            health.probe_in_flight = False

    def release_probe(self, provider: str) -> None:
        """The probe ended without telling us anything (the client went away, or the request was bad)."""
        health = self._providers.get(provider)
        if health is not None:
            health.probe_in_flight = False

    # ------------------------------------------------------------------------------------------- reporting

    def snapshot(self) -> list[dict[str, Any]]:
        now, wall = self._clock(), time.time()
        return [_row(h, now, wall) for _, h in sorted(self._providers.items())]

    def snapshot_one(self, provider: str) -> dict[str, Any] | None:
        """`snapshot`'s row for one provider, or None when it has not been tried yet."""
        health = self._providers.get(provider)
        return None if health is None else _row(health, self._clock(), time.time())


def _row(h: ProviderHealth, now: float, wall: float) -> dict[str, Any]:
    durations = sorted(d for ok, d in h.recent if ok)
    errors = sum(1 for ok, _ in h.recent if not ok)
    state = h.breaker
    if state == "open" and now >= h.open_until:
        state = "half_open"
    return {
        "provider": h.provider,
        "breaker": state,
        "consecutive_failures": h.consecutive_failures,
        "cooldown_until": _iso(wall + h.cooldown_until - now) if h.cooldown_until > now else None,
        "cooldown_reason": h.cooldown_reason if h.cooldown_until > now else None,
        "open_until": _iso(wall + h.open_until - now) if state == "open" else None,
        "recent_attempts": len(h.recent),
        "error_rate": round(errors / len(h.recent), 4) if h.recent else None,
        "latency_ms_p50": _pct(durations, 0.5),
        "latency_ms_p95": _pct(durations, 0.95),
        "ttft_ms_ewma": {m: round(v, 2) for m, v in sorted(h.ttft_ewma.items())},
    }


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 2)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_GEMINI_DELAY = re.compile(rb'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')


def retry_after_seconds(headers: Mapping[str, str], body: bytes = b"") -> float | None:
    """The wait a provider asked for, from whichever hint it gave (the SDKs read them in this order)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if (ms := lower.get("retry-after-ms")) is not None:
        try:
            if not math.isnan(seconds := float(ms) / 1000):  # "inf" is capped later; "nan" is garbage
                return max(seconds, 0.0)
        except ValueError:
            pass
    if (value := lower.get("retry-after")) is not None:
        try:
            if not math.isnan(seconds := float(value)):
                return max(seconds, 0.0)
            raise ValueError(value)
        except ValueError:
            try:
                return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                pass
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):  # OpenAI: "6m0s", "12ms"
        if (value := lower.get(name)) and (seconds := _duration(value)) is not None:
            return seconds
    for name in ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset"):  # RFC 3339
        if value := lower.get(name):
            try:
                return max(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - time.time(), 0.0)
            except ValueError:
                pass
    if body and (m := _GEMINI_DELAY.search(body)):
        return float(m.group(1))
    return None


def _duration(text: str) -> float | None:
    parts = _DURATION.findall(text)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)
