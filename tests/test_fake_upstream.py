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


# ---- request validation: the fakes refuse what the real providers refuse ----------------------
# Each case: (id, body patch, expected message substring[, expected param / field]). Bodies start from
# a valid base request, so a case breaks exactly one rule; the *_accepts tests send rich valid requests
# (tool loops, parallel calls, images, thinking...) that must still get a 200.
ANT_HEADERS = {"anthropic-version": "2023-06-01"}
U = {"role": "user", "content": "hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
A_CALL = {"role": "assistant", "content": None, "tool_calls": [CALL]}
T_RES = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
OAI_BASE: dict = {"model": "gpt-4o-mini", "messages": [U]}


async def _post(fake: FakeUpstream, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    """Raw POST; returns the status and the JSON body ({} for a stream)."""
    async with aiohttp.ClientSession() as s:
        async with s.post(fake.base_url.removesuffix("/v1") + path, json=body, headers=headers or {}) as r:
            raw = await r.read()
            return r.status, orjson.loads(raw) if r.content_type == "application/json" else {}


OAI_CHAT_BAD = [
    ("no-model", {"model": None}, "you must provide a model parameter", None),
    ("no-messages", {"messages": None}, "Missing required parameter: 'messages'.", "messages"),
    ("empty-messages", {"messages": []}, "Invalid 'messages': empty array.", "messages"),
    ("bad-role", {"messages": [{"role": "model", "content": "x"}]}, "Invalid value: 'model'. Supported values are",
     "messages[0].role"),
    ("tool-without-call", {"messages": [U, T_RES]},
     "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'", "messages.[1].role"),
    ("tool-wrong-id", {"messages": [U, A_CALL, {**T_RES, "tool_call_id": "call_9"}]},
     "'tool_call_id' of 'call_9' not found in 'tool_calls' of previous message", "messages.[2].tool_call_id"),
    ("tool-after-user", {"messages": [U, A_CALL, U, T_RES]},
     "The following tool_call_ids did not have response messages: call_1", "messages.[1].role"),
    ("unanswered-at-end", {"messages": [U, A_CALL]}, "did not have response messages: call_1", "messages.[1].role"),
    ("null-content", {"messages": [U, {"role": "assistant", "content": None}]},
     "Invalid value for 'content': expected a string, got null.", "messages.[1].content"),
    ("user-no-content", {"messages": [{"role": "user"}]}, "Missing required parameter: 'messages[0].content'.",
     "messages[0].content"),
    ("args-object", {"messages": [U, {**A_CALL, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]},
                                  T_RES]},
     "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string, but got an object",
     "messages[1].tool_calls[0].function.arguments"),
    ("empty-tool-calls", {"messages": [U, {"role": "assistant", "content": "x", "tool_calls": []}]},
     "Invalid 'messages[1].tool_calls': empty array", "messages[1].tool_calls"),
    ("assistant-image-part", {"messages": [U, {"role": "assistant", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
     "Supported values are: 'text' and 'refusal'.", "messages[1].content[0].type"),
    ("image-no-url", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "Missing required parameter: 'messages[0].content[0].image_url.url'.", "messages[0].content[0].image_url.url"),
    ("image-url-string", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]}]},
     "expected an object, but got a string", "messages[0].content[0].image_url"),
    ("image-raw-base64", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}}]}]},
     "Expected a base64-encoded data URL with an image MIME type", "messages[0].content[0].image_url.url"),
    ("tool-type", {"tools": [{"type": "retrieval"}]}, "Invalid value: 'retrieval'.", "tools[0].type"),
    ("tool-flat", {"tools": [{"type": "function", "name": "f"}]}, "Missing required parameter: 'tools[0].function'.",
     "tools[0].function"),
    ("tool-no-name", {"tools": [{"type": "function", "function": {"parameters": {}}}]},
     "Missing required parameter: 'tools[0].function.name'.", "tools[0].function.name"),
    ("tool-name-pattern", {"tools": [{"type": "function", "function": {"name": "a.b"}}]},
     "string does not match pattern", "tools[0].function.name"),
    ("tools-empty", {"tools": []}, "Invalid 'tools': empty array", "tools"),
    ("tool-choice-without-tools", {"tool_choice": "auto"}, "'tool_choice' is only allowed when 'tools' are specified",
     "tool_choice"),
    ("parallel-without-tools", {"parallel_tool_calls": False},
     "'parallel_tool_calls' is only allowed when 'tools' are specified", "parallel_tool_calls"),
    ("tool-choice-any", {"tools": TOOL_OAI, "tool_choice": "any"}, "Invalid value: 'any'.", "tool_choice"),
    ("strict-schema", {"tools": [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}]},
     "Invalid schema for function 'f': In context=(), 'additionalProperties' is required", "tools[0].function.parameters"),
    ("rf-type", {"response_format": {"type": "json"}}, "Invalid value: 'json'.", "response_format.type"),
    ("rf-no-schema", {"response_format": {"type": "json_schema"}},
     "Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema"),
    ("rf-no-name", {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
     "Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name"),
    ("rf-strict-required", {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": True,
        "schema": {"type": "object", "properties": {"a": {}}, "additionalProperties": False}}}},
     "'required' is required to be supplied and to be an array including every key in properties. Missing 'a'.",
     "response_format"),
    ("json-mode-without-json", {"response_format": {"type": "json_object"}},
     "'messages' must contain the word 'json' in some form", "messages"),
    ("stream-options-no-stream", {"stream_options": {"include_usage": True}},
     "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"),
    ("both-max-tokens", {"max_tokens": 5, "max_completion_tokens": 5},
     "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.", "max_tokens"),
    ("reasoning-max-tokens", {"model": "o3-mini", "max_tokens": 5},
     "Unsupported parameter: 'max_tokens' is not supported with this model.", "max_tokens"),
    ("o-series-temperature", {"model": "o4-mini", "temperature": 0.2},
     "'temperature' does not support 0.2 with this model", "temperature"),
    ("n-zero", {"n": 0}, "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0", "n"),
    ("n-string", {"n": "2"}, "Invalid type for 'n': expected an integer, but got a string", "n"),
    ("temperature-high", {"temperature": 2.5}, "Invalid 'temperature': decimal above maximum value.", "temperature"),
    ("stop-too-many", {"stop": ["a", "b", "c", "d", "e"]}, "Expected an array with maximum length 4", "stop"),
    ("responses-param", {"max_output_tokens": 10}, "Unrecognized request argument supplied: max_output_tokens", None),
    ("anthropic-system", {"system": "be brief"}, "Unrecognized request argument supplied: system", None),
]


