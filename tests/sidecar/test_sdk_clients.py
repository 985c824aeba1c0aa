"""The official SDKs, pointed at a real sidecar, against fake providers over real HTTP.

Checks the whole pass-through path per format: the SDK's placeholder key never reaches the provider,
the keyring's key does, the model name is rewritten, answers (streamed and not) parse in the SDK, and
every request is recorded with tokens, cost and latency.
"""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from conftest import KEYS

PLACEHOLDER = "placeholder-not-a-key"


def oa(sidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sidecar.url}/v1", api_key=PLACEHOLDER, max_retries=0)


def an(sidecar) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sidecar.url, api_key=PLACEHOLDER, max_retries=0)


def gm(sidecar) -> genai.Client:
    return genai.Client(api_key=PLACEHOLDER, http_options=gtypes.HttpOptions(base_url=sidecar.url))


async def recorded(sidecar) -> list[dict]:
    await sidecar.store.flush()
    return sidecar.store.recent(50)


async def test_openai_chat_non_stream(sidecar, upstreams):
    resp = await oa(sidecar).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi there friend"}]
    )
    assert "you said hi there friend" in resp.choices[0].message.content
    got = upstreams.openai.received[-1]
    assert got.headers["authorization"] == f"Bearer {KEYS['openai']}"
    assert PLACEHOLDER not in str(got.headers) and PLACEHOLDER.encode() not in got.body
    assert got.json["model"] == "gpt-4o-mini"
    [rec] = await recorded(sidecar)
    assert rec["inbound"] == "openai_chat" and rec["provider"] == "openai" and rec["model"] == "gpt-4o-mini"
    assert rec["requested_model"] == "openai/gpt-4o-mini" and rec["status"] == 200 and rec["stream"] is False
    assert rec["input_tokens"] == resp.usage.prompt_tokens and rec["output_tokens"] == resp.usage.completion_tokens
    assert rec["cache_read_tokens"] == 4 and rec["usage_source"] == "reported"
    assert rec["cost_usd"] > 0 and rec["latency_ms"] > 0 and rec["ttft_ms"] is None
    assert rec["attempts"] == [{"provider": "openai", "model": "gpt-4o-mini", "status": 200, "error": None,
                                "duration_ms": rec["attempts"][0]["duration_ms"]}]


async def test_openai_chat_stream_gets_usage_without_asking(sidecar, upstreams):
    stream = await oa(sidecar).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "you said stream me" in text
    # The sidecar asked upstream for usage, and stripped the usage chunk the client did not ask for.
    assert upstreams.openai.received[-1].json["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)
    [rec] = await recorded(sidecar)
    assert rec["stream"] is True and rec["ttft_ms"] is not None and rec["ttft_ms"] <= rec["latency_ms"]
    assert rec["output_tokens"] == upstreams.openai.last_usage["completion_tokens"]
    assert rec["error"] is None


async def test_openai_chat_stream_with_include_usage_keeps_chunk(sidecar):
    stream = await oa(sidecar).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


async def test_openai_responses(sidecar, upstreams):
    client = oa(sidecar)
    resp = await client.responses.create(model="openai/gpt-4o-mini", input="hello responses")
    assert "you said hello responses" in resp.output_text
    assert upstreams.openai.received[-1].path == "/v1/responses"
    events = [e async for e in await client.responses.create(model="openai/gpt-4o-mini", input="s", stream=True)]
    assert events[-1].type == "response.completed"
    recs = await recorded(sidecar)
    assert [r["inbound"] for r in recs] == ["openai_responses", "openai_responses"]
    assert all(r["input_tokens"] and r["output_tokens"] for r in recs)


async def test_anthropic_messages(sidecar, upstreams):
    client = an(sidecar)
    msg = await client.messages.create(
        model="anthropic/claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hello claude"}]
    )
    assert "you said hello claude" in msg.content[0].text
    got = upstreams.anthropic.received[-1]
    assert got.headers["x-api-key"] == KEYS["anthropic"] and got.headers["anthropic-version"]
    assert "authorization" not in got.headers and got.json["model"] == "claude-haiku-4-5"
    async with client.messages.stream(
        model="anthropic/claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "stream"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert "you said stream" in text
    streamed, plain = await recorded(sidecar)
    # Anthropic's input_tokens excludes cache; the record counts all prompt tokens.
    assert plain["input_tokens"] == msg.usage.input_tokens + msg.usage.cache_read_input_tokens + msg.usage.cache_creation_input_tokens
    assert streamed["stream"] and streamed["output_tokens"] > 0 and streamed["input_tokens"] > 0
    assert streamed["cost_usd"] > 0


async def test_gemini_generate_and_stream(sidecar, upstreams):
    client = gm(sidecar)
    resp = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hello gemini")
    assert "you said hello gemini" in resp.text
    got = upstreams.gemini.received[-1]
    assert got.headers["x-goog-api-key"] == KEYS["gemini"]
    assert got.path.endswith("/models/gemini-2.5-flash:generateContent")  # v1 or v1beta, as the SDK chose
    parts = [c.text async for c in await client.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="stream gemini")]
    assert "you said stream gemini" in "".join(p for p in parts if p)
    assert upstreams.gemini.received[-1].query.get("alt") == "sse"
    streamed, plain = await recorded(sidecar)
    # Gemini's candidate count excludes thoughts; the record's output includes them.
    assert plain["output_tokens"] == resp.usage_metadata.candidates_token_count + resp.usage_metadata.thoughts_token_count
    assert plain["reasoning_tokens"] == resp.usage_metadata.thoughts_token_count
    assert streamed["stream"] and streamed["output_tokens"] > 0 and streamed["ttft_ms"] is not None


async def test_models_list_across_providers(sidecar):
    models = await oa(sidecar).models.list()
    ids = {m.id for m in models.data}
    assert {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"} <= ids
    page = await an(sidecar).models.list()
    assert "anthropic/claude-haiku-4-5" in {m.id for m in page.data}


async def test_missing_key_is_401_naming_the_command(sidecar):
    sidecar.keys.delete("anthropic")
    with pytest.raises(anthropic.AuthenticationError) as info:
        await an(sidecar).messages.create(model="anthropic/claude-haiku-4-5", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}])
    assert "sidecar keys set anthropic" in str(info.value)


async def test_unknown_model_is_404_with_suggestions(sidecar):
    with pytest.raises(openai.NotFoundError) as info:
        await oa(sidecar).chat.completions.create(model="gpt4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "openai/gpt-4o-mini" in str(info.value)


async def test_client_sees_the_model_it_asked_for(sidecar, upstreams):
    """Pass-through answers carry the provider's own model name; the client is shown the one it asked for."""
    client = oa(sidecar)
    resp = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert resp.model == "openai/gpt-4o-mini"
    assert upstreams.openai.received[-1].json["model"] == "gpt-4o-mini"
    stream = await client.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                                  messages=[{"role": "user", "content": "x"}])
    assert {c.model async for c in stream} == {"openai/gpt-4o-mini"}
    msg = await an(sidecar).messages.create(model="anthropic/claude-haiku-4-5", max_tokens=10,
                                            messages=[{"role": "user", "content": "x"}])
    assert msg.model == "anthropic/claude-haiku-4-5"
    # A bare name the provider knows is left as the provider wrote it.
    resp = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert resp.model == "gpt-4o-mini"
