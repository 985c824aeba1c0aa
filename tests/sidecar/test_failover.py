"""Failover, cool-downs, breakers and strategies over real HTTP: a real sidecar in front of fake providers.

Everything listens on 127.0.0.1. The alias ``smart`` is [openai/gpt-4o, backup/gpt-4o-mini], where ``backup`` is a
second fake OpenAI with its own key; ``cross`` is [openai/gpt-4o, anthropic/claude-haiku-4-5], so failing over
means translating. Each sidecar's HealthBook runs on a fake clock the test moves by hand, so cool-downs and
breaker open times never need a sleep. The plain status failovers already covered in test_proxy_behaviour.py
are not repeated; these tests are about what the health state does with each fault.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

import sidecar.fakes as fakes_module
from conftest import KEYS, Sidecar, Upstreams, config_for, start_sidecar
from http_helpers import (Reply, assert_anthropic_error, assert_gemini_error, assert_openai_error, call,
                          sse_events)
from sidecar.config import Config
from sidecar.fake_upstream import FakeUpstream
from sidecar.health import FAILURES_TO_OPEN, FIRST_OPEN_SECONDS, HealthBook
from sidecar.keys import MemoryKeyStore
from sidecar.records import Attempt
from sidecar.state import STATE

BACKUP_KEY = "sk-test-backup-0005"
ALL_KEYS = {**KEYS, "backup": BACKUP_KEY}
PLACEHOLDER = "placeholder-not-a-key"
ATTEMPT_FIELDS = {f.name for f in fields(Attempt)}
WAIT = 5.0
"""Upper bound for every wait on something asynchronous."""

OPENAI_CHAT = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
SMART = ["openai/gpt-4o", "backup/gpt-4o-mini"]
CROSS = ["openai/gpt-4o", "anthropic/claude-haiku-4-5"]


# ---- helpers --------------------------------------------------------------------------------------------

class Clock:
    def __init__(self, start: float = 50_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds




@dataclass
class Env:
    sc: Sidecar
    clock: Clock
    health: HealthBook
    clients: list[Any] = field(default_factory=list)
    """SDK clients handed out, closed with the sidecar."""

    @property
    def url(self) -> str:
        return self.sc.url

    def oa(self) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=PLACEHOLDER, max_retries=0)
        self.clients.append(client)
        return client

    def an(self) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=PLACEHOLDER, max_retries=0)
        self.clients.append(client)
        return client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
async def backup() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream("openai", name="backup", expect_key=BACKUP_KEY)
    await fake.start()
    yield fake
    await fake.close()


def make_config(ups: Upstreams, backup: FakeUpstream, tmp_path: Path, *, smart: list[str] | None = None,
                providers: dict[str, Any] | None = None, aliases: dict[str, Any] | None = None,
                timeouts: dict[str, float] | None = None) -> Config:
    extra: dict[str, Any] = {
        "providers": {"backup": {"adapter": "openai", "base_url": backup.base_url}, **(providers or {})},
        "models": {"smart": {"targets": smart or SMART}, "cross": {"targets": CROSS}, **(aliases or {})},
    }
    if timeouts:
        extra["timeouts"] = timeouts
    return config_for(ups, tmp_path / "d", extra)


@asynccontextmanager
async def running(config: Config, keys: dict[str, str] | None = None) -> AsyncIterator[Env]:
    """A real sidecar whose HealthBook runs on a fake clock."""
    sc, runner = await start_sidecar(config, MemoryKeyStore(keys or ALL_KEYS))
    clock = Clock()
    proxy = sc.app[STATE].proxy  # type: ignore[index]
    proxy.health = HealthBook(clock=clock)
    env = Env(sc, clock, proxy.health)
    try:
        yield env
    finally:
        for client in env.clients:
            await client.close()
        await runner.cleanup()  # type: ignore[attr-defined]


def chat(model: str = "smart", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def messages(model: str = "cross", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}], **extra}


async def stored(env: Env, request_id: str, until: Callable[[dict], bool] = lambda r: True) -> dict:
    """The stored record once final (latency set) and satisfying `until`; bounded wait."""
    async with asyncio.timeout(WAIT):
        while True:
            await env.sc.store.flush()
            row = await asyncio.to_thread(env.sc.store.get, request_id)
            if row is not None and row["latency_ms"] is not None and until(row):
                return row
            await asyncio.sleep(0.02)


def attempts(row: dict) -> list[tuple[str, str, int | None]]:
    for a in row["attempts"]:
        assert set(a) == ATTEMPT_FIELDS
        assert isinstance(a["duration_ms"], (int, float)) and a["duration_ms"] >= 0
    return [(a["provider"], a["model"], a["status"]) for a in row["attempts"]]


async def providers_health(http: aiohttp.ClientSession, env: Env) -> dict[str, dict]:
    reply = await call(http, "GET", env.url + "/_sidecar/stats")
    assert reply.status == 200
    return {p["provider"]: p for p in reply.json["providers_health"]}


def assert_openai_chat_ok(reply: Reply, fake_name: str, model: str) -> None:
    assert reply.status == 200, reply.body
    data = reply.json
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"].startswith(f"Hello from fake-{fake_name} ({model})")


class Gate:
    """Stands in for `asyncio` inside `sidecar.fakes`: a fake's `hang_next` lasts until the test opens the gate."""

    def __init__(self, limit: float = 10.0) -> None:
        self.opened = asyncio.Event()
        self.limit = limit
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.opened.wait(), self.limit)
        finally:
            self.waiting -= 1


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    g = Gate()
    monkeypatch.setattr(fakes_module, "asyncio", g)
    return g


