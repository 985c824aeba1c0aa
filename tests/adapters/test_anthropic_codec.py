"""Anthropic Messages codec: request parse/build, response parse/render, stream decode/encode (IR round trips)."""

from __future__ import annotations

import base64
import re
import string

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from adapters import anthropic_codec as ac
from adapters.ir import (
    ChatRequest,
    ChatResponse,
    DocumentPart,
    Finish,
    ImagePart,
    Message,
    Reasoning,
    ResponseFormat,
    StreamError,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    TranslationError,
    Usage,
    UsageUpdate,
)
from adapters.sse import SSEParser
from sidecar.transforms import TranslatedStream

MODEL = "claude-sonnet-4-5-20250929"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
JPEG = "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP"
EVENT_ADAPTER = TypeAdapter(RawMessageStreamEvent)

# ---------------------------------------------------------------------------------------------- helpers


def sdk_request_body(**kwargs) -> dict:
    """The JSON body the official anthropic SDK sends for these arguments (captured offline)."""
    seen: dict = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen["body"] = orjson.loads(request.content)
        return httpx2.Response(200, json=render_text_message())

    client = anthropic.Anthropic(api_key="k", base_url="http://sidecar.test", max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    client.messages.create(**kwargs)
    return seen["body"]


def sdk_stream(raw: bytes) -> anthropic.types.Message:
    """Feed SSE bytes to the SDK's own stream reader and accumulator; return its final message."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    client = anthropic.Anthropic(api_key="k", base_url="http://sidecar.test", max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as s:
        return s.get_final_message()


def render_text_message() -> dict:
    return ac.render_response(ChatResponse("msg_x", MODEL, [TextPart("ok")], usage=Usage(3, 1)), MODEL)


def frames(raw: bytes) -> list[tuple[str | None, dict]]:
    p = SSEParser()
    return [(e.event, orjson.loads(e.data)) for e in p.feed(raw) + p.flush()]


def sse(*events: tuple[str, dict], event_lines: bool = True) -> bytes:
    return b"".join((b"event: %b\n" % name.encode() if event_lines else b"") + b"data: " + orjson.dumps(data) + b"\n\n"
                    for name, data in events)


def decode(raw: bytes, chunk: int | None = None) -> list:
    p, d, out = SSEParser(), ac.StreamDecoder(), []
    pieces = [raw] if chunk is None else [raw[i:i + chunk] for i in range(0, len(raw), chunk)]
    for piece in pieces:
        for e in p.feed(piece):
            out += d.feed(e)
    for e in p.flush():
        out += d.feed(e)
    return out + d.close()


def encode(events: list, model: str = MODEL) -> bytes:
    enc = ac.StreamEncoder(model)
    return b"".join(enc.feed(e) for e in events) + enc.close()


# ---------------------------------------------------------------------------------------------- parse_request

CLAUDE_CODE = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Use the tools available to you.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                     {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "Bash", "input": {"command": "ls", "description": "List files"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "a.py\nb.py", "cache_control": {"type": "ephemeral"}},
        ]},
    ],
    "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"],
        "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}, "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "metadata": {"user_id": "user_abc_account_123_session_456"},
    "temperature": 1,
}


def test_parse_claude_code_request():
    req = ac.parse_request(CLAUDE_CODE)
    assert req.model == MODEL and req.stream is True and req.max_tokens == 32000 and req.temperature == 1
    assert req.system == ["You are Claude Code, Anthropic's official CLI for Claude.", "Use the tools available to you."]
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert req.messages[0].parts == [TextPart("<system-reminder>ctx</system-reminder>"), TextPart("list files")]
    assert req.messages[1].parts == [
        ThinkingPart("I should run ls.", "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"),
        TextPart("Let me look."),
        ToolCallPart("toolu_01A09q90qw90lq917835lq9", "Bash", '{"command":"ls","description":"List files"}'),
    ]
    assert req.messages[2].parts == [ToolResultPart("toolu_01A09q90qw90lq917835lq9", [TextPart("a.py\nb.py")], "Bash")]
    assert req.tools == [Tool("Bash", "Run a command", CLAUDE_CODE["tools"][0]["input_schema"])]
    assert req.tool_choice == ToolChoice("auto") and req.parallel_tool_calls is None
    assert req.reasoning == Reasoning(None, 31999, True)
    assert req.user == "user_abc_account_123_session_456"
    assert req.unsupported == {}


def test_parse_sdk_generated_body():
    body = sdk_request_body(
        model="claude-haiku-4-5", max_tokens=512, system="Be brief.", extra_body={"temperature": 0.2, "top_k": 40},
        stop_sequences=["###"], messages=[{"role": "user", "content": "Hello"}],
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    req = ac.parse_request(body)
    assert req.system == ["Be brief."] and req.messages == [Message("user", [TextPart("Hello")])]
    assert (req.max_tokens, req.temperature, req.top_k, req.stop) == (512, 0.2, 40, ["###"])
    assert req.tool_choice == ToolChoice("tool", "get_weather") and req.parallel_tool_calls is False
    assert req.stream is False


def test_parse_consecutive_turns_prefill_and_empty_content():
    req = ac.parse_request({"model": MODEL, "max_tokens": 10, "system": "", "messages": [
        {"role": "user", "content": "one"}, {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": ""}, {"role": "assistant", "content": "The answer is ("}]})
    assert req.system == []
    assert req.messages == [Message("user", [TextPart("one")]), Message("user", [TextPart("two")]),
                            Message("user", []), Message("assistant", [TextPart("The answer is (")])]


@pytest.mark.parametrize("choice, want, parallel", [
    ({"type": "auto"}, ToolChoice("auto"), None),
    ({"type": "any"}, ToolChoice("required"), None),
    ({"type": "none"}, ToolChoice("none"), None),
    ({"type": "tool", "name": "f"}, ToolChoice("tool", "f"), None),
    ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice("required"), False),
    (None, None, None),
])
def test_parse_tool_choice(choice, want, parallel):
    body = {"model": MODEL, "max_tokens": 5, "messages": [], "tools": [{"name": "f", "input_schema": {"type": "object"}}]}
    if choice:
        body["tool_choice"] = choice
    req = ac.parse_request(body)
    assert req.tool_choice == want and req.parallel_tool_calls is parallel


def test_parse_images_documents_and_tool_results():
    req = ac.parse_request({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "r.pdf"},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
            {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]}},
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": [
            {"type": "text", "text": "partial"}, {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG}}]},
            {"type": "tool_result", "tool_use_id": "toolu_unknown"}]},
    ]})
    assert req.messages[0].parts == [
        ImagePart(data=PNG, media_type="image/png"), ImagePart(url="https://example.com/cat.jpg"),
        DocumentPart(data="JVBERi0x", filename="r.pdf"), DocumentPart(url="https://example.com/a.pdf"),
        DocumentPart(data=base64.b64encode(b"plain words").decode(), media_type="text/plain"), TextPart("chunk"),
    ]
    assert req.messages[2].parts == [
        ToolResultPart("toolu_1", [TextPart("partial"), ImagePart(data=JPEG, media_type="image/jpeg")], "shot", True),
        ToolResultPart("toolu_unknown", [], None, False),
    ]


@pytest.mark.parametrize("extra, want", [
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, Reasoning(None, 1024, True)),
    ({"thinking": {"type": "enabled", "budget_tokens": 3000, "display": "omitted"}}, Reasoning(None, 3000, False)),
    ({"thinking": {"type": "enabled", "budget_tokens": 3000}, "output_config": {"effort": "medium"}}, Reasoning("medium", 3000, True)),
    ({"thinking": {"type": "adaptive"}}, Reasoning("high", None, True)),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, Reasoning("low", None, True)),
    ({"thinking": {"type": "disabled"}}, Reasoning("none")),
    ({"output_config": {"effort": "max"}}, Reasoning("max")),
    ({}, None),
])
def test_parse_reasoning(extra, want):
    assert ac.parse_request({"model": MODEL, "max_tokens": 5, "messages": [], **extra}).reasoning == want


def test_parse_structured_output_current_and_legacy():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    for key, value in (("output_config", {"format": {"type": "json_schema", "schema": schema}}),
                       ("output_format", {"type": "json_schema", "schema": schema})):
        req = ac.parse_request({"model": MODEL, "max_tokens": 5, "messages": [], key: value})
        assert req.response_format == ResponseFormat("json_schema", schema)


def test_parse_server_tools_beta_fields_and_unknown_fields():
    req = ac.parse_request({
        "model": MODEL, "max_tokens": 5, "future_field": {"x": 1}, "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "found", "citations": None, "unknown": 1}]}],
        "tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}, "strict": True},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}], "container": None,
        "context_management": {}, "service_tier": "auto", "speed": "fast", "inference_geo": "us",
    })
    assert req.tools == [Tool("f", None, {"type": "object"}, True)]
    assert req.messages[0].parts == [TextPart("found")]
    assert req.unsupported == {
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "content_blocks": ["server_tool_use", "web_search_tool_result"],
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
        "service_tier": "auto",
    }


def test_parse_decodes_sanitized_tool_ids():
    sanitized = ac.encode_tool_id("functions.search:0")
    req = ac.parse_request({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": sanitized, "name": "search", "input": {"q": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": sanitized, "content": "r"}]}]})
    assert req.messages[0].parts[0].id == "functions.search:0"
    assert req.messages[1].parts[0] == ToolResultPart("functions.search:0", [TextPart("r")], "search")


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL, "messages": "hi"}, "messages"),
    ({"messages": []}, "model"),
    ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]}, "messages[0].content[0]"),
])
def test_parse_errors(body, param):
    with pytest.raises(TranslationError) as info:
        ac.parse_request(body)
    assert info.value.param == param and info.value.status == 400


def test_parse_model_and_stream_overrides():
    req = ac.parse_request({"model": "a", "max_tokens": 1, "messages": [], "stream": True}, model="b", stream=False)
    assert (req.model, req.stream) == ("b", False)


# ---------------------------------------------------------------------------------------------- build_request


def user(*parts) -> Message:
    return Message("user", list(parts))


def assistant(*parts) -> Message:
    return Message("assistant", list(parts))


@pytest.mark.parametrize("model, stream, want", [
    ("claude-3-haiku-20240307", False, 4096),
    ("claude-3-opus-20240229", True, 4096),
    ("claude-3-5-sonnet-20241022", True, 8192),
    ("claude-3-5-haiku-latest", False, 8192),
    ("claude-3-7-sonnet-20250219", False, 16384),
    ("claude-sonnet-4-5-20250929", False, 16384),
    ("claude-opus-4-1", True, 32000),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", True, 32000),
    ("MiniMax-M2", False, 4096),
])
def test_default_max_tokens(model, stream, want):
    body, _ = ac.build_request(ChatRequest(model, [user(TextPart("hi"))], stream=stream), model)
    assert body["max_tokens"] == want and ac.default_max_tokens(model, stream) == want
    assert body.get("stream", False) is stream


def test_build_openai_style_history():
    """OpenAI: two system messages, an assistant turn with only tool calls, one tool message per call, then
    a user message — all consecutive user content becomes one turn with the results first."""
    req = ChatRequest(MODEL, system=["You are terse.", "", "Answer in French."], messages=[
        user(TextPart("weather in Paris and Rome?")),
        assistant(TextPart(""), ToolCallPart("call_abc", "weather", '{"city":"Paris"}'),
                  ToolCallPart("functions.weather:1", "weather", '{"city":"Rome"}')),
        user(ToolResultPart("call_abc", [TextPart("18C")])),
        user(TextPart("also, be quick"), ToolResultPart("functions.weather:1", [TextPart("21C")])),
    ], max_tokens=300)
    body, warnings = ac.build_request(req, MODEL)
    assert warnings == []
    rome = ac.encode_tool_id("functions.weather:1")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", rome) and ac.decode_tool_id(rome) == "functions.weather:1"
    assert body == {
        "model": MODEL, "system": "You are terse.\n\nAnswer in French.", "max_tokens": 300,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_abc", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": rome, "name": "weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_abc", "content": [{"type": "text", "text": "18C"}]},
                {"type": "tool_result", "tool_use_id": rome, "content": [{"type": "text", "text": "21C"}]},
                {"type": "text", "text": "also, be quick"}]},
        ],
    }


def test_build_drops_empty_blocks_and_turns_and_strips_prefill():
    req = ChatRequest(MODEL, [user(TextPart("a")), assistant(TextPart("  ")), user(TextPart("b"), TextPart("")),
                              assistant(TextPart("Sure: "))], max_tokens=5)
    body, _ = ac.build_request(req, MODEL)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Sure:"}]},
    ]


def test_build_tool_result_edge_cases_and_bad_arguments():
    req = ChatRequest(MODEL, [assistant(ToolCallPart("t1", "noargs", ""), ToolCallPart("t2", "bad", '{"a":')),
                              user(ToolResultPart("t1", [TextPart("")], is_error=True), ToolResultPart("t2", []))], max_tokens=5)
    body, warnings = ac.build_request(req, MODEL)
    assert body["messages"][0]["content"][0]["input"] == {} and body["messages"][0]["content"][1]["input"] == {}
    assert body["messages"][1]["content"] == [{"type": "tool_result", "tool_use_id": "t1", "is_error": True},
                                              {"type": "tool_result", "tool_use_id": "t2"}]
    assert any("'bad'" in w for w in warnings)


def test_build_sampling_clamp_and_conflicts():
    req = ChatRequest(MODEL, [user(TextPart("x"))], temperature=1.5, top_p=0.9, top_k=20, stop=["END", "\n", " "],
                      seed=7, presence_penalty=0.5, frequency_penalty=0.0, user="u-1", metadata={"k": "v"})
    body, warnings = ac.build_request(req, MODEL)
    assert body["temperature"] == 1.0 and "top_p" not in body and body["top_k"] == 20
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-1"}
    joined = " | ".join(warnings)
    for fragment in ("temperature 1.5 clamped to 1", "top_p dropped", "whitespace-only stop", "seed dropped",
                     "presence_penalty dropped", "metadata dropped"):
        assert fragment in joined
    assert "frequency_penalty" not in joined  # 0 is the default: nothing lost
    body, warnings = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], top_p=0.5), MODEL)
    assert body["top_p"] == 0.5 and warnings == []


TOOLS = [Tool("f", "does f", {"type": "object", "properties": {"x": {"type": "integer"}}}), Tool("g", None, {})]


@pytest.mark.parametrize("choice, parallel, want", [
    (None, None, None),
    (ToolChoice("auto"), None, {"type": "auto"}),
    (ToolChoice("none"), None, {"type": "none"}),
    (ToolChoice("required"), None, {"type": "any"}),
    (ToolChoice("tool", "f"), None, {"type": "tool", "name": "f"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    (ToolChoice("required"), False, {"type": "any", "disable_parallel_tool_use": True}),
    (ToolChoice("none"), False, {"type": "none"}),
    (ToolChoice("auto"), True, {"type": "auto"}),
])
def test_build_tool_choice(choice, parallel, want):
    body, _ = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], tools=TOOLS, tool_choice=choice,
                                           parallel_tool_calls=parallel), MODEL)
    assert body.get("tool_choice") == want
    assert body["tools"] == [
        {"name": "f", "description": "does f", "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        {"name": "g", "input_schema": {"type": "object"}},
    ]


def test_build_tool_choice_without_tools_and_strict():
    body, _ = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], tool_choice=ToolChoice("none"),
                                           parallel_tool_calls=False), MODEL)
    assert "tool_choice" not in body and "tools" not in body
    strict = [Tool("f", None, {"type": "object"}, strict=True)]
    body, warnings = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], tools=strict), MODEL)
    assert body["tools"][0]["strict"] is True and warnings == []
    body, warnings = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], tools=strict), "claude-3-5-haiku-latest")
    assert "strict" not in body["tools"][0] and warnings


def test_build_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}
    body, _ = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], response_format=ResponseFormat(
        "json_schema", schema, "answer", True)), MODEL)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    body, _ = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], response_format=ResponseFormat("json_object")), MODEL)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    body, _ = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], response_format=ResponseFormat("text")), MODEL)
    assert "output_config" not in body


@pytest.mark.parametrize("reasoning, budget", [
    (Reasoning("minimal"), 1024), (Reasoning("low"), 1024), (Reasoning("medium"), 2048), (Reasoning("high"), 4096),
    (Reasoning("xhigh"), 8192), (Reasoning("none"), None), (Reasoning(budget_tokens=500), 1024),
    (Reasoning("low", budget_tokens=10000), 10000), (Reasoning(budget_tokens=0), None),
    (Reasoning(budget_tokens=-1), 2048), (Reasoning(include_thoughts=True), 2048), (None, None),
])
def test_build_reasoning_budget(reasoning, budget):
    body, _ = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], reasoning=reasoning), MODEL)
    assert body.get("thinking") == (None if budget is None else {"type": "enabled", "budget_tokens": budget})
    if budget:
        assert body["max_tokens"] > budget


def test_build_reasoning_dropped_for_models_without_thinking():
    body, warnings = ac.build_request(ChatRequest("claude-3-5-haiku-latest", [user(TextPart("x"))],
                                                  reasoning=Reasoning("high"), temperature=0.5), "claude-3-5-haiku-latest")
    assert "thinking" not in body and body["temperature"] == 0.5 and "no extended thinking" in warnings[0]


def test_build_thinking_constraints():
    req = ChatRequest(MODEL, [user(TextPart("x"))], reasoning=Reasoning("high"), max_tokens=1000,
                      temperature=0.3, top_k=5, top_p=0.5)
    body, warnings = ac.build_request(req, MODEL)
    assert body["thinking"]["budget_tokens"] == 4096 and body["max_tokens"] == 5096
    assert not {"temperature", "top_k", "top_p"} & body.keys()
    assert len(warnings) == 4 and "max_tokens raised to 5096" in warnings[0]
    for choice in (ToolChoice("required"), ToolChoice("tool", "f")):
        with pytest.raises(TranslationError) as info:
            ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], tools=TOOLS, tool_choice=choice,
                                         reasoning=Reasoning("low")), MODEL)
        assert info.value.param == "tool_choice"


def test_build_thinking_replay():
    history = [user(TextPart("q")),
               assistant(ThinkingPart("signed", "sig1"), ThinkingPart(redacted="opaque"), ThinkingPart("unsigned"),
                         ToolCallPart("toolu_1", "f", "{}")),
               user(ToolResultPart("toolu_1", [TextPart("r")]))]
    body, warnings = ac.build_request(ChatRequest(MODEL, history, reasoning=Reasoning("low")), MODEL)
    assert body["messages"][1]["content"][:2] == [{"type": "thinking", "thinking": "signed", "signature": "sig1"},
                                                  {"type": "redacted_thinking", "data": "opaque"}]
    assert len(body["messages"][1]["content"]) == 3 and body["thinking"]["type"] == "enabled"
    assert any("without a signature" in w for w in warnings)
    # An OpenAI client's tool loop carries no signed thinking: thinking goes off instead of a 400 (pitfall 14).
    body, warnings = ac.build_request(ChatRequest(MODEL, [history[0], assistant(ToolCallPart("toolu_1", "f", "{}")),
                                                          history[2]], reasoning=Reasoning("low")), MODEL)
    assert "thinking" not in body and any("reasoning turned off" in w for w in warnings)


def test_build_images_and_documents():
    txt = base64.b64encode("héllo".encode()).decode()
    req = ChatRequest(MODEL, [user(
        ImagePart(url="https://example.com/a.png", detail="high"), ImagePart(data=PNG, media_type="image/jpeg"),
        ImagePart(url=f"data:image/jpeg;base64,{JPEG}"), ImagePart(data="AAAA"),
        DocumentPart(data="JVBERi0x", filename="r.pdf"), DocumentPart(url="https://example.com/x.pdf"),
        DocumentPart(data=txt, media_type="text/plain"), TextPart("describe"))])
    body, _ = ac.build_request(req, MODEL)
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "r.pdf"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/x.pdf"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "héllo"}},
        {"type": "text", "text": "describe"},
    ]
    with pytest.raises(TranslationError):
        ac.build_request(ChatRequest(MODEL, [user(DocumentPart(data="UEsDB", media_type="application/zip"))]), MODEL)


def test_build_refusals_and_advisory_drops():
    with pytest.raises(TranslationError) as info:
        ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], n=2), MODEL)
    assert info.value.param == "n"
    for key in ("logprobs", "audio", "cachedContent", "content_blocks", "something_new"):
        with pytest.raises(TranslationError) as info:
            ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], unsupported={key: True}), MODEL)
        assert info.value.param == key and "Anthropic" in info.value.message
    body, warnings = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], n=1, unsupported={"store": True}), MODEL)
    assert warnings == ["store dropped: Anthropic Messages has no equivalent"] and "store" not in body
    # Hosted tools that are merely offered run only at their own provider: dropped loudly, not refused.
    body, warnings = ac.build_request(ChatRequest(MODEL, [user(TextPart("x"))], unsupported={"tools": ["web_search"]}), MODEL)
    assert warnings == ["tools dropped: Anthropic Messages has no equivalent"] and "tools" not in body


# ---------------------------------------------------------------------------------------------- responses

RESPONSE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": MODEL,
    "content": [
        {"type": "thinking", "thinking": "Need the weather.", "signature": "EqQBCgIYAhIM"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        {"type": "text", "text": "Checking.", "citations": None},
        {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 472, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 91,
              "service_tier": "standard"},
}


def test_parse_response():
    resp = ac.parse_response(RESPONSE)
    assert resp.id == "msg_01XFDUDYJgAACzvnptvVoYEL" and resp.model == MODEL and resp.finish == "tool_calls"
    assert resp.parts == [ThinkingPart("Need the weather.", "EqQBCgIYAhIM"), ThinkingPart(redacted="EmwKAhgBEgy3va3pzix"),
                          TextPart("Checking."),
                          ToolCallPart("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", '{"location":"San Francisco, CA"}')]
    assert resp.usage == Usage(input=2572, output=91, cache_read=2000, cache_write=100)


@pytest.mark.parametrize("reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
    ("something_new", "stop"), (None, "stop"),
])
def test_stop_reason_table(reason, finish):
    assert ac.parse_response({**RESPONSE, "stop_reason": reason, "content": []}).finish == finish


def test_render_response_validates_with_sdk_and_round_trips():
    body = ac.render_response(ac.parse_response(RESPONSE), "my-alias")
    msg = SDKMessage.model_validate(body)
    assert msg.model == "my-alias" and msg.stop_reason == "tool_use" and msg.id == RESPONSE["id"]
    assert body["usage"] == {"input_tokens": 472, "output_tokens": 91, "cache_creation_input_tokens": 100,
                             "cache_read_input_tokens": 2000}
    assert body["content"] == [{k: v for k, v in b.items() if k != "citations"} for b in RESPONSE["content"]]
    assert ac.parse_response(body).parts == ac.parse_response(RESPONSE).parts


def test_render_response_from_other_formats():
    resp = ChatResponse("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "gpt-4o", [
        TextPart(""), ThinkingPart("hmm"), TextPart("Here."),
        ToolCallPart("functions.search:0", "search", '{"q": "x"}'), ToolCallPart("", "noid", ""),
        ToolCallPart("call_2", "cut", '{"q": "trunc'),
    ], finish="stop", usage=Usage(input=100, output=20, cache_read=60, reasoning=5))
    body = ac.render_response(resp, "gpt-4o")
    SDKMessage.model_validate(body)
    assert body["id"] == "msg_chatcmplB9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert body["stop_reason"] == "tool_use"  # Gemini-style "stop" with calls: Anthropic clients must see tool_use
    ids = [b["id"] for b in body["content"] if b["type"] == "tool_use"]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids) and len(set(ids)) == 3
    assert ac.decode_tool_id(ids[0]) == "functions.search:0" and ids[2] == "call_2"
    assert [b["input"] for b in body["content"] if b["type"] == "tool_use"] == [{"q": "x"}, {}, {}]
    assert body["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": ""}
    assert body["usage"] == {"input_tokens": 40, "output_tokens": 20, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 60, "output_tokens_details": {"thinking_tokens": 5}}
    stopped = ac.render_response(ChatResponse("x", "m", [TextPart("a")], "stop", "###"), "m")
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "###")
    for finish, reason in (("length", "max_tokens"), ("content_filter", "refusal"), ("error", "end_turn")):
        assert ac.render_response(ChatResponse("x", "m", [], finish), "m")["stop_reason"] == reason


# ---------------------------------------------------------------------------------------------- stream decode

UPSTREAM = sse(
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1000, "output_tokens": 2}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Weather tool."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIY"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Okay, "}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "checking."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("content_block_start", {"type": "content_block_start", "index": 3, "content_block": {
        "type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 3}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 89}}),
    ("message_stop", {"type": "message_stop"}),
)

UPSTREAM_IR = [
    StreamStart("msg_014p7gG3wDgGV9EUtLvnow3U", MODEL, Usage(input=1472, output=2, cache_read=1000)),
    ThinkingDelta("Weather tool."), ThinkingDelta("", "EqQBCgIY"),
    TextDelta("Okay, "), TextDelta("checking."),
    ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
    ToolCallDelta(0, '{"location": "San Fra'), ToolCallDelta(0, 'ncisco, CA"}'), ToolCallEnd(0),
    ToolCallStart(1, "toolu_02", "get_time"), ToolCallDelta(1, "{}"), ToolCallEnd(1),
    Finish("tool_calls"), UsageUpdate(Usage(input=1472, output=89, cache_read=1000)),
]


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_decode_full_stream(chunk):
    assert decode(UPSTREAM, chunk) == UPSTREAM_IR


def test_decode_without_event_lines():
    assert decode(UPSTREAM.replace(b"event: ", b"x-ignored: ")) == UPSTREAM_IR


def test_decode_error_after_200_and_edge_cases():
    raw = sse(("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}}),
              ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    events = decode(raw)
    assert events[-2:] == [StreamError(529, "Overloaded"), ToolCallEnd(0)]
    assert decode(b"") == []
    assert decode(b"event: content_block_delta\ndata: {not json\n\n") == []
    stop_only = sse(("message_start", {"type": "message_start", "message": {"id": "m", "model": "x"}}), ("message_stop", {"type": "message_stop"}))
    assert decode(stop_only) == [StreamStart("m", "x", None), Finish("stop")]
    d = ac.StreamDecoder()
    assert d.close() == [] and d.close() == []


def test_decode_tool_input_in_start_block():
    raw = sse(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "t", "name": "f", "input": {"x": 1}}}), ("content_block_stop", {"type": "content_block_stop", "index": 0}))
    assert decode(raw) == [ToolCallStart(0, "t", "f"), ToolCallDelta(0, '{"x":1}'), ToolCallEnd(0)]


# ---------------------------------------------------------------------------------------------- stream encode

OPENAI_LIKE_IR = [
    StreamStart("chatcmpl-123", "gpt-4o"),
    TextDelta("Hel"), TextDelta("lo"),
    ToolCallStart(0, "call_Q1", "lookup"), ToolCallDelta(0, '{"q":'), ToolCallDelta(0, '"x"}'),
    Finish("tool_calls"),
    UsageUpdate(Usage(input=30, output=12, cache_read=10)),
]


def test_encode_exact_event_sequence():
    got = frames(encode(OPENAI_LIKE_IR, "alias"))
    assert got == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_chatcmpl123", "type": "message", "role": "assistant", "model": "alias", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 1}}}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "call_Q1", "name": "lookup", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"x"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"input_tokens": 20, "output_tokens": 12, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 10}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    for name, data in got[2:]:
        assert EVENT_ADAPTER.validate_python(data).type == name


def test_encode_emits_text_immediately():
    enc = ac.StreamEncoder(MODEL)
    enc.feed(StreamStart("msg_1", MODEL))
    assert b'"text":"a"' in enc.feed(TextDelta("a"))
    assert enc.feed(TextDelta("b")).count(b"text_delta") == 1


def test_encode_read_by_sdk():
    msg = sdk_stream(encode([
        StreamStart("msg_abc", MODEL, Usage(input=1500, cache_read=1000, cache_write=200)),
        ThinkingDelta("Let me "), ThinkingDelta("think."), ThinkingDelta(signature="sig=="),
        TextDelta("Answer: "), TextDelta("42"),
        ToolCallStart(0, "functions.calc:0", "calc"), ToolCallDelta(0, '{"expr"'), ToolCallDelta(0, ': "6*7"}'), ToolCallEnd(0),
        ToolCallStart(1, "", "noargs"), ToolCallEnd(1),
        Finish("tool_calls"), UsageUpdate(Usage(output=77, reasoning=10)),
    ]))
    assert msg.id == "msg_abc" and msg.stop_reason == "tool_use"
    thinking, text, calc, noargs = msg.content
    assert (thinking.thinking, thinking.signature) == ("Let me think.", "sig==")
    assert text.text == "Answer: 42"
    assert calc.input == {"expr": "6*7"} and ac.decode_tool_id(calc.id) == "functions.calc:0"
    assert noargs.input == {} and noargs.id.startswith("toolu_")
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens,
            msg.usage.output_tokens) == (300, 1000, 200, 77)


def test_encode_buffers_interleaved_tool_deltas():
    events = [StreamStart("x", "m"),
              ToolCallStart(0, "a", "fa"), ToolCallDelta(0, '{"p":'),
              ToolCallStart(1, "b", "fb"), ToolCallDelta(1, '{"q":'), ToolCallDelta(0, "1}"), ToolCallDelta(1, "2}"),
              ToolCallStart(2, "c", "fc"), ToolCallDelta(2, "{}"), ToolCallEnd(2),
              ToolCallEnd(0), ToolCallEnd(1), Finish("tool_calls")]
    got = frames(encode(events))
    kinds = [(n, d.get("index"), d.get("content_block", d.get("delta", {})).get("id") or
              d.get("delta", {}).get("partial_json")) for n, d in got[2:-2]]
    assert kinds == [
        ("content_block_start", 0, "a"), ("content_block_delta", 0, '{"p":'), ("content_block_delta", 0, "1}"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "b"), ("content_block_delta", 1, '{"q":2}'), ("content_block_stop", 1, None),
        ("content_block_start", 2, "c"), ("content_block_delta", 2, "{}"), ("content_block_stop", 2, None),
    ]
    # Held-back calls still streaming when the turn moves on are flushed and closed in order.
    msg = sdk_stream(encode([ToolCallStart(0, "a", "fa"), ToolCallStart(1, "b", "fb"), ToolCallDelta(1, '{"z":1}'),
                             ToolCallDelta(0, "{}"), TextDelta("after")]))
    assert [(b.type, getattr(b, "input", None)) for b in msg.content] == [("tool_use", {}), ("tool_use", {"z": 1}), ("text", None)]


def test_encode_error_and_close_semantics():
    enc = ac.StreamEncoder(MODEL)
    out = enc.feed(StreamStart("msg_1", MODEL)) + enc.feed(TextDelta("par"))
    err = enc.feed(StreamError(529, "Overloaded"))
    assert frames(err) == [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]
    assert enc.feed(TextDelta("more")) == b"" and enc.close() == b""
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        sdk_stream(out + err)


def test_encode_empty_stream_and_missing_finish():
    enc = ac.StreamEncoder(MODEL)
    first = enc.close()
    assert enc.close() == b""
    assert [n for n, _ in frames(first)] == ["message_start", "ping", "message_delta", "message_stop"]
    msg = sdk_stream(first)
    assert msg.content == [] and msg.stop_reason == "end_turn" and msg.usage.output_tokens == 0
    msg = sdk_stream(encode([StreamStart("x", "m"), TextDelta("cut")]))  # no Finish: still well-formed
    assert msg.content[0].text == "cut" and msg.stop_reason == "end_turn"
    msg = sdk_stream(encode([TextDelta("a"), Finish("stop", "###"), UsageUpdate(Usage(5, 2))]))
    assert (msg.stop_reason, msg.stop_sequence, msg.usage.input_tokens) == ("stop_sequence", "###", 5)
    msg = sdk_stream(encode([TextDelta("a"), Finish("length")]))
    assert msg.stop_reason == "max_tokens"


def test_encode_thinking_blocks_split_on_signature():
    got = frames(encode([ThinkingDelta("a"), ThinkingDelta(signature="s1"), ThinkingDelta("b"), TextDelta("t")]))
    starts = [d["content_block"]["type"] for n, d in got if n == "content_block_start"]
    assert starts == ["thinking", "thinking", "text"]


def test_anthropic_to_anthropic_through_ir_matches_sdk():
    """Decoder -> encoder via the relay's TranslatedStream: the SDK reads the same message either way."""
    t = TranslatedStream(ac.StreamDecoder(), ac.StreamEncoder(MODEL))
    out = t.feed(UPSTREAM[:100]) + t.feed(UPSTREAM[100:]) + t.finish("cut")
    direct, relayed = sdk_stream(UPSTREAM), sdk_stream(out)
    assert relayed.content == direct.content and relayed.stop_reason == direct.stop_reason
    assert relayed.usage.input_tokens == direct.usage.input_tokens and relayed.usage.output_tokens == 89
    assert t.complete and t.usage == Usage(input=1472, output=89, cache_read=1000)


# ---------------------------------------------------------------------------------------------- properties

ID_CHARS = string.ascii_letters + string.digits + "_-.:/ é"
ids = st.text(ID_CHARS, max_size=30)
words = st.text(string.ascii_letters + " \n.,é", max_size=20)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)
arguments = st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=6), json_values, max_size=4)


