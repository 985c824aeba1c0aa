"""HealthBook (cool-downs, breaker, latency) and strategy.order_targets, as pure units: no I/O, no sleeps.

Everything that depends on time runs on a fake clock the test moves by hand. The only wall-clock reads are
for hints that are absolute times (HTTP dates, RFC 3339 resets) and the ISO times in `snapshot()`, and those
are compared with a tolerance of seconds, never as a performance threshold.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from adapters.presets import PRESETS
from sidecar.config import ModelAlias, Price
from sidecar.health import (EWMA_ALPHA, FAILURES_TO_OPEN, FIRST_OPEN_SECONDS, MAX_COOLDOWN_SECONDS, MAX_OPEN_SECONDS,
                            WINDOW, HealthBook, retry_after_seconds)
from sidecar.pricing import PriceBook
from sidecar.routing import Target
from sidecar.strategy import order_targets

T0 = 10_000.0


class Clock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def book(clock: Clock) -> HealthBook:
    return HealthBook(clock=clock)


def fail(book: HealthBook, provider: str = "p", *, status: int | None = 500, headers: dict | None = None,
         body: bytes = b"", times: int = 1) -> None:
    for _ in range(times):
        book.failure(provider, status=status, duration_ms=10.0, headers=headers, body=body)


def ok(book: HealthBook, provider: str = "p", model: str = "m", *, duration_ms: float = 10.0,
       ttft_ms: float | None = None) -> None:
    book.success(provider, model, duration_ms=duration_ms, ttft_ms=ttft_ms)


def parse_iso(text: str) -> float:
    assert text.endswith("Z")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- retry_after_seconds: every hint format ------------------------------------------------------------

@pytest.mark.parametrize("headers,expected", [
    ({"retry-after": "7"}, 7.0),
    ({"Retry-After": "7"}, 7.0),  # header names are case-insensitive
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": "0"}, 0.0),
    ({"retry-after": "-3"}, 0.0),  # never a negative wait
    ({"retry-after-ms": "1500"}, 1.5),
    ({"RETRY-AFTER-MS": "250"}, 0.25),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the SDKs prefer the millisecond hint
    ({"retry-after-ms": "abc", "retry-after": "4"}, 4.0),  # an unreadable ms hint falls through
    ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
    ({"x-ratelimit-reset-requests": "12ms"}, 0.012),
    ({"x-ratelimit-reset-requests": "20s"}, 20.0),
    ({"x-ratelimit-reset-requests": "1h2m3.5s"}, 3723.5),
    ({"x-ratelimit-reset-tokens": "1m30s"}, 90.0),
    ({"x-ratelimit-reset-requests": "whenever", "x-ratelimit-reset-tokens": "2s"}, 2.0),
    ({"retry-after": "3", "x-ratelimit-reset-requests": "6m0s"}, 3.0),  # Retry-After wins over resets
], ids=lambda v: repr(v) if not isinstance(v, float) else None)
def test_retry_after_header_formats(headers, expected):
    assert retry_after_seconds(headers) == pytest.approx(expected)


def test_retry_after_http_date():
    future = datetime.now(UTC) + timedelta(seconds=120)
    wait = retry_after_seconds({"Retry-After": format_datetime(future, usegmt=True)})
    assert wait is not None and 115 <= wait <= 121  # the date has 1 s resolution; seconds of slack, no timing
    past = datetime.now(UTC) - timedelta(hours=1)
    assert retry_after_seconds({"retry-after": format_datetime(past, usegmt=True)}) == 0.0


@pytest.mark.parametrize("name", ["anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset"])
def test_retry_after_anthropic_rfc3339_reset(name):
    future = (datetime.now(UTC) + timedelta(seconds=90)).replace(microsecond=0)
    for text in (future.isoformat().replace("+00:00", "Z"), future.isoformat()):
        wait = retry_after_seconds({name: text})
        assert wait is not None and 85 <= wait <= 91
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert retry_after_seconds({name: past}) == 0.0


GEMINI_429 = (b'{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED",'
              b'"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},'
              b'{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"%ss"}]}}')


@pytest.mark.parametrize("delay,expected", [(b"30", 30.0), (b"1.5", 1.5), (b"0", 0.0)])
def test_retry_after_gemini_retry_info_body(delay, expected):
    assert retry_after_seconds({}, GEMINI_429.replace(b"%s", delay)) == expected


def test_retry_after_gemini_pretty_printed_body():
    body = b'{\n  "error": {\n    "details": [\n      {\n        "retryDelay": "17s"\n      }\n    ]\n  }\n}'
    assert retry_after_seconds({}, body) == 17.0


def test_headers_win_over_gemini_body():
    assert retry_after_seconds({"retry-after": "2"}, GEMINI_429.replace(b"%s", b"30")) == 2.0


@pytest.mark.parametrize("headers,body", [
    ({}, b""),
    ({"retry-after": "soon"}, b""),
    ({"retry-after": ""}, b""),
    ({"retry-after-ms": "abc"}, b""),
    ({"x-ratelimit-reset-requests": "whenever"}, b""),
    ({"x-ratelimit-reset-tokens": ""}, b""),
    ({"anthropic-ratelimit-requests-reset": "tomorrow"}, b""),
    ({"x-unrelated": "5"}, b""),
    ({}, b"not json at all"),
    ({}, GEMINI_429.replace(b'"%ss"', b'"later"')),
    ({}, b'{"error":{"message":"retryDelay is 30s"}}'),
], ids=["nothing", "word", "empty", "ms-garbage", "reset-garbage", "reset-empty", "rfc3339-garbage",
        "unrelated-header", "garbage-body", "gemini-garbage-delay", "gemini-not-a-field"])
def test_retry_after_garbage_is_none(headers, body):
    assert retry_after_seconds(headers, body) is None


@pytest.mark.parametrize("name", ["retry-after", "retry-after-ms"])
def test_retry_after_nan_is_garbage(name):
    assert retry_after_seconds({name: "nan", "x-ratelimit-reset-requests": "20s"}) == 20.0


# ---- cool-down -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503, 529])
def test_cooldown_set_from_hint_and_respected_until_it_passes(book, clock, status):
    fail(book, status=status, headers={"Retry-After": "30"})
    why = book.unavailable("p")
    assert why is not None and "cooling down" in why and f"HTTP {status}" in why
    h = book.get("p")
    assert h.cooldown_until == T0 + 30 and h.breaker == "closed"
    clock.advance(29.9)
    assert book.unavailable("p") is not None
    assert book.retry_after(["p"]) == pytest.approx(0.1)
    clock.advance(0.1)
    assert book.unavailable("p") is None
    assert book.unavailable("other-provider") is None  # never seen: always available


def test_cooldown_from_gemini_body_and_ms_header(book, clock):
    fail(book, "g", status=429, body=GEMINI_429.replace(b"%s", b"12"))
    assert book.get("g").cooldown_until == T0 + 12
    fail(book, "o", status=503, headers={"retry-after-ms": "2500"})
    assert book.get("o").cooldown_until == T0 + 2.5
    assert book.get("o").cooldown_reason == "HTTP 503, retry after 2.5s"


def test_cooldown_is_capped(book, clock):
    fail(book, status=429, headers={"retry-after": str(7 * 24 * 3600)})
    assert book.get("p").cooldown_until == T0 + MAX_COOLDOWN_SECONDS
    assert book.get("p").cooldown_reason == f"HTTP 429, retry after {MAX_COOLDOWN_SECONDS:g}s"
    clock.advance(MAX_COOLDOWN_SECONDS)
    assert book.unavailable("p") is None


def test_infinite_hint_is_capped_too(book):
    fail(book, status=429, headers={"retry-after": "inf"})
    assert book.get("p").cooldown_until == T0 + MAX_COOLDOWN_SECONDS


@pytest.mark.parametrize("status,headers", [
    (429, None), (503, {}), (529, {"retry-after": "soon"}), (429, {"retry-after": "0"}),
    (500, {"retry-after": "30"}), (502, {"retry-after": "30"}), (None, {"retry-after": "30"}),
], ids=["429-no-hint", "503-no-hint", "529-garbage", "429-zero", "500-with-hint", "502-with-hint", "no-status"])
def test_no_cooldown_without_a_usable_hint_or_for_other_statuses(book, status, headers):
    fail(book, status=status, headers=headers)
    h = book.get("p")
    assert h.cooldown_until == 0.0 and h.cooldown_reason is None
    assert book.unavailable("p") is None
    assert h.consecutive_failures == 1  # still counted as a failure


def test_shorter_hint_does_not_shorten_a_cooldown(book, clock):
    fail(book, status=429, headers={"retry-after": "60"})
    clock.advance(10)
    fail(book, status=429, headers={"retry-after": "5"})
    assert book.get("p").cooldown_until == T0 + 60
    fail(book, status=429, headers={"retry-after": "100"})
    assert book.get("p").cooldown_until == T0 + 10 + 100


def test_success_does_not_cancel_a_cooldown(book, clock):
    """A request already in flight may succeed after the 429; the provider's hint still stands."""
    fail(book, status=429, headers={"retry-after": "30"})
    ok(book)
    assert book.unavailable("p") is not None