async def until(pred: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not pred():
            await asyncio.sleep(0.01)


class ResettingServer:
    """Accepts a connection, reads the request head, and resets the connection (RST) before any byte."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            async with asyncio.timeout(WAIT):
                await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def __aenter__(self) -> ResettingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- status faults: failover and what the health book learns ------------------------------------------------

@pytest.mark.parametrize("status,headers,cooldown", [
    (429, {"retry-after": "30"}, 30.0),
    (500, {"retry-after": "30"}, None),  # a hint on a 500 is not a rate limit
    (503, None, None),  # overloaded, but no hint: no cool-down, only a breaker count
    (529, {"retry-after-ms": "5000"}, 5.0),
], ids=["429-retry-after", "500", "503-no-hint", "529-retry-after-ms"])
async def test_status_fault_fails_over_and_updates_health(upstreams, backup, tmp_path, http, status, headers,
                                                          cooldown):
    upstreams.openai.fail_next(status, headers=headers)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="status fault"))
        assert_openai_chat_ok(reply, "backup", "gpt-4o-mini")
        assert reply.served_by == "backup/gpt-4o-mini"
        row = await stored(env, reply.request_id)
        oh, bh = env.health.get("openai"), env.health.get("backup")
        assert oh.consecutive_failures == 1 and oh.breaker == "closed"
        if cooldown is None:
            assert oh.cooldown_until == 0.0 and env.health.unavailable("openai") is None
        else:
            assert oh.cooldown_until == env.clock.now + cooldown
            assert oh.cooldown_reason == f"HTTP {status}, retry after {cooldown:g}s"
        assert bh.consecutive_failures == 0 and bh.ttft_ewma.get("gpt-4o-mini") is not None
        assert [ok for ok, _ in oh.recent] == [False] and [ok for ok, _ in bh.recent] == [True]
    assert (row["provider"], row["model"], row["status"], row["error"]) == ("backup", "gpt-4o-mini", 200, None)
    assert attempts(row) == [("openai", "gpt-4o", status), ("backup", "gpt-4o-mini", 200)]
    assert f"answered {status}" in row["attempts"][0]["error"] and row["attempts"][1]["error"] is None
    assert len(upstreams.openai.received) == 1 and len(backup.received) == 1


async def test_cooldown_skips_provider_until_it_passes(upstreams, backup, tmp_path, http):
    upstreams.openai.fail_next(429, headers={"retry-after": "30"})
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        client = env.oa()
        raw = await client.chat.completions.with_raw_response.create(
            model="smart", messages=[{"role": "user", "content": "first"}])
        completion = raw.parse()
        assert raw.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
        assert completion.choices[0].message.content == "Hello from fake-backup (gpt-4o-mini): you said first"
        first = await stored(env, raw.headers["x-sidecar-request-id"])
        assert attempts(first) == [("openai", "gpt-4o", 429), ("backup", "gpt-4o-mini", 200)]

        health = await providers_health(http, env)
        assert health["openai"]["cooldown_until"] is not None
        assert health["openai"]["cooldown_reason"] == "HTTP 429, retry after 30s"
        assert health["openai"]["breaker"] == "closed" and health["openai"]["error_rate"] == 1.0
        assert health["backup"]["cooldown_until"] is None and health["backup"]["error_rate"] == 0.0

        env.clock.advance(29)  # still cooling down: openai is not contacted at all
        for i in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="smart", messages=[{"role": "user", "content": f"during {i}"}])
            assert raw.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
            row = await stored(env, raw.headers["x-sidecar-request-id"])
            assert attempts(row) == [("backup", "gpt-4o-mini", 200)] and row["error"] is None
        assert len(upstreams.openai.received) == 1 and len(backup.received) == 4

        env.clock.advance(1)  # the cool-down is over: back to the first target
        raw = await client.chat.completions.with_raw_response.create(
            model="smart", messages=[{"role": "user", "content": "after"}])
        assert raw.headers["x-sidecar-served-by"] == "openai/gpt-4o"
        assert raw.parse().choices[0].message.content.startswith("Hello from fake-openai (gpt-4o)")
        assert len(upstreams.openai.received) == 2
        assert (await providers_health(http, env))["openai"]["cooldown_until"] is None


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
async def test_single_target_in_cooldown_is_503_with_retry_after(upstreams, backup, tmp_path, http, kind):
    fake = getattr(upstreams, kind)
    path, body, check = {
        "openai": (OPENAI_CHAT, chat("openai/gpt-4o-mini"), assert_openai_error),
        "anthropic": (ANTHROPIC, messages("anthropic/claude-haiku-4-5"), assert_anthropic_error),
        "gemini": ("/v1beta/models/gemini-2.5-flash:generateContent",
                   {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, assert_gemini_error),
    }[kind]
    status = {"openai": 429, "anthropic": 529, "gemini": 429}[kind]
    fake.fail_next(status, headers={"retry-after": "30"})
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        first = await call(http, "POST", env.url + path, body=body)
        check(first, status)  # the provider's own error, relayed (there is no other target)
        assert first.headers["retry-after"] == "30"
        assert len(fake.received) == 1

        second = await call(http, "POST", env.url + path, body=body)
        err = check(second, 503)
        assert second.headers["Retry-After"] == "30"
        assert "cooling down" in err["message"] and kind in err["message"]
        assert len(fake.received) == 1  # refused without contacting the provider
        row = await stored(env, second.request_id)
        assert row["status"] == 503 and row["attempts"] == [] and "cooling down" in row["error"]

        env.clock.advance(12.4)
        third = await call(http, "POST", env.url + path, body=body)
        check(third, 503)
        assert third.headers["Retry-After"] == "18"  # what is left of it, rounded
        env.clock.advance(18)
        fourth = await call(http, "POST", env.url + path, body=body)
        assert fourth.status == 200 and len(fake.received) == 2


async def test_single_target_cooldown_seen_by_the_sdks(upstreams, backup, tmp_path):
    upstreams.openai.fail_next(503, headers={"retry-after": "40"})
    upstreams.anthropic.fail_next(429, headers={"retry-after": "40"})
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        client = env.oa()
        messages_ = [{"role": "user", "content": "x"}]
        with pytest.raises(openai.InternalServerError) as info:  # the provider's own 503, relayed
            await client.chat.completions.create(model="openai/gpt-4o", messages=messages_)
        assert "injected 503" in info.value.message
        with pytest.raises(openai.InternalServerError) as info:  # the sidecar's 503: not even tried
            await client.chat.completions.create(model="openai/gpt-4o", messages=messages_)
        assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "40"
        assert "cooling down" in info.value.message
        with pytest.raises(anthropic.RateLimitError):
            await env.an().messages.create(**messages("anthropic/claude-haiku-4-5"))
        with pytest.raises(anthropic.InternalServerError) as ainfo:
            await env.an().messages.create(**messages("anthropic/claude-haiku-4-5"))
        assert ainfo.value.status_code == 503 and ainfo.value.response.headers["retry-after"] == "40"
        assert ainfo.value.body["error"]["message"].startswith("no target is available")
    assert len(upstreams.openai.received) == 1 and len(upstreams.anthropic.received) == 1


async def test_every_target_unavailable_is_503_with_the_soonest_retry(upstreams, backup, tmp_path, http):
    upstreams.openai.fail_next(429, headers={"retry-after": "50"})
    backup.fail_next(503, headers={"retry-after": "20"})
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        first = await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
        assert_openai_error(first, 503)  # the last target's own 503, relayed
        second = await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
        err = assert_openai_error(second, 503)
        assert second.headers["Retry-After"] == "20"  # backup comes back first
        assert "openai is cooling down" in err["message"] and "backup is cooling down" in err["message"]
        assert second.served_by is None
    assert len(upstreams.openai.received) == 1 and len(backup.received) == 1


async def test_429_when_the_backup_is_cooling_down_keeps_retry_after(upstreams, backup, tmp_path, http):
    backup.fail_next(429, headers={"retry-after": "60"})
    upstreams.openai.fail_next(429)  # first request: openai 429 (no hint) → backup 429 (60 s)
    upstreams.openai.fail_next(429, headers={"retry-after": "7"})
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
        assert env.health.unavailable("backup") is not None
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
        assert_openai_error(reply, 429)
        assert "retry-after" in reply.headers  # the client's SDK should wait as the provider asked


# ---- breaker over HTTP --------------------------------------------------------------------------------------

async def test_breaker_opens_skips_and_a_probe_closes_it(upstreams, backup, tmp_path, http, gate):
    upstreams.openai.fail_next(500, count=FAILURES_TO_OPEN)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        for i in range(FAILURES_TO_OPEN):
            reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text=f"n{i}"))
            assert reply.status == 200 and reply.served_by == "backup/gpt-4o-mini"
        assert len(upstreams.openai.received) == FAILURES_TO_OPEN
        health = await providers_health(http, env)
        assert health["openai"]["breaker"] == "open" and health["openai"]["open_until"] is not None
        assert health["openai"]["consecutive_failures"] == FAILURES_TO_OPEN
        assert health["openai"]["cooldown_until"] is None and health["backup"]["breaker"] == "closed"

        # Open: skipped without being contacted.
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="while open"))
        assert reply.served_by == "backup/gpt-4o-mini"
        row = await stored(env, reply.request_id)
        assert attempts(row) == [("backup", "gpt-4o-mini", 200)]
        assert len(upstreams.openai.received) == FAILURES_TO_OPEN

        env.clock.advance(FIRST_OPEN_SECONDS)
        assert (await providers_health(http, env))["openai"]["breaker"] == "half_open"
        # One probe goes through; hold it at the fake so a second request finds it in flight.
        upstreams.openai.hang_next(1.0)  # lasts until the gate opens
        probe = asyncio.create_task(call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="probe")))
        await until(lambda: gate.waiting == 1)
        other = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="meanwhile"))
        assert other.status == 200 and other.served_by == "backup/gpt-4o-mini"
        assert len(upstreams.openai.received) == FAILURES_TO_OPEN + 1  # only the probe reached openai
        gate.opened.set()
        async with asyncio.timeout(WAIT):
            probe_reply = await probe
        assert_openai_chat_ok(probe_reply, "openai", "gpt-4o")
        assert probe_reply.served_by == "openai/gpt-4o"

        health = await providers_health(http, env)
        assert health["openai"]["breaker"] == "closed" and health["openai"]["consecutive_failures"] == 0
        assert health["openai"]["open_until"] is None
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="closed again"))
        assert reply.served_by == "openai/gpt-4o"


async def test_failed_probe_reopens_for_twice_as_long(upstreams, backup, tmp_path, http):
    upstreams.openai.fail_next(503, count=FAILURES_TO_OPEN + 1)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        for _ in range(FAILURES_TO_OPEN):
            assert (await call(http, "POST", env.url + OPENAI_CHAT, body=chat())).served_by == "backup/gpt-4o-mini"
        env.clock.advance(FIRST_OPEN_SECONDS)
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="failing probe"))
        assert reply.served_by == "backup/gpt-4o-mini"
        row = await stored(env, reply.request_id)
        assert attempts(row) == [("openai", "gpt-4o", 503), ("backup", "gpt-4o-mini", 200)]
        assert env.health.get("openai").open_seconds == 2 * FIRST_OPEN_SECONDS
        assert (await providers_health(http, env))["openai"]["breaker"] == "open"

        env.clock.advance(FIRST_OPEN_SECONDS)  # the first open time again is not enough any more
        await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
        assert len(upstreams.openai.received) == FAILURES_TO_OPEN + 1
        env.clock.advance(FIRST_OPEN_SECONDS)
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="good probe"))
        assert reply.served_by == "openai/gpt-4o"
        assert env.health.get("openai").breaker == "closed"


async def test_probe_abandoned_by_its_client_is_released(upstreams, backup, tmp_path, http, gate):
    upstreams.openai.fail_next(500, count=FAILURES_TO_OPEN)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        for _ in range(FAILURES_TO_OPEN):
            await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
        env.clock.advance(FIRST_OPEN_SECONDS)
        upstreams.openai.hang_next(1.0)  # parked on the gate until cancelled
        probe = asyncio.create_task(call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="probe")))
        await until(lambda: gate.waiting == 1)
        probe.cancel()  # the client gives up: its connection closes, the sidecar's handler is cancelled
        await asyncio.gather(probe, return_exceptions=True)
        await until(lambda: gate.waiting == 0)
        async with asyncio.timeout(WAIT):  # the abandoned probe's record is written: the sidecar is done with it
            while not any(r["status"] == 499 for r in await asyncio.to_thread(env.sc.store.recent, 10)):
                await env.sc.store.flush()
                await asyncio.sleep(0.02)
        assert not env.health.get("openai").probe_in_flight
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="next probe"))
        assert reply.served_by == "openai/gpt-4o"  # the next request may probe


# ---- faults without a response ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["timeout", "reset", "refused"])
async def test_no_response_fails_over_with_status_none(upstreams, backup, tmp_path, http, case):
    smart, providers, keys, timeouts = SMART, None, dict(ALL_KEYS), None
    async with ResettingServer() as resetting:
        if case == "timeout":
            upstreams.openai.hang_next(30)  # far past first_byte; cancelled when the sidecar gives up
            timeouts = {"first_byte": 0.5}
        else:
            port = resetting.port if case == "reset" else closed_port()
            smart = ["dead/gpt-4o", "backup/gpt-4o-mini"]
            providers = {"dead": {"adapter": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}}
            keys["dead"] = "sk-dead"
        first = smart[0].split("/")[0]
        cfg = make_config(upstreams, backup, tmp_path, smart=smart, providers=providers, timeouts=timeouts)
        async with running(cfg, keys) as env:
            raw = await env.oa().chat.completions.with_raw_response.create(
                model="smart", messages=[{"role": "user", "content": "anyone there"}])
            assert raw.status_code == 200 and raw.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
            assert raw.parse().choices[0].message.content.startswith("Hello from fake-backup")
            row = await stored(env, raw.headers["x-sidecar-request-id"])
            h = env.health.get(first)
            assert h.consecutive_failures == 1 and h.cooldown_until == 0.0 and h.ttft_ewma == {}
        if case == "reset":
            assert resetting.connections >= 1
    assert attempts(row) == [(first, "gpt-4o", None), ("backup", "gpt-4o-mini", 200)]
    error = row["attempts"][0]["error"]
    if case == "timeout":
        assert "sent no response within 0.5s" in error
    else:
        assert f"cannot reach {first}" in error
    assert row["status"] == 200 and row["error"] is None


async def test_repeated_resets_open_the_breaker(upstreams, backup, tmp_path, http):
    async with ResettingServer() as resetting:
        dead = {"adapter": "openai", "base_url": f"http://127.0.0.1:{resetting.port}/v1"}
        cfg = make_config(upstreams, backup, tmp_path, smart=["dead/gpt-4o", "backup/gpt-4o-mini"],
                          providers={"dead": dead})
        async with running(cfg, {**ALL_KEYS, "dead": "sk-dead"}) as env:
            for _ in range(FAILURES_TO_OPEN):
                assert (await call(http, "POST", env.url + OPENAI_CHAT, body=chat())).served_by == "backup/gpt-4o-mini"
            seen = resetting.connections
            assert seen >= FAILURES_TO_OPEN
            reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat())
            row = await stored(env, reply.request_id)
            assert attempts(row) == [("backup", "gpt-4o-mini", 200)]
            assert resetting.connections == seen  # skipped: not even a connection
            assert (await providers_health(http, env))["dead"]["breaker"] == "open"


# ---- streams ---------------------------------------------------------------------------------------------

async def test_reset_mid_stream_is_not_failed_over(upstreams, backup, tmp_path, http):
    upstreams.openai.break_stream_next(3)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="one two three", stream=True))
        assert reply.status == 200 and reply.served_by == "openai/gpt-4o"
        datas = [orjson.loads(d) for _, d in sse_events(reply.body)]
        assert [d["choices"][0]["delta"].get("content") for d in datas[:3]] == ["", "Hello ", "from "]
        assert len(datas) == 4 and set(datas[-1]) == {"error"}  # one well-formed error event, nothing after it
        assert "broke off" in datas[-1]["error"]["message"] and datas[-1]["error"]["type"]
        row = await stored(env, reply.request_id)
        assert backup.received == []  # the first byte had reached the client: no failover
        h = env.health.get("openai")
        assert h.consecutive_failures == 1 and [ok for ok, _ in h.recent] == [False]

        upstreams.openai.break_stream_next(3)  # the SDK raises on the error event
        stream = await env.oa().chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x y z"}], stream=True)
        got = []
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                got.append(chunk)
        assert len(got) == 3 and "broke off" in info.value.message
        assert backup.received == [] and env.health.get("openai").consecutive_failures == 2
    assert row["status"] == 200 and row["stream"] is True and "broke off" in row["error"]
    assert attempts(row) == [("openai", "gpt-4o", 200)]
    assert row["attempts"][0]["error"] == row["error"]


async def test_reset_mid_translated_stream_ends_with_callers_error_event(upstreams, backup, tmp_path, http):
    """Anthropic client, `cross` alias: the first target is OpenAI (translated); it breaks after the first byte."""
    upstreams.openai.break_stream_next(3)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        reply = await call(http, "POST", env.url + ANTHROPIC, body=messages(text="a b c", stream=True))
        assert reply.status == 200 and reply.served_by == "openai/gpt-4o"
        events = sse_events(reply.body)
        assert events[0][0] == "message_start" and events[-1][0] == "error"
        assert all(name != "message_stop" for name, _ in events)
        error = orjson.loads(events[-1][1])
        assert error["type"] == "error" and error["error"]["type"] and "broke off" in error["error"]["message"]
        row = await stored(env, reply.request_id)
    assert upstreams.anthropic.received == []
    assert attempts(row) == [("openai", "gpt-4o", 200)] and "broke off" in row["error"]


async def test_slow_trickle_below_idle_timeout_succeeds_without_failover(upstreams, backup, tmp_path, http):
    upstreams.openai.chunk_delay = 0.03  # well below the idle timeout
    async with running(make_config(upstreams, backup, tmp_path, timeouts={"idle": 2.0})) as env:
        stream = await env.oa().chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "slowly"}], stream=True)
        assert stream.response.headers["x-sidecar-served-by"] == "openai/gpt-4o"
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello from fake-openai (gpt-4o): you said slowly"
        row = await stored(env, stream.response.headers["x-sidecar-request-id"])
        h = env.health.get("openai")
        assert h.consecutive_failures == 0 and [ok for ok, _ in h.recent] == [True]
        assert h.ttft_ewma["gpt-4o"] == row["ttft_ms"]  # the first sample is the stream's TTFT
    assert backup.received == []
    assert row["error"] is None and attempts(row) == [("openai", "gpt-4o", 200)]


# ---- key rejected -------------------------------------------------------------------------------------------

async def test_wrong_key_fails_over_and_is_logged_loudly(upstreams, backup, tmp_path, http, caplog):
    caplog.set_level(logging.WARNING, logger="sidecar.proxy")
    async with running(make_config(upstreams, backup, tmp_path), {**ALL_KEYS, "openai": "sk-wrong-key-9999"}) as env:
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text="with a bad key"))
        assert_openai_chat_ok(reply, "backup", "gpt-4o-mini")
        row = await stored(env, reply.request_id)
        assert env.health.get("openai").consecutive_failures == 1
    assert attempts(row) == [("openai", "gpt-4o", 401), ("backup", "gpt-4o-mini", 200)]
    assert "answered 401" in row["attempts"][0]["error"]
    assert "sk-wrong-key-9999" not in orjson.dumps(row).decode()
    warnings = [r for r in caplog.records if r.name == "sidecar.proxy" and r.levelno >= logging.WARNING]
    assert any("openai" in r.getMessage() and "401" in r.getMessage() and "key" in r.getMessage() for r in warnings)
    assert all("sk-wrong-key-9999" not in r.getMessage() for r in caplog.records)


# ---- cross-format alias -----------------------------------------------------------------------------------

async def test_cross_format_failover_translates_for_an_openai_client(upstreams, backup, tmp_path, http):
    upstreams.openai.fail_next(503)
    upstreams.openai.fail_next(500)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        raw = await env.oa().chat.completions.with_raw_response.create(
            model="cross", messages=[{"role": "user", "content": "translate me"}])
        completion = raw.parse()
        assert raw.headers["x-sidecar-served-by"] == "anthropic/claude-haiku-4-5"
        assert completion.object == "chat.completion" and completion.model == "cross"
        assert completion.choices[0].message.content == (
            "Hello from fake-anthropic (claude-haiku-4-5): you said translate me")
        assert completion.usage.completion_tokens == upstreams.anthropic.last_usage["output_tokens"]
        row = await stored(env, raw.headers["x-sidecar-request-id"])
        assert attempts(row) == [("openai", "gpt-4o", 503), ("anthropic", "claude-haiku-4-5", 200)]

        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat("cross", "raw", stream=True))
        assert reply.status == 200 and reply.served_by == "anthropic/claude-haiku-4-5"
        datas = [d for _, d in sse_events(reply.body)]
        assert datas[-1] == b"[DONE]"
        text = "".join(orjson.loads(d)["choices"][0]["delta"].get("content") or ""
                       for d in datas[:-1] if orjson.loads(d)["choices"])
        assert text == "Hello from fake-anthropic (claude-haiku-4-5): you said raw"
    [got, _] = upstreams.anthropic.received
    assert got.json["model"] == "claude-haiku-4-5" and got.headers["x-api-key"] == KEYS["anthropic"]
    assert len(upstreams.openai.received) == 2


async def test_cross_format_failover_for_an_anthropic_client(upstreams, backup, tmp_path):
    upstreams.openai.fail_next(429, headers={"retry-after": "20"})
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        raw = await env.an().messages.with_raw_response.create(**messages(text="from claude land"))
        message = await raw.parse()
        assert raw.headers["x-sidecar-served-by"] == "anthropic/claude-haiku-4-5"
        assert message.type == "message" and message.content[0].text.endswith("you said from claude land")
        row = await stored(env, raw.headers["x-sidecar-request-id"])
        assert attempts(row) == [("openai", "gpt-4o", 429), ("anthropic", "claude-haiku-4-5", 200)]
        assert env.health.get("openai").cooldown_until == env.clock.now + 20
        # In the cool-down the translated target is skipped and anthropic passes through directly.
        raw = await env.an().messages.with_raw_response.create(**messages(text="again"))
        assert raw.headers["x-sidecar-served-by"] == "anthropic/claude-haiku-4-5"
    assert len(upstreams.openai.received) == 1 and len(upstreams.anthropic.received) == 2


async def test_cross_format_400_is_returned_at_once_in_callers_format(upstreams, backup, tmp_path, http):
    upstreams.openai.fail_next(400)
    async with running(make_config(upstreams, backup, tmp_path)) as env:
        reply = await call(http, "POST", env.url + ANTHROPIC, body=messages(text="bad request"))
        err = assert_anthropic_error(reply, 400)
        assert err["type"] == "invalid_request_error" and "injected 400" in err["message"]
        assert reply.served_by == "openai/gpt-4o"
        row = await stored(env, reply.request_id)
        h = env.health.get("openai")
        assert h.consecutive_failures == 0 and h.breaker == "closed"  # the request's fault, not the provider's
    assert upstreams.anthropic.received == []
    assert attempts(row) == [("openai", "gpt-4o", 400)] and row["status"] == 400


# ---- strategies end to end ----------------------------------------------------------------------------------

async def test_lowest_latency_prefers_the_measured_faster_target(upstreams, backup, tmp_path, http):
    """The slow target's one answer is held back (a pre-answer delay, which is what TTFT sees; a `chunk_delay`
    only spaces out later chunks and leaves the first one immediate) by an order of magnitude more than a
    localhost answer takes; the comparison is between the two measurements, not against a threshold."""
    aliases = {"fast": {"targets": SMART, "strategy": "lowest_latency"}}
    upstreams.openai.hang_next(0.4)
    async with running(make_config(upstreams, backup, tmp_path, aliases=aliases)) as env:
        served = []
        for i in range(5):
            reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat("fast", f"n{i}", stream=True))
            assert reply.status == 200
            served.append(reply.served_by)
        slow, quick = env.health.ttft("openai", "gpt-4o"), env.health.ttft("backup", "gpt-4o-mini")
        assert slow is not None and quick is not None and quick < slow
    # Warm-up: both unmeasured, config order first; then the unmeasured one; then the faster one every time.
    assert served == ["openai/gpt-4o", "backup/gpt-4o-mini", "backup/gpt-4o-mini", "backup/gpt-4o-mini",
                      "backup/gpt-4o-mini"]
    assert len(upstreams.openai.received) == 1


async def test_weighted_with_a_zero_weight_always_picks_the_first(upstreams, backup, tmp_path, http):
    aliases = {"w": {"targets": SMART, "strategy": "weighted", "weights": [1, 0]}}
    async with running(make_config(upstreams, backup, tmp_path, aliases=aliases)) as env:
        for i in range(12):
            reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat("w", f"n{i}"))
            assert reply.served_by == "openai/gpt-4o"
        upstreams.openai.fail_next(502)  # the zero-weight target is still there for failover
        reply = await call(http, "POST", env.url + OPENAI_CHAT, body=chat("w"))
        assert reply.served_by == "backup/gpt-4o-mini"
    assert len(backup.received) == 1


async def test_lowest_cost_picks_the_cheaper_catalog_price(upstreams, backup, tmp_path, http):
    aliases = {"cheap": {"targets": ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"], "strategy": "lowest_cost"}}
    async with running(make_config(upstreams, backup, tmp_path, aliases=aliases)) as env:
        reply = await call(http, "POST", env.url + ANTHROPIC, body=messages("cheap"))
        assert reply.status == 200 and reply.served_by == "openai/gpt-4o-mini"
        assert reply.json["type"] == "message"  # translated back for the Anthropic client
    assert upstreams.anthropic.received == []


# ---- concurrency -----------------------------------------------------------------------------------------

class FlakyUpstream(FakeUpstream):
    """A fake OpenAI that answers every other generation request (the 1st, 3rd, ...) with a 503."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.failed = 0

    def _endpoint(self, handler: Any, *, generation: bool) -> Any:
        inner = super()._endpoint(handler, generation=generation)
        if not generation:
            return inner

        async def flaky(request: Any) -> Any:
            self.calls += 1
            if self.calls % 2:
                self.failed += 1
                await request.read()
                return self._error(request, 503, "fake-flaky: every other request fails")
            return await inner(request)

        return flaky