@given(st.text())
def test_tool_id_encoding_is_reversible_and_valid(tool_id):
    enc = ac.encode_tool_id(tool_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", enc) and ac.decode_tool_id(enc) == tool_id
    assert ac.encode_tool_id(ac.decode_tool_id(enc)) == enc


def _part(role: str):
    if role == "user":
        return st.one_of(st.builds(TextPart, words), st.builds(
            ToolResultPart, ids, st.lists(st.builds(TextPart, words), max_size=2), st.none(), st.booleans()))
    return st.one_of(st.builds(TextPart, words), st.builds(
        ToolCallPart, ids, st.sampled_from(["f", "g"]), arguments.map(lambda a: orjson.dumps(a).decode())))


messages = st.lists(st.sampled_from(["user", "assistant"]).flatmap(
    lambda r: st.builds(Message, st.just(r), st.lists(_part(r), max_size=3))), max_size=6)


@st.composite
def requests(draw) -> ChatRequest:
    tools = [Tool("f", draw(st.none() | words), {"type": "object", "properties": {"x": {"type": "integer"}}}),
             Tool("g", None, {"type": "object"})]
    return ChatRequest(
        model=draw(st.sampled_from([MODEL, "claude-3-5-haiku-latest"])), messages=draw(messages),
        system=draw(st.lists(words, max_size=3)), tools=tools,
        tool_choice=draw(st.sampled_from([None, ToolChoice("auto"), ToolChoice("none"), ToolChoice("required"),
                                          ToolChoice("tool", "g")])),
        parallel_tool_calls=draw(st.sampled_from([None, True, False])),
        max_tokens=draw(st.none() | st.integers(1, 100000)),
        temperature=draw(st.none() | st.floats(0, 2)), top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 500)), stop=draw(st.lists(words, max_size=3)),
        stream=draw(st.booleans()), user=draw(st.none() | st.text(string.ascii_letters, min_size=1, max_size=8)),
    )