# ---- breaker -------------------------------------------------------------------------------------------

def test_breaker_opens_after_consecutive_failures(book, clock):
    fail(book, times=FAILURES_TO_OPEN - 1)
    h = book.get("p")
    assert h.breaker == "closed" and h.consecutive_failures == FAILURES_TO_OPEN - 1
    assert book.unavailable("p") is None
    fail(book)
    assert h.breaker == "open" and h.open_until == T0 + FIRST_OPEN_SECONDS
    why = book.unavailable("p")
    assert why is not None and "breaker is open" in why
    clock.advance(FIRST_OPEN_SECONDS - 0.01)
    assert book.unavailable("p") is not None and h.breaker == "open"
    assert book.retry_after(["p"]) == pytest.approx(0.01)


def test_failures_with_no_response_count(book):
    fail(book, status=None, times=FAILURES_TO_OPEN)  # connection errors, timeouts, broken streams
    assert book.get("p").breaker == "open"


def test_success_resets_consecutive_failures(book):
    fail(book, times=FAILURES_TO_OPEN - 1)
    ok(book)
    assert book.get("p").consecutive_failures == 0
    fail(book, times=FAILURES_TO_OPEN - 1)
    assert book.get("p").breaker == "closed" and book.unavailable("p") is None


def test_half_open_admits_exactly_one_probe(book, clock):
    fail(book, times=FAILURES_TO_OPEN)
    clock.advance(FIRST_OPEN_SECONDS)
    h = book.get("p")
    assert book.unavailable("p") is None  # this caller is the probe
    assert h.breaker == "half_open" and h.probe_in_flight
    for _ in range(3):  # everyone else is refused while it is in flight
        why = book.unavailable("p")
        assert why is not None and "probe" in why
    clock.advance(1000)  # however long the probe takes
    assert book.unavailable("p") is not None


