"""Knobs that make a fake behave like a busy real provider: latency, rate limits, random faults.

Why: the tests want a fake that answers at once and always; `sidecar demo` wants one a newcomer
believes — answers that take a moment to start and stream at a human pace, rate-limit headers
that count down, and the odd 429 or 5xx so failover has something to do. Every knob here is off
unless a `FakeUpstream` is given it, and every random draw comes from the fake's own seeded
`random.Random`, so a test that sets a seed sees the same sequence on every run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LatencyProfile", "LATENCY", "RateLimits", "RateSnapshot", "pick_fault", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """How long a simulated model takes: to its first byte, and between stream chunks.

    Both are log-normal (most answers near the median, a long tail of slow ones, never negative),
    which is the shape real time-to-first-token figures have. A draw is capped at `cap` times the
    median so one unlucky sample cannot stall a demo or a test for a minute.
    """

    first_byte_s: float
    """Median seconds before the answer starts (headers and first chunk together)."""
    chunk_s: float
    """Median seconds between two stream chunks (one word each)."""
    spread: float = 0.5
    """Sigma of the underlying normal: 0.5 puts 95 % of draws within ~0.4x-2.7x of the median."""
    cap: float = 6.0

    def first_byte(self, rng: random.Random) -> float:
        return self._draw(rng, self.first_byte_s)

    def chunk(self, rng: random.Random) -> float:
        return self._draw(rng, self.chunk_s)

    def _draw(self, rng: random.Random, median: float) -> float:
        if median <= 0:
            return 0.0
        return min(rng.lognormvariate(math.log(median), self.spread), median * self.cap)


LATENCY: dict[str, LatencyProfile] = {
    "instant": LatencyProfile(0.0, 0.0),
    "snappy": LatencyProfile(0.25, 0.012, spread=0.4),
    "typical": LatencyProfile(0.6, 0.03),
    "slow": LatencyProfile(1.4, 0.05, spread=0.7),
}
"""Named profiles: "snappy" is a small fast model, "typical" a mid-size one, "slow" a large one at a busy hour."""


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """The state of both buckets right after one request was admitted (or refused)."""

    limit_requests: int
    remaining_requests: int
    reset_requests_s: float
    """Seconds until the request bucket is full again."""
    limit_tokens: int
    remaining_tokens: int
    reset_tokens_s: float
    now: float
    """Wall-clock epoch of the snapshot (Anthropic states resets as absolute RFC 3339 times)."""
    limited: str | None = None
    """None when admitted, else which bucket ran dry: "requests" or "tokens"."""
    retry_after_s: float = 0.0
    """When limited: seconds until the request would fit."""


@dataclass
class RateLimits:
    """Per-minute request and token limits as two continuously refilling buckets.

    That is how OpenAI and Anthropic describe theirs: capacity = the per-minute limit, refilled
    smoothly, and the "reset" headers say when the bucket is full again. Tokens are charged up
    front from an estimate (prompt size + requested max output), as the real APIs do at admission.
    With `enforce`, a request that does not fit gets a 429 and consumes nothing.
    """

    requests_per_minute: int = 500
    tokens_per_minute: int = 200_000
    enforce: bool = True
    clock: Callable[[], float] = time.time
    """Injected so tests can freeze time and see the countdown exactly."""
    _levels: list[float] = field(default_factory=list, init=False, repr=False)
    _at: float | None = field(default=None, init=False, repr=False)

    def take(self, tokens: int) -> RateSnapshot:
        """Admit one request costing `tokens` (clamped to the limit) and report what is left."""
        now = self.clock()
        limits = (self.requests_per_minute, self.tokens_per_minute)
        if self._at is None:
            self._levels = [float(limits[0]), float(limits[1])]
        else:
            elapsed = max(0.0, now - self._at)
            self._levels = [min(lim, lvl + elapsed * lim / 60) for lim, lvl in zip(limits, self._levels)]
        self._at = now
        cost = (1.0, float(min(max(tokens, 0), limits[1])))
        short = [c - lvl for c, lvl in zip(cost, self._levels)]
        limited = None
        retry = 0.0
        if self.enforce and (short[0] > 1e-9 or short[1] > 1e-9):
            limited = "requests" if short[0] > 1e-9 else "tokens"
            retry = max(s * 60 / lim for s, lim in zip(short, limits) if s > 1e-9)
        else:
            self._levels = [max(0.0, lvl - c) for lvl, c in zip(self._levels, cost)]
        resets = [(lim - lvl) * 60 / lim for lim, lvl in zip(limits, self._levels)]
        return RateSnapshot(limits[0], math.floor(self._levels[0]), resets[0],
                            limits[1], math.floor(self._levels[1]), resets[1], now, limited, retry)


def pick_fault(rng: random.Random, weights: dict[int, float]) -> int:
    """One status from a provider's fault mix, e.g. {429: 4, 500: 2, 503: 2}."""
    statuses = list(weights)
    return rng.choices(statuses, weights=[weights[s] for s in statuses])[0]


_MAX_OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def estimate_tokens(raw: bytes, body: Any) -> int:
    """What a provider charges a request at admission: ~4 bytes a prompt token, plus the requested
    maximum output (Gemini's `generationConfig.maxOutputTokens` included)."""
    total = max(1, len(raw) // 4)
    if isinstance(body, dict):
        for name in _MAX_OUTPUT_FIELDS:
            if isinstance(body.get(name), int):
                return total + body[name]
        gen = body.get("generationConfig", body.get("generation_config"))
        if isinstance(gen, dict):
            value = gen.get("maxOutputTokens", gen.get("max_output_tokens"))
            if isinstance(value, int):
                return total + value
    return total
