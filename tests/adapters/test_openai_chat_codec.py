"""OpenAI Chat Completions codec: requests both ways, responses both ways, streams both ways.

Fixtures are hand-written from formats.md and the openai SDK types; wherever the SDK can read our output
offline (ChatCompletion, ChatCompletionChunk, its Stream over an in-memory response, the stream-state
accumulator, the request-params TypedDicts) it does.
"""

from __future__ import annotations

import base64
import string
from collections.abc import Iterable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params
from pydantic import TypeAdapter

from adapters import openai_chat_codec as codec
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
from adapters.sse import SSEEvent, SSEParser

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PDF_B64 = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF").decode()
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def events(raw: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(raw) + parser.flush()


def decode(raw: bytes) -> list[Any]:
    dec = codec.StreamDecoder()
    out = [e for ev in events(raw) for e in dec.feed(ev)]
    return out + dec.close()


def encode(evs: Iterable[Any], model: str = "gpt-4.1-mini", include_usage: bool = False) -> bytes:
    enc = codec.StreamEncoder(model, include_usage=include_usage)
    return b"".join(enc.feed(e) for e in evs) + enc.close()


def payloads(raw: bytes) -> list[Any]:
    """Each SSE payload as JSON, ``[DONE]`` kept as the bytes marker."""
    return [e.data if e.data == b"[DONE]" else orjson.loads(e.data) for e in events(raw)]


def _materialize(v: Any) -> Any:
    """Pydantic validates Iterable[...] lazily; walk the result so every nested item gets validated."""
    if isinstance(v, dict):
        return {k: _materialize(x) for k, x in v.items()}
    if isinstance(v, (str, bytes, int, float, bool)) or v is None:
        return v
    return [_materialize(x) for x in v]


_PARAMS = TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)
_PARAMS_STREAM = TypeAdapter(completion_create_params.CompletionCreateParamsStreaming)


def assert_valid_request(body: dict[str, Any]) -> None:
    """The openai SDK's own request TypedDicts accept the body (roles, part shapes, tool shapes)."""
    _materialize((_PARAMS_STREAM if body.get("stream") else _PARAMS).validate_python(body))


def sdk_stream(raw: bytes) -> list[ChatCompletionChunk]:
    """Read encoded bytes exactly as the openai SDK reads an HTTP stream (raises APIError on error frames)."""
    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(200, content=raw, request=request, headers={"content-type": "text/event-stream"})
    return list(openai.Stream(cast_to=ChatCompletionChunk, response=response, client=client))


# ============================================================================================ parse_request


def test_parse_request_full_agent_turn() -> None:
    body = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."},
                                              {"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather and time in Paris? Here is a map."},
                {"type": "image_url", "image_url": {"url": "https://example.com/map.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            ]},
            {"role": "assistant", "content": None, "reasoning_content": "Two tools needed.", "tool_calls": [
                {"id": "call_Wx1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_Tm2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_Wx1", "content": "18°C, cloudy"},
            {"role": "tool", "tool_call_id": "call_Tm2", "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "Thanks! Anything else?"},
            {"role": "system", "content": "Answer in French from now on."},
            {"role": "assistant", "content": "Il fait 18°C."},
        ],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "max_completion_tokens": 512,
        "max_tokens": 99,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "n": 1,
        "presence_penalty": 0.1,
        "frequency_penalty": -0.5,
        "stop": "###",
        "user": "user-42",
        "metadata": {"session": "abc"},
        "stream": True,
        "stream_options": {"include_usage": True},
        "some_future_field": {"ignored": True},
    }
    req = codec.parse_request(body)
    assert req.model == "gpt-4.1"
    assert req.system == ["You are a weather bot.", "Use metric units.", "Be brief.", "Answer in French from now on."]
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "assistant"]
    assert req.messages[0].parts == [
        TextPart("Weather and time in Paris? Here is a map."),
        ImagePart(url="https://example.com/map.png", detail="low"),
        ImagePart(data=PNG_B64, media_type="image/png"),
    ]
    assert req.messages[1].parts == [
        ThinkingPart("Two tools needed."),
        ToolCallPart("call_Wx1", "get_weather", '{"city": "Paris"}'),
        ToolCallPart("call_Tm2", "get_time", "{}"),
    ]
    # Both tool messages and the user text after them: ONE user turn, results first, names recovered.
    assert req.messages[2].parts == [
        ToolResultPart("call_Wx1", [TextPart("18°C, cloudy")], name="get_weather"),
        ToolResultPart("call_Tm2", [TextPart("14:05")], name="get_time"),
        TextPart("Thanks! Anything else?"),
    ]
    assert req.messages[3].parts == [TextPart("Il fait 18°C.")]
    assert [t.name for t in req.tools] == ["get_weather", "get_time"]
    assert req.tools[0].strict is True and req.tools[0].description == "Current weather for a city"
    assert req.tool_choice == ToolChoice("auto")
    assert req.parallel_tool_calls is True
    assert req.max_tokens == 512  # max_completion_tokens wins over max_tokens
    assert (req.temperature, req.top_p, req.seed, req.n) == (0.2, 0.9, 7, 1)
    assert (req.presence_penalty, req.frequency_penalty) == (0.1, -0.5)
    assert req.stop == ["###"]
    assert req.user == "user-42" and req.metadata == {"session": "abc"}
    assert req.stream and req.include_usage
    assert req.unsupported == {}


def test_parse_request_consecutive_roles_and_empty_content() -> None:
    req = codec.parse_request({"model": "m", "max_tokens": 64, "stop": ["a", "", "b"], "messages": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}]},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
    ]})
    assert [(m.role, m.parts) for m in req.messages] == [
        ("user", [TextPart("first")]),
        ("user", []),
        ("user", [TextPart("second")]),
        ("assistant", []),
        ("assistant", [TextPart("a"), TextPart("no")]),
        ("assistant", [TextPart("I can't help with that.")]),
    ]
    assert req.max_tokens == 64 and req.stop == ["a", "b"]
    assert not req.stream and not req.include_usage and req.system == []