def normalise(req: ChatRequest) -> ChatRequest:
    """What build_request -> parse_request gives back: the documented normalisation."""
    merged: list[Message] = []
    for m in req.messages:
        parts = []
        for p in m.parts:
            if type(p) is TextPart and not p.text.strip():
                continue
            if type(p) is ToolCallPart:
                p = ToolCallPart(p.id, p.name, orjson.dumps(orjson.loads(p.arguments)).decode())
            if type(p) is ToolResultPart:
                p = ToolResultPart(p.tool_call_id, [t for t in p.content if t.text.strip()], None, p.is_error)
            parts.append(p)
        if not parts:
            continue
        if merged and merged[-1].role == m.role:
            merged[-1].parts.extend(parts)
        else:
            merged.append(Message(m.role, parts))
    for m in merged:
        if m.role == "user":
            m.parts = [p for p in m.parts if type(p) is ToolResultPart] + [p for p in m.parts if type(p) is not ToolResultPart]
    if merged and merged[-1].role == "assistant" and type(merged[-1].parts[-1]) is TextPart:
        merged[-1].parts[-1] = TextPart(merged[-1].parts[-1].text.rstrip())
    names: dict[str, str] = {}
    for m in merged:
        for i, p in enumerate(m.parts):
            if type(p) is ToolCallPart:
                names[p.id] = p.name
            elif type(p) is ToolResultPart:
                m.parts[i] = ToolResultPart(p.tool_call_id, p.content, names.get(p.tool_call_id), p.is_error)
    system = "\n\n".join(s for s in req.system if s)
    temperature = None if req.temperature is None else min(1.0, req.temperature)
    choice, parallel = req.tool_choice, req.parallel_tool_calls
    if parallel is False and choice is None:
        choice = ToolChoice("auto")
    if parallel is not False or (choice and choice.mode == "none"):
        parallel = None
    return ChatRequest(
        model=req.model, messages=merged, system=[system] if system else [],
        tools=[Tool(t.name, t.description or None, t.parameters) for t in req.tools],
        tool_choice=choice, parallel_tool_calls=parallel,
        max_tokens=req.max_tokens if req.max_tokens is not None else ac.default_max_tokens(req.model, req.stream),
        temperature=temperature, top_p=req.top_p if temperature is None else None, top_k=req.top_k,
        stop=[s for s in req.stop if s.strip()], stream=req.stream, user=req.user,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_request_round_trip(req):
    body, _ = ac.build_request(req, req.model)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", b["id"] if b["type"] == "tool_use" else b["tool_use_id"])
               for m in body["messages"] for b in m["content"] if b["type"] in ("tool_use", "tool_result"))
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:]))
    assert ac.parse_request(orjson.loads(orjson.dumps(body))) == normalise(req)