@pytest.mark.parametrize(("patch", "message", "param"), [c[1:] for c in OAI_CHAT_BAD], ids=[c[0] for c in OAI_CHAT_BAD])
async def test_openai_chat_rejects(oai: FakeUpstream, patch: dict, message: str, param: str | None) -> None:
    status, err = await _post(oai, "/v1/chat/completions", {**OAI_BASE, **patch})
    assert status == 400, err
    assert err["error"]["type"] == "invalid_request_error"
    assert message in err["error"]["message"]
    assert err["error"]["param"] == param
    assert oai.rejected == [err["error"]["message"]]


VALID_CHAT = [
    ("tool-loop-parallel", {"messages": [{"role": "developer", "content": "be brief"}, U,
                                         {**A_CALL, "tool_calls": [CALL, {**CALL, "id": "call_2"}]},
                                         T_RES, {**T_RES, "tool_call_id": "call_2"},
                                         {"role": "assistant", "content": "done"}, U], "tools": TOOL_OAI,
                            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                            "parallel_tool_calls": True}),
    ("parts-and-images", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}, {"role": "user", "content": "JSON please"}],
        "response_format": {"type": "json_object"}, "n": 2, "stop": ["x"], "temperature": 0,
        "max_completion_tokens": 10, "stream": True, "stream_options": {"include_usage": True}}),
    ("strict-ok", {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "object", "properties": {}, "additionalProperties": False,
                                               "required": []}}, "required": ["a"], "additionalProperties": False}}}}),
]