def test_parse_request_tool_result_without_preceding_call_and_user_after_assistant() -> None:
    req = codec.parse_request({"model": "m", "messages": [
        {"role": "tool", "tool_call_id": "orphan", "content": ""},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "next"},
    ]})
    assert req.messages[0].parts == [ToolResultPart("orphan", [], name=None)]
    assert req.messages[2] == Message("user", [TextPart("next")])


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", ToolChoice("auto")),
    ("none", ToolChoice("none")),
    ("required", ToolChoice("required")),
    ({"type": "function", "function": {"name": "get_time"}}, ToolChoice("tool", "get_time")),
])
def test_parse_tool_choice_modes(choice: Any, expected: ToolChoice) -> None:
    req = codec.parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                               "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": choice,
                               "parallel_tool_calls": False})
    assert req.tool_choice == expected
    assert req.parallel_tool_calls is False
    assert len(req.tools) == 2


def test_parse_tool_choice_allowed_tools_keeps_only_those() -> None:
    req = codec.parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                               "tools": [WEATHER_TOOL, TIME_TOOL],
                               "tool_choice": {"type": "allowed_tools", "allowed_tools": {
                                   "mode": "required",
                                   "tools": [{"type": "function", "function": {"name": "get_time"}}]}}})
    assert [t.name for t in req.tools] == ["get_time"]
    assert req.tool_choice == ToolChoice("required")


@pytest.mark.parametrize(("rf", "expected"), [
    ({"type": "text"}, ResponseFormat("text")),
    ({"type": "json_object"}, ResponseFormat("json_object")),
    ({"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "description": "dropped",
                                             "schema": {"type": "object", "properties": {"t": {"type": "number"}}}}},
     ResponseFormat("json_schema", {"type": "object", "properties": {"t": {"type": "number"}}}, "weather", True)),
])
def test_parse_response_format(rf: dict[str, Any], expected: ResponseFormat) -> None:
    req = codec.parse_request({"model": "m", "messages": [{"role": "user", "content": "JSON please"}],
                               "response_format": rf})
    assert req.response_format == expected


def test_parse_reasoning_effort_documents_and_model_override() -> None:
    req = codec.parse_request({"model": "ignored", "reasoning_effort": "high", "stream": False, "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Summarise"},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"}},
            {"type": "file", "file": {"file_data": PDF_B64}},
        ]}]}, model="o4-mini", stream=True)
    assert req.model == "o4-mini" and req.stream is True and req.include_usage is False
    assert req.reasoning == Reasoning(effort="high")
    assert req.messages[0].parts[1:] == [
        DocumentPart(data=PDF_B64, media_type="application/pdf", filename="report.pdf"),
        DocumentPart(data=PDF_B64, media_type="application/pdf"),
    ]