text_block = st.lists(st.text(min_size=1, max_size=10).map(TextDelta), min_size=1, max_size=3)
thinking_block = st.tuples(st.lists(st.text(min_size=1, max_size=10).map(ThinkingDelta), min_size=1, max_size=3),
                           st.none() | st.text(string.ascii_letters, min_size=1, max_size=8)).map(
    lambda t: t[0] + ([ThinkingDelta("", t[1])] if t[1] else []))
tool_block = st.tuples(st.text(ID_CHARS, min_size=1, max_size=30), st.sampled_from(["f", "g"]), arguments, st.lists(st.integers(0, 40), max_size=3))


@st.composite
def ir_streams(draw) -> list:
    events: list = [StreamStart("msg_" + draw(st.text(string.ascii_letters, min_size=1, max_size=10)), "up",
                                draw(st.none() | st.builds(Usage, st.integers(50, 99), st.just(0), st.integers(0, 20), st.integers(0, 20))))]
    tools = 0
    for kind in draw(st.lists(st.sampled_from(["text", "thinking", "tool"]), max_size=6)):
        if kind == "text":
            events += draw(text_block)
        elif kind == "thinking":
            events += draw(thinking_block)
        else:
            tid, name, args, cuts = draw(tool_block)
            text = orjson.dumps(args).decode()
            points = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
            events += [ToolCallStart(tools, tid, name)]
            events += [ToolCallDelta(tools, text[a:b]) for a, b in zip(points, points[1:])]
            events += [ToolCallEnd(tools)]
            tools += 1
    reason = "tool_calls" if tools else draw(st.sampled_from(["stop", "length", "content_filter"]))
    return events + [Finish(reason), UsageUpdate(Usage(output=draw(st.integers(0, 999))))]