def test_probe_success_closes_the_breaker(book, clock):
    fail(book, times=FAILURES_TO_OPEN)
    clock.advance(FIRST_OPEN_SECONDS)
    assert book.unavailable("p") is None
    ok(book)
    h = book.get("p")
    assert (h.breaker, h.consecutive_failures, h.probe_in_flight, h.open_seconds) == (
        "closed", 0, False, FIRST_OPEN_SECONDS)
    assert all(book.unavailable("p") is None for _ in range(3))  # no probe needed any more


def test_probe_failure_reopens_for_twice_as_long_up_to_the_cap(book, clock):
    fail(book, times=FAILURES_TO_OPEN)
    h = book.get("p")
    expected = FIRST_OPEN_SECONDS
    seen = []
    for _ in range(8):
        clock.advance(expected)
        assert book.unavailable("p") is None  # the probe
        fail(book)  # ... fails
        expected = min(expected * 2, MAX_OPEN_SECONDS)
        assert h.breaker == "open" and not h.probe_in_flight
        assert h.open_until == pytest.approx(clock.now + expected)
        seen.append(h.open_seconds)
        clock.advance(expected - 0.01)
        assert book.unavailable("p") is not None  # still open until the full (doubled) time
        clock.advance(-(expected - 0.01))
    assert seen == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0, 300.0, 300.0]
    # A probe that finally succeeds resets the open time for the next incident.
    clock.advance(MAX_OPEN_SECONDS)
    assert book.unavailable("p") is None
    ok(book)
    fail(book, times=FAILURES_TO_OPEN)
    assert h.open_until == clock.now + FIRST_OPEN_SECONDS


