"""Notices: the sidecar's own warnings (failover, missing key, upstream errors, breakers, budget crossings, pause)
reach a reader of the real ``/_sidecar/events`` stream once each, storms coalesce, and no key ever shows.

A real sidecar in front of the fake providers on 127.0.0.1; every notice is read off the live SSE stream (and
``GET /_sidecar/notices``), never from the sidecar's internals.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from conftest import KEYS, Upstreams, config_for, start_sidecar
from sidecar.events import EventBus
from sidecar.health import FAILURES_TO_OPEN, FIRST_OPEN_SECONDS, HealthBook
from sidecar.keys import MemoryKeyStore
from sidecar.notices import MAX_PER_SECOND, NoticeBook, scrub_message
from sidecar.state import STATE

WAIT = 5.0
CHAT = "/v1/chat/completions"
COST = (4 * 0.15 + 4 * 0.075 + 7 * 0.60) / 1e6
"""One fake gpt-4o-mini "hello" call, priced by hand (see test_budgets.py)."""
CANARY = "canary-key-" + secrets.token_hex(16)
"""Not shaped like any known key, so only the exact-key scrub can catch it."""


def chat(model: str, text: str = "hello") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stream:
    """Reads ``/_sidecar/events`` in the background and keeps every event, parsed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.raw = b""
        self.ready = asyncio.Event()

    def notices(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [d for e, d in self.events if e == "notice" and (kind is None or d["kind"] == kind)]

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each notice id's last published state (a merged notice is published again with its count)."""
        return {d["id"]: d for d in self.notices()}

    async def run(self, http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url + "/_sidecar/events") as resp:
            buf = b""
            async for chunk in resp.content.iter_any():
                self.raw += chunk
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    name, data = None, b""
                    for line in block.split(b"\n"):
                        if line.startswith(b"event: "):
                            name = line[7:].decode()
                        elif line.startswith(b"data: "):
                            data = line[6:]
                    if name == "hello":
                        self.ready.set()
                    elif name:
                        self.events.append((name, orjson.loads(data)))


async def until(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not cond():
            await asyncio.sleep(0.01)


class Env:
    def __init__(self, url: str, app: Any, http: aiohttp.ClientSession, stream: Stream) -> None:
        self.url, self.app, self.http, self.stream = url, app, http, stream

    async def post(self, body: dict[str, Any], path: str = CHAT) -> int:
        async with self.http.post(self.url + path, data=orjson.dumps(body)) as resp:
            await resp.read()
            return resp.status

    async def history(self, query: str = "") -> tuple[int, Any]:
        async with self.http.get(self.url + "/_sidecar/notices" + query) as resp:
            return resp.status, orjson.loads(await resp.read())


@asynccontextmanager
async def running(ups: Upstreams, tmp: Path, extra: dict[str, Any] | None = None,
                  keys: dict[str, str] | None = None) -> AsyncIterator[Env]:
    sc, runner = await start_sidecar(config_for(ups, tmp / "data", extra), MemoryKeyStore(KEYS if keys is None else keys))
    stream = Stream()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        task = asyncio.create_task(stream.run(http, sc.url))
        try:
            await asyncio.wait_for(stream.ready.wait(), WAIT)
            yield Env(sc.url, sc.app, http, stream)
        finally:
            task.cancel()
            await runner.cleanup()  # type: ignore[attr-defined]


async def test_failover_is_one_notice_naming_both_providers(upstreams: Upstreams, tmp_path: Path) -> None:
    models = {"smart": {"targets": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}}
    async with running(upstreams, tmp_path, {"models": models}) as env:
        upstreams.openai.fail_next(503)
        assert await env.post(chat("smart")) == 200
        await until(lambda: env.stream.notices("failover") and env.stream.notices("upstream_error"))
        await asyncio.sleep(0.05)  # anything else the request logged has arrived by now
        [failover] = env.stream.notices("failover")
        assert "openai 503 → anthropic" in failover["message"]
        assert failover["level"] == "warning" and failover["source"] == "proxy"
        assert failover["provider"] == "openai" and failover["count"] == 1
        [upstream] = env.stream.notices("upstream_error")
        assert upstream["message"].startswith("openai answered 503") and upstream["provider"] == "openai"
        assert {d["kind"] for d in env.stream.notices()} == {"failover", "upstream_error"}

        status, body = await env.history()
        assert status == 200 and body["capacity"] == 500
        assert [n["kind"] for n in body["notices"]] == ["failover", "upstream_error"]  # newest first
        status, body = await env.history("?limit=1")
        assert [n["kind"] for n in body["notices"]] == ["failover"]
        assert (await env.history("?limit=many"))[0] == 400


async def test_missing_key_is_one_notice_however_many_requests(upstreams: Upstreams, tmp_path: Path) -> None:
    keys = {k: v for k, v in KEYS.items() if k != "gemini"}
    async with running(upstreams, tmp_path, keys=keys) as env:
        statuses = await asyncio.gather(*(env.post(chat("gemini/gemini-2.5-flash")) for _ in range(3)))
        assert statuses == [401, 401, 401]
        # One notice at once; the same notice again with its count when its 1 s window closes.
        await until(lambda: any(d["count"] == 3 for d in env.stream.notices("missing_key")))
        notices = env.stream.notices("missing_key")
        assert len({d["id"] for d in notices}) == 1 and notices[0]["count"] == 1
        assert notices[0]["provider"] == "gemini" and "sidecar keys set gemini" in notices[0]["message"]
        assert not env.stream.notices("upstream_error"), "a missing key is not the provider's fault"
        [kept] = (await env.history())[1]["notices"]
        assert kept["count"] == 3 and kept["id"] == notices[0]["id"]


async def test_breaker_opened_and_closed_are_notices(upstreams: Upstreams, tmp_path: Path) -> None:
    async with running(upstreams, tmp_path) as env:
        clock = Clock()
        env.app[STATE].proxy.health = HealthBook(clock=clock)
        upstreams.openai.fail_next(500, count=FAILURES_TO_OPEN)
        for _ in range(FAILURES_TO_OPEN):
            assert await env.post(chat("openai/gpt-4o-mini")) == 500
        await until(lambda: env.stream.notices("breaker"))
        [opened] = env.stream.notices("breaker")
        assert opened["level"] == "warning" and opened["source"] == "health" and opened["provider"] == "openai"
        assert f"opened for {FIRST_OPEN_SECONDS:g}s after {FAILURES_TO_OPEN} failures" in opened["message"]

        clock.now += FIRST_OPEN_SECONDS + 1
        assert await env.post(chat("openai/gpt-4o-mini")) == 200  # the half-open probe succeeds
        await until(lambda: len(env.stream.notices("breaker")) == 2)
        closed = env.stream.notices("breaker")[1]
        assert closed["level"] == "info" and "breaker closed" in closed["message"]


async def test_budget_thresholds_are_told_once_each(upstreams: Upstreams, tmp_path: Path) -> None:
    async with running(upstreams, tmp_path, {"budgets": {"daily_usd": 3.5 * COST}}) as env:
        for n in range(1, 5):  # spend after each: 29 %, 57 %, 86 %, 114 % of the cap
            assert await env.post(chat("openai/gpt-4o-mini")) == 200
            if n == 3:
                await until(lambda: env.stream.notices("budget"))
                [at80] = env.stream.notices("budget")
                assert at80["level"] == "warning" and "daily budget for global is 80% used" in at80["message"]
        await until(lambda: len(env.stream.notices("budget")) == 2)
        spent = env.stream.notices("budget")[1]
        assert spent["level"] == "error" and "daily budget for global used up" in spent["message"]
        assert "refused until it resets" in spent["message"]
        assert await env.post(chat("openai/gpt-4o-mini")) == 429
        await until(lambda: any("blocked" in d["message"] for d in env.stream.notices()))
        await asyncio.sleep(0.05)
        assert len(env.stream.notices("budget")) == 2, "each threshold once per period"


async def test_pause_and_resume_are_notices(upstreams: Upstreams, tmp_path: Path) -> None:
    async with running(upstreams, tmp_path) as env:
        for action in ("pause", "resume"):
            async with env.http.post(env.url + f"/_sidecar/{action}") as resp:
                assert resp.status == 200
        await until(lambda: env.stream.notices("resumed"))
        assert [d["kind"] for d in env.stream.notices()] == ["paused", "resumed"]


async def test_no_key_in_any_notice(upstreams: Upstreams, tmp_path: Path) -> None:
    """Fakes that echo request headers (the key among them) in error bodies, failover through them, and a log
    line that quotes the key outright: the notices say what happened but never carry the key."""
    models = {"smart": {"targets": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}}
    upstreams.openai.expect_key = upstreams.anthropic.expect_key = CANARY
    upstreams.openai.echo_headers_on_error = True
    async with running(upstreams, tmp_path, {"models": models}, keys={"openai": CANARY, "anthropic": CANARY}) as env:
        upstreams.openai.fail_next(503)
        assert await env.post(chat("smart")) == 200
        logging.getLogger("sidecar.proxy").warning("a careless line quoting %s", CANARY)
        await asyncio.to_thread(logging.getLogger("sidecar.store").error, "a thread quoting %s", CANARY)
        await until(lambda: len(env.stream.notices()) >= 4)
        assert any(d["kind"] == "failover" for d in env.stream.notices())
        quoted = [d["message"] for d in env.stream.notices() if "quoting" in d["message"]]
        assert quoted == ["a careless line quoting [REDACTED]", "a thread quoting [REDACTED]"]
        assert CANARY.encode() not in env.stream.raw
        assert CANARY not in str((await env.history())[1])
        assert any(CANARY in r.headers.get("authorization", "") for r in upstreams.openai.received), \
            "the fake must have received the key, or this proves nothing"


async def test_a_storm_of_log_lines_is_one_notice_with_a_count(upstreams: Upstreams, tmp_path: Path) -> None:
    async with running(upstreams, tmp_path) as env:
        log = logging.getLogger("sidecar.proxy")
        for i in range(300):
            log.warning("request %s failed the same way", i)
        await until(lambda: any(d["count"] == 300 for d in env.stream.notices()))
        assert len(env.stream.latest()) == 1 and len(env.stream.notices()) == 2  # first sight, then the total


def test_book_coalesces_caps_and_suppresses() -> None:
    bus, clock = EventBus(), Clock()
    published: list[dict[str, Any]] = []
    bus.add_listener(lambda e: published.append(e.data))
    book = NoticeBook(bus, keys=lambda: ["s3cret-value-123"], clock=clock)
    for i in range(MAX_PER_SECOND + 30):  # distinct messages and templates: not merged, rate-limited
        book.add("warning", "proxy", f"distinct {i} s3cret-value-123")
    assert len(published) == MAX_PER_SECOND
    assert all("s3cret" not in n["message"] and "[REDACTED]" in n["message"] for n in published)
    clock.now += 1.5
    book.flush()
    assert published[-1]["kind"] == "suppressed" and published[-1]["message"].startswith("30 more notices")
    assert len(book.recent()) == MAX_PER_SECOND + 1 and book.recent(2)[0]["kind"] == "suppressed"

    published.clear()
    first = book.add("error", "health", "breaker x", template="breaker %s")
    for _ in range(9):
        book.add("error", "health", "breaker y", template="breaker %s")
    assert len(published) == 1 and first is not None and first["count"] == 10
    book.flush()  # the window is still open: nothing yet
    assert len(published) == 1
    clock.now += 1.0
    book.flush()
    assert published[-1]["id"] == first["id"] and published[-1]["count"] == 10 and published[0]["count"] == 1
    book.add("error", "health", "breaker z", template="breaker %s")  # a new window: a new notice
    assert len(published) == 3 and published[-1]["id"] != first["id"]

    small = NoticeBook(bus, clock=clock, capacity=5)
    for i in range(8):
        clock.now += 2
        small.add("warning", "proxy", f"n{i}")
    assert [n["message"] for n in small.recent()] == ["n7", "n6", "n5", "n4", "n3"], "bounded, newest first"


@pytest.mark.parametrize("secret", [
    "sk-proj-abcdefghijklmnop1234", "AIzaSyA1234567890abcdefghijklmnopqrstu", "sct_AbCdEfGhIjKlMnOpQrStUv",
    "sk-ant-api03-abcdefghijklmnopqrs", "gsk_abcdefghijklmnopqrstuv",
])
def test_key_shaped_text_is_scrubbed(secret: str) -> None:
    assert scrub_message(f"upstream said: bad key {secret}, sorry") == "upstream said: bad key [REDACTED], sorry"
    assert scrub_message(f"Authorization: Bearer {secret[::-1]}") == "Authorization: [REDACTED]"
