"""The fake upstreams must satisfy the official SDKs directly, or proxy tests prove nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

try:  # the SDKs' HTTP client (httpx2 in newer releases)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from sidecar import fake_upstream
from sidecar.fake_upstream import CACHED_TOKENS, FakeUpstream

PROMPT = "hi there, please say something nice"  # 6 words -> prompt tokens 6 + 7 = 13
TOOL_OAI = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


def expected_text(name: str, model: str, said: str = PROMPT) -> str:
    return f"Hello from fake-{name} ({model}): you said {said[:40]}"


@pytest.fixture
async def oai() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream("openai", name="oa")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def ant() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream("anthropic", name="an")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def gem() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream("gemini", name="ge")
    await fake.start()
    yield fake
    await fake.close()


def oai_client(fake: FakeUpstream, key: str = "k", **kw: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key=key, max_retries=0, **kw)  # type: ignore[arg-type]


def ant_client(fake: FakeUpstream, key: str = "k", **kw: object) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_url, api_key=key, max_retries=0, **kw)  # type: ignore[arg-type]


def gem_client(fake: FakeUpstream, key: str = "k") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.base_url))


# ---- OpenAI ---------------------------------------------------------------------------------
async def test_openai_chat_non_stream(oai: FakeUpstream) -> None:
    async with oai_client(oai) as c:
        r = await c.chat.completions.create(model="gpt-x", messages=[
            {"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}])
    assert r.choices[0].message.content == expected_text("oa", "gpt-x")
    assert r.model == "gpt-x" and r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.prompt_tokens == 2 + 6 + 7
    assert r.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS  # type: ignore[union-attr]
    assert r.usage.completion_tokens == len(expected_text("oa", "gpt-x").split())
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert oai.last_usage == r.usage.model_dump(exclude_unset=True)
    (rec,) = oai.received
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.headers["authorization"] == "Bearer k"
    assert rec.json["model"] == "gpt-x"


async def test_openai_chat_stream_with_usage(oai: FakeUpstream) -> None:
    async with oai_client(oai) as c:
        stream = await c.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": PROMPT}], stream=True,
            stream_options={"include_usage": True})
        chunks = [ch async for ch in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == expected_text("oa", "gpt-x")
    assert len(chunks) > 5
    assert all(ch.usage is None for ch in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 13
    assert len({ch.id for ch in chunks}) == 1


async def test_openai_chat_stream_without_usage(oai: FakeUpstream) -> None:
    async with oai_client(oai) as c:
        stream = await c.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": PROMPT}], stream=True)
        chunks = [ch async for ch in stream]
    assert all(ch.choices and ch.usage is None for ch in chunks)
    assert not any("usage" in ch.model_fields_set for ch in chunks)


async def test_openai_chat_tool_call_stream(oai: FakeUpstream) -> None:
    async with oai_client(oai) as c:
        stream = await c.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "What's the weather?"}],
            tools=TOOL_OAI, stream=True)  # type: ignore[arg-type]
        chunks = [ch async for ch in stream]
        plain = await c.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "weather please"}], tools=TOOL_OAI)  # type: ignore[arg-type]
    frags = [tc.function.arguments for ch in chunks for tc in ch.choices[0].delta.tool_calls or []
             if tc.function and tc.function.arguments]
    assert len(frags) >= 2 and orjson.loads("".join(frags)) == {"city": "Paris"}
    first = chunks[0].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert first.id and first.function.name == "get_weather"  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    call = plain.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and orjson.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert plain.choices[0].finish_reason == "tool_calls"


async def test_openai_tool_result_turn_gets_text(oai: FakeUpstream) -> None:
    """A conversation ending in a tool result must not loop into another tool call."""
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    async with oai_client(oai) as c:
        r = await c.chat.completions.create(model="m", messages=msgs, tools=TOOL_OAI)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == expected_text("oa", "m", "weather?")


async def test_openai_responses(oai: FakeUpstream) -> None:
    async with oai_client(oai) as c:
        r = await c.responses.create(model="gpt-r", input=PROMPT, instructions="be nice")
        stream = await c.responses.create(model="gpt-r", input=[{"role": "user", "content": PROMPT}], stream=True)
        events = [e async for e in stream]
        tool = await c.responses.create(model="gpt-r", input="weather in Paris?", tools=[
            {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}])  # type: ignore[list-item]
    assert r.output_text == expected_text("oa", "gpt-r")
    assert r.usage and r.usage.input_tokens == 2 + 6 + 7 and r.usage.input_tokens_details.cached_tokens == 4
    types_ = [e.type for e in events]
    assert types_[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                          "response.content_part.added"]
    assert types_[-4:] == ["response.output_text.done", "response.content_part.done",
                           "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected_text("oa", "gpt-r")
    assert events[-1].response.usage.output_tokens == len(expected_text("oa", "gpt-r").split())  # type: ignore[union-attr]
    (item,) = tool.output
    assert item.type == "function_call" and item.name == "get_weather"
    assert item.id.startswith("fc_") and item.call_id.startswith("call_")  # type: ignore[union-attr]
    assert orjson.loads(item.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


async def test_openai_models(oai: FakeUpstream) -> None:
    async with oai_client(oai) as c:
        ids = [m.id async for m in c.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4o"]


# ---- Anthropic ------------------------------------------------------------------------------
async def test_anthropic_messages(ant: FakeUpstream) -> None:
    async with ant_client(ant) as c:
        r = await c.messages.create(model="claude-x", max_tokens=100, system="be brief",
                                    messages=[{"role": "user", "content": PROMPT}])
        async with c.messages.stream(model="claude-x", max_tokens=100,
                                     messages=[{"role": "user", "content": PROMPT}]) as s:
            events = [e async for e in s]
            final = await s.get_final_message()
    assert r.content[0].text == expected_text("an", "claude-x")  # type: ignore[union-attr]
    assert r.stop_reason == "end_turn" and r.model == "claude-x"
    u = r.usage
    assert u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens == 2 + 6 + 7  # type: ignore[operator]
    assert u.cache_read_input_tokens == CACHED_TOKENS and u.output_tokens == len(expected_text("an", "claude-x").split())
    assert final.content[0].text == expected_text("an", "claude-x")  # type: ignore[union-attr]
    assert final.usage.output_tokens == u.output_tokens and final.stop_reason == "end_turn"
    raw = [e.type for e in events]
    assert raw[0] == "message_start" and raw[-1] == "message_stop" and "message_delta" in raw
    assert ant.last_usage and ant.last_usage["output_tokens"] == u.output_tokens
    rec = ant.received[0]
    # anthropic 2.x sends the key as a bearer token; older SDKs use x-api-key (both accepted)
    assert rec.headers.get("x-api-key", rec.headers.get("authorization")) in ("k", "Bearer k")
    assert "anthropic-version" in rec.headers
    assert rec.json["max_tokens"] == 100


async def test_anthropic_tool_use_stream(ant: FakeUpstream) -> None:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    async with ant_client(ant) as c:
        stream = await c.messages.create(model="c", max_tokens=50, tools=tools, stream=True,  # type: ignore[arg-type]
                                         messages=[{"role": "user", "content": "weather?"}])
        events = [e async for e in stream]
    partial = [e.delta.partial_json for e in events
               if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert len([p for p in partial if p]) >= 2 and orjson.loads("".join(partial)) == {"city": "Paris"}
    start = next(e for e in events if e.type == "content_block_start")
    assert start.content_block.type == "tool_use" and start.content_block.name == "get_weather"
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "tool_use" and delta.usage.output_tokens == 10


async def test_anthropic_validation_and_models(ant: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        async with s.post(ant.base_url + "/v1/messages", json=body) as r:
            assert r.status == 400
            err = await r.json()
        async with s.post(ant.base_url + "/v1/messages", json={**body, "max_tokens": None},
                          headers={"anthropic-version": "2023-06-01"}) as r:
            assert r.status == 400
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in err["error"]["message"]
    async with ant_client(ant) as c:
        page = await c.models.list()
    assert [m.id for m in page.data] == ["claude-haiku-4-5", "claude-sonnet-4-5"]


# ---- Gemini ---------------------------------------------------------------------------------
async def test_gemini_generate_and_stream(gem: FakeUpstream) -> None:
    client = gem_client(gem)
    cfg = types.GenerateContentConfig(system_instruction="be brief")
    r = await client.aio.models.generate_content(model="gemini-x", contents=PROMPT, config=cfg)
    chunks = [ch async for ch in await client.aio.models.generate_content_stream(model="gemini-x", contents=PROMPT)]
    await client.aio.aclose()
    assert r.text == expected_text("ge", "gemini-x")
    um = r.usage_metadata
    assert um and um.prompt_token_count == 2 + 6 + 7 and um.cached_content_token_count == CACHED_TOKENS
    assert um.candidates_token_count == len(r.text.split()) and um.thoughts_token_count == 5  # type: ignore[union-attr]
    assert um.total_token_count == um.prompt_token_count + um.candidates_token_count + 5  # type: ignore[operator]
    assert "".join(ch.text or "" for ch in chunks) == expected_text("ge", "gemini-x", PROMPT)
    assert len(chunks) > 3 and chunks[-1].candidates[0].finish_reason == "STOP"  # type: ignore[index]
    assert chunks[0].candidates[0].finish_reason is None  # type: ignore[index]
    assert chunks[-1].usage_metadata.candidates_token_count == len(chunks)  # type: ignore[union-attr]
    assert gem.last_usage and gem.last_usage["candidatesTokenCount"] == len(chunks)
    rec_plain, rec_stream = gem.received
    assert rec_plain.path.endswith("/models/gemini-x:generateContent")
    assert rec_plain.headers["x-goog-api-key"] == "k"
    assert rec_stream.path.endswith(":streamGenerateContent") and rec_stream.query["alt"] == "sse"


async def test_gemini_function_call_and_snake_case(gem: FakeUpstream) -> None:
    client = gem_client(gem)
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather")])
    r = await client.aio.models.generate_content(
        model="g", contents="what's the weather", config=types.GenerateContentConfig(tools=[tool]))
    await client.aio.aclose()
    assert r.function_calls and r.function_calls[0].name == "get_weather"
    assert r.function_calls[0].args == {"city": "Paris"}
    assert r.candidates[0].finish_reason == "STOP"  # type: ignore[index]
    body = {"system_instruction": {"parts": [{"text": "one two"}]},
            "contents": [{"role": "user", "parts": [{"text": "weather now"}]}],
            "tools": [{"function_declarations": [{"name": "lookup"}]}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(gem.base_url + "/v1beta/models/g:streamGenerateContent", json=body,
                          headers={"x-goog-api-key": "k"}) as resp:
            arr = orjson.loads(await resp.read())  # no alt=sse: one JSON array
        async with s.get(gem.base_url + "/v1beta/models", params={"key": "k"}) as resp:
            models = await resp.json()
    assert arr[-1]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "lookup"
    assert arr[-1]["usageMetadata"]["promptTokenCount"] == 4 + 7
    assert models["models"][0]["name"] == "models/gemini-2.5-flash"
    assert "generateContent" in models["models"][0]["supportedGenerationMethods"]


# ---- failure injection ---------------------------------------------------------------------
async def test_fail_next_per_provider(oai: FakeUpstream, ant: FakeUpstream, gem: FakeUpstream) -> None:
    oai.fail_next(429, headers={"retry-after": "2"})
    async with oai_client(oai) as c:
        with pytest.raises(openai.RateLimitError) as ei:
            await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert ei.value.response.headers["retry-after"] == "2"
        assert ei.value.body["type"] == "rate_limit_exceeded"  # type: ignore[index]
        await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])  # next is fine
        assert [m.id async for m in c.models.list()]  # listing never consumes failures

    ant.fail_next(529, count=2)
    async with ant_client(ant) as c:
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError) as ea:
                await c.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
            assert ea.value.status_code == 529
            assert ea.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "fake-an: injected 529"},
                                     "request_id": ea.value.response.headers["request-id"]}
        await c.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])

    gem.fail_next(503)
    gem.fail_next(500, body=b'{"custom": true}')
    client = gem_client(gem)
    with pytest.raises(genai_errors.ServerError) as eg:
        await client.aio.models.generate_content(model="g", contents="x")
    assert eg.value.code == 503 and eg.value.status == "UNAVAILABLE"
    with pytest.raises(genai_errors.ServerError) as eg:
        await client.aio.models.generate_content(model="g", contents="x")
    assert eg.value.details == {"custom": True}
    await client.aio.aclose()


async def test_hang_next(oai: FakeUpstream) -> None:
    oai.hang_next(0.5)
    async with oai_client(oai, timeout=0.1) as c:
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        r = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content


async def test_expect_key(gem: FakeUpstream) -> None:
    oai = FakeUpstream("openai", expect_key="good")
    ant = FakeUpstream("anthropic", expect_key="good")
    gem.expect_key = "good"
    await oai.start()
    await ant.start()
    try:
        async with oai_client(oai, key="bad") as c:
            with pytest.raises(openai.AuthenticationError) as eo:
                await c.models.list()
        assert eo.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        async with oai_client(oai, key="good") as c:
            await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        async with ant_client(ant, key="bad") as c:
            with pytest.raises(anthropic.AuthenticationError) as ea:
                await c.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert ea.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        async with ant_client(ant, key="good") as c:
            await c.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        bad, good = gem_client(gem, "bad"), gem_client(gem, "good")
        with pytest.raises(genai_errors.ClientError) as eg:
            await bad.aio.models.generate_content(model="g", contents="x")
        assert eg.value.code == 401 and eg.value.status == "UNAUTHENTICATED"
        await good.aio.models.generate_content(model="g", contents="x")
        await bad.aio.aclose()
        await good.aio.aclose()
        async with aiohttp.ClientSession() as s:  # ?key= works too
            async with s.post(gem.base_url + "/v1beta/models/g:generateContent?key=good",
                              json={"contents": [{"parts": [{"text": "x"}]}]}) as r:
                assert r.status == 200
    finally:
        await oai.close()
        await ant.close()


async def test_echo_headers_on_error(ant: FakeUpstream) -> None:
    ant.echo_headers_on_error = True
    ant.fail_next(500)
    async with ant_client(ant, key="sk-secret-123") as c:
        with pytest.raises(anthropic.InternalServerError) as e:
            await c.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "sk-secret-123" in e.value.body["error"]["message"]  # type: ignore[index]


async def test_break_stream(oai: FakeUpstream, ant: FakeUpstream, gem: FakeUpstream) -> None:
    oai.break_stream_next(3)
    async with oai_client(oai) as c:
        got = []
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            stream = await c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": PROMPT}], stream=True)
            async for ch in stream:
                got.append(ch)
        assert len(got) == 3
        stream = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        assert [ch async for ch in stream][-1].choices[0].finish_reason == "stop"  # only the next stream breaks

    ant.break_stream_next(2)
    async with ant_client(ant) as c:
        seen = []
        with pytest.raises((anthropic.APIError, httpx.HTTPError)):
            stream = await c.messages.create(model="c", max_tokens=5, stream=True,
                                             messages=[{"role": "user", "content": "x"}])
            async for e in stream:
                seen.append(e.type)
        assert seen == ["message_start"]  # the SDK hides the ping (second chunk)

    gem.break_stream_next(1)
    client = gem_client(gem)
    texts = []
    with pytest.raises((aiohttp.ClientError, httpx.HTTPError)):  # truncated body surfaces from the SDK
        async for ch in await client.aio.models.generate_content_stream(model="g", contents="x"):
            texts.append(ch.text)
    await client.aio.aclose()
    assert texts == ["Hello "]


async def test_chunk_delay_and_disconnect(oai: FakeUpstream) -> None:
    """A client walking away mid-stream must not break the fake for the next request."""
    oai.chunk_delay = 0.02
    async with oai_client(oai) as c:
        stream = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}], stream=True)
        async for _ in stream:
            break
        await stream.close()
        await asyncio.sleep(0.05)
        r = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content


async def test_cli_serves_until_interrupted() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar.fake_upstream", "--kind", "openai", "--port", "0", "--key", "K",
        stdout=asyncio.subprocess.PIPE, cwd=Path(fake_upstream.__file__).parents[1])
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()  # type: ignore[union-attr]
        base = line.split(" at ")[1].split()[0]
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/models", headers={"authorization": "Bearer K"}) as r:
                assert r.status == 200 and (await r.json())["object"] == "list"
    finally:
        proc.send_signal(2)  # SIGINT, like Ctrl-C
        assert await asyncio.wait_for(proc.wait(), 10) == 0