def test_open_breaker_is_not_extended_by_late_failures(book, clock):
    """Requests already in flight when the breaker opened may still fail; they don't move the open time."""
    fail(book, times=FAILURES_TO_OPEN)
    clock.advance(5)
    fail(book, times=3)
    h = book.get("p")
    assert h.breaker == "open" and h.open_until == T0 + FIRST_OPEN_SECONDS


def test_alive_closes_and_resets(book, clock):
    book.alive("unknown")  # nothing known yet: stays unknown
    assert book.snapshot() == []
    fail(book, times=FAILURES_TO_OPEN - 1)
    book.alive("p")  # a 4xx the request caused: the provider answered properly
    assert book.get("p").consecutive_failures == 0
    fail(book, times=FAILURES_TO_OPEN)
    clock.advance(FIRST_OPEN_SECONDS)
    assert book.unavailable("p") is None  # probe
    book.alive("p")
    h = book.get("p")
    assert (h.breaker, h.probe_in_flight, h.consecutive_failures) == ("closed", False, 0)
    assert book.unavailable("p") is None and book.unavailable("p") is None
    assert len(h.recent) == 2 * FAILURES_TO_OPEN - 1  # alive() is not an attempt outcome for the stats


def test_release_probe_lets_the_next_caller_probe(book, clock):
    book.release_probe("unknown")  # harmless
    fail(book, times=FAILURES_TO_OPEN)
    clock.advance(FIRST_OPEN_SECONDS)
    assert book.unavailable("p") is None
    assert book.unavailable("p") is not None
    book.release_probe("p")  # the probe told us nothing (client went away, request was bad)
    h = book.get("p")
    assert h.breaker == "half_open" and not h.probe_in_flight and h.consecutive_failures == FAILURES_TO_OPEN
    assert book.unavailable("p") is None  # a new probe
    assert book.unavailable("p") is not None


def test_cooldown_checked_before_the_breaker_and_claims_no_probe(book, clock):
    fail(book, times=FAILURES_TO_OPEN - 1)
    fail(book, status=429, headers={"retry-after": "40"})  # 5th failure: opens (15 s) and cools down (40 s)
    h = book.get("p")
    assert h.breaker == "open"
    clock.advance(FIRST_OPEN_SECONDS)
    assert "cooling down" in book.unavailable("p")
    assert not h.probe_in_flight  # a caller refused by the cool-down is not the probe
    assert book.retry_after(["p"]) == pytest.approx(40 - FIRST_OPEN_SECONDS)
    clock.advance(40 - FIRST_OPEN_SECONDS)
    assert book.unavailable("p") is None and h.probe_in_flight