@pytest.mark.parametrize("patch", [c[1] for c in VALID_CHAT], ids=[c[0] for c in VALID_CHAT])
async def test_openai_chat_accepts(oai: FakeUpstream, patch: dict) -> None:
    status, body = await _post(oai, "/v1/chat/completions", {**OAI_BASE, **patch})
    assert status == 200, body
    assert oai.rejected == []


FC = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
FCO = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
RESP_BASE: dict = {"model": "gpt-4o-mini", "input": "hi"}
OAI_RESP_BAD = [
    ("no-input", {"input": None}, "Missing required parameter: 'input'.", "input"),
    ("orphan-output", {"input": [U, FCO]}, "No tool call found for function call output with call_id call_1.", "input"),
    ("output-before-call", {"input": [U, FCO, FC]}, "No tool call found for function call output", "input"),
    ("unanswered-call", {"input": [U, FC]}, "No tool output found for function call call_1.", "input"),
    ("fc-id-prefix", {"input": [U, {**FC, "id": "call_1"}, FCO]}, "Expected an ID that begins with 'fc'.",
     "input[1].id"),
    ("output-object", {"input": [U, FC, {**FCO, "output": {"r": 1}}]}, "Invalid type for 'input[2].output'",
     "input[2].output"),
    ("args-object", {"input": [U, {**FC, "arguments": {}}, FCO]}, "Invalid type for 'input[1].arguments'",
     "input[1].arguments"),
    ("tool-role", {"input": [{"role": "tool", "content": "x"}]}, "Invalid value: 'tool'.", "input[0].role"),
    ("chat-part", {"input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "Invalid value: 'text'.",
     "input[0].content[0]"),
    ("assistant-input-text", {"input": [U, {"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
     "Supported values are: 'output_text' and 'refusal'.", "input[1].content[0]"),
    ("image-url-object", {"input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": {"url": "https://x"}}]}]},
     "Invalid type for 'input[0].content[0].image_url': expected a string", "input[0].content[0].image_url"),
    ("nested-tool", {"tools": TOOL_OAI}, "Missing required parameter: 'tools[0].name'.", "tools[0].name"),
    ("tool-choice-nested", {"tools": [{"type": "function", "name": "f"}],
                            "tool_choice": {"type": "function", "function": {"name": "f"}}},
     "Missing required parameter: 'tool_choice.name'.", "tool_choice.name"),
    ("format-no-name", {"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     "Missing required parameter: 'text.format.name'.", "text.format.name"),
    ("response-format", {"response_format": {"type": "json_object"}},
     "Unsupported parameter: 'response_format'. In the Responses API, this parameter has moved to 'text.format'.",
     "response_format"),
    ("unknown-param", {"messages": [U]}, "Unknown parameter: 'messages'.", "messages"),
    ("max-output-low", {"max_output_tokens": 5}, "Expected a value >= 16, but got 5", "max_output_tokens"),
    ("reasoning-no-summary", {"input": [{"type": "reasoning", "id": "rs_1"}, U]},
     "Missing required parameter: 'input[0].summary'.", "input[0].summary"),
]


@pytest.mark.parametrize(("patch", "message", "param"), [c[1:] for c in OAI_RESP_BAD], ids=[c[0] for c in OAI_RESP_BAD])
async def test_openai_responses_rejects(oai: FakeUpstream, patch: dict, message: str, param: str | None) -> None:
    body = {k: v for k, v in {**RESP_BASE, **patch}.items() if v is not None}
    status, err = await _post(oai, "/v1/responses", body)
    assert status == 400, err
    assert err["error"]["type"] == "invalid_request_error" and message in err["error"]["message"]
    assert err["error"]["param"] == param


async def test_openai_responses_accepts(oai: FakeUpstream) -> None:
    body = {**RESP_BASE, "instructions": "answer in json", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []}, FC, FCO,
        {"role": "assistant", "content": [{"type": "output_text", "text": "ok", "annotations": []}]},
        {"role": "user", "content": "more"}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}, {"type": "web_search"}],
        "tool_choice": {"type": "function", "name": "get_weather"}, "text": {"format": {"type": "json_object"}},
        "max_output_tokens": 16}
    status, resp = await _post(oai, "/v1/responses", body)
    assert status == 200, resp
    # an output may answer a call from an earlier response when previous_response_id is set
    status, resp = await _post(oai, "/v1/responses", {**RESP_BASE, "previous_response_id": "resp_1", "input": [FCO]})
    assert status == 200, resp
    assert oai.rejected == []


