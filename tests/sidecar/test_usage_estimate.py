"""Usage the upstream never reported is estimated (≈4 chars per token), priced, and marked `estimated`.

Expected figures are worked out by hand: input = characters of the request's text, output = characters of the
text that actually reached the client, each divided by 4 and rounded up; dollars from the published
gpt-4o-mini price ($0.15 in / $0.60 out per million) and claude-haiku-4-5 ($1 in / $5 out per million).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from adapters.ir import Usage
from conftest import KEYS, config_for, start_sidecar
from sidecar import estimate
from sidecar.keys import MemoryKeyStore
from test_proxy_behaviour import Gate, call, chat, gemini_body, messages, spy_on_stream, stored  # noqa: F401
import sidecar.fakes as fakes_module

OPENAI_CHAT = "/v1/chat/completions"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    g = Gate()
    monkeypatch.setattr(fakes_module, "asyncio", g)
    return g


def test_estimator_rules():
    assert estimate.tokens(0) == 0 and estimate.tokens(1) == 1 and estimate.tokens(8) == 2 and estimate.tokens(9) == 3
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "abcd"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}
    assert estimate.request_chars(body) == len("be brief") + 4  # names, roles, types and images don't count
    assert estimate.output_chars("anthropic", {"type": "content_block_delta",
                                               "delta": {"type": "text_delta", "text": "hey"}}) == 3
    assert estimate.output_chars("openai_responses", {"type": "response.output_text.done", "text": "hey"}) == 0
    kept = estimate.estimate(Usage(input=40, output=1), input_chars=8, out_chars=20)
    assert (kept.input, kept.output) == (40, 5)  # a partial report is kept where it is larger


async def test_broken_openai_stream_is_estimated_and_priced(sidecar, upstreams, http):
    upstreams.openai.break_stream_next(3)  # role chunk, "Hello ", "from ", then the connection breaks
    reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat(text="one two three four", stream=True))
    assert reply.status == 200
    row = await stored(sidecar, reply.request_id)
    assert "broke off" in row["error"] and row["usage_source"] == "estimated"
    assert row["input_tokens"] == 5  # "one two three four" = 18 chars
    assert row["output_tokens"] == 3  # "Hello from " = 11 chars relayed
    assert row["cost_usd"] == pytest.approx((5 * 0.15 + 3 * 0.60) / 1e6)


async def test_client_disconnect_mid_stream_is_estimated_with_the_reported_input(sidecar, upstreams, http, gate):
    upstreams.anthropic.chunk_delay = 0.3  # parked on the gate after the first frames
    spy = spy_on_stream(upstreams.anthropic)
    resp = await http.post(sidecar.url + "/v1/messages", json=messages(text="please stream", stream=True))
    try:
        request_id = resp.headers["x-sidecar-request-id"]
        async with asyncio.timeout(5):
            await resp.content.readuntil(b"\n\n")
    finally:
        resp.close()
    async with asyncio.timeout(5):
        await spy.done.wait()
    row = await stored(sidecar, request_id)
    assert row["error"] == "client disconnected" and row["usage_source"] == "estimated"
    assert row["input_tokens"] > 0 and row["output_tokens"] >= 0 and row["cost_usd"] > 0


async def test_stream_from_a_provider_that_never_reports_usage_is_estimated(upstreams, tmp_path, http):
    cfg = config_for(upstreams, tmp_path / "d", {"providers": {"openai": {"base_url": upstreams.openai.base_url,
                                                                          "stream_usage": False}}})
    sc, runner = await start_sidecar(cfg, MemoryKeyStore(KEYS))
    try:
        reply = await call(http, "POST", sc.url + OPENAI_CHAT, body=chat(text="abcdefgh", stream=True))
        assert reply.status == 200 and b"usage" not in reply.body
        row = await stored(sc, reply.request_id)
        # "Hello from fake-openai (gpt-4o-mini): you said abcdefgh" = 55 chars -> 14 tokens; "abcdefgh" -> 2
        assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (2, 14, "estimated")
        assert row["error"] is None and row["cost_usd"] == pytest.approx((2 * 0.15 + 14 * 0.60) / 1e6)
    finally:
        await runner.cleanup()


async def test_reported_usage_stays_reported(sidecar, upstreams, http):
    reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat(text="a b", stream=True))
    row = await stored(sidecar, reply.request_id)
    assert row["usage_source"] == "reported" and row["output_tokens"] == upstreams.openai.last_usage["completion_tokens"]
    reply = await call(http, "POST", sidecar.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                       body=gemini_body("a b c d"))
    row = await stored(sidecar, reply.request_id)
    assert row["usage_source"] == "reported" and row["error"] is None


async def test_broken_gemini_json_array_stream_is_estimated(sidecar, upstreams, http):
    upstreams.gemini.break_stream_next(2)
    reply = await call(http, "POST", sidecar.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                       body=gemini_body("a b c d"))
    assert reply.status == 200
    row = await stored(sidecar, reply.request_id)
    assert row["usage_source"] == "estimated" and row["output_tokens"] >= 3  # "Hello from " relayed
    assert row["input_tokens"] > 0 and row["cost_usd"] is not None and row["cost_usd"] > 0


async def test_errors_without_an_answer_carry_no_usage(sidecar, upstreams, http):
    upstreams.openai.fail_next(400)
    reply = await call(http, "POST", sidecar.url + OPENAI_CHAT, body=chat())
    assert reply.status == 400
    row = await stored(sidecar, reply.request_id)
    assert row["usage_source"] is None and row["input_tokens"] is None and row["cost_usd"] is None