def test_retry_after_over_several_providers(book, clock):
    fail(book, "a", status=429, headers={"retry-after": "50"})
    fail(book, "b", status=503, headers={"retry-after": "20"})
    fail(book, "c", times=FAILURES_TO_OPEN)
    assert book.retry_after(["a", "b", "c"]) == pytest.approx(FIRST_OPEN_SECONDS)  # the soonest one
    assert book.retry_after(["a", "b"]) == pytest.approx(20)
    assert book.retry_after(["a", "never-seen"]) is None  # an unknown provider is available right away
    assert book.retry_after([]) is None
    clock.advance(100)
    assert book.retry_after(["a", "b"]) == 0.0


# ---- latency -------------------------------------------------------------------------------------------

def test_ewma_of_time_to_first_token(book):
    assert book.ttft("p", "m") is None
    ok(book, ttft_ms=100.0, duration_ms=900.0)
    assert book.ttft("p", "m") == 100.0  # the first sample is the average
    ok(book, ttft_ms=200.0)
    assert book.ttft("p", "m") == pytest.approx(100 + EWMA_ALPHA * 100)  # 130
    ok(book, ttft_ms=100.0)
    assert book.ttft("p", "m") == pytest.approx(130 + EWMA_ALPHA * (100 - 130))  # 121
    assert EWMA_ALPHA == 0.3 and book.ttft("p", "m") == pytest.approx(121.0)


def test_ewma_uses_duration_without_ttft_and_is_per_model(book):
    ok(book, model="fast", duration_ms=40.0)
    ok(book, model="slow", duration_ms=400.0, ttft_ms=None)
    assert book.ttft("p", "fast") == 40.0 and book.ttft("p", "slow") == 400.0
    assert book.ttft("other", "fast") is None


def test_failures_do_not_feed_the_latency_average(book):
    ok(book, ttft_ms=50.0)
    fail(book, times=3)
    assert book.ttft("p", "m") == 50.0


# ---- snapshot -------------------------------------------------------------------------------------------

SNAPSHOT_FIELDS = {"provider", "breaker", "consecutive_failures", "cooldown_until", "cooldown_reason", "open_until",
                   "recent_attempts", "error_rate", "latency_ms_p50", "latency_ms_p95", "ttft_ms_ewma"}


def test_snapshot_of_a_healthy_provider(book):
    for d in range(1, 101):  # durations 1..100 ms
        ok(book, "b", "m1", duration_ms=float(d), ttft_ms=5.0)
    ok(book, "b", "m2", duration_ms=50.0, ttft_ms=12.345)
    fail(book, "b", status=500)
    [snap] = book.snapshot()
    assert set(snap) == SNAPSHOT_FIELDS
    assert snap["provider"] == "b" and snap["breaker"] == "closed" and snap["consecutive_failures"] == 1
    assert snap["cooldown_until"] is None and snap["cooldown_reason"] is None and snap["open_until"] is None
    assert snap["recent_attempts"] == 102
    assert snap["error_rate"] == round(1 / 102, 4)
    # Percentiles are over successful attempts only (the failure's duration is not in them).
    assert 50 <= snap["latency_ms_p50"] <= 51
    assert 95 <= snap["latency_ms_p95"] <= 96
    assert snap["ttft_ms_ewma"] == {"m1": 5.0, "m2": 12.35}


def test_snapshot_of_a_provider_with_only_failures(book):
    fail(book, "x", status=None, times=2)
    [snap] = book.snapshot()
    assert snap["error_rate"] == 1.0 and snap["latency_ms_p50"] is None and snap["latency_ms_p95"] is None
    assert snap["ttft_ms_ewma"] == {}


