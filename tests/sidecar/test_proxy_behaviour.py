"""The proxy's behaviour over real HTTP: bad input, upstream errors, failover, streams, disconnects, control API.

Every test talks to a real sidecar on 127.0.0.1 (aiohttp client, or the official SDKs where the point is
what an SDK sees) in front of fake providers on 127.0.0.1. Nothing waits on a timing threshold: streams
that must stall are held by a gate the test opens, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
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
from http_helpers import (assert_anthropic_error, assert_gemini_error, assert_openai_error, call,
                          sse_events)
from sidecar.config import Config
from sidecar.fake_upstream import FakeUpstream
from sidecar.keys import KeyStoreError, MemoryKeyStore
from sidecar.records import Attempt, RequestRecord

BACKUP_KEY = "sk-test-backup-0004"
PLACEHOLDER = "placeholder-not-a-key"
RECORD_FIELDS = {f.name for f in fields(RequestRecord)}
ATTEMPT_FIELDS = {f.name for f in fields(Attempt)}
WAIT = 5.0
"""Upper bound for every wait on something asynchronous (a record, an event, a fake's handler)."""

OPENAI_CHAT = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


# ---- helpers --------------------------------------------------------------------------------------



@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


def chat(model: str = "openai/gpt-4o-mini", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def messages(model: str = "anthropic/claude-haiku-4-5", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}], **extra}


def gemini_body(text: str = "hello") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def _final(row: dict) -> bool:
    return row["latency_ms"] is not None  # set when the request is finished, not on an early snapshot


async def stored(sc: Sidecar, request_id: str, until: Callable[[dict], bool] = _final) -> dict:
    """The stored record (with bodies) once it is final and satisfies `until`; bounded wait."""
    async with asyncio.timeout(WAIT):
        while True:
            await sc.store.flush()
            row = await asyncio.to_thread(sc.store.get, request_id)
            if row is not None and until(row):
                return row
            await asyncio.sleep(0.02)


ERROR_SHAPES = {"openai": assert_openai_error, "anthropic": assert_anthropic_error, "gemini": assert_gemini_error}


@asynccontextmanager
async def running(config: Config, keys: dict[str, str]) -> AsyncIterator[Sidecar]:
    sc, runner = await start_sidecar(config, MemoryKeyStore(keys))
    try:
        yield sc
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]


@pytest.fixture
async def backup() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream("openai", name="backup", expect_key=BACKUP_KEY)
    await fake.start()
    yield fake
    await fake.close()


def alias_config(ups: Upstreams, backup: FakeUpstream, tmp_path: Path, *, first: str = "openai/gpt-4o",
                 providers: dict[str, Any] | None = None, timeouts: dict[str, float] | None = None) -> Config:
    extra: dict[str, Any] = {
        "providers": {"backup": {"adapter": "openai", "base_url": backup.base_url}, **(providers or {})},
        "models": {"smart": {"targets": [first, "backup/gpt-4o-mini"]}},
    }
    if timeouts:
        extra["timeouts"] = timeouts
    return config_for(ups, tmp_path / "d", extra)


ALL_KEYS = {**KEYS, "backup": BACKUP_KEY}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gate:
    """Stands in for `asyncio` inside `sidecar.fakes`, so a fake's pause between stream chunks (and any
    `hang_next`) lasts until the test opens the gate instead of for a wall-clock time."""

    def __init__(self, limit: float = 10.0) -> None:
        self.opened = asyncio.Event()
        self.limit = limit
        self.waiting = 0
        self.cancelled = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.opened.wait(), self.limit)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.waiting -= 1


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    g = Gate()
    monkeypatch.setattr(fakes_module, "asyncio", g)
    return g