TU = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
TR = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
AU = {"role": "user", "content": "hi"}
ANT_BASE: dict = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [AU]}
ANT_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}]
PNG_SRC = {"type": "base64", "media_type": "image/png", "data": "AAAA"}
ANT_BAD = [
    ("no-max-tokens", {"max_tokens": None}, "max_tokens: Field required"),
    ("max-tokens-zero", {"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ("max-tokens-float", {"max_tokens": 1.5}, "max_tokens: Input should be a valid integer"),
    ("empty-messages", {"messages": []}, "messages: at least one message is required"),
    ("system-role", {"messages": [{"role": "system", "content": "x"}, AU]}, 'Unexpected role "system"'),
    ("tool-role", {"messages": [AU, {"role": "tool", "content": "x"}]},
     "messages.1.role: Input should be 'user' or 'assistant'"),
    ("same-role-twice", {"messages": [AU, AU]}, "roles must alternate"),
    ("empty-text-block", {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
     "text content blocks must be non-empty"),
    ("blank-text-block", {"messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]},
     "text content blocks must contain non-whitespace text"),
    ("empty-content", {"messages": [{"role": "user", "content": ""}]},
     "all messages must have non-empty content except for the optional final assistant message"),
    ("prefill-trailing-space", {"messages": [AU, {"role": "assistant", "content": "Sure "}]},
     "final assistant content cannot end with trailing whitespace"),
    ("unanswered-tool-use", {"messages": [AU, {"role": "assistant", "content": [TU]}, AU]},
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"),
    ("result-after-text", {"messages": [AU, {"role": "assistant", "content": [TU]},
                                        {"role": "user", "content": [{"type": "text", "text": "here"}, TR]}]},
     "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"),
    ("results-split", {"messages": [AU, {"role": "assistant", "content": [TU, {**TU, "id": "toolu_2"}]},
                                    {"role": "user", "content": [TR]}]},
     "immediately after: toolu_2"),
    ("orphan-result", {"messages": [AU, {"role": "assistant", "content": "ok"}, {"role": "user", "content": [TR]}]},
     "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1"),
    ("tool-id-charset", {"messages": [AU, {"role": "assistant", "content": [{**TU, "id": "functions.search:0"}]},
                                      {"role": "user", "content": [{**TR, "tool_use_id": "functions.search:0"}]}]},
     "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"),
    ("tool-input-string", {"messages": [AU, {"role": "assistant", "content": [{**TU, "input": "{}"}]},
                                        {"role": "user", "content": [TR]}]},
     "messages.1.content.0.tool_use.input: Input should be a valid dictionary"),
    ("tool-use-extra-field", {"messages": [AU, {"role": "assistant", "content": [{**TU, "index": 0}]},
                                           {"role": "user", "content": [TR]}]},
     "messages.1.content.0.tool_use.index: Extra inputs are not permitted"),
    ("message-extra-field", {"messages": [AU, {"role": "assistant", "content": "x", "tool_calls": []}]},
     "messages.1.tool_calls: Extra inputs are not permitted"),
    ("openai-part", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "Input tag 'image_url' found using 'type' does not match any of the expected tags"),
    ("temperature-above-1", {"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ("temperature-and-top-p", {"temperature": 0.5, "top_p": 0.9}, "`temperature` and `top_p` cannot both be specified"),
    ("budget-too-small", {"max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 500}},
     "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
    ("budget-not-below-max", {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ("thinking-temperature", {"max_tokens": 5000, "temperature": 0.5,
                              "thinking": {"type": "enabled", "budget_tokens": 1024}},
     "`temperature` may only be set to 1 when thinking is enabled"),
    ("thinking-forced-tool", {"max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 1024},
                              "tools": ANT_TOOLS, "tool_choice": {"type": "any"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ("thinking-block-dropped", {"max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 1024},
                                "tools": ANT_TOOLS, "messages": [AU, {"role": "assistant", "content": [TU]},
                                                                 {"role": "user", "content": [TR]}]},
     "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`"),
    ("image-media-type", {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {**PNG_SRC, "media_type": "image/bmp"}}]}]},
     "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg'"),
    ("image-no-data", {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}]},
     "messages.0.content.0.image.source.base64.data: Field required"),
    ("image-url-source-kind", {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "image_url", "url": "https://x"}}]}]},
     "Input tag 'image_url' found using 'type'"),
    ("tool-no-schema", {"tools": [{"name": "f"}]}, "tools.0.custom.input_schema: Field required"),
    ("tool-schema-not-object", {"tools": [{"name": "f", "input_schema": {"type": "string"}}]},
     "tools.0.custom.input_schema.type: Input should be 'object'"),
    ("openai-tool", {"tools": TOOL_OAI}, "tools.0: Input tag 'function' found using 'type'"),
    ("tool-choice-string", {"tools": ANT_TOOLS, "tool_choice": "auto"}, "tool_choice: Input should be a valid dictionary"),
    ("openai-param", {"stop": ["x"]}, "stop: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("patch", "message"), [c[1:] for c in ANT_BAD], ids=[c[0] for c in ANT_BAD])
async def test_anthropic_rejects(ant: FakeUpstream, patch: dict, message: str) -> None:
    body = {k: v for k, v in {**ANT_BASE, **patch}.items() if v is not None}
    status, err = await _post(ant, "/v1/messages", body, ANT_HEADERS)
    assert status == 400, err
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert message in err["error"]["message"]
    assert ant.rejected == [err["error"]["message"]]


async def test_anthropic_accepts(ant: FakeUpstream) -> None:
    think = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    body = {**ANT_BASE, "model": "claude-sonnet-4-5", "max_tokens": 5000, "temperature": 1,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "tools": ANT_TOOLS + [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "auto"}, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image", "source": PNG_SRC},
                                             {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
                                             {"type": "document", "source": {"type": "base64",
                                                                             "media_type": "application/pdf",
                                                                             "data": "AAAA"}}]},
                {"role": "assistant", "content": [think, TU, {**TU, "id": "toolu_2"}]},
                {"role": "user", "content": [TR, {**TR, "tool_use_id": "toolu_2", "content": [
                    {"type": "text", "text": "rain"}]}, {"type": "text", "text": "thanks"}]},
                {"role": "assistant", "content": "The weather is"}]}  # a prefill
    status, resp = await _post(ant, "/v1/messages", body, ANT_HEADERS)
    assert status == 200, resp
    # pitfall 23 only on newer models; an assistant-first conversation is accepted
    old = {**ANT_BASE, "model": "claude-3-5-sonnet-20241022", "temperature": 0.5, "top_p": 0.9,
           "messages": [{"role": "assistant", "content": "Hi!"}, AU]}
    status, resp = await _post(ant, "/v1/messages", old, ANT_HEADERS)
    assert status == 200, resp
    assert ant.rejected == []


GU = {"role": "user", "parts": [{"text": "hi"}]}
G_CALL = {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}
G_RESP = {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"r": "sunny"}}}]}
GEM_BASE: dict = {"contents": [GU]}
GEM_DECL = {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
GEM_BAD = [
    ("no-contents", {"contents": None}, "contents is not specified", "contents"),
    ("empty-contents", {"contents": []}, "contents is not specified", "contents"),
    ("assistant-role", {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
     "Please use a valid role: user, model.", "contents[0].role"),
    ("empty-parts", {"contents": [GU, {"role": "model", "parts": []}, GU]}, "contents.parts must not be empty.",
     "contents[1].parts"),
    ("empty-text", {"contents": [{"role": "user", "parts": [{"text": ""}]}]},
     "required oneof field 'data' must have one initialized field", "contents[0].parts[0].data"),
    ("two-data-fields", {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {
        "mimeType": "image/png", "data": "AAAA"}}]}]}, "Oneof field 'data' is already set", "contents[0].parts[0]"),
    ("openai-part", {"contents": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]},
     'Unknown name "type" at \'contents[0].parts[0]\': Cannot find field.', "contents[0].parts[0].type"),
    ("response-no-name", {"contents": [GU, G_CALL, {"role": "user", "parts": [{"functionResponse": {
        "response": {"r": 1}}}]}]}, "Name cannot be empty.", "contents[2].parts[0].function_response.name"),
    ("response-string", {"contents": [GU, G_CALL, {"role": "user", "parts": [{"functionResponse": {
        "name": "get_weather", "response": "sunny"}}]}]}, "google.protobuf.Struct",
     "contents[2].parts[0].function_response.response"),
    ("response-without-call", {"contents": [GU, G_RESP]},
     "function response turn comes immediately after a function call turn", "contents[1]"),
    ("response-count", {"contents": [GU, {"role": "model", "parts": G_CALL["parts"] * 2}, G_RESP]},
     "number of function response parts is equal to the number of function call parts", "contents[2]"),
    ("call-after-model", {"contents": [GU, {"role": "model", "parts": [{"text": "let me check"}]}, G_CALL, G_RESP]},
     "function call turn comes immediately after a user turn or after a function response turn", "contents[2]"),
    ("additional-properties", {"tools": [{"functionDeclarations": [{**GEM_DECL, "parameters": {
        **GEM_DECL["parameters"], "additionalProperties": False}}]}]},
     'Unknown name "additionalProperties" at \'tools[0].function_declarations[0].parameters\'',
     "tools[0].function_declarations[0].parameters.additionalProperties"),
    ("nested-ref", {"tools": [{"functionDeclarations": [{**GEM_DECL, "parameters": {
        "type": "OBJECT", "properties": {"c": {"$ref": "#/$defs/C"}}}}]}]},
     'Unknown name "$ref" at \'tools[0].function_declarations[0].parameters.properties[0].value\'', None),
    ("defs", {"tools": [{"functionDeclarations": [{**GEM_DECL, "parameters": {
        **GEM_DECL["parameters"], "$defs": {}}}]}]}, 'Unknown name "$defs"', None),
    ("schema-key", {"tools": [{"functionDeclarations": [{**GEM_DECL, "parameters": {
        **GEM_DECL["parameters"], "$schema": "x"}}]}]}, 'Unknown name "$schema"', None),
    ("type-list", {"tools": [{"functionDeclarations": [{**GEM_DECL, "parameters": {
        "type": "OBJECT", "properties": {"c": {"type": ["string", "null"]}}}}]}]},
     "Proto field is not repeating, cannot start list.", None),
    ("params-not-object", {"tools": [{"functionDeclarations": [{**GEM_DECL, "parameters": {"type": "STRING"}}]}]},
     "parameters.type: must be OBJECT.", None),
    ("decl-name", {"tools": [{"functionDeclarations": [{"name": "9lives"}]}]}, "Invalid function name.", None),
    ("openai-tool", {"tools": TOOL_OAI}, 'Unknown name "type" at \'tools[0]\'', None),
    ("response-schema", {"generationConfig": {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {}, "additionalProperties": False}}},
     'Unknown name "additionalProperties" at \'generation_config.response_schema\'', None),
    ("schema-without-mime", {"generationConfig": {"responseSchema": {"type": "OBJECT"}}},
     "response_mime_type must be set to application/json", None),
    ("stop-sequences", {"generationConfig": {"stopSequences": list("abcdef")}},
     "the number of stop sequences must be at most 5.", "generation_config.stop_sequences"),
    ("inline-no-mime", {"contents": [{"role": "user", "parts": [{"inlineData": {"data": "AAAA"}}]}]},
     "Mime type cannot be empty.", None),
    ("inline-no-data", {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png"}}]}]},
     "Data cannot be empty.", None),
    ("inline-not-base64", {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png",
                                                                                    "data": "not base64!"}}]}]},
     "Base64 decoding failed", None),
    ("unknown-config", {"generationConfig": {"max_tokens": 5}}, 'Unknown name "max_tokens" at \'generation_config\'',
     None),
    ("unknown-top-level", {"messages": []}, 'Unknown name "messages": Cannot find field.', None),
    ("system-string", {"systemInstruction": "be brief"}, "Invalid value at 'system_instruction'", None),
    ("pro-no-thinking", {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}},
     "Budget 0 is invalid. This model only works in thinking mode.", None),
]


