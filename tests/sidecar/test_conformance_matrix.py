"""Conformance matrix: every inbound client, through its OFFICIAL SDK, against every upstream provider kind.

Rows: the four inbound formats (openai chat, openai responses, anthropic messages, gemini generateContent),
each driven by its own SDK pointed at a real sidecar with a placeholder key. Columns: the fake provider
kinds (openai-compatible, anthropic, gemini; for the Responses client also ``compat``, an OpenAI provider
without the Responses API, so Responses -> Chat Completions is translated too) x scenario x streamed or not.

Scenarios:

- ``plain``: system prompt + user text. The SDK parses the answer, the text is the fake's reply, the fake got
  a valid request of its own format (path, required fields, system prompt where its format puts it,
  rewritten model), the SDK's usage matches the fake's once both are normalised, the record has tokens/cost.
- ``tools``: a two-step tool round trip. The fake calls get_weather({"city": "Paris"}); streamed argument
  fragments must reach the client as deltas (when both the provider and the client format stream arguments);
  the client answers with the id it received; the fake sees its own call id / function name paired with the
  result; the final answer is text.
- ``json``: JSON-schema structured output, asked in the client's format, arrives in the provider's.
- ``image``: a tiny base64 PNG arrives in the provider's own image shape.
- ``error``: the fake answers 429 then 500; the SDK raises its own class for each status, with a message.

Same-format pairs are byte pass-throughs; they are in the matrix anyway, to guard it.
One sidecar and one set of fakes serve the whole module (chunk_delay 0), so the matrix stays fast.
Known product bugs are listed in `KNOWN_BUGS` and run as strict xfails.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import orjson
import pytest

from sidecar.health import HealthBook
from sidecar.state import STATE
import pytest_asyncio
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gt

from conftest import KEYS, Upstreams, config_for, start_sidecar
from sidecar.fake_upstream import FakeUpstream, ReceivedRequest
from sidecar.keys import MemoryKeyStore

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLACEHOLDER = "placeholder-not-a-key"
SYSTEM = "You are a terse test assistant."
USER_TEXT = "hello matrix world"
WEATHER_Q = "What is the weather in Paris?"
IMAGE_Q = "Describe this image"
TOOL_RESULT = "sunny, 21 C"
PARAMS = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
          "required": ["city"]}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
# A real 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
PNG_B64 = base64.b64encode(PNG).decode()

CLIENTS = ("openai_chat", "openai_responses", "anthropic", "gemini")
PROVIDERS = ("openai", "anthropic", "gemini")
SCENARIOS = ("plain", "tools", "json", "image", "error")
MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5",
          "gemini": "gemini/gemini-2.5-flash", "compat": "compat/gpt-4o-mini"}
UPSTREAM_MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash",
                  "compat": "gpt-4o-mini"}
FAKE_KIND = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "compat": "openai"}

KNOWN_BUGS: dict[tuple[str, str, str, str], str] = {
    # (client, provider, "stream" | "nonstream", scenario) -> reason (file:line, what goes wrong).
    # Each entry turns that cell into a strict xfail, so the fix makes the suite say so.
}


def _columns(client: str) -> tuple[str, ...]:
    return PROVIDERS + (("compat",) if client == "openai_responses" else ())


def _cases() -> list[Any]:
    out = []
    for client in CLIENTS:
        for provider, scenario, mode in itertools.product(_columns(client), SCENARIOS, ("nonstream", "stream")):
            key = (client, provider, mode, scenario)
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key])] if key in KNOWN_BUGS else []
            out.append(pytest.param(client, provider, mode == "stream", scenario, marks=marks,
                                    id=f"{client}->{provider}-{mode}-{scenario}"))
    return out


# ============================================================================================ environment


@dataclass
class Env:
    url: str
    sidecar: Any
    ups: Upstreams
    fakes: dict[str, FakeUpstream]
    counter: itertools.count = field(default_factory=itertools.count)


def _tap(fake: FakeUpstream) -> None:
    """Record what the fake sends back (to learn the tool-call ids it issued), without changing it."""
    fake.sent = []  # type: ignore[attr-defined]
    orig_json, orig_stream = fake._json, fake._stream

    def _json(payload: Any, *a: Any, **k: Any) -> Any:
        fake.sent.append(orjson.dumps(payload))  # type: ignore[attr-defined]
        return orig_json(payload, *a, **k)

    async def _stream(request: Any, frames: list[bytes], *a: Any, **k: Any) -> Any:
        fake.sent.append(b"".join(frames))  # type: ignore[attr-defined]
        return await orig_stream(request, frames, *a, **k)

    fake._json = _json  # type: ignore[method-assign]
    fake._stream = _stream  # type: ignore[method-assign]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    # Module-scoped fixtures start before conftest's per-test XDG isolation: isolate here too.
    base = tmp_path_factory.mktemp("matrix")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.setenv("XDG_DATA_HOME", str(base / "data"))
        async for e in _env(base):
            yield e


async def _env(base: Any) -> AsyncIterator[Env]:
    ups = Upstreams(*(FakeUpstream(k, expect_key=KEYS[k], chunk_delay=0.0) for k in ("openai", "anthropic", "gemini")))
    for u in (ups.openai, ups.anthropic, ups.gemini):
        await u.start()
        _tap(u)
    extra = {"providers": {"compat": {"adapter": "openai", "base_url": ups.openai.base_url, "responses_api": False}},
             "prices": {"compat/gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075}}}
    config = config_for(ups, base / "sidecar-data", extra)
    sc, runner = await start_sidecar(config, MemoryKeyStore({**KEYS, "compat": KEYS["openai"]}))
    try:
        yield Env(sc.url, sc, ups, {"openai": ups.openai, "anthropic": ups.anthropic, "gemini": ups.gemini,
                                    "compat": ups.openai})
    finally:
        await runner.cleanup()
        for u in (ups.openai, ups.anthropic, ups.gemini):
            await u.close()


@dataclass
class Ctx:
    env: Env
    client: str
    provider: str
    stream: bool
    label: str

    @property
    def model(self) -> str:
        return MODELS[self.provider]

    @property
    def fake(self) -> FakeUpstream:
        return self.env.fakes[self.provider]

    def expected_text(self, said: str) -> str:
        return f"Hello from fake-{FAKE_KIND[self.provider]} ({UPSTREAM_MODEL[self.provider]}): you said {said[:40]}"


# ============================================================================================ client drivers


@dataclass
class Call:
    id: str | None
    name: str
    args: dict[str, Any]


@dataclass
class Reply:
    text: str
    calls: list[Call]
    usage: tuple[int, int] | None
    """(all prompt tokens incl. cache, all output tokens incl. reasoning), normalised from the SDK's answer."""
    fragments: int
    """Streamed: how many non-empty argument deltas the client saw; -1 when the client format sends whole calls."""
    assistant: Any
    """The assistant turn, as a client of this format would append it to its history."""
    finish: str | None = None
    """The finish / stop reason in the client's own vocabulary (Responses: the response status)."""
    text_deltas: int = 0
    """Streamed: how many non-empty text deltas the client saw."""