def test_snapshot_window_is_bounded(book):
    for _ in range(WINDOW + 50):
        ok(book)
    for _ in range(WINDOW // 2):
        fail(book, status=None)
        book.alive("p")  # keep the breaker closed; only the window matters here
    [snap] = book.snapshot()
    assert snap["recent_attempts"] == WINDOW and snap["error_rate"] == 0.5


def test_snapshot_cooldown_and_breaker_states(book, clock):
    fail(book, "cool", status=429, headers={"retry-after": "120"})
    fail(book, "broken", times=FAILURES_TO_OPEN)
    ok(book, "fine")
    before = time.time()
    snaps = {s["provider"]: s for s in book.snapshot()}
    after = time.time()
    assert list(snaps) == ["broken", "cool", "fine"]  # sorted by provider
    cool, broken, fine = snaps["cool"], snaps["broken"], snaps["fine"]
    assert before + 120 - 1 <= parse_iso(cool["cooldown_until"]) <= after + 120 + 1
    assert cool["cooldown_reason"] == "HTTP 429, retry after 120s" and cool["breaker"] == "closed"
    assert broken["breaker"] == "open" and broken["consecutive_failures"] == FAILURES_TO_OPEN
    assert before + FIRST_OPEN_SECONDS - 1 <= parse_iso(broken["open_until"]) <= after + FIRST_OPEN_SECONDS + 1
    assert broken["cooldown_until"] is None and broken["error_rate"] == 1.0
    assert fine["breaker"] == "closed" and fine["error_rate"] == 0.0

    clock.advance(FIRST_OPEN_SECONDS)  # the open time is up: reported half-open before anyone probes
    snaps = {s["provider"]: s for s in book.snapshot()}
    assert snaps["broken"]["breaker"] == "half_open" and snaps["broken"]["open_until"] is None
    assert book.get("broken").breaker == "open"  # reporting changes nothing
    assert book.unavailable("broken") is None
    assert {s["provider"]: s["breaker"] for s in book.snapshot()}["broken"] == "half_open"
    clock.advance(120)
    snaps = {s["provider"]: s for s in book.snapshot()}
    assert snaps["cool"]["cooldown_until"] is None and snaps["cool"]["cooldown_reason"] is None


# ---- strategy.order_targets ------------------------------------------------------------------------------

PRICES = PriceBook(PRESETS)


def target(ref: str) -> Target:
    pid, model = ref.split("/", 1)
    return Target(PRESETS[pid], model)


def targets(*refs: str) -> list[Target]:
    return [target(r) for r in refs]


def labels(ts: list[Target]) -> list[str]:
    return [t.label for t in ts]


def order(ts: list[Target], strategy: str, *, health: HealthBook | None = None, weights: tuple[float, ...] = (),
          prices: PriceBook = PRICES, rand=random.random, max_tokens: int | None = None) -> list[Target]:
    alias = ModelAlias("alias", tuple(t.label for t in ts), strategy, weights)
    return order_targets(ts, alias, health=health or HealthBook(), prices=prices, input_bytes=400,
                         max_tokens=max_tokens, rand=rand)


THREE = ("openai/gpt-4o", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash")


def test_order_strategy_and_no_alias_keep_config_order(book):
    ts = targets(*THREE)
    ok(book, "openai", "gpt-4o", ttft_ms=999.0)
    assert labels(order(ts, "order", health=book)) == list(THREE)
    assert labels(order_targets(ts, None, health=book, prices=PRICES, input_bytes=10, max_tokens=None)) == list(THREE)


@pytest.mark.parametrize("strategy", ["lowest_latency", "lowest_cost", "weighted"])
def test_single_target_is_returned_as_is(strategy):
    ts = targets("anthropic/claude-sonnet-4-5")
    assert labels(order(ts, strategy, weights=(0.0,))) == ["anthropic/claude-sonnet-4-5"]


def test_lowest_latency_unmeasured_first_then_fastest(book):
    ts = targets(*THREE)
    assert labels(order(ts, "lowest_latency", health=book)) == list(THREE)  # nothing measured: config order
    ok(book, "openai", "gpt-4o", ttft_ms=200.0)
    ok(book, "gemini", "gemini-2.5-flash", ttft_ms=50.0)
    assert labels(order(ts, "lowest_latency", health=book)) == [
        "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "openai/gpt-4o"]
    ok(book, "anthropic", "claude-sonnet-4-5", ttft_ms=120.0)
    assert labels(order(ts, "lowest_latency", health=book)) == [
        "gemini/gemini-2.5-flash", "anthropic/claude-sonnet-4-5", "openai/gpt-4o"]


def test_lowest_latency_is_per_provider_and_model(book):
    ts = targets("openai/gpt-4o", "openai/gpt-4o-mini")
    ok(book, "openai", "gpt-4o-mini", ttft_ms=10.0)
    assert labels(order(ts, "lowest_latency", health=book)) == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    ok(book, "openai", "gpt-4o", ttft_ms=80.0)
    assert labels(order(ts, "lowest_latency", health=book)) == ["openai/gpt-4o-mini", "openai/gpt-4o"]


def test_lowest_cost_uses_the_catalog_and_puts_unknown_prices_last():
    ts = targets("ollama/llama3.2", "anthropic/claude-sonnet-4-5", "openai/no-such-model-xyz", "openai/gpt-4o-mini")
    assert PRICES.knows("openai", "gpt-4o-mini") and PRICES.knows("anthropic", "claude-sonnet-4-5")
    assert not PRICES.knows("ollama", "llama3.2") and not PRICES.knows("openai", "no-such-model-xyz")
    assert labels(order(ts, "lowest_cost")) == [
        "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5",
        "ollama/llama3.2", "openai/no-such-model-xyz"]  # unknown prices keep their config order, at the end
    assert labels(order(ts, "lowest_cost", max_tokens=4000)) == labels(order(ts, "lowest_cost"))


def test_lowest_cost_respects_price_overrides():
    prices = PriceBook(PRESETS, {"anthropic/claude-sonnet-4-5": Price(input=0.0, output=0.01)})
    ts = targets("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5")
    assert labels(order(ts, "lowest_cost", prices=prices)) == ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"]


@pytest.mark.parametrize("weights,expected", [((3.0, 1.0), 0.75), ((1.0, 1.0), 0.5), ((1.0, 4.0), 0.2)])
def test_weighted_lead_frequency_follows_the_weights(weights, expected):
    rng = random.Random(20240611)
    ts = targets("openai/gpt-4o", "anthropic/claude-sonnet-4-5")
    leads = Counter()
    for _ in range(2000):
        out = order(ts, "weighted", weights=weights, rand=rng.random)
        assert sorted(labels(out)) == sorted(labels(ts))  # the rest of the list is still there for failover
        leads[out[0].label] += 1
    assert leads["openai/gpt-4o"] / 2000 == pytest.approx(expected, abs=0.05)


def test_weighted_zero_weight_never_leads():
    rng = random.Random(7)
    ts = targets(*THREE)
    leads = Counter()
    for _ in range(2000):
        out = order(ts, "weighted", weights=(0.0, 1.0, 2.0), rand=rng.random)
        assert len(out) == 3 and out[-1].label == "openai/gpt-4o"  # a zero weight is only ever a last resort
        leads[out[0].label] += 1
    assert leads["openai/gpt-4o"] == 0
    assert leads["gemini/gemini-2.5-flash"] / 2000 == pytest.approx(2 / 3, abs=0.05)


def test_weighted_with_one_nonzero_weight_always_picks_it():
    rng = random.Random(1)
    ts = targets("openai/gpt-4o", "anthropic/claude-sonnet-4-5")
    assert all(order(ts, "weighted", weights=(1.0, 0.0), rand=rng.random)[0].label == "openai/gpt-4o"
               for _ in range(500))
    # Extreme draws of the random source are fine too.
    for u in (0.0, 1e-12, 0.999999999):
        assert labels(order(ts, "weighted", weights=(1.0, 0.0), rand=lambda: u))[0] == "openai/gpt-4o"


def test_weighted_zero_weight_backups_keep_config_order():
    ts = targets(*THREE)
    out = order(ts, "weighted", weights=(1.0, 0.0, 0.0), rand=random.Random(3).random)
    assert labels(out) == list(THREE)
