"""The fakes' realism knobs (latency profile, prose answers, rate-limit headers, random faults) do
what they say, deterministically, and leave a fake without them exactly as before."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest

from http_helpers import Reply, call, sse_events
from sidecar.fake_upstream import FakeUpstream
from sidecar.fakes import prose
from sidecar.fakes.openai import go_duration
from sidecar.fakes.realism import LATENCY, LatencyProfile, RateLimits
from sidecar.health import retry_after_seconds

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Explain what time to first token means"}]}
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Write a haiku about rate limits"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Suggest names for a proxy"}]}]}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def started(fake: FakeUpstream) -> FakeUpstream:
    await fake.start()
    return fake


def recording(fake: FakeUpstream) -> list[float]:
    """Replace the fake's sleep with one that records the delay and returns at once."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    fake.sleep = sleep
    return delays


async def chat(http: aiohttp.ClientSession, fake: FakeUpstream, body: dict = CHAT) -> Reply:
    return await call(http, "POST", fake.base_url + "/chat/completions", body=body)


# ---------------------------------------------------------------------------------------------- latency


def test_latency_draws_are_lognormal_around_the_median_and_capped() -> None:
    profile = LatencyProfile(0.5, 0.02, spread=0.5, cap=3.0)
    rng = random.Random(1)
    draws = sorted(profile.first_byte(rng) for _ in range(2001))
    assert 0.4 < draws[1000] < 0.6  # the median
    assert draws[0] > 0 and draws[-1] == pytest.approx(1.5)  # never negative; the tail is capped at 3x
    assert LATENCY["instant"].first_byte(rng) == 0.0 == LATENCY["instant"].chunk(rng)


async def test_latency_profile_delays_first_byte_and_every_chunk(http: aiohttp.ClientSession) -> None:
    profile = LatencyProfile(0.6, 0.03)
    fake = await started(FakeUpstream("openai", latency=profile, seed=42))
    delays = recording(fake)
    try:
        reply = await chat(http, fake, {**CHAT, "stream": True})
        frames = [d for _, d in sse_events(reply.body)]
        expect_rng = random.Random(42)
        expected = [profile.first_byte(expect_rng)] + [profile.chunk(expect_rng) for _ in frames[1:]]
        assert delays == pytest.approx(expected)  # one first-byte wait, then one wait between every two frames

        delays.clear()
        reply = await chat(http, fake)
        words = len(reply.json["choices"][0]["message"]["content"].split())
        assert len(delays) == 2  # first byte, then the whole answer's generation time at once
        assert delays[0] == pytest.approx(profile.first_byte(expect_rng))
        assert delays[1] == pytest.approx(sum(profile.chunk(expect_rng) for _ in range(words - 1)))
    finally:
        await fake.close()


async def test_without_a_profile_the_fake_only_uses_chunk_delay(http: aiohttp.ClientSession) -> None:
    fake = await started(FakeUpstream("openai", chunk_delay=0.01))
    delays = recording(fake)
    try:
        reply = await chat(http, fake, {**CHAT, "stream": True})
        assert set(delays) == {0.01} and len(delays) == len(sse_events(reply.body)) - 1
        delays.clear()
        await chat(http, fake)
        assert delays == []
    finally:
        await fake.close()


# ---------------------------------------------------------------------------------------------- prose


async def test_prose_answers_vary_by_prompt_and_stream_word_by_word(http: aiohttp.ClientSession) -> None:
    fake = await started(FakeUpstream("openai", prose=True))
    try:
        first = (await chat(http, fake)).json
        text = first["choices"][0]["message"]["content"]
        assert not text.startswith("Hello from fake") and text.count(".") >= 2  # sentences, not the echo
        assert first["usage"]["completion_tokens"] == len(text.split())
        assert (await chat(http, fake)).json["choices"][0]["message"]["content"] == text  # same prompt, same answer
        other = {**CHAT, "messages": [{"role": "user", "content": "Write a haiku about rate limits"}]}
        assert (await chat(http, fake, other)).json["choices"][0]["message"]["content"] != text

        streamed = await chat(http, fake, {**CHAT, "stream": True})
        pieces = [b for _, b in sse_events(streamed.body) if b"content" in b and b'"content":""' not in b]
        assert len(pieces) == len(text.split())  # one chunk per word
    finally:
        await fake.close()


def test_prose_topics_follow_the_prompt() -> None:
    assert prose.topic_for("Write a haiku about the sea").name == "haiku"
    assert prose.topic_for("Why is my Python test flaky?").name == "code"
    assert prose.topic_for("zzz").name == "general"
    haiku = prose.answer("m", "Write a haiku about rate limits").splitlines()
    assert len(haiku) >= 4  # the opener, then three lines


# ---------------------------------------------------------------------------------------------- rate limits


def test_openai_reset_durations_parse_back_in_the_sidecar() -> None:
    assert [go_duration(s) for s in (0, 0.0121, 0.12, 1.5, 60, 90.25)] == ["0s", "13ms", "120ms", "1.5s", "1m0s",
                                                                          "1m30.25s"]
    assert retry_after_seconds({"x-ratelimit-reset-requests": go_duration(90.25)}) == pytest.approx(90.25)