def test_parse_records_unsupported_params_only_when_they_matter() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    defaults = codec.parse_request({"model": "m", "messages": msgs, "logprobs": False, "n": 1, "store": False,
                                    "modalities": ["text"], "top_logprobs": 0, "logit_bias": {}})
    assert defaults.unsupported == {}
    req = codec.parse_request({
        "model": "m", "messages": msgs, "logprobs": True, "top_logprobs": 3, "logit_bias": {"50256": -100},
        "audio": {"voice": "alloy", "format": "wav"}, "modalities": ["text", "audio"], "n": 3,
        "web_search_options": {"search_context_size": "low"}, "store": True, "service_tier": "flex",
        "safety_identifier": "hash-1", "prediction": {"type": "content", "content": "x"},
    })
    assert req.n == 3
    assert req.user == "hash-1"
    assert req.unsupported == {
        "logprobs": True, "top_logprobs": 3, "logit_bias": {"50256": -100},
        "audio": {"voice": "alloy", "format": "wav"}, "modalities": ["text", "audio"], "n": 3,
        "web_search_options": {"search_context_size": "low"}, "store": True, "service_tier": "flex",
        "safety_identifier": "hash-1", "prediction": {"type": "content", "content": "x"},
    }


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio",
                                                               "input_audio": {"data": "AA==", "format": "wav"}}]}]},
     "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]},
     "messages[0].content[0].file.file_id"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,%89PNG"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "custom", "custom": {"name": "sql"}}]}, "tools[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "custom",
                                                                                     "custom": {"name": "sql"}}},
     "tool_choice"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}},
     "response_format.type"),
])
def test_parse_request_refuses_malformed_or_untranslatable(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as exc:
        codec.parse_request(body)
    assert exc.value.param == param
    assert exc.value.status == 400


# ============================================================================================ build_request


def anthropic_style_request() -> ChatRequest:
    """What an Anthropic client's request looks like in the IR: several system blocks, thinking with a
    signature, parallel tool results with an image and an error, documents."""
    return ChatRequest(
        model="claude-sonnet-4-5",
        system=["You are helpful.", "Cite sources."],
        messages=[
            Message("user", [TextPart("Read these."), DocumentPart(data=PDF_B64, filename="paper.pdf"),
                             DocumentPart(data=base64.b64encode("plain notes ✓".encode()).decode(),
                                          media_type="text/plain"),
                             ImagePart(data=PNG_B64)]),
            Message("assistant", [ThinkingPart("Let me look.", signature="sig=="),
                                  TextPart("Checking "), TextPart("both."),
                                  ToolCallPart("toolu_01A", "get_weather", '{"city":"Oslo"}'),
                                  ToolCallPart("toolu_01B", "get_time", "")]),
            Message("user", [ToolResultPart("toolu_01A", [TextPart("-3°C"), ImagePart(url="https://x/radar.png")],
                                            name="get_weather"),
                             ToolResultPart("toolu_01B", [TextPart("boom")], name="get_time", is_error=True),
                             TextPart("And tomorrow?")]),
        ],
        tools=[Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
               Tool("get_time")],
        tool_choice=ToolChoice("tool", "get_weather"),
        parallel_tool_calls=False,
        max_tokens=1024, temperature=0.5, top_k=40, stop=["\n\nHuman:"],
        reasoning=Reasoning(budget_tokens=2000, include_thoughts=True),
        metadata={"user_id": "u1"}, stream=True,
    )


def test_build_request_from_anthropic_style_ir() -> None:
    body, warnings = codec.build_request(anthropic_style_request(), "gpt-4.1")
    assert_valid_request(body)
    assert body["model"] == "gpt-4.1"
    assert body["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "system", "content": "Cite sources."},
        {"role": "user", "content": [
            {"type": "text", "text": "Read these."},
            {"type": "file", "file": {"filename": "paper.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"}},
            {"type": "text", "text": "plain notes ✓"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        ]},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "toolu_01B", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01A",
         "content": "-3°C\n[image omitted: OpenAI chat tool results carry text only]"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "boom"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body
    assert body["temperature"] == 0.5 and body["stop"] == ["\n\nHuman:"]
    assert body["tools"][1] == {"type": "function", "function": {"name": "get_time",
                                                                 "parameters": {"type": "object", "properties": {}}}}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert "reasoning_effort" not in body  # gpt-4.1 takes none; o-series and gpt-5 do (test below)
    assert body["metadata"] == {"user_id": "u1"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "top_k" not in body
    joined = " | ".join(warnings)
    for needle in ("top_k", "include_thoughts", "reasoning", "image", "is_error"):
        assert needle in joined


@pytest.mark.parametrize(("reasoning", "effort"), [
    (Reasoning(effort="low", budget_tokens=99999), "low"),
    (Reasoning(effort="xhigh"), "xhigh"),
    (Reasoning(budget_tokens=0), "none"),
    (Reasoning(budget_tokens=1024), "low"),
    (Reasoning(budget_tokens=2048), "medium"),
    (Reasoning(budget_tokens=3072), "high"),
    (Reasoning(budget_tokens=32000), "high"),
    (Reasoning(budget_tokens=-1), None),
    (Reasoning(), None),
])
def test_build_reasoning_effort_table(reasoning: Reasoning, effort: str | None) -> None:
    req = ChatRequest("m", [Message("user", [TextPart("hi")])], reasoning=reasoning)
    body, _ = codec.build_request(req, "o4-mini")
    assert body.get("reasoning_effort") == effort


@pytest.mark.parametrize(("rf", "wire"), [
    (ResponseFormat("text"), {"type": "text"}),
    (ResponseFormat("json_object"), {"type": "json_object"}),
    (ResponseFormat("json_schema", {"type": "object"}, "my schema!", True),
     {"type": "json_schema", "json_schema": {"name": "my_schema_", "schema": {"type": "object"}, "strict": True}}),
    (ResponseFormat("json_schema", {"type": "object"}),
     {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}}),
])
def test_build_response_format(rf: ResponseFormat, wire: dict[str, Any]) -> None:
    body, _ = codec.build_request(ChatRequest("m", [Message("user", [TextPart("json")])], response_format=rf), "m")
    assert body["response_format"] == wire
    assert_valid_request(body)


def test_build_minimal_non_stream_and_tool_choice_without_tools() -> None:
    req = ChatRequest("m", [Message("user", []), Message("assistant", [])], tool_choice=ToolChoice("none"),
                      parallel_tool_calls=True)
    body, warnings = codec.build_request(req, "gpt-4o-mini")
    assert body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""},
                                                         {"role": "assistant", "content": ""}]}
    assert warnings == []
    with pytest.raises(TranslationError) as exc:
        codec.build_request(ChatRequest("m", [Message("user", [TextPart("x")])],
                                        tool_choice=ToolChoice("required")), "m")
    assert exc.value.param == "tool_choice"


def test_build_unsupported_forwarded_advisory_refused() -> None:
    base = [Message("user", [TextPart("hi")])]
    req = ChatRequest("m", base, unsupported={"logit_bias": {"1": 5}, "store": True, "service_tier": "flex",
                                              "safety_identifier": "hash-1", "include": ["x"]}, user="hash-1")
    body, warnings = codec.build_request(req, "gpt-4.1")
    assert body["logit_bias"] == {"1": 5} and body["store"] is True and body["service_tier"] == "flex"
    assert body["safety_identifier"] == "hash-1" and "user" not in body
    assert warnings == ["include was dropped (not available in OpenAI chat)"]
    # Anthropic's service tier words are not OpenAI's: advisory, dropped
    body, warnings = codec.build_request(ChatRequest("m", base, unsupported={"service_tier": "standard_only"}), "m")
    assert "service_tier" not in body and warnings
    for key, value in (("logprobs", True), ("top_logprobs", 2), ("modalities", ["audio"]), ("n", 2),
                       ("previous_response_id", "resp_1")):
        with pytest.raises(TranslationError) as exc:
            codec.build_request(ChatRequest("m", base, unsupported={key: value}), "m")
        assert exc.value.param == key