def _args(text: str | dict | None) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    return orjson.loads(text) if text else {}


class OpenAIChat:
    streams_args = True
    errors = {429: openai.RateLimitError, 500: openai.InternalServerError}

    def user(self, text: str, image: bool = False) -> list[dict[str, Any]]:
        if not image:
            return [{"role": "user", "content": text}]
        return [{"role": "user", "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}]

    async def complete(self, ctx: Ctx, hist: list, *, system: str | None = None, tools: bool = False,
                       schema: dict | None = None, include_usage: bool = True) -> Reply:
        c = openai.AsyncOpenAI(base_url=f"{ctx.env.url}/v1", api_key=PLACEHOLDER, max_retries=0, timeout=20,
                               default_headers={"x-sidecar-client": ctx.label})
        kw: dict[str, Any] = {"model": ctx.model,
                              "messages": ([{"role": "system", "content": system}] if system else []) + hist}
        if tools:
            kw["tools"] = [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather for a city", "parameters": PARAMS}}]
        if schema:
            kw["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "city", "schema": schema, "strict": True}}
        if not ctx.stream:
            r = await c.chat.completions.create(**kw)
            m = r.choices[0].message
            calls = [Call(t.id, t.function.name, _args(t.function.arguments)) for t in m.tool_calls or []]
            return Reply(m.content or "", calls, (r.usage.prompt_tokens, r.usage.completion_tokens), 0,
                         m.model_dump(exclude_none=True), r.choices[0].finish_reason)
        if include_usage:
            kw["stream_options"] = {"include_usage": True}
        s = await c.chat.completions.create(**kw, stream=True)
        text: list[str] = []
        acc: dict[int, dict[str, Any]] = {}
        frags, usage, finish, ids = 0, None, None, set()
        async for ch in s:
            ids.add(ch.id)
            if not include_usage:
                # A client that did not ask for the usage chunk must not get one (choices=[] breaks many).
                assert ch.choices and ch.usage is None, f"unrequested usage chunk: {ch}"
            if ch.usage:
                usage = (ch.usage.prompt_tokens, ch.usage.completion_tokens)
            for choice in ch.choices:
                d = choice.delta
                finish = choice.finish_reason or finish
                text.append(d.content or "")
                for tc in d.tool_calls or []:
                    e = acc.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                    e["id"] = tc.id or e["id"]
                    if tc.function and tc.function.name:
                        e["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        e["args"] += tc.function.arguments
                        frags += 1
        calls = [Call(e["id"], e["name"], _args(e["args"])) for _, e in sorted(acc.items())]
        assistant: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            assistant["tool_calls"] = [{"id": e["id"], "type": "function",
                                        "function": {"name": e["name"], "arguments": e["args"]}}
                                       for _, e in sorted(acc.items())]
        assert len(ids) == 1, f"chunks of one completion carry different ids: {ids}"
        return Reply("".join(text), calls, usage, frags, assistant, finish, sum(1 for t in text if t))

    def with_result(self, hist: list, reply: Reply) -> list:
        return hist + [reply.assistant, {"role": "tool", "tool_call_id": reply.calls[0].id, "content": TOOL_RESULT}]

    def error_status(self, exc: Exception) -> tuple[int, str]:
        assert isinstance(exc, openai.APIStatusError)
        assert isinstance(exc.body, dict) and exc.body.get("message") and exc.type, exc.body
        if exc.status_code >= 500:
            assert exc.type == "server_error", exc.body
        return exc.status_code, exc.message


class OpenAIResponses:
    streams_args = True
    errors = {429: openai.RateLimitError, 500: openai.InternalServerError}

    def user(self, text: str, image: bool = False) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
        if image:
            content.append({"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"})
        return [{"role": "user", "content": content}]

    async def complete(self, ctx: Ctx, hist: list, *, system: str | None = None, tools: bool = False,
                       schema: dict | None = None) -> Reply:
        c = openai.AsyncOpenAI(base_url=f"{ctx.env.url}/v1", api_key=PLACEHOLDER, max_retries=0, timeout=20,
                               default_headers={"x-sidecar-client": ctx.label})
        kw: dict[str, Any] = {"model": ctx.model, "input": hist}
        if system:
            kw["instructions"] = system
        if tools:
            kw["tools"] = [{"type": "function", "name": "get_weather", "description": "Current weather for a city",
                            "parameters": PARAMS, "strict": False}]
        if schema:
            kw["text"] = {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}
        frags = 0
        deltas: list[str] = []
        if not ctx.stream:
            r = await c.responses.create(**kw)
            text = r.output_text
        else:
            s = await c.responses.create(**kw, stream=True)
            events = [ev async for ev in s]
            _check_responses_stream(events)
            r = events[-1].response
            for ev in events:
                if ev.type == "response.output_text.delta":
                    deltas.append(ev.delta)
                elif ev.type == "response.function_call_arguments.delta" and ev.delta:
                    frags += 1
            text = "".join(deltas)
            assert text == r.output_text
        calls = [Call(i.call_id, i.name, _args(i.arguments)) for i in r.output if i.type == "function_call"]
        usage = (r.usage.input_tokens, r.usage.output_tokens) if r.usage else None
        return Reply(text, calls, usage, frags, [i.model_dump(exclude_none=True) for i in r.output], r.status,
                     sum(1 for t in deltas if t))

    def with_result(self, hist: list, reply: Reply) -> list:
        return hist + reply.assistant + [{"type": "function_call_output", "call_id": reply.calls[0].id,
                                          "output": TOOL_RESULT}]

    error_status = OpenAIChat.error_status


def _check_responses_stream(events: list[Any]) -> None:
    """What Responses stream consumers rely on beyond parsing: ordered sequence numbers, the lifecycle
    events first and last, and every delta naming an item that was announced."""
    assert [e.sequence_number for e in events] == list(range(len(events))), \
        [(e.type, e.sequence_number) for e in events]
    assert events[0].type == "response.created" and events[-1].type == "response.completed", \
        [e.type for e in events]
    added: dict[int, str] = {}
    for e in events:
        if e.type == "response.output_item.added":
            added[e.output_index] = e.item.id
        elif e.type in ("response.output_text.delta", "response.function_call_arguments.delta",
                        "response.function_call_arguments.done", "response.output_text.done"):
            assert added.get(e.output_index) == e.item_id, f"{e.type} for an unannounced item: {e}"
    final = {i: item.id for i, item in enumerate(events[-1].response.output)}
    assert final == added, f"completed output {final} != announced items {added}"


class Anthropic:
    streams_args = True
    errors = {429: anthropic.RateLimitError, 500: anthropic.InternalServerError}

    def user(self, text: str, image: bool = False) -> list[dict[str, Any]]:
        if not image:
            return [{"role": "user", "content": text}]
        return [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            {"type": "text", "text": text}]}]

    async def complete(self, ctx: Ctx, hist: list, *, system: str | None = None, tools: bool = False,
                       schema: dict | None = None) -> Reply:
        c = anthropic.AsyncAnthropic(base_url=ctx.env.url, api_key=PLACEHOLDER, max_retries=0, timeout=20,
                                     default_headers={"x-sidecar-client": ctx.label})
        kw: dict[str, Any] = {"model": ctx.model, "max_tokens": 256, "messages": hist}
        if system:
            kw["system"] = system
        if tools:
            kw["tools"] = [{"name": "get_weather", "description": "Current weather for a city", "input_schema": PARAMS}]
        if schema:
            kw["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        frags = deltas = 0
        if not ctx.stream:
            m = await c.messages.create(**kw)
        else:
            async with c.messages.stream(**kw) as s:
                async for ev in s:
                    if ev.type == "content_block_delta" and ev.delta.type == "input_json_delta" and ev.delta.partial_json:
                        frags += 1
                    if ev.type == "content_block_delta" and ev.delta.type == "text_delta" and ev.delta.text:
                        deltas += 1
                m = await s.get_final_message()
        text = "".join(b.text for b in m.content if b.type == "text")
        calls = [Call(b.id, b.name, dict(b.input)) for b in m.content if b.type == "tool_use"]
        u = m.usage
        usage = (u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
                 u.output_tokens)
        for call in calls:  # Anthropic's id pattern: a client may replay these to the real API later
            assert re.fullmatch(r"[a-zA-Z0-9_-]+", call.id or ""), call.id
        return Reply(text, calls, usage, frags, {"role": "assistant", "content": m.content}, m.stop_reason, deltas)

    def with_result(self, hist: list, reply: Reply) -> list:
        return hist + [reply.assistant, {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": reply.calls[0].id, "content": TOOL_RESULT}]}]

    def error_status(self, exc: Exception) -> tuple[int, str]:
        assert isinstance(exc, anthropic.APIStatusError)
        etype = {429: "rate_limit_error", 500: "api_error"}[exc.status_code]
        assert isinstance(exc.body, dict) and exc.body.get("type") == "error", exc.body
        assert exc.body["error"]["type"] == etype, exc.body
        return exc.status_code, exc.message


class Gemini:
    streams_args = False
    errors = {429: gerrors.ClientError, 500: gerrors.ServerError}

    def user(self, text: str, image: bool = False) -> list[gt.Content]:
        parts = [gt.Part.from_text(text=text)]
        if image:
            parts.append(gt.Part.from_bytes(data=PNG, mime_type="image/png"))
        return [gt.Content(role="user", parts=parts)]

    async def complete(self, ctx: Ctx, hist: list, *, system: str | None = None, tools: bool = False,
                       schema: dict | None = None) -> Reply:
        c = genai.Client(api_key=PLACEHOLDER, http_options=gt.HttpOptions(
            base_url=ctx.env.url, headers={"x-sidecar-client": ctx.label}, timeout=20_000,
            retry_options=gt.HttpRetryOptions(attempts=1)))  # = max_retries=0, and no implicit reconnect sleeps
        cfg = gt.GenerateContentConfig(system_instruction=system)
        if tools:
            cfg.tools = [gt.Tool(function_declarations=[gt.FunctionDeclaration(
                name="get_weather", description="Current weather for a city", parameters=PARAMS)])]
        if schema:
            # Both spellings clients use: the OpenAPI-subset responseSchema (non-stream cells) and the
            # JSON-Schema responseJsonSchema (stream cells).
            cfg.response_mime_type = "application/json"
            if ctx.stream:
                cfg.response_json_schema = schema
            else:
                cfg.response_schema = {k: v for k, v in schema.items() if k != "additionalProperties"}
        if not ctx.stream:
            r = await c.aio.models.generate_content(model=ctx.model, contents=hist, config=cfg)
            chunks = [r]
        else:
            chunks = [ch async for ch in await c.aio.models.generate_content_stream(
                model=ctx.model, contents=hist, config=cfg)]
        parts: list[gt.Part] = []
        calls: list[Call] = []
        usage = finish = None
        for ch in chunks:
            if ch.candidates and ch.candidates[0].finish_reason:
                finish = ch.candidates[0].finish_reason.value
            for p in (ch.candidates[0].content.parts or []) if ch.candidates and ch.candidates[0].content else []:
                parts.append(p)
                if p.function_call:
                    # Gemini sends whole calls: each arrives complete in one chunk.
                    calls.append(Call(p.function_call.id, p.function_call.name, dict(p.function_call.args or {})))
            if ch.usage_metadata and ch.usage_metadata.prompt_token_count is not None:
                um = ch.usage_metadata
                usage = (um.prompt_token_count, (um.candidates_token_count or 0) + (um.thoughts_token_count or 0))
        text = "".join(p.text for p in parts if p.text and not p.thought)
        return Reply(text, calls, usage, -1, gt.Content(role="model", parts=parts), finish,
                     sum(1 for p in parts if p.text and not p.thought))

    def with_result(self, hist: list, reply: Reply) -> list:
        call = reply.calls[0]
        return hist + [reply.assistant, gt.Content(role="user", parts=[gt.Part(function_response=gt.FunctionResponse(
            id=call.id, name=call.name, response={"result": TOOL_RESULT}))])]

    def error_status(self, exc: Exception) -> tuple[int, str]:
        assert isinstance(exc, gerrors.APIError)
        assert exc.status == {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}.get(exc.code), exc.details
        return exc.code, exc.message or ""


FINISH = {  # (after text, after a tool call) in each client's vocabulary
    "openai_chat": ("stop", "tool_calls"), "openai_responses": ("completed", "completed"),
    "anthropic": ("end_turn", "tool_use"), "gemini": ("STOP", "STOP"),
}

DRIVERS = {"openai_chat": OpenAIChat(), "openai_responses": OpenAIResponses(), "anthropic": Anthropic(),
           "gemini": Gemini()}


# ============================================================================================ upstream side


def upstream_format(ctx: Ctx) -> str:
    if ctx.provider == "anthropic":
        return "anthropic"
    if ctx.provider == "gemini":
        return "gemini"
    return "openai_responses" if ctx.client == "openai_responses" and ctx.provider == "openai" else "openai_chat"


def _g(d: dict, camel: str) -> Any:
    """A Gemini field under either spelling (Google's parser accepts both)."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return d.get(camel, d.get(snake))


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def validate(fmt: str, req: ReceivedRequest, ctx: Ctx) -> dict[str, Any]:
    """The request is one the real provider of `fmt` would accept: path, required fields, roles, pairing."""
    body = req.json
    assert isinstance(body, dict), f"upstream body is not a JSON object: {req.body[:200]!r}"
    model = UPSTREAM_MODEL[ctx.provider]
    if fmt == "openai_chat":
        assert req.path == "/v1/chat/completions", req.path
        assert body.get("model") == model
        msgs = body.get("messages")
        assert isinstance(msgs, list) and msgs
        pending: set[str] = set()
        for i, m in enumerate(msgs):
            role = m.get("role")
            assert role in ("system", "developer", "user", "assistant", "tool"), m
            if role == "tool":
                assert m.get("tool_call_id") in pending, f"messages[{i}] answers no pending call: {m}"
                pending.discard(m["tool_call_id"])
                continue
            assert not pending, f"messages[{i}] comes before tool results for {pending}"
            if role == "assistant" and m.get("tool_calls"):
                for tc in m["tool_calls"]:
                    assert tc.get("type") == "function" and tc.get("id") and tc["function"]["name"]
                    assert isinstance(tc["function"]["arguments"], str)
                    pending.add(tc["id"])
            else:
                assert m.get("content") not in (None, "", []), f"messages[{i}] has no content: {m}"
            if isinstance(m.get("content"), list):
                for p in m["content"]:
                    assert p.get("type") in ("text", "image_url", "input_audio", "file"), p
        assert not pending, f"tool calls {pending} are never answered"
        assert bool(body.get("stream")) == ctx.stream
        if ctx.stream:
            assert body.get("stream_options", {}).get("include_usage") is True
    elif fmt == "openai_responses":
        assert req.path == "/v1/responses", req.path
        assert body.get("model") == model
        assert isinstance(body.get("input"), (str, list)) and body["input"]
        calls = {i.get("call_id") for i in body["input"] if isinstance(i, dict) and i.get("type") == "function_call"} \
            if isinstance(body["input"], list) else set()
        for i in body["input"] if isinstance(body["input"], list) else ():
            if i.get("type") == "function_call_output":
                assert i.get("call_id") in calls, f"function_call_output answers no call: {i}"
        assert bool(body.get("stream")) == ctx.stream
    elif fmt == "anthropic":
        assert req.path == "/v1/messages", req.path
        assert req.headers.get("anthropic-version")
        assert req.headers.get("x-api-key") == KEYS["anthropic"]
        assert body.get("model") == model
        assert isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 0
        msgs = body.get("messages")
        assert isinstance(msgs, list) and msgs and msgs[0]["role"] == "user"
        prev_uses: set[str] = set()
        for i, m in enumerate(msgs):
            assert m["role"] == ("user" if i % 2 == 0 else "assistant"), f"roles do not alternate: {msgs}"
            content = m["content"]
            assert content, f"messages[{i}] is empty"
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
            assert set(results) == prev_uses, f"messages[{i}] tool results {results} != tool uses {prev_uses}"
            if results:
                assert blocks[0]["type"] == "tool_result", "tool results must come first in their turn"
            for b in blocks:
                assert b["type"] in ("text", "image", "tool_use", "tool_result", "document", "thinking"), b
                if b["type"] == "text":
                    assert b["text"].strip(), f"empty text block in messages[{i}]"
            prev_uses = {b["id"] for b in blocks if b["type"] == "tool_use"}
            if prev_uses:
                assert m["role"] == "assistant"
        assert bool(body.get("stream")) == ctx.stream
    elif fmt == "gemini":
        method = "streamGenerateContent" if ctx.stream else "generateContent"
        assert re.fullmatch(rf"/v1(beta)?/models/{re.escape(model)}:{method}", req.path), req.path
        if ctx.stream:
            assert req.query.get("alt") == "sse"
        assert req.headers.get("x-goog-api-key") == KEYS["gemini"]
        contents = body.get("contents")
        assert isinstance(contents, list) and contents
        prev_calls: list[str] = []
        for i, c in enumerate(contents):
            assert c.get("role") in ("user", "model"), c
            parts = c.get("parts")
            assert isinstance(parts, list) and parts, f"contents[{i}] has no parts"
            responses = []
            for p in parts:
                data = [k for k in p if k not in ("thought", "thoughtSignature", "thought_signature", "videoMetadata")]
                assert len(data) == 1, f"a part must carry exactly one datum: {p}"
                fr = _g(p, "functionResponse")
                if fr is not None:
                    assert c["role"] == "user" and isinstance(fr.get("response"), dict) and fr.get("name"), fr
                    responses.append(fr["name"])
            assert sorted(responses) == sorted(prev_calls), \
                f"contents[{i}] function responses {responses} do not answer the calls before them {prev_calls}"
            prev_calls = [_g(p, "functionCall")["name"] for p in parts if _g(p, "functionCall")]
            if prev_calls:
                assert c["role"] == "model"
        assert "model" not in body or body["model"].endswith(model)
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return body


def system_of(fmt: str, body: dict) -> str:
    if fmt == "openai_chat":
        return "\n\n".join(_texts(m.get("content")) for m in body["messages"] if m["role"] in ("system", "developer"))
    if fmt == "openai_responses":
        inp = body["input"] if isinstance(body["input"], list) else []
        extra = [_texts(i.get("content")) for i in inp if i.get("role") in ("system", "developer")]
        return "\n\n".join(([body["instructions"]] if body.get("instructions") else []) + extra)
    if fmt == "anthropic":
        assert all(m["role"] != "system" for m in body["messages"])
        return _texts(body.get("system"))
    si = _g(body, "systemInstruction")
    assert all(c.get("role") != "system" for c in body["contents"])
    return _texts(si.get("parts")) if isinstance(si, dict) else _texts(si)


def images_of(fmt: str, body: dict) -> list[tuple[str, str]]:
    """(mime type, base64 data) of every image in the request."""
    out = []
    if fmt == "openai_chat":
        for m in body["messages"]:
            for p in m["content"] if isinstance(m.get("content"), list) else ():
                if p.get("type") == "image_url":
                    head, _, data = p["image_url"]["url"].partition(",")
                    assert head.startswith("data:") and head.endswith(";base64"), head
                    out.append((head[5:-7], data))
    elif fmt == "openai_responses":
        for i in body["input"] if isinstance(body["input"], list) else ():
            for p in i["content"] if isinstance(i.get("content"), list) else ():
                if p.get("type") == "input_image":
                    head, _, data = p["image_url"].partition(",")
                    out.append((head[5:-7], data))
    elif fmt == "anthropic":
        for m in body["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else ():
                if b["type"] == "image":
                    assert b["source"]["type"] == "base64", b
                    out.append((b["source"]["media_type"], b["source"]["data"]))
    else:
        for c in body["contents"]:
            for p in c["parts"]:
                inline = _g(p, "inlineData")
                if inline:
                    out.append((_g(inline, "mimeType"), inline["data"]))
    return out


def tools_of(fmt: str, body: dict) -> dict[str, dict]:
    if fmt == "openai_chat":
        return {t["function"]["name"]: t["function"].get("parameters") for t in body.get("tools") or []}
    if fmt == "openai_responses":
        return {t["name"]: t.get("parameters") for t in body.get("tools") or []}
    if fmt == "anthropic":
        return {t["name"]: t.get("input_schema") for t in body.get("tools") or []}
    return {d["name"]: _g(d, "parametersJsonSchema") or d.get("parameters")
            for t in body.get("tools") or [] for d in _g(t, "functionDeclarations") or []}


def schema_of(fmt: str, body: dict) -> dict | None:
    """The JSON schema the provider was asked to answer in, checking the format's own wrapper fields."""
    if fmt == "openai_chat":
        rf = body.get("response_format") or {}
        assert rf.get("type") == "json_schema", rf
        assert rf["json_schema"].get("name"), rf
        return rf["json_schema"]["schema"]
    if fmt == "openai_responses":
        f = (body.get("text") or {}).get("format") or {}
        assert f.get("type") == "json_schema" and f.get("name"), f
        return f["schema"]
    if fmt == "anthropic":
        f = (body.get("output_config") or {}).get("format") or {}
        assert f.get("type") == "json_schema", body.get("output_config")
        return f["schema"]
    gc = _g(body, "generationConfig") or {}
    assert _g(gc, "responseMimeType") == "application/json", gc
    return _g(gc, "responseJsonSchema") or _g(gc, "responseSchema")


def tool_exchange_of(fmt: str, body: dict) -> tuple[Any, str, dict, Any, str | None]:
    """(call id, call name, call args, result's reference to the call, result's name) of the last tool exchange."""
    if fmt == "openai_chat":
        msgs = body["messages"]
        i = max(k for k, m in enumerate(msgs) if m["role"] == "assistant" and m.get("tool_calls"))
        tc = msgs[i]["tool_calls"][0]
        res = msgs[i + 1]
        assert res["role"] == "tool" and TOOL_RESULT in _texts(res["content"]), res
        return tc["id"], tc["function"]["name"], _args(tc["function"]["arguments"]), res["tool_call_id"], None
    if fmt == "openai_responses":
        items = body["input"]
        i = max(k for k, it in enumerate(items) if it.get("type") == "function_call")
        res = next(it for it in items[i + 1:] if it.get("type") == "function_call_output")
        assert TOOL_RESULT in (res["output"] if isinstance(res["output"], str) else _texts(res["output"])), res
        return items[i]["call_id"], items[i]["name"], _args(items[i]["arguments"]), res["call_id"], None
    if fmt == "anthropic":
        msgs = body["messages"]
        i = max(k for k, m in enumerate(msgs) if m["role"] == "assistant"
                and any(b["type"] == "tool_use" for b in m["content"]))
        use = next(b for b in msgs[i]["content"] if b["type"] == "tool_use")
        res = msgs[i + 1]["content"][0]
        assert res["type"] == "tool_result" and TOOL_RESULT in _texts(res.get("content")), res
        return use["id"], use["name"], use["input"], res["tool_use_id"], None
    contents = body["contents"]
    i = max(k for k, c in enumerate(contents) if any(_g(p, "functionCall") for p in c["parts"]))
    fc = next(_g(p, "functionCall") for p in contents[i]["parts"] if _g(p, "functionCall"))
    fr = next(_g(p, "functionResponse") for p in contents[i + 1]["parts"] if _g(p, "functionResponse"))
    assert TOOL_RESULT in orjson.dumps(fr["response"]).decode(), fr
    return fc.get("id"), fc["name"], fc.get("args") or {}, fr.get("id"), fr["name"]


def issued_call_id(fmt: str, sent: bytes) -> str | None:
    """The tool-call id the fake issued in its answer (Gemini issues none)."""
    pattern = {"openai_chat": rb'"id":"(call_[0-9a-f]+)"', "openai_responses": rb'"call_id":"(call_[0-9a-f]+)"',
               "anthropic": rb'"id":"(toolu_[0-9a-f]+)"'}.get(fmt)
    if pattern is None:
        return None
    ids = set(re.findall(pattern, sent))
    assert len(ids) == 1, f"expected one issued tool id, found {ids}"
    return ids.pop().decode()


def fake_usage(fmt: str, usage: dict) -> tuple[int, int]:
    """The fake's raw usage, normalised: (all prompt tokens incl. cache, all output tokens incl. reasoning)."""
    if fmt == "openai_chat":
        return usage["prompt_tokens"], usage["completion_tokens"]
    if fmt == "openai_responses":
        return usage["input_tokens"], usage["output_tokens"]
    if fmt == "anthropic":
        return (usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"],
                usage["output_tokens"])
    return usage["promptTokenCount"], usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)


# ============================================================================================ the matrix


async def _records(ctx: Ctx, n: int) -> list[dict]:
    await ctx.env.sidecar.store.flush()
    recs = [r for r in ctx.env.sidecar.store.recent(1000) if r["client"] == ctx.label]
    assert len(recs) == n, f"expected {n} records for {ctx.label}, got {len(recs)}"
    return recs[::-1]  # oldest first


def _generation(fake: FakeUpstream, since: int) -> list[ReceivedRequest]:
    return [r for r in fake.received[since:] if r.method == "POST"]


@pytest.mark.parametrize("client, provider, stream, scenario", _cases())
async def test_matrix(env: Env, client: str, provider: str, stream: bool, scenario: str) -> None:
    ctx = Ctx(env, client, provider, stream, f"matrix-{next(env.counter)}-{client}-{provider}")
    driver = DRIVERS[client]
    fake, fmt = ctx.fake, upstream_format(ctx)
    seen, sent = len(fake.received), len(fake.sent)  # type: ignore[attr-defined]
    await SCENARIO_FUNCS[scenario](ctx, driver, fake, fmt, seen, sent)


async def _plain(ctx: Ctx, d: Any, fake: FakeUpstream, fmt: str, seen: int, sent: int) -> None:
    reply = await d.complete(ctx, d.user(USER_TEXT), system=SYSTEM)
    assert reply.text == ctx.expected_text(USER_TEXT)
    assert not reply.calls
    assert reply.finish == FINISH[ctx.client][0]
    if ctx.stream:  # streamed text reaches the client piece by piece, not buffered into one delta
        assert reply.text_deltas >= 2, f"only {reply.text_deltas} text delta(s) reached the client"
    [req] = _generation(fake, seen)
    body = validate(fmt, req, ctx)
    assert system_of(fmt, body) == SYSTEM
    assert PLACEHOLDER.encode() not in req.body and PLACEHOLDER not in str(req.headers)
    expected = fake_usage(fmt, fake.last_usage)
    assert reply.usage == expected, f"SDK usage {reply.usage} != fake's normalised usage {expected}"
    [rec] = await _records(ctx, 1)
    assert rec["status"] == 200 and rec["error"] is None and rec["inbound"] == ctx.client
    assert rec["provider"] == ctx.provider and rec["model"] == UPSTREAM_MODEL[ctx.provider]
    assert rec["stream"] is ctx.stream
    assert (rec["input_tokens"], rec["output_tokens"]) == expected
    assert rec["cost_usd"] and rec["cost_usd"] > 0


async def _tools(ctx: Ctx, d: Any, fake: FakeUpstream, fmt: str, seen: int, sent: int) -> None:
    hist = d.user(WEATHER_Q)
    # The OpenAI chat client streams without stream_options here: the cell also checks it gets no usage chunk.
    opts = {"include_usage": False} if ctx.client == "openai_chat" else {}
    first = await d.complete(ctx, hist, system=SYSTEM, tools=True, **opts)
    usage1 = fake_usage(fmt, fake.last_usage)
    assert [(c.name, c.args) for c in first.calls] == [("get_weather", {"city": "Paris"})]
    assert first.finish == FINISH[ctx.client][1]
    assert first.calls[0].id or ctx.client == "gemini", "the client got a tool call without an id"
    if ctx.stream:
        if d.streams_args:
            # Arguments streamed upstream (OpenAI, Anthropic) must reach the client as deltas, not one blob.
            want = 2 if ctx.provider != "gemini" else 1
            assert first.fragments >= want, f"{first.fragments} argument deltas reached the client, want >= {want}"
    [req1] = _generation(fake, seen)
    body1 = validate(fmt, req1, ctx)
    tools = tools_of(fmt, body1)
    assert list(tools) == ["get_weather"] and "city" in tools["get_weather"]["properties"], tools
    issued = issued_call_id(fmt, fake.sent[sent])  # type: ignore[attr-defined]
    if fmt == ctx.client:
        assert first.calls[0].id == issued  # pass-through: the client sees the provider's own id

    second = await d.complete(ctx, d.with_result(hist, first), system=SYSTEM, tools=True)
    usage2 = fake_usage(fmt, fake.last_usage)
    assert not second.calls
    assert second.text == ctx.expected_text(WEATHER_Q)
    assert second.finish == FINISH[ctx.client][0]
    assert first.usage in (usage1, None) and second.usage == usage2
    [req2] = _generation(fake, seen + 1)
    body2 = validate(fmt, req2, ctx)
    call_id, name, args, result_ref, result_name = tool_exchange_of(fmt, body2)
    assert (name, args) == ("get_weather", {"city": "Paris"})
    assert result_ref == call_id, f"the result refers to {result_ref!r}, the call in history is {call_id!r}"
    if issued is not None:
        assert call_id == issued, f"the provider issued {issued!r} but got back {call_id!r}"
    if fmt == "gemini":
        assert result_name == "get_weather"
    recs = await _records(ctx, 2)
    assert [(r["input_tokens"], r["output_tokens"]) for r in recs] == [usage1, usage2]
    assert all(r["status"] == 200 and r["cost_usd"] > 0 for r in recs), recs


async def _json(ctx: Ctx, d: Any, fake: FakeUpstream, fmt: str, seen: int, sent: int) -> None:
    reply = await d.complete(ctx, d.user(USER_TEXT), system=SYSTEM, schema=SCHEMA)
    assert reply.text == ctx.expected_text(USER_TEXT)
    [req] = _generation(fake, seen)
    body = validate(fmt, req, ctx)
    schema = schema_of(fmt, body)
    assert isinstance(schema, dict) and str(schema.get("type")).lower() == "object", schema
    assert list(schema["properties"]) == ["city"] and str(schema["properties"]["city"]["type"]).lower() == "string"
    assert schema.get("required") == ["city"]


async def _image(ctx: Ctx, d: Any, fake: FakeUpstream, fmt: str, seen: int, sent: int) -> None:
    reply = await d.complete(ctx, d.user(IMAGE_Q, image=True), system=SYSTEM)
    assert reply.text == ctx.expected_text(IMAGE_Q)
    [req] = _generation(fake, seen)
    body = validate(fmt, req, ctx)
    assert images_of(fmt, body) == [("image/png", PNG_B64)]


async def _error(ctx: Ctx, d: Any, fake: FakeUpstream, fmt: str, seen: int, sent: int) -> None:
    for status in (429, 500):
        fake.fail_next(status)
        with pytest.raises(d.errors[status]) as info:
            await d.complete(ctx, d.user(USER_TEXT), system=SYSTEM)
        code, message = d.error_status(info.value)
        assert code == status
        assert message and "injected" in message, message
        # A 429's retry hint puts the provider in a cool-down (issue 4); pretend it has passed so the
        # shared sidecar's next requests reach the fake again.
        ctx.env.sidecar.app[STATE].proxy.health = HealthBook()
    recs = await _records(ctx, 2)
    assert [r["status"] for r in recs] == [429, 500]


SCENARIO_FUNCS = {"plain": _plain, "tools": _tools, "json": _json, "image": _image, "error": _error}