async def test_openai_rate_limit_headers_count_down_and_refill(http: aiohttp.ClientSession) -> None:
    clock = Clock()
    fake = await started(FakeUpstream("openai", rate_limits=RateLimits(500, 10_000, clock=clock)))
    try:
        seen = []
        for stream in (False, True, False):
            reply = await chat(http, fake, {**CHAT, "stream": stream})
            assert reply.status == 200
            seen.append(reply.headers)
        assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["499", "498", "497"]
        assert all(h["x-ratelimit-limit-requests"] == "500" and h["x-ratelimit-limit-tokens"] == "10000" for h in seen)
        tokens = [int(h["x-ratelimit-remaining-tokens"]) for h in seen]
        assert tokens[0] > tokens[1] > tokens[2]
        assert [h["x-ratelimit-reset-requests"] for h in seen] == ["120ms", "240ms", "360ms"]  # 60 s / 500 each

        clock.now += 60  # a minute later the buckets are full again
        assert (await chat(http, fake)).headers["x-ratelimit-remaining-requests"] == "499"
        models = await call(http, "GET", fake.base_url + "/models")
        assert "x-ratelimit-remaining-requests" not in models.headers  # only generation requests count
    finally:
        await fake.close()


async def test_anthropic_rate_limit_headers_use_rfc3339_resets(http: aiohttp.ClientSession) -> None:
    clock = Clock()
    fake = await started(FakeUpstream("anthropic", rate_limits=RateLimits(50, 40_000, clock=clock)))
    try:
        url = fake.base_url + "/v1/messages"
        one = await call(http, "POST", url, body=MESSAGES, headers=ANTHROPIC_HEADERS)
        two = await call(http, "POST", url, body={**MESSAGES, "stream": True}, headers=ANTHROPIC_HEADERS)
        assert [r.headers["anthropic-ratelimit-requests-remaining"] for r in (one, two)] == ["49", "48"]
        assert one.headers["anthropic-ratelimit-requests-limit"] == "50"
        assert int(one.headers["anthropic-ratelimit-tokens-remaining"]) <= 40_000 - 100  # max_tokens charged up front
        reset = datetime.fromisoformat(two.headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
        assert reset.timestamp() == clock.now + 3  # two requests of a 50/min bucket: full again in 2.4 s, rounded up
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", two.headers["anthropic-ratelimit-tokens-reset"])
    finally:
        await fake.close()


async def test_gemini_sends_no_rate_limit_headers(http: aiohttp.ClientSession) -> None:
    fake = await started(FakeUpstream("gemini", rate_limits=RateLimits(10, 1000)))
    try:
        reply = await call(http, "POST", fake.base_url + "/v1beta/models/gemini-2.5-flash:generateContent", body=GEMINI)
        assert reply.status == 200 and not any("ratelimit" in h.lower() for h in reply.headers)
    finally:
        await fake.close()


async def test_an_empty_bucket_answers_429_until_it_refills(http: aiohttp.ClientSession) -> None:
    clock = Clock()
    fake = await started(FakeUpstream("openai", rate_limits=RateLimits(2, 100_000, clock=clock)))
    try:
        assert [(await chat(http, fake)).status for _ in range(2)] == [200, 200]
        refused = await chat(http, fake)
        assert refused.status == 429 and refused.json["error"]["type"] == "rate_limit_exceeded"
        assert refused.headers["retry-after"] == "30"  # one request refills in 60 s / 2
        assert refused.headers["x-ratelimit-remaining-requests"] == "0" and fake.throttled == 1
        clock.now += 30
        assert (await chat(http, fake)).status == 200
    finally:
        await fake.close()


# ---------------------------------------------------------------------------------------------- faults


async def test_fault_rate_answers_that_share_with_the_provider_mix(http: aiohttp.ClientSession) -> None:
    fake = await started(FakeUpstream("openai", fault_rate=0.25, seed=3))
    try:
        statuses = [(await chat(http, fake)).status for _ in range(120)]
        faults = [s for s in statuses if s != 200]
        assert faults == fake.faults and 15 <= len(faults) <= 45  # ~30 expected
        assert set(faults) <= {429, 500, 503} and len(set(faults)) >= 2
        again = await started(FakeUpstream("openai", fault_rate=0.25, seed=3))
        try:
            assert [(await chat(http, again)).status for _ in range(120)] == statuses  # same seed, same sequence
        finally:
            await again.close()
        assert (await call(http, "GET", fake.base_url + "/models")).status == 200
    finally:
        await fake.close()


async def test_fault_429_carries_retry_after_and_529_is_overloaded(http: aiohttp.ClientSession) -> None:
    oai = await started(FakeUpstream("openai", fault_rate=1.0, rate_limits=RateLimits(), seed=1))
    ant = await started(FakeUpstream("anthropic", fault_rate=1.0, seed=1))
    oai.fault_mix, ant.fault_mix = {429: 1}, {529: 1}
    delays = recording(ant)
    ant.latency = LatencyProfile(0.5, 0.01)
    try:
        limited = await chat(http, oai)
        assert limited.status == 429 and limited.headers["retry-after"] in ("1", "2")
        assert "x-ratelimit-remaining-requests" in limited.headers
        overloaded = await call(http, "POST", ant.base_url + "/v1/messages", body=MESSAGES, headers=ANTHROPIC_HEADERS)
        assert overloaded.status == 529 and overloaded.json["error"]["type"] == "overloaded_error"
        assert len(delays) == 1  # a server error comes after the model "tried" for a while
    finally:
        await oai.close()
        await ant.close()


async def test_knobs_are_off_by_default(http: aiohttp.ClientSession) -> None:
    fake = await started(FakeUpstream("openai"))
    try:
        reply = await chat(http, fake)
        assert reply.json["choices"][0]["message"]["content"].startswith("Hello from fake-openai (gpt-4o-mini)")
        assert not any("ratelimit" in h.lower() for h in reply.headers)
        assert fake.latency is None and fake.fault_rate == 0 and fake.rate_limits is None
    finally:
        await fake.close()
