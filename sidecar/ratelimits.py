"""The latest rate-limit figures each provider reported in its response headers.

Providers say how much quota is left on every answer, each in its own dialect:

- OpenAI and most OpenAI-compatible APIs (Groq, xAI, Together): ``x-ratelimit-limit|remaining|reset-requests``
  and ``-tokens``, resets as durations (``"6m0s"``, ``"12ms"``); OpenRouter's plain ``x-ratelimit-limit|remaining|
  reset`` (reset in epoch milliseconds).
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``, resets
  as RFC 3339 instants.
- The IETF draft: ``ratelimit-limit|remaining|reset`` (reset in seconds), or the structured
  ``ratelimit: "name";r=remaining;t=reset`` with ``ratelimit-policy: "name";q=quota``.
- ``retry-after`` / ``retry-after-ms`` on any answer.

`RateLimitBook.observe` runs on the hot path for every upstream answer, so it makes eleven case-insensitive
lookups (~0.5 µs on aiohttp's headers) and stops there when none of those headers is present;
an answer that carries them costs a few more lookups and string copies; parsing waits until someone reads the
figures. Only these headers' values are kept (numbers and times, never anything secret).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

_OPENAI = tuple(
    (bucket, f"x-ratelimit-limit-{bucket}", f"x-ratelimit-remaining-{bucket}", f"x-ratelimit-reset-{bucket}")
    for bucket in ("requests", "tokens")
) + (("requests", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"),)
_ANTHROPIC = tuple(
    (kind.replace("-", "_"), f"anthropic-ratelimit-{kind}-limit", f"anthropic-ratelimit-{kind}-remaining",
     f"anthropic-ratelimit-{kind}-reset")
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
)
_IETF = (("quota", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"),)
_FAMILIES = (("openai", _OPENAI), ("anthropic", _ANTHROPIC), ("ietf", _IETF))
_GATES = tuple(remaining for _, buckets in _FAMILIES for _, _, remaining, _ in buckets) + (
    "ratelimit", "retry-after", "retry-after-ms")
"""Whether an answer says anything about limits, in one lookup each: every dialect sends its ``remaining``
header whenever it sends the others."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_STRUCTURED = re.compile(r'"?([\w.-]+)"?\s*((?:;\s*\w+=[^;,]*)*)')
_PARAM = re.compile(r";\s*(\w+)=([^;,]*)")


@dataclass(slots=True)
class Bucket:
    """One quota (requests, tokens, ...) as last reported: the header values as sent, parsed when read."""

    limit: str | None
    remaining: str
    reset: str | None
    seen_at: float
    """Wall-clock epoch seconds of the answer (relative resets count from here)."""


@dataclass(slots=True)
class ProviderLimits:
    """What one provider's latest answers said about its limits."""

    seen_at: float = 0.0
    """Wall-clock epoch seconds of the latest answer that carried any rate-limit header."""
    status: int | None = None
    """HTTP status of that answer."""
    family: str | None = None
    """Which dialect it spoke: openai | anthropic | ietf (None when it only sent retry-after)."""
    buckets: dict[str, Bucket] = field(default_factory=dict)
    """Per quota; a quota missing from a later answer keeps its older figures (with their own time seen)."""
    structured: tuple[str, str | None] | None = None
    """The latest ``RateLimit`` and ``RateLimit-Policy`` values, for the structured IETF form."""
    retry_after: str | None = None
    """The latest answer's ``retry-after`` (seconds or an HTTP date), or ``retry-after-ms`` as ``"<n>ms"``."""