@dataclass
class StreamSpy:
    """What one of a fake's streams did: how far it got and how its handler ended."""

    total: int = 0
    reached: int = 0
    """Frames the fake's loop has taken up (the last one may still be waiting to be written)."""
    outcome: str | None = None
    """"finished" (sent everything), "cancelled" (its connection went away) or "error: ..."."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _CountingFrames(list):
    def __init__(self, frames: list[bytes], spy: StreamSpy) -> None:
        super().__init__(frames)
        self._spy = spy

    def __iter__(self):  # type: ignore[override]
        for i, frame in enumerate(list.__iter__(self)):
            self._spy.reached = i + 1
            yield frame


def spy_on_stream(fake: FakeUpstream) -> StreamSpy:
    spy = StreamSpy()
    original = fake._stream

    async def spied(request: Any, frames: list[bytes], *args: Any, **kwargs: Any) -> Any:
        spy.total = len(frames)
        try:
            resp = await original(request, _CountingFrames(frames, spy), *args, **kwargs)
            spy.outcome = "finished" if spy.reached == spy.total else f"stopped at {spy.reached}"
            return resp
        except asyncio.CancelledError:
            spy.outcome = "cancelled"
            raise
        except BaseException as exc:
            spy.outcome = f"error: {type(exc).__name__}"
            raise
        finally:
            spy.done.set()

    fake._stream = spied  # type: ignore[method-assign]
    return spy


def oa(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=PLACEHOLDER, max_retries=0)


def an(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=PLACEHOLDER, max_retries=0)


# ---- bad input --------------------------------------------------------------------------------------

ENDPOINTS = [("openai", OPENAI_CHAT), ("anthropic", ANTHROPIC), ("gemini", GEMINI)]


@pytest.mark.parametrize("kind,path", ENDPOINTS)
@pytest.mark.parametrize("payload", [b'{"model": "openai/gpt-4o-mini", "messages": [', b"", b"\xff\xfe{}",
                                     b"not json at all"], ids=["truncated", "empty", "bad-utf8", "text"])
async def test_malformed_json_is_400_in_callers_format(sidecar, upstreams, http, kind, path, payload):
    reply = await call(http, "POST", sidecar.url + path, data=payload, headers={"Content-Type": "application/json"})
    err = ERROR_SHAPES[kind](reply, 400)
    assert "JSON" in err["message"]
    assert not (upstreams.openai.received or upstreams.anthropic.received or upstreams.gemini.received)
    row = await stored(sidecar, reply.request_id)
    assert row["status"] == 400 and row["error"] and row["provider"] is None and row["attempts"] == []


@pytest.mark.parametrize("kind,path", ENDPOINTS)
@pytest.mark.parametrize("payload", [b"[1, 2]", b'"hello"', b"42", b"null", b"true"])
async def test_json_that_is_not_an_object_is_400(sidecar, http, kind, path, payload):
    reply = await call(http, "POST", sidecar.url + path, data=payload)
    err = ERROR_SHAPES[kind](reply, 400)
    assert "object" in err["message"]


@pytest.mark.parametrize("kind,path", [("openai", OPENAI_CHAT), ("openai", "/v1/responses"), ("anthropic", ANTHROPIC)])
@pytest.mark.parametrize("model", [None, "", 5, ["openai/gpt-4o-mini"]], ids=["absent", "empty", "number", "list"])
async def test_missing_or_non_string_model_is_400(sidecar, upstreams, http, kind, path, model):
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "input": "x", "max_tokens": 5}
    if model is not None:
        body["model"] = model
    reply = await call(http, "POST", sidecar.url + path, body=body)
    err = ERROR_SHAPES[kind](reply, 400)
    assert "model" in err["message"]
    assert not (upstreams.openai.received or upstreams.anthropic.received)


async def test_gemini_path_without_model_is_404_gemini_shape(sidecar, upstreams, http):
    reply = await call(http, "POST", sidecar.url + "/v1beta/models/:generateContent", body=gemini_body())
    assert_gemini_error(reply, 404)
    assert not upstreams.gemini.received


@pytest.mark.parametrize("method,path,kind,status", [
    ("GET", "/v1/nope", "openai", 404),
    ("POST", "/v2/chat/completions", "openai", 404),
    ("POST", "/v1/messages/batches", "anthropic", 404),
    ("GET", "/v1beta/nothing", "gemini", 404),
    ("GET", OPENAI_CHAT, "openai", 405),
    ("PUT", "/v1/responses", "openai", 405),
    ("GET", ANTHROPIC, "anthropic", 405),
    ("DELETE", ANTHROPIC, "anthropic", 405),
    ("GET", GEMINI, "gemini", 405),
])
async def test_unknown_endpoint_and_wrong_method_are_json(sidecar, http, method, path, kind, status):
    reply = await call(http, method, sidecar.url + path)
    err = ERROR_SHAPES[kind](reply, status)
    assert path in err["message"]


@pytest.mark.parametrize("method", ["countTokens", "embedContent", "batchGenerateContent"])
async def test_unknown_gemini_method_is_404_gemini_shape(sidecar, upstreams, http, method):
    reply = await call(http, "POST", f"{sidecar.url}/v1beta/models/gemini-2.5-flash:{method}", body=gemini_body())
    err = assert_gemini_error(reply, 404)
    assert err["status"] == "NOT_FOUND" and method in err["message"]
    assert not upstreams.gemini.received


async def test_two_mebibyte_body_is_accepted_and_reaches_upstream_intact(sidecar, upstreams, http):
    image = base64.b64encode(os.urandom(3 * 512 * 1024)).decode()  # exactly 2 MiB of base64
    assert len(image) == 2 * 1024 * 1024
    body = orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in this picture"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]}]})
    reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, data=body,
                       headers={"Content-Type": "application/json"})
    assert reply.status == 200, reply.body[:500]
    [got] = upstreams.openai.received
    # Byte for byte what the client sent, except the model name.
    assert got.body == body.replace(b'"model":"openai/gpt-4o-mini"', b'"model":"gpt-4o-mini"', 1)
    assert "you said what is in this picture" in reply.json["choices"][0]["message"]["content"]


# ---- upstream errors relayed when there is no further target -----------------------------------------

@pytest.mark.parametrize("status", [400, 404, 422, 500, 503])
async def test_upstream_error_relayed_faithfully_openai(sidecar, upstreams, http, status):
    upstreams.openai.fail_next(status)
    reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat())
    err = assert_openai_error(reply, status)
    assert err["message"] == f"fake-openai: injected {status}"  # the provider's own body, not a rewrite
    assert reply.headers["x-request-id"].startswith("req_")  # provider headers relayed too
    row = await stored(sidecar, reply.request_id)
    assert row["status"] == status and f"answered {status}" in row["error"]
    assert [(a["provider"], a["status"]) for a in row["attempts"]] == [("openai", status)]
    assert orjson.loads(row["response_body"]) == reply.json


async def test_upstream_429_retry_after_reaches_the_sdk(sidecar, upstreams):
    upstreams.openai.fail_next(429, headers={"retry-after": "7", "x-ratelimit-remaining-requests": "0"})
    with pytest.raises(openai.RateLimitError) as info:
        await oa(sidecar.url).chat.completions.create(model="openai/gpt-4o-mini",
                                                      messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.code == "rate_limit_exceeded"
    assert len(upstreams.openai.received) == 1


async def test_anthropic_529_relayed_as_overloaded(sidecar, upstreams, http):
    upstreams.anthropic.fail_next(529)
    with pytest.raises(anthropic.APIStatusError) as info:
        await an(sidecar.url).messages.create(**messages())
    assert info.value.status_code == 529
    assert isinstance(info.value, anthropic.OverloadedError)
    assert info.value.body["error"]["type"] == "overloaded_error"
    upstreams.anthropic.fail_next(529)
    reply = await call(http, "POST", sidecar.url + ANTHROPIC, body=messages(stream=True))
    err = assert_anthropic_error(reply, 529)  # an error before any stream data: a plain JSON answer
    assert err["type"] == "overloaded_error"


async def test_gemini_error_relayed_in_gemini_shape(sidecar, upstreams, http):
    upstreams.gemini.fail_next(429, headers={"retry-after": "3"})
    reply = await call(http, "POST", sidecar.url + GEMINI, body=gemini_body())
    err = assert_gemini_error(reply, 429)
    assert err["status"] == "RESOURCE_EXHAUSTED" and reply.headers["retry-after"] == "3"


# ---- failover through an alias ----------------------------------------------------------------------

@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_retryable_status_fails_over_to_backup(upstreams, backup, tmp_path, http, status):
    upstreams.openai.fail_next(status)
    async with running(alias_config(upstreams, backup, tmp_path), ALL_KEYS) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart", "fail over please"))
        assert reply.status == 200, reply.body
        assert reply.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
        assert reply.json["choices"][0]["message"]["content"].startswith("Hello from fake-backup (gpt-4o-mini)")
        [first] = upstreams.openai.received
        [second] = backup.received
        assert first.json["model"] == "gpt-4o" and second.json["model"] == "gpt-4o-mini"
        assert first.headers["authorization"] == f"Bearer {KEYS['openai']}"
        assert second.headers["authorization"] == f"Bearer {BACKUP_KEY}"
        row = await stored(sc, reply.request_id)
    assert row["status"] == 200 and row["error"] is None
    assert (row["provider"], row["model"], row["requested_model"]) == ("backup", "gpt-4o-mini", "smart")
    a1, a2 = row["attempts"]
    assert set(a1) == ATTEMPT_FIELDS
    assert (a1["provider"], a1["model"], a1["status"]) == ("openai", "gpt-4o", status)
    assert f"answered {status}" in a1["error"] and a1["duration_ms"] >= 0
    assert (a2["provider"], a2["model"], a2["status"], a2["error"]) == ("backup", "gpt-4o-mini", 200, None)


@pytest.mark.parametrize("status", [507, 520, 524])
async def test_other_5xx_fail_over_as_documented(upstreams, backup, tmp_path, http, status):
    upstreams.openai.fail_next(status)
    async with running(alias_config(upstreams, backup, tmp_path), ALL_KEYS) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
    assert len(upstreams.openai.received) == 1
    assert reply.status == 200 and reply.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"


@pytest.mark.parametrize("status,headers", [(400, None), (404, None), (422, None), (503, {"x-should-retry": "false"})],
                         ids=["400", "404", "422", "503-should-not-retry"])
async def test_request_errors_are_not_failed_over(upstreams, backup, tmp_path, http, status, headers):
    upstreams.openai.fail_next(status, headers=headers)
    async with running(alias_config(upstreams, backup, tmp_path), ALL_KEYS) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
        err = assert_openai_error(reply, status)
        assert err["message"] == f"fake-openai: injected {status}"
        assert reply.headers["x-sidecar-served-by"] == "openai/gpt-4o"
        assert backup.received == []
        row = await stored(sc, reply.request_id)
    assert row["status"] == status and len(row["attempts"]) == 1 and row["attempts"][0]["status"] == status


async def test_all_targets_failing_returns_last_status_with_the_chain(upstreams, backup, tmp_path, http):
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    cfg = alias_config(upstreams, backup, tmp_path, first="dead/gpt-4o",
                       providers={"dead": {"adapter": "openai", "base_url": dead}})
    backup.fail_next(503)
    async with running(cfg, {**ALL_KEYS, "dead": "sk-dead"}) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
        # The last target answered: its own error is relayed as it came.
        err = assert_openai_error(reply, 503)
        assert err["message"] == "fake-backup: injected 503"
        row = await stored(sc, reply.request_id)
    assert [a["provider"] for a in row["attempts"]] == ["dead", "backup"]
    assert row["attempts"][1]["status"] == 503


async def test_connection_refused_fails_over(upstreams, backup, tmp_path, http):
    port = closed_port()
    cfg = alias_config(upstreams, backup, tmp_path, first="dead/gpt-4o",
                       providers={"dead": {"adapter": "openai", "base_url": f"http://127.0.0.1:{port}/v1"}})
    async with running(cfg, {**ALL_KEYS, "dead": "sk-dead"}) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
        assert reply.status == 200 and reply.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
        row = await stored(sc, reply.request_id)
    a1, a2 = row["attempts"]
    assert a1["provider"] == "dead" and "cannot reach dead" in a1["error"] and str(port) in a1["error"]
    assert a2["provider"] == "backup" and a2["status"] == 200


async def test_first_byte_timeout_fails_over(upstreams, backup, tmp_path, http):
    upstreams.openai.hang_next(30)  # far past first_byte; the fake is cancelled when the sidecar gives up
    cfg = alias_config(upstreams, backup, tmp_path, timeouts={"first_byte": 0.5})
    async with running(cfg, ALL_KEYS) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
        assert reply.status == 200 and reply.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
        row = await stored(sc, reply.request_id)
    a1, a2 = row["attempts"]
    assert a1["provider"] == "openai" and "0.5s" in a1["error"] and "no response" in a1["error"]
    assert a2["status"] == 200


async def test_first_byte_timeout_without_backup_is_504(upstreams, tmp_path, http):
    upstreams.anthropic.hang_next(30)
    cfg = config_for(upstreams, tmp_path / "d", {"timeouts": {"first_byte": 0.5}})
    async with running(cfg, KEYS) as sc:
        reply = await call(http, "POST", sc.url + ANTHROPIC, body=messages())
        err = assert_anthropic_error(reply, 504)
        assert "0.5s" in err["message"]


async def test_missing_key_on_first_target_fails_over(upstreams, backup, tmp_path, http):
    keys = {k: v for k, v in ALL_KEYS.items() if k != "openai"}
    async with running(alias_config(upstreams, backup, tmp_path), keys) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
        assert reply.status == 200 and reply.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
        row = await stored(sc, reply.request_id)
    assert upstreams.openai.received == []  # nothing was sent without a key
    a1, a2 = row["attempts"]
    assert a1["provider"] == "openai" and "sidecar keys set openai" in a1["error"]
    assert a2["provider"] == "backup" and a2["status"] == 200


@pytest.mark.parametrize("case", ["refused", "timeout", "no-key"])
async def test_attempt_without_upstream_response_has_no_status(upstreams, backup, tmp_path, http, case):
    providers, keys, timeouts = None, dict(ALL_KEYS), None
    first = "openai/gpt-4o"
    if case == "refused":
        first = "dead/gpt-4o"
        providers = {"dead": {"adapter": "openai", "base_url": f"http://127.0.0.1:{closed_port()}/v1"}}
        keys["dead"] = "sk-dead"
    elif case == "timeout":
        upstreams.openai.hang_next(30)
        timeouts = {"first_byte": 0.5}
    else:
        del keys["openai"]
    cfg = alias_config(upstreams, backup, tmp_path, first=first, providers=providers, timeouts=timeouts)
    async with running(cfg, keys) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat("smart"))
        assert reply.status == 200
        row = await stored(sc, reply.request_id)
    assert row["attempts"][0]["error"]
    assert row["attempts"][0]["status"] is None  # records.py: "None when no response arrived"


async def test_streaming_request_fails_over_before_first_byte(upstreams, backup, tmp_path, http):
    upstreams.openai.fail_next(503)
    async with running(alias_config(upstreams, backup, tmp_path), ALL_KEYS) as sc:
        client = oa(sc.url)
        stream = await client.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "stream it"}], stream=True)
        assert stream.response.headers["x-sidecar-served-by"] == "backup/gpt-4o-mini"
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello from fake-backup (gpt-4o-mini): you said stream it"
        assert all(c.choices for c in chunks)  # the usage chunk the sidecar asked for is stripped
        row = await stored(sc, stream.response.headers["x-sidecar-request-id"])
    assert row["stream"] is True and row["status"] == 200 and row["error"] is None
    assert [(a["provider"], a["status"]) for a in row["attempts"]] == [("openai", 503), ("backup", 200)]
    assert row["output_tokens"] == backup.last_usage["completion_tokens"] and row["ttft_ms"] is not None


# ---- streams --------------------------------------------------------------------------------------

async def test_openai_stream_broken_mid_way_ends_with_error_event(sidecar, upstreams, http):
    upstreams.openai.break_stream_next(3)
    reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat(text="one two three four", stream=True))
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(reply.body)
    datas = [orjson.loads(d) for _, d in events]
    assert [d["choices"][0]["delta"] for d in datas[:3]] == [
        {"role": "assistant", "content": "", "refusal": None}, {"content": "Hello "}, {"content": "from "}]
    assert len(datas) == 4 and set(datas[-1]) == {"error"}  # exactly one error event, nothing after it
    assert "broke off" in datas[-1]["error"]["message"] and datas[-1]["error"]["type"]
    row = await stored(sidecar, reply.request_id)
    assert row["status"] == 200 and row["error"] and "broke off" in row["error"]
    assert row["attempts"][0]["error"] == row["error"]


async def test_openai_sdk_raises_on_broken_stream(sidecar, upstreams):
    upstreams.openai.break_stream_next(3)
    stream = await oa(sidecar.url).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x y z"}], stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 3 and "broke off" in info.value.message


async def test_anthropic_stream_broken_mid_way_ends_with_error_event(sidecar, upstreams, http):
    upstreams.anthropic.break_stream_next(3)
    reply = await call(http, "POST", sidecar.url + ANTHROPIC, body=messages(text="a b c d", stream=True))
    assert reply.status == 200
    events = sse_events(reply.body)
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "error"]
    error = orjson.loads(events[-1][1])
    assert error["type"] == "error" and error["error"]["type"] and "broke off" in error["error"]["message"]
    row = await stored(sidecar, reply.request_id)
    assert row["status"] == 200 and "broke off" in row["error"]
    upstreams.anthropic.break_stream_next(3)
    with pytest.raises(anthropic.APIStatusError) as info:
        async with an(sidecar.url).messages.stream(**messages(text="a b c d")) as stream:
            async for _ in stream:
                pass
    assert "broke off" in str(info.value)


async def test_idle_timeout_mid_stream_ends_with_error_event(upstreams, tmp_path, http, gate):
    upstreams.openai.chunk_delay = 1.0  # every pause waits on the gate, which stays shut
    upstreams.anthropic.chunk_delay = 1.0
    cfg = config_for(upstreams, tmp_path / "d", {"timeouts": {"idle": 0.3}})
    async with running(cfg, KEYS) as sc:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat(stream=True))
        events = sse_events(reply.body)
        assert reply.status == 200 and len(events) == 2
        assert orjson.loads(events[0][1])["choices"][0]["delta"]["role"] == "assistant"
        err = orjson.loads(events[1][1])["error"]
        assert "silent" in err["message"] and "0.3s" in err["message"]
        row = await stored(sc, reply.request_id)
        assert row["status"] == 200 and "silent" in row["error"]

        reply = await call(http, "POST", sc.url + ANTHROPIC, body=messages(stream=True))
        events = sse_events(reply.body)
        assert [n for n, _ in events] == ["message_start", "error"]
        assert "silent" in orjson.loads(events[1][1])["error"]["message"]
    assert not gate.opened.is_set()


async def test_first_chunk_reaches_client_while_upstream_still_streaming(sidecar, upstreams, http, gate):
    upstreams.openai.chunk_delay = 0.3  # each pause lasts until the gate opens
    spy = spy_on_stream(upstreams.openai)
    async with http.post(sidecar.url + OPENAI_CHAT, json=chat(text="one two three", stream=True)) as resp:
        assert resp.status == 200
        async with asyncio.timeout(WAIT):
            first = await resp.content.readuntil(b"\n\n")
        # The client holds chunk 1 while the fake is parked before its second frame.
        assert b'"role":"assistant"' in first
        assert not spy.done.is_set() and spy.reached <= 2 < spy.total
        gate.opened.set()
        async with asyncio.timeout(WAIT):
            rest = await resp.read()
    assert spy.outcome == "finished"
    texts = [orjson.loads(d)["choices"][0]["delta"].get("content") or "" for _, d in sse_events(first + rest)
             if d != b"[DONE]"]
    assert "".join(texts) == "Hello from fake-openai (gpt-4o-mini): you said one two three"
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_client_disconnect_mid_stream_closes_upstream_and_is_recorded(sidecar, upstreams, http, gate):
    upstreams.anthropic.chunk_delay = 0.3
    spy = spy_on_stream(upstreams.anthropic)
    resp = await http.post(sidecar.url + ANTHROPIC, json=messages(text="please stream", stream=True))
    try:
        assert resp.status == 200
        request_id = resp.headers["x-sidecar-request-id"]
        async with asyncio.timeout(WAIT):
            first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"event: message_start")
    finally:
        resp.close()  # drop the connection mid-stream
    async with asyncio.timeout(WAIT):
        await spy.done.wait()
    # The fake's handler was cancelled because the sidecar closed the upstream connection, while it
    # was still parked before its second frame (the gate never opened).
    assert spy.outcome == "cancelled" and spy.reached < spy.total
    assert not gate.opened.is_set()
    row = await stored(sidecar, request_id)
    assert row["error"] == "client disconnected"
    assert row["status"] == 200 and row["stream"] is True and row["provider"] == "anthropic"


async def test_responses_stream_broken_mid_way_ends_with_error_event(sidecar, upstreams, http):
    upstreams.openai.break_stream_next(3)
    reply = await call(http, "POST", sidecar.url + "/v1/responses",
                       body={"model": "openai/gpt-4o-mini", "input": "a b", "stream": True})
    assert reply.status == 200
    events = sse_events(reply.body)
    assert [n for n, _ in events] == ["response.created", "response.in_progress", "response.output_item.added", "error"]
    error = orjson.loads(events[-1][1])
    assert error["type"] == "error" and "broke off" in error["message"] and error["code"]
    row = await stored(sidecar, reply.request_id)
    assert row["status"] == 200 and "broke off" in row["error"]


async def test_responses_stream_error_event_continues_the_sequence(sidecar, upstreams, http):
    upstreams.openai.break_stream_next(3)
    reply = await call(http, "POST", sidecar.url + "/v1/responses",
                       body={"model": "openai/gpt-4o-mini", "input": "a b", "stream": True})
    numbers = [orjson.loads(d)["sequence_number"] for _, d in sse_events(reply.body)]
    assert numbers[:-1] == [0, 1, 2]
    assert numbers[-1] == 3  # the error event is the stream's next event


GEMINI_ARRAY_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"  # no alt=sse: one JSON array


async def test_gemini_json_array_stream_broken_is_recorded(sidecar, upstreams, http):
    upstreams.gemini.break_stream_next(2)
    reply = await call(http, "POST", sidecar.url + GEMINI_ARRAY_STREAM, body=gemini_body("a b c d"))
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    assert reply.body.startswith(b"[{") and b'"text":"from "' in reply.body
    row = await stored(sidecar, reply.request_id)
    assert row["status"] == 200 and "broke off" in row["error"]


async def test_gemini_json_array_stream_broken_stays_a_json_array(sidecar, upstreams, http):
    upstreams.gemini.break_stream_next(2)
    reply = await call(http, "POST", sidecar.url + GEMINI_ARRAY_STREAM, body=gemini_body("a b c d"))
    assert reply.status == 200
    items = orjson.loads(reply.body)  # a JSON-array stream must stay a JSON array, error included
    assert [i["candidates"][0]["content"]["parts"][0]["text"] for i in items[:2]] == ["Hello ", "from "]
    assert len(items) == 3 and "broke off" in items[2]["error"]["message"]


async def test_client_disconnect_before_any_answer_is_499(sidecar, upstreams, http, gate):
    upstreams.openai.hang_next(30)  # parked on the gate until cancelled
    task = asyncio.create_task(call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat(text="never mind")))
    async with asyncio.timeout(WAIT):
        while gate.waiting == 0:
            await asyncio.sleep(0.01)
    task.cancel()  # the client gives up: its connection closes
    await asyncio.gather(task, return_exceptions=True)
    async with asyncio.timeout(WAIT):
        while gate.cancelled == 0:  # the upstream request was closed in turn
            await asyncio.sleep(0.01)
    async with asyncio.timeout(WAIT):
        while True:
            await sidecar.store.flush()
            rows = await asyncio.to_thread(sidecar.store.recent, 5)
            if rows and all(_final(r) for r in rows):
                break
            await asyncio.sleep(0.02)
    [row] = rows
    assert row["status"] == 499 and row["error"] == "client disconnected" and row["provider"] == "openai"
    assert not gate.opened.is_set()


class LockedKeyring:
    def get(self, provider: str) -> str | None:
        raise KeyStoreError("keyring (test.Locked): the keyring is locked; unlock it")

    def set(self, provider: str, secret: str) -> None:
        raise KeyStoreError("locked")

    def delete(self, provider: str) -> bool:
        raise KeyStoreError("locked")


async def test_locked_keyring_is_503_in_callers_format_and_unknown_in_health(upstreams, tmp_path, http):
    sc, runner = await start_sidecar(config_for(upstreams, tmp_path / "d"), LockedKeyring())
    try:
        reply = await call(http, "POST", sc.url + ANTHROPIC, body=messages())
        err = assert_anthropic_error(reply, 503)
        assert "keyring" in err["message"] and "unlock" in err["message"]
        health = (await call(http, "GET", sc.url + "/_sidecar/health")).json
        assert {p["id"]: p["has_key"] for p in health["providers"]}["anthropic"] is None
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
    assert upstreams.anthropic.received == []


# ---- control API ----------------------------------------------------------------------------------

async def test_health_lists_providers_with_has_key(sidecar, http):
    reply = await call(http, "GET", sidecar.url + "/_sidecar/health")
    assert reply.status == 200
    data = reply.json
    assert data["status"] == "ok" and data["listen"] == sidecar.url
    providers = {p["id"]: p for p in data["providers"]}
    assert {"openai", "anthropic", "gemini", "groq", "ollama"} <= set(providers)
    for pid in ("openai", "anthropic", "gemini"):
        assert providers[pid]["has_key"] is True and providers[pid]["needs_key"] is True
    assert providers["groq"]["has_key"] is False
    assert providers["ollama"]["needs_key"] is False and providers["ollama"]["has_key"] is None
    assert providers["openai"]["base_url"] == sidecar.config.providers["openai"].base_url
    assert all(key not in reply.body.decode() for key in KEYS.values())


async def test_requests_pagination_newest_first(sidecar, http):
    ids = []
    for i in range(5):
        reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat(text=f"number {i}"))
        assert reply.status == 200
        ids.append(reply.request_id)
    await stored(sidecar, ids[-1])
    pages, before = [], None
    for _ in range(5):  # bounded: 5 records at 2 a page is 3 pages
        url = sidecar.url + "/_sidecar/requests?limit=2" + (f"&before={before}" if before else "")
        page = (await call(http, "GET", url)).json
        pages.append(page)
        before = page["next_before"]
        if before is None:
            break
    assert [len(p["requests"]) for p in pages] == [2, 2, 1]
    rows = [r for p in pages for r in p["requests"]]
    assert pages[0]["next_before"] == rows[1]["id"] and pages[1]["next_before"] == rows[3]["id"]
    assert sorted(r["id"] for r in rows) == sorted(ids) and len({r["id"] for r in rows}) == 5
    keys = [(r["ts"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)  # newest first
    if len({r["ts"] for r in rows}) == 5:  # distinct arrival times: the exact order is known
        assert [r["id"] for r in rows] == ids[::-1]
    for r in rows:
        assert set(r) == RECORD_FIELDS  # exactly RequestRecord.to_dict()'s fields
        assert all(set(a) == ATTEMPT_FIELDS for a in r["attempts"])
    full = (await call(http, "GET", sidecar.url + "/_sidecar/requests")).json
    assert [r["id"] for r in full["requests"]] == [r["id"] for r in rows] and full["next_before"] is None
    assert (await call(http, "GET", sidecar.url + "/_sidecar/requests?limit=x")).status == 400


async def test_request_detail_has_bodies(sidecar, http):
    reply = await call(http, "POST", sidecar.url + ANTHROPIC, body=messages(text="detail please"),
                       headers={"anthropic-version": "2023-06-01", "x-api-key": "placeholder"})
    assert reply.status == 200
    await stored(sidecar, reply.request_id)
    detail = await call(http, "GET", f"{sidecar.url}/_sidecar/requests/{reply.request_id}")
    assert detail.status == 200
    data = detail.json
    assert set(data) == RECORD_FIELDS | {"request_body", "response_body", "bodies_truncated", "headers"}
    assert orjson.loads(data["request_body"]) == messages(text="detail please")
    assert orjson.loads(data["response_body"]) == reply.json
    sent, answered = data["headers"]["request"], data["headers"]["response"]
    assert sent["anthropic-version"] == "2023-06-01" and sent["x-api-key"] == "[redacted]"
    assert answered["content-type"].startswith("application/json")
    assert data["bodies_truncated"] is False and data["inbound"] == "anthropic"
    missing = await call(http, "GET", f"{sidecar.url}/_sidecar/requests/nope")
    assert missing.status == 404 and missing.json["error"]["message"]


async def test_stats_totals_by_provider_and_model(sidecar, http):
    for body, path in [(chat(), OPENAI_CHAT), (chat(text="again"), OPENAI_CHAT),
                       (chat("openai/gpt-4o"), OPENAI_CHAT), (messages(), ANTHROPIC)]:
        assert (await call(http, "POST", sidecar.url + path, body=body)).status == 200
    bad = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat("no-such-model-xyz"))
    assert bad.status == 404
    await stored(sidecar, bad.request_id)
    rows = await asyncio.to_thread(sidecar.store.recent, 50)
    assert len(rows) == 5
    stats = (await call(http, "GET", sidecar.url + "/_sidecar/stats")).json
    totals = stats["totals"]
    assert totals["requests"] == 5 and totals["errors"] == 1
    assert totals["input_tokens"] == sum(r["input_tokens"] or 0 for r in rows) > 0
    assert totals["output_tokens"] == sum(r["output_tokens"] or 0 for r in rows) > 0
    assert totals["cost_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in rows)) and totals["cost_usd"] > 0
    by_provider = {p["provider"]: p["requests"] for p in stats["by_provider"]}
    assert by_provider == {"openai": 3, "anthropic": 1, None: 1}
    by_model = {(m["provider"], m["model"]): m["requests"] for m in stats["by_model"]}
    assert by_model == {("openai", "gpt-4o-mini"): 2, ("openai", "gpt-4o"): 1,
                        ("anthropic", "claude-haiku-4-5"): 1, (None, None): 1}
    future = (await call(http, "GET", sidecar.url + "/_sidecar/stats?since=2999-01-01T00:00:00Z")).json
    assert future["totals"]["requests"] == 0
    assert (await call(http, "GET", sidecar.url + "/_sidecar/stats?since=yesterday")).status == 400


async def test_events_stream_delivers_request_lifecycle(sidecar, http):
    async with http.get(sidecar.url + "/_sidecar/events") as events:
        assert events.status == 200 and events.headers["Content-Type"].startswith("text/event-stream")
        seen: list[tuple[str | None, dict]] = []
        buf = b""

        async def until(pred: Callable[[], bool]) -> None:
            nonlocal buf
            async with asyncio.timeout(WAIT):
                while not pred():
                    buf += await events.content.readany()
                    *blocks, buf = buf.split(b"\n\n")
                    for block in blocks:
                        seen.extend((n, orjson.loads(d)) for n, d in sse_events(block + b"\n\n"))

        await until(lambda: any(n == "hello" for n, _ in seen))
        reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat(text="watch me"))
        rid = reply.request_id
        await until(lambda: any(n == "request_finished" and d.get("id") == rid for n, d in seen))
    mine = [(n, d) for n, d in seen if d.get("id") == rid or d.get("request_id") == rid]
    assert [n for n, _ in mine] == ["request_started", "attempt", "request_finished"]
    started, attempt, finished = (d for _, d in mine)
    assert started["requested_model"] == "openai/gpt-4o-mini" and started["inbound"] == "openai_chat"
    assert attempt["provider"] == "openai" and attempt["status"] == 200
    assert set(finished) == RECORD_FIELDS and finished["status"] == 200 and finished["output_tokens"] > 0
    row = await stored(sidecar, rid)
    assert {k: row[k] for k in RECORD_FIELDS} == finished


# ---- client credentials never travel upstream ----------------------------------------------------------

CLIENT_SECRETS = {"authorization": "Bearer client-bearer-secret", "x-api-key": "client-x-api-key-secret",
                  "x-goog-api-key": "client-goog-secret", "api-key": "client-azure-secret",
                  "cookie": "session=client-cookie-secret"}


def assert_no_client_secret(fake: FakeUpstream) -> None:
    for got in fake.received:
        seen = orjson.dumps([got.headers, got.query, got.path]).decode() + got.body.decode()
        assert "secret" not in seen, seen


async def test_gemini_key_query_param_is_stripped(sidecar, upstreams, http):
    for path in ("/v1beta/models/gemini-2.5-flash:generateContent?key=client-query-secret",
                 "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=client-query-secret"):
        reply = await call(http, "POST", sidecar.url + path, body=gemini_body(), headers=CLIENT_SECRETS)
        assert reply.status == 200, reply.body
    plain, streamed = upstreams.gemini.received
    assert "key" not in plain.query and streamed.query == {"alt": "sse"}
    assert plain.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert streamed.path == "/v1/models/gemini-2.5-flash:streamGenerateContent"
    for got in (plain, streamed):
        assert got.headers["x-goog-api-key"] == KEYS["gemini"]
        assert "authorization" not in got.headers and "x-api-key" not in got.headers
    assert_no_client_secret(upstreams.gemini)
    await stored(sidecar, reply.request_id)
    history = (await call(http, "GET", sidecar.url + "/_sidecar/requests")).body
    assert b"client-query-secret" not in history


async def test_client_credential_headers_never_reach_upstream(sidecar, upstreams, http):
    for path, body in [(OPENAI_CHAT, chat()), (OPENAI_CHAT, chat(stream=True)), ("/v1/responses",
                       {"model": "openai/gpt-4o-mini", "input": "x"}), (ANTHROPIC, messages()),
                       (ANTHROPIC, messages(stream=True))]:
        reply = await call(http, "POST", sidecar.url + path, body=body,
                           headers={**CLIENT_SECRETS, "anthropic-version": "2023-06-01", "x-custom": "kept"})
        assert reply.status == 200, reply.body
    for got in upstreams.openai.received:
        assert got.headers["authorization"] == f"Bearer {KEYS['openai']}"
        assert "x-api-key" not in got.headers and "x-goog-api-key" not in got.headers
        assert got.headers["x-custom"] == "kept"  # ordinary headers still cross
    for got in upstreams.anthropic.received:
        assert got.headers["x-api-key"] == KEYS["anthropic"]
        assert "authorization" not in got.headers and "x-goog-api-key" not in got.headers
    assert len(upstreams.openai.received) == 3 and len(upstreams.anthropic.received) == 2
    assert_no_client_secret(upstreams.openai)
    assert_no_client_secret(upstreams.anthropic)


async def test_provider_cookies_are_not_kept_or_replayed(upstreams, tmp_path, http):
    """Every app shares the one upstream session: a cookie a provider sets while answering one app must not ride
    along on the next app's request (nor reach any client: set-cookie is dropped from answers). The provider is
    reached by host name, as real ones are: a cookie jar ignores cookies from bare IP addresses."""
    by_name = {"base_url": upstreams.openai.base_url.replace("127.0.0.1", "localhost")}
    config = config_for(upstreams, tmp_path, {"providers": {"openai": by_name}})
    async with running(config, KEYS) as sc:
        upstreams.openai.fail_next(429, headers={"set-cookie": "__cf_bm=provider-cookie-secret; Path=/; HttpOnly"})
        first = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat())
        assert first.status == 429
        assert "set-cookie" not in {k.lower() for k in first.headers}
        second = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat())
        assert second.status == 200, second.body
    assert len(upstreams.openai.received) == 2
    assert all("cookie" not in got.headers for got in upstreams.openai.received)


async def test_model_name_with_control_characters_is_a_400(sidecar, http):
    """A newline in the model would end up in a response header (x-sidecar-served-by): refuse it cleanly."""
    async with http.post(sidecar.url + "/v1/chat/completions",
                         json={"model": "openai/a\nb", "messages": [{"role": "user", "content": "x"}]}) as resp:
        body = await resp.json()
    assert resp.status == 400 and "control characters" in body["error"]["message"]
