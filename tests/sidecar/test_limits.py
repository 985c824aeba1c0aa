"""``[limits]``: body size, header size and count, messages and parts, against a real sidecar over HTTP.

Small limits in the config keep the requests small; the behaviour is the same at the defaults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conftest import KEYS, Sidecar, Upstreams, config_for, start_sidecar
from http_helpers import assert_anthropic_error, assert_gemini_error, assert_openai_error, call
from sidecar.keys import MemoryKeyStore
from sidecar.limits import RequestLimits, check_counts, count

LIMITS = {"max_body_mb": 0.25, "max_header_bytes": 2048, "max_headers": 24, "max_messages": 6, "max_parts": 10}
WAIT = 5.0

PATHS = {
    "openai_chat": "/v1/chat/completions",
    "openai_responses": "/v1/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
}
ASSERT_ERROR = {"openai_chat": assert_openai_error, "openai_responses": assert_openai_error,
                "anthropic": assert_anthropic_error, "gemini": assert_gemini_error}


def body(fmt: str, messages: int, parts_each: int = 1) -> dict[str, Any]:
    """A request in ``fmt``: ``messages`` turns alternating user/assistant (ending with the user, as the
    providers require), each of ``parts_each`` text parts."""
    texts = [f"part {i}" for i in range(parts_each)]
    def role(i: int, assistant: str) -> str:
        return assistant if (messages - 1 - i) % 2 else "user"  # counted back from the last turn, the user's

    if fmt == "gemini":
        return {"contents": [{"role": role(i, "model"), "parts": [{"text": t} for t in texts]}
                             for i in range(messages)]}
    if fmt == "openai_responses":
        return {"model": "openai/gpt-4o-mini", "input": [
            {"role": role(i, "assistant"),
             "content": [{"type": "output_text" if role(i, "assistant") == "assistant" else "input_text", "text": t}
                         for t in texts]} for i in range(messages)]}
    turns = [{"role": role(i, "assistant"), "content": [{"type": "text", "text": t} for t in texts]}
             for i in range(messages)]
    if fmt == "anthropic":
        return {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20, "messages": turns}
    return {"model": "openai/gpt-4o-mini", "messages": turns}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def limited(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[Sidecar]:
    sc, runner = await start_sidecar(config_for(upstreams, tmp_path / "data", {"limits": LIMITS}),
                                     MemoryKeyStore(KEYS))
    yield sc
    await runner.cleanup()  # type: ignore[attr-defined]


def received(ups: Upstreams) -> int:
    return len(ups.openai.received) + len(ups.anthropic.received) + len(ups.gemini.received)


# --- messages and parts: 413 in the caller's own format, naming the limit and its key ---------------------

@pytest.mark.parametrize("fmt", list(PATHS))
async def test_too_many_messages_is_413_in_callers_format(limited, upstreams, http, fmt) -> None:
    reply = await call(http, "POST", limited.url + PATHS[fmt], body=body(fmt, messages=7))
    err = ASSERT_ERROR[fmt](reply, 413)
    assert "too many messages: 7" in err["message"] and "[limits] max_messages" in err["message"]
    assert received(upstreams) == 0
    await limited.store.flush()
    [row] = limited.store.recent(1)
    assert row["status"] == 413 and "max_messages" in row["error"] and row["inbound"] == fmt


@pytest.mark.parametrize("fmt", list(PATHS))
async def test_too_many_parts_is_413_in_callers_format(limited, upstreams, http, fmt) -> None:
    reply = await call(http, "POST", limited.url + PATHS[fmt], body=body(fmt, messages=3, parts_each=4))
    err = ASSERT_ERROR[fmt](reply, 413)
    assert "too many content parts: 12" in err["message"] and "[limits] max_parts" in err["message"]
    assert received(upstreams) == 0


@pytest.mark.parametrize("fmt", list(PATHS))
async def test_at_the_limits_the_request_goes_through(limited, upstreams, http, fmt) -> None:
    reply = await call(http, "POST", limited.url + PATHS[fmt], body=body(fmt, messages=5, parts_each=2))
    assert reply.status == 200, reply.body
    assert received(upstreams) == 1


# --- body size --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", list(PATHS))
async def test_body_over_max_body_mb_is_413_in_callers_format(limited, upstreams, http, fmt) -> None:
    big = body(fmt, messages=1)
    big["padding"] = "x" * 300_000  # over 0.25 MiB
    reply = await call(http, "POST", limited.url + PATHS[fmt], body=big)
    err = ASSERT_ERROR[fmt](reply, 413)
    assert "0.25 MiB" in err["message"] and "[limits] max_body_mb" in err["message"]
    assert received(upstreams) == 0


# --- headers: refused by aiohttp's parser before any handler (400), promptly, never quoted in the log -------

async def raw_request(url: str, head: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(WAIT):  # refused and closed, never left hanging
            return await reader.read()
    finally:
        writer.close()


def post(headers: list[tuple[str, str]], *, target: str = PATHS["openai_chat"]) -> bytes:
    payload = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    lines = [f"POST {target} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


SECRET = "sk-ant-canary-" + "Q" * 40


async def test_header_over_max_header_bytes_is_400_and_not_quoted_in_logs(limited, upstreams, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await raw_request(limited.url, post([("Authorization", f"Bearer {SECRET}" + "x" * 2100)]))
    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400"), answer[:200]
    assert received(upstreams) == 0
    refused = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert refused and all(r.levelno == logging.WARNING and r.exc_info is None for r in refused)
    assert "max_header_bytes" in refused[0].getMessage() and "2048" in refused[0].getMessage()
    assert not any(SECRET in r.getMessage() or (r.exc_text and SECRET in r.exc_text) for r in caplog.records)


async def test_header_within_max_header_bytes_passes(limited, upstreams) -> None:
    answer = await raw_request(limited.url, post([("X-Trace", "t" * 1900)]))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


async def test_request_line_over_max_header_bytes_is_400(limited, caplog) -> None:
    answer = await raw_request(limited.url, post([], target=PATHS["gemini"] + "?key=" + SECRET + "k" * 2100))
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    assert not any(SECRET in r.getMessage() for r in caplog.records)


async def test_too_many_headers_is_400(limited, upstreams, caplog) -> None:
    answer = await raw_request(limited.url, post([(f"X-Extra-{i}", "v") for i in range(30)]))
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    assert any("max_headers" in r.getMessage() for r in caplog.records if r.name == "aiohttp.server")
    ok = await raw_request(limited.url, post([(f"X-Extra-{i}", "v") for i in range(10)]))
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
    assert received(upstreams) == 1


# --- counting, as plain functions -------------------------------------------------------------------------

def test_count_per_format() -> None:
    assert count("openai_chat", {"messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}, {"id": "2"}]},
        {"role": "tool", "tool_call_id": "1", "content": "r"},
    ]}) == (4, 1 + 2 + 1 + 2 + 1)
    assert count("openai_responses", {"input": "just text"}) == (1, 1)
    assert count("openai_responses", {"input": [
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_image"}]},
        {"type": "function_call", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "output": "x"},
    ]}) == (3, 4)
    assert count("anthropic", {"system": [{"type": "text", "text": "s"}], "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": [{"type": "text", "text": "r"}, {"type": "image"}]}]},
    ]}) == (3, 1 + 1 + 1 + 1 + 2)
    assert count("gemini", {"systemInstruction": {"parts": [{"text": "s"}]}, "contents": [
        {"role": "user", "parts": [{"text": "a"}, {"inlineData": {}}]}, {"role": "model", "parts": [{"text": "b"}]},
    ]}) == (2, 4)


def test_malformed_shapes_count_as_nothing_rather_than_raise() -> None:
    for fmt in PATHS:
        for junk in ({}, {"messages": "x", "contents": 5, "input": None}, {"messages": [1, None, "x"]}):
            messages, parts = count(fmt, junk)
            assert messages >= 0 and parts >= 0


def test_check_counts_names_the_key() -> None:
    limits = RequestLimits(max_messages=2, max_parts=3)
    assert check_counts("openai_chat", {"messages": [{"content": "a"}] * 2}, limits) is None
    assert "[limits] max_messages" in check_counts("openai_chat", {"messages": [{"content": "a"}] * 3}, limits)
    many_parts = {"messages": [{"content": [{"type": "text"}] * 4}]}
    assert "[limits] max_parts" in check_counts("openai_chat", many_parts, limits)


def test_defaults_suit_long_agent_sessions() -> None:
    limits = RequestLimits()
    assert limits.max_body_bytes == 64 * 1024 * 1024 and limits.max_header_bytes == 65536
    assert limits.max_messages == 10_000 and limits.max_parts == 100_000 and limits.max_headers == 128
    session = {"messages": [{"role": "user", "content": [{"type": "text"}, {"type": "tool_result", "content": []}]}
                            for _ in range(3000)]}
    assert check_counts("anthropic", session, limits) is None