class RateLimitBook:
    """The latest figures per provider, kept in memory; cheap enough to feed from every upstream answer."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._providers: dict[str, ProviderLimits] = {}

    def observe(self, provider: str, headers: Mapping[str, str], status: int | None = None) -> None:
        """Remember what ``headers`` (one upstream answer's) say about ``provider``'s limits, if anything.

        Only lookups and string copies here; the values are parsed when someone reads them (`latest`), so an
        answer full of rate-limit headers costs a few microseconds and one without them well under one.
        """
        if not isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
            headers = {k.lower(): v for k, v in headers.items()}  # tests and odd callers: plain dicts
        for name in _GATES:
            if name in headers:
                break
        else:
            return  # the common case for providers that send none: eleven lookups and out
        found: list[tuple[str, str, Bucket]] = []
        now = 0.0
        for fam, buckets in _FAMILIES:
            for bucket, limit_h, remaining_h, reset_h in buckets:
                remaining = headers.get(remaining_h)
                if remaining is None:
                    continue
                now = now or self._clock()
                found.append((fam, bucket, Bucket(headers.get(limit_h), remaining, headers.get(reset_h), now)))
        structured = headers.get("ratelimit")
        retry_ms = headers.get("retry-after-ms")
        retry = f"{retry_ms}ms" if retry_ms is not None else headers.get("retry-after")
        now = now or self._clock()
        entry = self._providers.get(provider)
        if entry is None:
            entry = self._providers[provider] = ProviderLimits()
        fresh: set[str] = set()
        for fam, name, bucket in found:
            if name not in fresh:  # the more specific header of this answer wins (`-requests` over plain)
                fresh.add(name)
                entry.buckets[name] = bucket
        if structured is not None:
            entry.structured = (structured, headers.get("ratelimit-policy"))
        entry.family = found[0][0] if found else "ietf" if structured is not None else entry.family
        entry.retry_after = retry
        entry.seen_at, entry.status = now, status

    def latest(self, provider: str) -> dict[str, Any] | None:
        """The provider's figures as JSON-ready data (times ISO 8601, resets also as seconds from now)."""
        entry = self._providers.get(provider)
        if entry is None:
            return None
        now = self._clock()
        buckets = [_bucket(name, b.seen_at, _number(b.limit), _number(b.remaining),
                           _reset_at(b.reset, b.seen_at), now)
                   for name, b in entry.buckets.items()]  # fmt: skip
        if entry.structured is not None:
            buckets += _structured(*entry.structured, entry.seen_at, now)
        wait = _retry_after(entry.retry_after, entry.seen_at)
        retry_at = entry.seen_at + wait if wait is not None else None
        return {
            "provider": provider,
            "seen_at": _iso(entry.seen_at),
            "age_s": round(max(now - entry.seen_at, 0.0), 1),
            "status": entry.status,
            "family": entry.family,
            "buckets": buckets,
            "retry_after_at": _iso(retry_at),
            "retry_after_s": _until(retry_at, now),
        }

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {p: data for p in sorted(self._providers) if (data := self.latest(p)) is not None}


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _out(value: float | None) -> float | int | None:
    return int(value) if value is not None and value.is_integer() else value


def _reset_at(text: str | None, now: float) -> float | None:
    """A reset in any dialect as an epoch: a duration (``"1m30s"``, OpenAI), seconds from now (IETF, Together),
    epoch seconds or milliseconds (OpenRouter), or an RFC 3339 instant (Anthropic)."""
    if not text:
        return None
    text = text.strip()
    if (value := _number(text)) is not None:
        if value > 1e12:
            return value / 1000
        return value if value > 1e9 else now + value
    if parts := _DURATION.findall(text):
        return now + sum(float(n) * _UNITS[u] for n, u in parts)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _retry_after(value: str | None, seen_at: float) -> float | None:
    if value is None:
        return None
    if value.endswith("ms") and (ms := _number(value[:-2])) is not None:
        return ms / 1000
    if (seconds := _number(value)) is not None:
        return seconds
    try:
        return max(parsedate_to_datetime(value).timestamp() - seen_at, 0.0)
    except (TypeError, ValueError):
        return None


def _structured(value: str, policy: str | None, seen_at: float, now: float) -> list[dict[str, Any]]:
    """``RateLimit: "default";r=50;t=30`` (draft-ietf-httpapi-ratelimit-headers-08+); the quota ``q`` comes from
    the ``RateLimit-Policy`` item of the same name."""
    quotas: dict[str, float | None] = {}
    for m in _STRUCTURED.finditer(policy or ""):
        quotas[m.group(1)] = _number(dict(_PARAM.findall(m.group(2))).get("q"))
    out = []
    for m in _STRUCTURED.finditer(value):
        params = dict(_PARAM.findall(m.group(2)))
        if (remaining := _number(params.get("r"))) is None:
            continue
        reset = _number(params.get("t"))
        out.append(_bucket(m.group(1), seen_at, quotas.get(m.group(1)), remaining,
                           seen_at + reset if reset is not None else None, now))
    return out


def _bucket(name: str, seen_at: float, limit: float | None, remaining: float | None, reset_at: float | None,
            now: float) -> dict[str, Any]:
    used = round(100 * (1 - remaining / limit), 1) if limit and remaining is not None else None
    return {"name": name, "limit": _out(limit), "remaining": _out(remaining), "used_pct": used,
            "reset_at": _iso(reset_at), "reset_in_s": _until(reset_at, now), "seen_at": _iso(seen_at)}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _until(epoch: float | None, now: float) -> float | None:
    return None if epoch is None else round(max(epoch - now, 0.0), 1)