def test_build_for_mistral_models_uses_its_field_names_and_id_rule() -> None:
    req = ChatRequest("x", [
        Message("user", [TextPart("hi")]),
        Message("assistant", [ToolCallPart("toolu_01A", "f", "{}"), ToolCallPart("aB3dE5gH7", "g", "{}")]),
        Message("user", [ToolResultPart("toolu_01A", [TextPart("1")]), ToolResultPart("aB3dE5gH7", [TextPart("2")])]),
    ], tools=[Tool("f"), Tool("g")], max_tokens=300, seed=5, user="u", metadata={"k": "v"}, stream=True)
    body, warnings = codec.build_request(req, "mistral-large-latest")
    assert body["max_tokens"] == 300 and "max_completion_tokens" not in body
    assert body["random_seed"] == 5 and "seed" not in body
    assert "stream_options" not in body and "user" not in body and "metadata" not in body
    assert any("user" in w for w in warnings) and any("metadata" in w for w in warnings)
    call_ids = [c["id"] for c in body["messages"][1]["tool_calls"]]
    assert call_ids[1] == "aB3dE5gH7"  # already Mistral-shaped: unchanged
    assert len(call_ids[0]) == 9 and call_ids[0].isalnum()
    assert [m["tool_call_id"] for m in body["messages"][2:4]] == call_ids
    again, _ = codec.build_request(req, "codestral-latest")
    assert again["messages"][1]["tool_calls"][0]["id"] == call_ids[0]  # deterministic across requests
    # the same model through an aggregator keeps OpenAI's names
    body, _ = codec.build_request(req, "mistralai/mistral-large")
    assert body["max_completion_tokens"] == 300 and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("req", "param"), [
    (ChatRequest("m", [Message("user", [TextPart("x")])], n=2), "n"),
    (ChatRequest("m", [Message("user", [TextPart("x")])], stop=["a", "b", "c", "d", "e"]), "stop"),
    (ChatRequest("m", [Message("user", [DocumentPart(url="https://x/a.pdf")])]), "messages"),
    (ChatRequest("m", [Message("assistant", [ImagePart(url="https://x/a.png")])]), "messages"),
    (ChatRequest("m", [Message("user", [ToolCallPart("c", "f")])]), "messages"),
])
def test_build_refuses_what_openai_chat_cannot_say(req: ChatRequest, param: str) -> None:
    with pytest.raises(TranslationError) as exc:
        codec.build_request(req, "m")
    assert exc.value.param == param


# ============================================================================================ responses