@pytest.mark.parametrize(("patch", "message", "field"), [c[1:] for c in GEM_BAD], ids=[c[0] for c in GEM_BAD])
async def test_gemini_rejects(gem: FakeUpstream, patch: dict, message: str, field: str | None) -> None:
    body = {k: v for k, v in {**GEM_BASE, **patch}.items() if v is not None}
    status, err = await _post(gem, "/v1beta/models/gemini-2.5-pro:generateContent", body)
    assert status == 400, err
    assert err["error"]["code"] == 400 and err["error"]["status"] == "INVALID_ARGUMENT"
    assert message in err["error"]["message"]
    (detail,) = err["error"]["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    if field is not None:
        assert detail["fieldViolations"][0]["field"] == field


async def test_gemini_thought_signatures(gem: FakeUpstream) -> None:
    """Gemini 3 wants the first functionCall of the current turn signed (pitfall 15); 2.5 does not."""
    body = {"contents": [GU, G_CALL, G_RESP]}
    status, err = await _post(gem, "/v1beta/models/gemini-3-pro-preview:generateContent", body)
    assert status == 400 and "missing a thought_signature" in err["error"]["message"]
    signed = {"role": "model", "parts": [{**G_CALL["parts"][0], "thoughtSignature": "c2ln"}]}
    status, _ = await _post(gem, "/v1beta/models/gemini-3-pro-preview:generateContent",
                            {"contents": [GU, signed, G_RESP]})
    assert status == 200
    # calls of earlier turns (before the latest user text) need no signature
    status, _ = await _post(gem, "/v1beta/models/gemini-3-pro-preview:generateContent",
                            {"contents": [GU, G_CALL, G_RESP, {"role": "model", "parts": [{"text": "ok"}]}, GU]})
    assert status == 200
    status, _ = await _post(gem, "/v1beta/models/gemini-2.5-flash:generateContent", body)
    assert status == 200


async def test_gemini_accepts(gem: FakeUpstream) -> None:
    body = {"contents": [
        {"parts": [{"text": "look"}, {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}},
                   {"fileData": {"mimeType": "application/pdf", "fileUri": "https://generativelanguage/files/1"}}]},
        {"role": "model", "parts": [{"text": "thinking", "thought": True}, *G_CALL["parts"] * 2]},
        {"role": "user", "parts": G_RESP["parts"] * 2}, {"role": "model", "parts": [{"text": "ok"}]}, GU],
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [GEM_DECL, {"name": "lookup.v2", "parametersJsonSchema": {
            "type": "object", "additionalProperties": False, "$defs": {}}}]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"temperature": 0.2, "stopSequences": ["a"] * 5, "responseMimeType": "application/json",
                             "responseJsonSchema": {"type": "object", "additionalProperties": False},
                             "thinking_config": {"thinking_budget": 128}, "candidateCount": 1}}
    status, resp = await _post(gem, "/v1beta/models/gemini-2.5-pro:generateContent", body)
    assert status == 200, resp
    assert gem.rejected == []


async def test_validation_can_be_switched_off(oai: FakeUpstream, ant: FakeUpstream, gem: FakeUpstream) -> None:
    for fake in (oai, ant, gem):
        fake.validate = False
    assert (await _post(oai, "/v1/chat/completions", {**OAI_BASE, "n": 0}))[0] == 200
    assert (await _post(ant, "/v1/messages", {**ANT_BASE, "messages": [AU, AU]}, ANT_HEADERS))[0] == 200
    assert (await _post(gem, "/v1beta/models/g:generateContent", {"contents": [GU], "x": 1}))[0] == 200