def canonical(events: list) -> tuple[list, str | None, Usage]:
    """Blocks as (kind, payload…) with adjacent text runs joined; the finish; the merged usage."""
    items: list = []
    finish, usage = None, Usage()
    args: dict[int, list] = {}
    for e in events:
        t = type(e)
        if t is TextDelta:
            if items and items[-1][0] == "text":
                items[-1][1] += e.text
            else:
                items.append(["text", e.text])
        elif t is ThinkingDelta:
            if e.text and (not items or items[-1][0] != "thinking" or items[-1][2]):
                items.append(["thinking", "", None])
            items[-1][1] += e.text
            if e.signature:
                items[-1][2] = e.signature
        elif t is ToolCallStart:
            args[e.index] = []
            items.append(["tool", e.id, e.name, args[e.index]])
        elif t is ToolCallDelta:
            args[e.index].append(e.arguments)
        elif t is Finish:
            finish = e.reason
        elif t is UsageUpdate or (t is StreamStart and e.usage):
            usage.merge(e.usage)
    for item in items:
        if item[0] == "tool":
            item[3] = "".join(item[3])
    return items, finish, usage


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ir_streams(), st.integers(1, 50))
def test_stream_round_trip(events, chunk):
    raw = encode(events, "client-model")
    for name, data in frames(raw):
        if name != "ping":
            assert EVENT_ADAPTER.validate_python(data).type == name
    decoded = decode(raw, chunk)
    assert (decoded[0].id, decoded[0].model) == (events[0].id, "client-model")
    want_items, want_finish, want_usage = canonical(events)
    got_items, got_finish, got_usage = canonical(decoded)
    assert got_items == want_items and got_finish == want_finish
    # message_start reports output_tokens 1 before generating, as Anthropic does; counts are cumulative maxima
    assert (got_usage.input, got_usage.output, got_usage.cache_read, got_usage.cache_write) == (
        want_usage.input, max(1, want_usage.output), want_usage.cache_read, want_usage.cache_write)


def test_image_types_anthropic_cannot_take_are_refused():
    from adapters.ir import ImagePart
    req = ChatRequest(MODEL, [user(ImagePart(data="AAAAGGZ0eXBoZWlj", media_type="image/heic"))])
    with pytest.raises(TranslationError) as info:
        ac.build_request(req, MODEL)
    assert info.value.param == "image" and "image/heic" in info.value.message