async def test_concurrent_requests_all_succeed_through_a_flaky_first_target(upstreams, backup, tmp_path, http):
    flaky = FlakyUpstream("openai", name="flaky", expect_key=KEYS["openai"])
    await flaky.start()
    try:
        cfg = make_config(upstreams, backup, tmp_path, smart=["flaky/gpt-4o", "backup/gpt-4o-mini"],
                          providers={"flaky": {"adapter": "openai", "base_url": flaky.base_url}})
        async with running(cfg, {**ALL_KEYS, "flaky": KEYS["openai"]}) as env:
            limit = asyncio.Semaphore(50)

            async def one(i: int) -> Reply:
                async with limit:
                    return await call(http, "POST", env.url + OPENAI_CHAT, body=chat(text=f"request {i}"))

            async with asyncio.timeout(60):
                replies = await asyncio.gather(*(one(i) for i in range(200)))
            assert [r.status for r in replies] == [200] * 200
            for i, r in enumerate(replies):
                assert r.json["choices"][0]["message"]["content"].endswith(f"you said request {i}")
            async with asyncio.timeout(WAIT):
                while True:
                    await env.sc.store.flush()
                    rows = await asyncio.to_thread(env.sc.store.recent, 300)
                    if len(rows) == 200 and all(r["latency_ms"] is not None for r in rows):
                        break
                    await asyncio.sleep(0.05)
    finally:
        await flaky.close()
    chains = [tuple((a["provider"], a["status"]) for a in r["attempts"]) for r in rows]
    failed_over = chains.count((("flaky", 503), ("backup", 200)))
    by_flaky = chains.count((("flaky", 200),))
    straight_to_backup = chains.count((("backup", 200),))  # while the breaker was open
    assert failed_over + by_flaky + straight_to_backup == 200  # no other shapes
    assert failed_over == flaky.failed > 0  # every 503 was failed over
    assert by_flaky == flaky.calls - flaky.failed > 0
    assert len(backup.received) == failed_over + straight_to_backup
    assert all(r["status"] == 200 and r["error"] is None for r in rows)
    assert {r["id"] for r in rows} == {r.request_id for r in replies}
