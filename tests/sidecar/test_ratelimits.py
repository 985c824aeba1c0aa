"""RateLimitBook: every header dialect parsed into the same figures, on a clock the test sets; and HealthBook
handing it the headers of every outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.health import HealthBook
from sidecar.ratelimits import RateLimitBook

NOW = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def book(clock: Clock) -> RateLimitBook:
    return RateLimitBook(clock)


def buckets(book: RateLimitBook, provider: str = "p") -> dict[str, dict]:
    latest = book.latest(provider)
    assert latest is not None
    return {b["name"]: b for b in latest["buckets"]}


def aiohttp_headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-").title(): v for k, v in values.items()}))


def test_answers_without_rate_limit_headers_store_nothing(book: RateLimitBook) -> None:
    book.observe("p", aiohttp_headers(content_type="application/json", x_request_id="req_1"), 200)
    book.observe("p", {"Content-Type": "application/json"}, 200)
    assert book.latest("p") is None and book.snapshot() == {}


def test_openai_durations_and_case_insensitive_names(book: RateLimitBook) -> None:
    book.observe("p", aiohttp_headers(x_ratelimit_limit_requests="500", x_ratelimit_remaining_requests="499",
                                      x_ratelimit_reset_requests="120ms", x_ratelimit_limit_tokens="30000",
                                      x_ratelimit_remaining_tokens="0", x_ratelimit_reset_tokens="6m0s"), 200)
    b = buckets(book)
    assert b["requests"] == {"name": "requests", "limit": 500, "remaining": 499, "used_pct": 0.2,
                             "reset_at": "2026-01-31T12:00:00Z", "reset_in_s": 0.1,
                             "seen_at": "2026-01-31T12:00:00Z"}  # fmt: skip
    assert b["tokens"]["remaining"] == 0 and b["tokens"]["used_pct"] == 100.0
    assert b["tokens"]["reset_at"] == "2026-01-31T12:06:00Z" and b["tokens"]["reset_in_s"] == 360.0
    latest = book.latest("p")
    assert latest is not None and latest["family"] == "openai" and latest["status"] == 200


def test_anthropic_instants_and_the_countdown(book: RateLimitBook, clock: Clock) -> None:
    book.observe("p", {"anthropic-ratelimit-tokens-limit": "80000", "anthropic-ratelimit-tokens-remaining": "60000",
                       "anthropic-ratelimit-tokens-reset": "2026-01-31T12:01:00Z",
                       "anthropic-ratelimit-output-tokens-limit": "16000",
                       "anthropic-ratelimit-output-tokens-remaining": "16000"}, 200)  # fmt: skip
    clock.now += 15
    b = buckets(book)
    assert b["tokens"]["used_pct"] == 25.0 and b["tokens"]["reset_in_s"] == 45.0
    assert b["output_tokens"]["reset_at"] is None and b["output_tokens"]["used_pct"] == 0.0
    latest = book.latest("p")
    assert latest is not None and latest["age_s"] == 15.0 and latest["family"] == "anthropic"


def test_openrouter_epoch_ms_and_ietf_seconds(book: RateLimitBook) -> None:
    reset_ms = str(int((NOW + 30) * 1000))
    book.observe("or", {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "5", "X-RateLimit-Reset": reset_ms})
    assert buckets(book, "or")["requests"]["reset_in_s"] == 30.0
    book.observe("ietf", {"RateLimit-Limit": "100", "RateLimit-Remaining": "40", "RateLimit-Reset": "12"})
    q = buckets(book, "ietf")["quota"]
    assert (q["limit"], q["remaining"], q["used_pct"], q["reset_in_s"]) == (100, 40, 60.0, 12.0)


def test_structured_ietf_header_with_its_policy(book: RateLimitBook) -> None:
    book.observe("p", {"RateLimit": '"minute";r=50;t=30, "day";r=900;t=3600',
                       "RateLimit-Policy": '"minute";q=100;w=60, "day";q=1000;w=86400'}, 200)
    b = buckets(book)
    assert (b["minute"]["limit"], b["minute"]["remaining"], b["minute"]["reset_in_s"]) == (100, 50, 30.0)
    assert (b["day"]["limit"], b["day"]["remaining"], b["day"]["used_pct"]) == (1000, 900, 10.0)


def test_retry_after_forms_and_only_the_latest_answer_counts(book: RateLimitBook) -> None:
    book.observe("p", {"retry-after-ms": "1500", "retry-after": "9"}, 429)
    assert book.latest("p")["retry_after_s"] == 1.5  # type: ignore[index]
    date = format_datetime(datetime.fromtimestamp(NOW + 20, UTC), usegmt=True)
    book.observe("p", {"Retry-After": date}, 503)
    latest = book.latest("p")
    assert latest is not None and latest["retry_after_s"] == 20.0 and latest["status"] == 503
    assert latest["family"] is None and latest["buckets"] == []
    book.observe("p", {"x-ratelimit-remaining-requests": "3"}, 200)
    assert book.latest("p")["retry_after_s"] is None  # type: ignore[index]


def test_a_later_answer_keeps_quotas_it_does_not_mention(book: RateLimitBook, clock: Clock) -> None:
    book.observe("p", {"x-ratelimit-remaining-requests": "9", "x-ratelimit-remaining-tokens": "900"}, 200)
    clock.now += 5
    book.observe("p", {"x-ratelimit-remaining-requests": "8", "x-ratelimit-remaining": "1"}, 200)
    b = buckets(book)
    assert b["requests"]["remaining"] == 8  # the specific header wins over the plain one of the same answer
    assert b["tokens"]["remaining"] == 900 and b["tokens"]["seen_at"] == "2026-01-31T12:00:00Z"
    assert b["requests"]["seen_at"] == "2026-01-31T12:00:05Z"


@pytest.mark.parametrize("bad", ["", "abc", "-5", "nan", "inf"])
def test_garbage_values_read_as_unknown(book: RateLimitBook, bad: str) -> None:
    book.observe("p", {"x-ratelimit-remaining-requests": bad, "x-ratelimit-limit-requests": "10",
                       "x-ratelimit-reset-requests": bad}, 200)
    r = buckets(book)["requests"]
    assert (r["limit"], r["remaining"], r["used_pct"], r["reset_at"]) == (10, None, None, None)


def test_health_outcomes_feed_the_book(clock: Clock) -> None:
    health = HealthBook(wall_clock=clock)
    headers = {"x-ratelimit-remaining-requests": "1", "x-ratelimit-limit-requests": "2"}
    health.success("a", "m", duration_ms=1.0, ttft_ms=None, headers=headers, status=200)
    health.failure("b", status=429, duration_ms=1.0, headers={**headers, "retry-after": "3"})
    health.alive("c", headers=headers, status=400)
    health.success("d", "m", duration_ms=1.0, ttft_ms=None)  # no headers: nothing to learn
    seen = health.ratelimits.snapshot()
    assert set(seen) == {"a", "b", "c"}
    assert (seen["a"]["status"], seen["b"]["status"], seen["c"]["status"]) == (200, 429, 400)
    assert seen["b"]["retry_after_s"] == 3.0
    assert health.snapshot_one("a") == health.snapshot()[0] and health.snapshot_one("zzz") is None