OPENAI_RESPONSE = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4.1-2025-04-14",
    "choices": [{
        "index": 0,
        "message": {
            "role": "assistant", "content": "Let me check both.", "refusal": None, "annotations": [],
            "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_def", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }],
    "usage": {
        "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_1d2e3f",
}


def test_parse_response_openai_tool_calls_and_usage() -> None:
    resp = codec.parse_response(OPENAI_RESPONSE)
    assert resp.id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG" and resp.model == "gpt-4.1-2025-04-14"
    assert resp.created == 1741570283
    assert resp.parts == [TextPart("Let me check both."),
                          ToolCallPart("call_abc", "get_weather", '{"city":"Paris"}'),
                          ToolCallPart("call_def", "get_time", "{}")]
    assert resp.finish == "tool_calls"
    assert resp.usage == Usage(input=1117, output=46, cache_read=1024, reasoning=20)


def test_parse_response_compat_variations() -> None:
    # DeepSeek reasoning_content, Ollama-style "stop" with tool calls, no tool id, object arguments
    body = {"id": "ds-1", "object": "chat.completion", "created": 1, "model": "deepseek-reasoner", "choices": [{
        "index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "", "reasoning_content": "Think...",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}}]}
    resp = codec.parse_response(body)
    first = resp.parts[1]
    assert resp.parts[0] == ThinkingPart("Think...")
    assert isinstance(first, ToolCallPart) and first.arguments == '{"a":1}' and first.id.startswith("call_")
    assert first.id == codec.parse_response(body).parts[1].id  # deterministic
    assert resp.finish == "tool_calls" and resp.usage is None
    refusal = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": None, "refusal": "I can't."}}]}
    resp = codec.parse_response(refusal)
    assert resp.parts == [TextPart("I can't.")] and resp.finish == "content_filter"
    vllm = {"id": "v", "choices": [{"index": 0, "finish_reason": "stop", "stop_reason": "###",
                                    "message": {"role": "assistant", "content": "done"}}]}
    assert codec.parse_response(vllm).stop_sequence == "###"
    assert codec.parse_response({"id": "x", "choices": []}).parts == []
    with pytest.raises(ValueError):
        codec.parse_response({"error": {"message": "overloaded"}})


def test_render_response_validates_with_sdk() -> None:
    resp = ChatResponse(
        id="msg_01XFDUDYJgAACzvnptvVoYEL", model="claude-sonnet-4-5",
        parts=[ThinkingPart("hmm", signature="s"), ToolCallPart("toolu_01", "get_weather", '{"city":"Paris"}')],
        finish="tool_calls", usage=Usage(input=2095, output=503, cache_read=2000, cache_write=50, reasoning=100),
        created=1700000000,
    )
    out = codec.render_response(resp, "claude-sonnet-4-5")
    parsed = ChatCompletion.model_validate(out)
    assert parsed.id == "chatcmpl-msg01XFDUDYJgAACzvnptvVoYEL"
    msg = parsed.choices[0].message
    assert msg.content is None and msg.tool_calls is not None
    assert msg.tool_calls[0].id == "toolu_01" and msg.tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert out["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 2095 and parsed.usage.total_tokens == 2598
    assert parsed.usage.prompt_tokens_details.cached_tokens == 2000  # type: ignore[union-attr]
    assert parsed.usage.completion_tokens_details.reasoning_tokens == 100  # type: ignore[union-attr]
    plain = codec.render_response(ChatResponse("", "m", [TextPart("Hi"), TextPart("!")], finish="error"), "m")
    parsed = ChatCompletion.model_validate(plain)
    assert parsed.id.startswith("chatcmpl-") and len(parsed.id) > 20
    assert parsed.choices[0].message.content == "Hi!" and parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is None and "reasoning_content" not in plain["choices"][0]["message"]


def test_response_round_trip() -> None:
    resp = codec.parse_response(OPENAI_RESPONSE)
    again = codec.parse_response(codec.render_response(resp, "gpt-4.1"))
    assert (again.parts, again.finish, again.usage, again.id) == (resp.parts, resp.finish, resp.usage, resp.id)


# ============================================================================================ stream decode

HEAD = '"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,' \
       '"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_1d2e3f"'


def chunk(choices: str, usage: str = "null") -> bytes:
    return ("data: {" + HEAD + ',"choices":' + choices + ',"usage":' + usage + "}\n\n").encode()


def delta(d: str, finish: str = "null") -> str:
    return '[{"index":0,"delta":' + d + ',"logprobs":null,"finish_reason":' + finish + "}]"


USAGE_JSON = ('{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":'
              '{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":20}}')

UPSTREAM = b"".join([
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,'
    b'"content_filter_results":{}}]}\n\n',  # Azure's opening chunk
    chunk(delta('{"role":"assistant","content":"","refusal":null}')),
    chunk(delta('{"content":"Checking"}')),
    chunk(delta('{"content":" the weather."}')),
    chunk(delta('{"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather",'
                '"arguments":""}}]}')),
    chunk(delta('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"ci"}}]}')),
    chunk(delta('{"tool_calls":[{"index":1,"id":"call_def","type":"function","function":{"name":"get_time",'
                '"arguments":""}}]}')),
    chunk(delta('{"tool_calls":[{"index":0,"function":{"arguments":"ty\\": \\"Paris\\"}"}}]}')),
    chunk(delta('{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}'), ),
    chunk(delta("{}", '"tool_calls"')),
    chunk("[]", USAGE_JSON),
    b"data: [DONE]\n\n",
])


def test_decode_full_upstream_stream() -> None:
    assert decode(UPSTREAM) == [
        StreamStart("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "gpt-4.1-2025-04-14"),
        TextDelta("Checking"),
        TextDelta(" the weather."),
        ToolCallStart(0, "call_abc", "get_weather"),
        ToolCallDelta(0, '{"ci'),
        ToolCallStart(1, "call_def", "get_time"),
        ToolCallDelta(0, 'ty": "Paris"}'),
        ToolCallDelta(1, "{}"),
        ToolCallEnd(0),
        ToolCallEnd(1),
        Finish("tool_calls"),
        UsageUpdate(Usage(input=1117, output=46, cache_read=1024, reasoning=20)),
    ]


def test_decode_split_across_arbitrary_byte_boundaries() -> None:
    dec, parser, out = codec.StreamDecoder(), SSEParser(), []
    for i in range(0, len(UPSTREAM), 7):
        for ev in parser.feed(UPSTREAM[i:i + 7]):
            out.extend(dec.feed(ev))
    assert out + dec.close() == decode(UPSTREAM)


def test_decode_compat_variations() -> None:
    raw = b"".join([
        chunk(delta('{"role":"assistant","reasoning_content":"Hmm","content":null}')),
        chunk(delta('{"reasoning":"...","content":""}')),  # OpenRouter / Groq spelling
        # index-less tool fragments (some servers): a new id opens a call, one without continues it
        chunk(delta('{"tool_calls":[{"id":"t1","function":{"name":"a","arguments":"{\\"x\\""}}]}')),
        chunk(delta('{"tool_calls":[{"function":{"arguments":":1}"}}]}')),
        chunk(delta('{"tool_calls":[{"id":"t2","function":{"name":"b","arguments":{"y":2}}}]}')),
        b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        b'"x_groq":{"id":"req_1","usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}}\n\n',
        b"data: [DONE]\n\n",
    ])
    assert decode(raw)[1:] == [
        ThinkingDelta("Hmm"), ThinkingDelta("..."),
        ToolCallStart(0, "t1", "a"), ToolCallDelta(0, '{"x"'), ToolCallDelta(0, ":1}"),
        ToolCallStart(1, "t2", "b"), ToolCallDelta(1, '{"y":2}'),
        ToolCallEnd(0), ToolCallEnd(1),
        Finish("tool_calls"),  # "stop" with tool calls (Ollama and friends) still means run the tools
        UsageUpdate(Usage(input=5, output=3)),
    ]


def test_decode_missing_tool_id_is_synthesised_deterministically() -> None:
    raw = chunk(delta('{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}'))
    first, second = decode(raw)[1], decode(raw)[1]
    assert isinstance(first, ToolCallStart) and first == second
    assert first.id.startswith("call_") and len(first.id) == 29 and first.id[5:].isalnum()


def test_decode_error_frame_stops_the_stream() -> None:
    raw = (chunk(delta('{"content":"Hel"}'))
           + b'data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}\n\n'
           + chunk(delta('{"content":"lo"}')))
    out = decode(raw)
    assert out[1:] == [TextDelta("Hel"), StreamError(500, "The server had an error")]
    assert decode(b'data: {"error":{"message":"slow down","type":"tokens","code":"rate_limit_exceeded"}}\n\n') == [
        StreamError(429, "slow down")]
    assert decode(b'data: {"error":"model not loaded"}\n\n') == [StreamError(502, "model not loaded")]


def test_decode_edge_cases() -> None:
    assert decode(b"") == []
    assert decode(b"data: [DONE]\n\n") == []
    assert decode(b": keep-alive\n\ndata: not json\n\n") == []
    # truncated: no finish, no [DONE] -> close() ends open tool calls and synthesises a finish
    raw = chunk(delta('{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{"}}]}'))
    dec = codec.StreamDecoder()
    out = [e for ev in events(raw) for e in dec.feed(ev)]
    assert out[1:] == [ToolCallStart(0, "c1", "f"), ToolCallDelta(0, "{")]
    assert dec.close() == [ToolCallEnd(0), Finish("tool_calls")]
    assert dec.close() == []
    # [DONE] without a finish reason: finished properly, said at [DONE]
    out = decode(chunk(delta('{"content":"hi"}')) + b"data: [DONE]\n\n")
    assert out[1:] == [TextDelta("hi"), Finish("stop")]
    # length, content_filter, refusal, unknown finish words
    for wire, ir in (('"length"', "length"), ('"content_filter"', "content_filter"), ('"weird"', "stop")):
        assert decode(chunk(delta("{}", wire)))[-1] == Finish(ir)  # type: ignore[arg-type]
    out = decode(chunk(delta('{"refusal":"No."}')) + chunk(delta("{}", '"stop"')))
    assert out[1:] == [TextDelta("No."), Finish("content_filter")]


# ============================================================================================ stream encode

IR_STREAM = [
    StreamStart("msg_01ABC", "claude-sonnet-4-5", usage=Usage(input=120, cache_read=100)),
    ThinkingDelta("Need weather."),
    ThinkingDelta("", signature="EqQBCgIYAh"),
    TextDelta("Checking"),
    TextDelta(" now."),
    ToolCallStart(0, "toolu_01A", "get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, ' "Paris"}'),
    ToolCallEnd(0),
    Finish("tool_calls"),
    UsageUpdate(Usage(output=42)),
]


def test_encode_exact_openai_sequence_with_usage() -> None:
    raw = encode(IR_STREAM, include_usage=True)
    assert raw.endswith(b"data: [DONE]\n\n")
    objs = payloads(raw)
    assert objs[-1] == b"[DONE]"
    chunks = objs[:-1]
    ids = {c["id"] for c in chunks}
    assert ids == {"chatcmpl-msg01ABC"} and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4.1-mini" for c in chunks)
    assert all("usage" in c for c in chunks) and all(c["usage"] is None for c in chunks[:-1])
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]
    assert deltas == [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"reasoning_content": "Need weather."}, None),
        ({"content": "Checking"}, None),
        ({"content": " now."}, None),
        ({"tool_calls": [{"index": 0, "id": "toolu_01A", "type": "function",
                          "function": {"name": "get_weather", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}, None),
        ({}, "tool_calls"),
    ]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 120, "completion_tokens": 42, "total_tokens": 162,
                                   "prompt_tokens_details": {"cached_tokens": 100},
                                   "completion_tokens_details": {"reasoning_tokens": 0}}
    for c in chunks:
        ChatCompletionChunk.model_validate(c)


def test_encode_is_read_by_the_openai_sdk() -> None:
    raw = encode(IR_STREAM, include_usage=True)
    sdk_chunks = sdk_stream(raw)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for c in sdk_chunks:
        state.handle_chunk(c)
    final = state.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Checking now."
    assert msg.tool_calls is not None and msg.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.completion_tokens == 42


def test_encode_without_include_usage_has_no_usage_keys() -> None:
    raw = encode([StreamStart("chatcmpl-keep", "x"), TextDelta("Hi"), Finish("length"),
                  UsageUpdate(Usage(input=3, output=1))])
    chunks = payloads(raw)
    assert chunks[-1] == b"[DONE]"
    assert all("usage" not in c for c in chunks[:-1])
    assert [c["id"] for c in chunks[:-1]] == ["chatcmpl-keep"] * 3
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}


def test_encode_emits_each_delta_immediately() -> None:
    enc = codec.StreamEncoder("m")
    assert enc.feed(StreamStart("a", "m")).startswith(b"data: {")
    assert b'"content":"x"' in enc.feed(TextDelta("x"))
    assert enc.feed(UsageUpdate(Usage(1, 1))) == b""
    assert enc.feed(ToolCallEnd(0)) == b""


def test_encode_error_frame_then_nothing() -> None:
    enc = codec.StreamEncoder("m", include_usage=True)
    out = enc.feed(StreamStart("a", "m")) + enc.feed(TextDelta("partial"))
    err = enc.feed(StreamError(529, "Overloaded"))
    assert payloads(err) == [{"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": None}}]
    assert enc.feed(TextDelta("late")) == b"" and enc.close() == b"" and enc.close() == b""
    with pytest.raises(openai.APIError, match="Overloaded"):
        sdk_stream(out + err)


def test_encode_close_without_events_or_finish_is_well_formed() -> None:
    enc = codec.StreamEncoder("m", include_usage=True)
    raw = enc.close()
    assert enc.close() == b""
    objs = payloads(raw)
    assert objs[-1] == b"[DONE]" and len(objs) == 3  # start, finish(stop), [DONE]; usage unknown -> no usage chunk
    assert objs[1]["choices"][0]["finish_reason"] == "stop"
    sdk_stream(raw)
    # a stream cut after a tool call started closes with finish_reason tool_calls
    raw = encode([ToolCallStart(0, "c", "f"), ToolCallDelta(0, "{}")])
    objs = payloads(raw)
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert objs[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_decode_of_encode_is_identity_for_a_realistic_stream() -> None:
    out = decode(encode(IR_STREAM, include_usage=True))
    assert out == [
        StreamStart("chatcmpl-msg01ABC", "gpt-4.1-mini"),
        ThinkingDelta("Need weather."), TextDelta("Checking"), TextDelta(" now."),
        ToolCallStart(0, "toolu_01A", "get_weather"), ToolCallDelta(0, '{"city":'), ToolCallDelta(0, ' "Paris"}'),
        ToolCallEnd(0), Finish("tool_calls"),
        UsageUpdate(Usage(input=120, output=42, cache_read=100)),
    ]


# ============================================================================================ properties

_text = st.text(alphabet=string.ascii_letters + string.digits + " .,!?é✓\n\"\\{}", min_size=1, max_size=20)
_name = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_name, children, max_size=3),
    max_leaves=6,
)
_args = st.dictionaries(_name, _json_value, max_size=4).map(lambda d: orjson.dumps(d).decode())


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Rounds of user text -> assistant (text and/or calls) -> results for every call (+ optional text)."""
    messages: list[Message] = []
    n_call = 0
    for _ in range(draw(st.integers(1, 4))):
        messages.append(Message("user", [TextPart(t) for t in draw(st.lists(_text, min_size=1, max_size=2))]))
        text = draw(st.one_of(st.none(), _text))
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            n_call += 1
            calls.append(ToolCallPart(f"call_{n_call:03d}", draw(_name), draw(_args)))
        messages.append(Message("assistant", ([TextPart(text)] if text else []) + calls))
        if calls:
            results: list[Any] = [ToolResultPart(c.id, [TextPart(draw(_text))] if draw(st.booleans()) else [],
                                                 name=c.name) for c in calls]
            if draw(st.booleans()):
                results.append(TextPart(draw(_text)))
            messages.append(Message("user", results))
    return messages


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    tools = [Tool(n, draw(st.one_of(st.none(), _text)), {"type": "object", "properties": {}})
             for n in draw(st.lists(_name, max_size=3, unique=True))]
    choice = draw(st.one_of(st.none(), st.sampled_from([ToolChoice("auto"), ToolChoice("none"),
                                                        ToolChoice("required")])))
    if tools and draw(st.booleans()):
        choice = ToolChoice("tool", tools[0].name)
    if not tools and choice is not None and choice.mode == "required":
        choice = None
    return ChatRequest(
        model="m",
        messages=draw(conversations()),
        system=draw(st.lists(_text, max_size=3)),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=draw(st.one_of(st.none(), st.booleans())) if tools else None,
        max_tokens=draw(st.one_of(st.none(), st.integers(1, 100_000))),
        temperature=draw(st.one_of(st.none(), st.floats(0, 2))),
        top_p=draw(st.one_of(st.none(), st.floats(0, 1))),
        stop=draw(st.lists(_text, max_size=4)),
        seed=draw(st.one_of(st.none(), st.integers(0, 2**31))),
        presence_penalty=draw(st.one_of(st.none(), st.floats(-2, 2))),
        frequency_penalty=draw(st.one_of(st.none(), st.floats(-2, 2))),
        user=draw(st.one_of(st.none(), _name)),
        reasoning=draw(st.one_of(st.none(), st.sampled_from(["low", "medium", "high"]).map(Reasoning))),
        response_format=draw(st.one_of(st.none(), st.just(ResponseFormat("json_object")))),
        stream=draw(st.booleans()),
    )


def _normalise(req: ChatRequest) -> ChatRequest:
    """The documented normalisations: tool choice without tools is not sent; a user turn right after a turn
    of only tool results (sent as tool messages) joins that turn."""
    if not req.tools and req.tool_choice is not None and req.tool_choice.mode in ("auto", "none"):
        req.tool_choice = None
    merged: list[Message] = []
    for m in req.messages:
        prev = merged[-1] if merged else None
        if (prev is not None and m.role == prev.role == "user" and prev.parts
                and all(isinstance(p, ToolResultPart) for p in prev.parts)):
            merged[-1] = Message("user", prev.parts + m.parts)
        else:
            merged.append(m)
    req.messages = merged
    return req


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_property_build_then_parse_round_trips(req: ChatRequest) -> None:
    # Reasoning models take an effort but only the default temperature; others the reverse.
    reasoning_model = req.reasoning is not None
    body, warnings = codec.build_request(req, "o4-mini" if reasoning_model else "gpt-4.1")
    temperature_dropped = reasoning_model and req.temperature not in (None, 1, 1.0)
    assert warnings == (["temperature dropped: o4-mini accepts only the default"] if temperature_dropped else [])
    assert_valid_request(body)
    back = codec.parse_request(orjson.loads(orjson.dumps(body)))
    expected = _normalise(req)
    expected.model = back.model = req.model
    if temperature_dropped:
        expected.temperature = None
    if body["messages"][0] == {"role": "system", "content": "Respond in JSON."}:
        expected.system = ["Respond in JSON.", *expected.system]  # JSON mode needs the word in a message
    expected.include_usage = req.stream  # streams always ask for the usage chunk
    assert back == expected


_event = st.one_of(
    _text.map(TextDelta),
    _text.map(ThinkingDelta),
    st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6)).map(UsageUpdate),
    st.just("tool"),
)


@st.composite
def stream_events(draw: st.DrawFn) -> list[Any]:
    """StreamStart, then text / thinking / usage / tool calls (each with argument fragments), then Finish."""
    out: list[Any] = [StreamStart("chatcmpl-" + draw(st.text(string.ascii_letters, min_size=5, max_size=10)), "m")]
    calls = 0
    for item in draw(st.lists(_event, max_size=12)):
        if item == "tool":
            out.append(ToolCallStart(calls, f"call_{calls}", draw(_name)))
            args = draw(_args)
            cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
            out.extend(ToolCallDelta(calls, args[a:b]) for a, b in zip([0, *cuts], [*cuts, len(args)]) if b > a)
            calls += 1
        else:
            out.append(item)
    out.append(Finish(draw(st.sampled_from(["stop", "length", "content_filter"])) if not calls else "tool_calls"))
    return out


def _expected_decode(evs: list[Any]) -> list[Any]:
    """What the decoder must give back: the same content events in order, ends gathered before Finish,
    usage merged into one update after it."""
    usage = Usage()
    seen_usage = False
    body: list[Any] = []
    for e in evs:
        if isinstance(e, UsageUpdate):
            usage.merge(e.usage)
            seen_usage = True
        elif not isinstance(e, Finish):
            body.append(e)
    ends = [ToolCallEnd(e.index) for e in body if isinstance(e, ToolCallStart)]
    out = body + ends + [evs[-1]]
    return out + [UsageUpdate(usage)] if seen_usage else out


@settings(max_examples=150, deadline=None)
@given(stream_events(), st.booleans())
def test_property_encode_then_decode_round_trips(evs: list[Any], include_usage: bool) -> None:
    raw = encode(evs, model="m", include_usage=include_usage)
    for c in payloads(raw)[:-1]:
        ChatCompletionChunk.model_validate(c)
    expected = _expected_decode(evs)
    if not include_usage:
        expected = [e for e in expected if not isinstance(e, UsageUpdate)]
    assert decode(raw) == expected


# ============================================================================================ with the proxy's relay


def test_relay_openai_upstream_to_openai_client_through_the_ir() -> None:
    """The proxy's TranslatedStream drives decoder and encoder together; a complete upstream stream is
    complete, and a truncated one ends with one error frame and no [DONE]."""
    from sidecar.transforms import TranslatedStream

    relay = TranslatedStream(codec.StreamDecoder(), codec.StreamEncoder("gpt-4.1", include_usage=False))
    out = b"".join(relay.feed(UPSTREAM[i:i + 50]) for i in range(0, len(UPSTREAM), 50))
    out += relay.finish("upstream stopped early")
    assert relay.complete and relay.upstream_error is None
    assert relay.usage == Usage(input=1117, output=46, cache_read=1024, reasoning=20)
    final = ChatCompletionStreamState()  # type: ignore[var-annotated]
    for c in sdk_stream(out):
        final.handle_chunk(c)
    message = final.get_final_completion().choices[0].message
    assert message.content == "Checking the weather."
    assert [t.function.arguments for t in message.tool_calls or []] == ['{"city": "Paris"}', "{}"]

    relay = TranslatedStream(codec.StreamDecoder(), codec.StreamEncoder("gpt-4.1", include_usage=True))
    cut = UPSTREAM[: UPSTREAM.index(b'"finish_reason":"tool_calls"')]
    cut = cut[: cut.rindex(b"data: ")]
    out = relay.feed(cut) + relay.finish("upstream stopped early")
    assert not relay.complete
    objs = payloads(out)
    assert objs[-1] == {"error": {"message": "upstream stopped early", "type": "server_error", "param": None,
                                  "code": None}}
    assert b"[DONE]" not in out
    with pytest.raises(openai.APIError, match="upstream stopped early"):
        sdk_stream(out)


def test_reasoning_effort_only_for_models_that_take_it() -> None:
    # Claude Code sends an effort on every call; gpt-4o-class models answer 400 to reasoning_effort.
    req = ChatRequest("m", [Message("user", [TextPart("hi")])], reasoning=Reasoning(effort="high"))
    body, warnings = codec.build_request(req, "gpt-4o-mini")
    assert "reasoning_effort" not in body and any("reasoning effort dropped" in w for w in warnings)
    assert codec.build_request(req, "gpt-5-mini")[0]["reasoning_effort"] == "high"
    assert codec.build_request(req, "openai/gpt-oss-120b")[0]["reasoning_effort"] == "high"


def test_json_mode_mentions_json_and_reasoning_models_drop_temperature() -> None:
    from adapters.ir import ResponseFormat as RF
    req = ChatRequest("m", [Message("user", [TextPart("list three cities")])], response_format=RF("json_object"),
                      temperature=0.5)
    body, warnings = codec.build_request(req, "o4-mini")
    assert body["messages"][0] == {"role": "system", "content": "Respond in JSON."}
    assert "temperature" not in body and any("temperature dropped" in w for w in warnings)
    body, _ = codec.build_request(req, "gpt-4o-mini")
    assert body["temperature"] == 0.5
