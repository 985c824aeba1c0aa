"""Gemini codec: requests both ways, answers both ways, streams both ways, schemas, round-trip properties.

Inbound fixtures come from the python-genai SDK's own request converter where possible (so they carry the
SDK's real camelCase/snake_case mix and URL-safe base64), otherwise from the REST reference. Outbound bodies
and frames are validated with the SDK's pydantic models, which forbid unknown fields.
"""

from __future__ import annotations

import base64
import string

import orjson
import pytest
from google.genai import types as gt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import gemini_codec as gc
from adapters.gemini_schema import clean_schema, openapi_to_json_schema, tool_parameters
from adapters.ir import (
    ChatRequest, ChatResponse, DocumentPart, Finish, ImagePart, Message, Reasoning, ResponseFormat, StreamError,
    StreamStart, TextDelta, TextPart, ThinkingDelta, ThinkingPart, Tool, ToolCallDelta, ToolCallEnd, ToolCallPart,
    ToolCallStart, ToolChoice, ToolResultPart, TranslationError, Usage, UsageUpdate,
)
from adapters.sse import SSEEvent, SSEParser

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200, 256))).decode()
SIG = base64.b64encode(b"\x12\x34opaque-thought-state\xff\xfe").decode()


def sdk_body(contents, config=None) -> dict:
    """The JSON body python-genai would POST for ``generate_content(contents, config)``, built offline with
    the SDK's own converters (camelCase outside, snake_case inside blobs and thinking config)."""
    try:
        from google.genai import _common, models
        from google.genai._api_client import BaseApiClient
        convert = models._GenerateContentParameters_to_mldev
    except (ImportError, AttributeError):  # private SDK internals moved: the REST fixtures still cover parsing
        pytest.skip("python-genai's request converter is not where this test expects it")
    raw = convert(
        BaseApiClient(api_key="x"), {"model": "gemini-2.5-flash", "contents": contents, "config": config})
    raw.pop("_url", None)
    return orjson.loads(orjson.dumps(_common.encode_unserializable_types(_common.convert_to_dict(raw))))


def validate_body(body: dict) -> None:
    """Every piece of a built request parses in the SDK's strict (extra='forbid') models."""
    for c in body["contents"]:
        gt.Content.model_validate_json(orjson.dumps(c))
        assert c["parts"], "Gemini rejects empty parts"
    if "systemInstruction" in body:
        gt.Content.model_validate_json(orjson.dumps(body["systemInstruction"]))
    if "generationConfig" in body:
        gt.GenerationConfig.model_validate_json(orjson.dumps(body["generationConfig"]))
    for t in body.get("tools", []):
        gt.Tool.model_validate_json(orjson.dumps(t))
    if "toolConfig" in body:
        gt.ToolConfig.model_validate_json(orjson.dumps(body["toolConfig"]))
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in zip(roles, roles[1:])), roles


# ---------------------------------------------------------------------------------------------- parse_request


def test_parse_sdk_request_full():
    contents = [
        gt.Content(role="user", parts=[gt.Part.from_text(text="What's in this picture and the weather in Paris?"),
                                       gt.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png")]),
        gt.Content(role="model", parts=[
            gt.Part(text="Checking the weather", thought=True),
            gt.Part(function_call=gt.FunctionCall(name="get_weather", args={"city": "Paris"}),
                    thought_signature=base64.b64decode(SIG)),
            gt.Part(function_call=gt.FunctionCall(name="get_weather", args={"city": "Lyon"})),
        ]),
        gt.Content(role="user", parts=[
            gt.Part.from_function_response(name="get_weather", response={"temp_c": 21}),
            gt.Part.from_function_response(name="get_weather", response={"temp_c": 17}),
        ]),
    ]
    config = gt.GenerateContentConfig(
        system_instruction="You are a weather bot.", temperature=0.4, top_p=0.9, top_k=40, candidate_count=2,
        max_output_tokens=512, stop_sequences=["END", "STOP"], presence_penalty=0.1, frequency_penalty=0.2,
        seed=7, thinking_config=gt.ThinkingConfig(thinking_budget=2048, include_thoughts=True),
        tools=[gt.Tool(function_declarations=[gt.FunctionDeclaration(
            name="get_weather", description="Weather for a city",
            parameters=gt.Schema(type="OBJECT", properties={"city": gt.Schema(type="STRING")}, required=["city"]))])],
        tool_config=gt.ToolConfig(function_calling_config=gt.FunctionCallingConfig(mode="AUTO")),
        safety_settings=[gt.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_ONLY_HIGH")],
    )
    body = sdk_body(contents, config)
    assert body["contents"][0]["parts"][1]["inlineData"]["mime_type"] == "image/png"  # the SDK's real mix
    req = gc.parse_request(body, model="gemini-2.5-flash", stream=True)

    assert req.model == "gemini-2.5-flash" and req.stream is True
    assert req.system == ["You are a weather bot."]
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert req.messages[0].parts == [TextPart("What's in this picture and the weather in Paris?"),
                                    ImagePart(data=PNG, media_type="image/png")]
    # the signature on the first call closes the thought run before it
    assert req.messages[1].parts == [
        ThinkingPart("Checking the weather", base64.urlsafe_b64encode(base64.b64decode(SIG)).decode()),
        ToolCallPart("call_0", "get_weather", '{"city":"Paris"}'),
        ToolCallPart("call_1", "get_weather", '{"city":"Lyon"}'),
    ]
    # results without ids pair with same-name calls in order
    assert req.messages[2].parts == [
        ToolResultPart("call_0", [TextPart('{"temp_c":21}')], name="get_weather"),
        ToolResultPart("call_1", [TextPart('{"temp_c":17}')], name="get_weather"),
    ]
    assert (req.temperature, req.top_p, req.top_k, req.n, req.max_tokens) == (0.4, 0.9, 40, 2, 512)
    assert type(req.top_k) is int
    assert req.stop == ["END", "STOP"]
    assert (req.presence_penalty, req.frequency_penalty, req.seed) == (0.1, 0.2, 7)
    assert req.reasoning == Reasoning(budget_tokens=2048, include_thoughts=True)
    assert req.tools == [Tool("get_weather", "Weather for a city",
                              {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})]
    assert req.tool_choice == ToolChoice("auto")
    assert req.unsupported == {"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH",
                                                    "threshold": "BLOCK_ONLY_HIGH"}]}


REST_BODY = {
    "system_instruction": {"parts": [{"text": "Rule one."}, {"text": "Rule two."}]},
    "contents": [
        {"parts": [{"text": "hello"}]},  # role missing → user
        {"role": "user", "parts": []},  # empty → skipped
        {"role": "user", "parts": [{"text": "again"}]},  # consecutive same role: kept, merged on build
        {"role": "model", "parts": [{"text": "Hi!"}, {"text": "", "thoughtSignature": SIG}]},
        {"role": "user", "parts": [
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
            {"inline_data": {"mime_type": "application/pdf", "data": "JVBERi0xLjQK"}},
            {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://bucket/doc.pdf"}},
        ]},
        {"role": "model", "parts": [{"function_call": {"id": "fc-1", "name": "lookup", "args": {"q": "x"}}}]},
        {"role": "user", "parts": [{"function_response": {"id": "fc-1", "name": "lookup",
                                                           "response": {"error": "not found"}}}]},
    ],
    "generation_config": {"response_mime_type": "application/json",
                          "response_json_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                          "thinking_config": {"thinking_level": "low"}, "responseModalities": ["TEXT"],
                          "mediaResolution": "MEDIA_RESOLUTION_LOW", "responseLogprobs": True, "logprobs": 3},
    "tools": [{"function_declarations": [{"name": "lookup", "parametersJsonSchema": {
        "type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False}}]},
        {"google_search": {}}, {"codeExecution": {}}, {"urlContext": {}}],
    "tool_config": {"function_calling_config": {"mode": "NONE"}},
    "cachedContent": "cachedContents/abc123",
    "labels": {"team": "infra"},
    "someFutureField": {"x": 1},
}


def test_parse_rest_snake_case_and_edges():
    req = gc.parse_request(REST_BODY, model="models/gemini-2.5-pro")
    assert req.model == "gemini-2.5-pro" and req.stream is False
    assert req.system == ["Rule one.", "Rule two."]
    assert [m.role for m in req.messages] == ["user", "user", "assistant", "user", "assistant", "user"]
    assert req.messages[2].parts == [TextPart("Hi!"), ThinkingPart("", SIG)]
    assert req.messages[3].parts == [
        ImagePart(url="https://generativelanguage.googleapis.com/v1beta/files/abc", media_type="image/jpeg",
                  detail="low"),  # generationConfig.mediaResolution, said per image in the IR
        DocumentPart(data="JVBERi0xLjQK", media_type="application/pdf"),
        DocumentPart(url="gs://bucket/doc.pdf", media_type="application/pdf"),
    ]
    assert req.messages[4].parts == [ToolCallPart("fc-1", "lookup", '{"q":"x"}')]
    assert req.messages[5].parts == [ToolResultPart("fc-1", [TextPart('{"error":"not found"}')], name="lookup",
                                                    is_error=True)]
    assert req.response_format == ResponseFormat("json_schema", {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert req.reasoning == Reasoning(effort="low")
    assert req.tools[0].parameters["additionalProperties"] is False  # parametersJsonSchema kept as-is
    assert req.tool_choice == ToolChoice("none")
    assert req.metadata == {"team": "infra"}
    assert req.unsupported == {  # named so other builders refuse (or warn) by name
        "logprobs": True, "top_logprobs": 3,
        "googleSearch": {}, "codeExecution": {}, "urlContext": {}, "cachedContent": "cachedContents/abc123",
    }  # someFutureField: unknown fields are ignored
    speech = {**REST_BODY, "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {"voiceConfig": {}}}}
    assert gc.parse_request(speech).unsupported["modalities"] == ["AUDIO"]
    assert gc.parse_request(speech).unsupported["audio"] == {"voiceConfig": {}}


@pytest.mark.parametrize("fcc, tools, want", [
    ({"mode": "AUTO"}, ["a", "b"], (ToolChoice("auto"), ["a", "b"])),
    ({"mode": "ANY"}, ["a", "b"], (ToolChoice("required"), ["a", "b"])),
    ({"mode": "ANY", "allowedFunctionNames": ["b"]}, ["a", "b"], (ToolChoice("tool", "b"), ["a", "b"])),
    ({"mode": "ANY", "allowedFunctionNames": ["a", "c"]}, ["a", "b", "c"], (ToolChoice("required"), ["a", "c"])),
    ({"mode": "VALIDATED", "allowed_function_names": ["b"]}, ["a", "b"], (ToolChoice("auto"), ["b"])),
    ({"mode": "NONE"}, ["a"], (ToolChoice("none"), ["a"])),
    ({}, ["a"], (None, ["a"])),
])
def test_parse_tool_choice(fcc, tools, want):
    body = {"contents": [{"role": "user", "parts": [{"text": "go"}]}],
            "tools": [{"functionDeclarations": [{"name": n} for n in tools]}],
            "toolConfig": {"functionCallingConfig": fcc}}
    req = gc.parse_request(body)
    assert (req.tool_choice, [t.name for t in req.tools]) == want
    assert req.tools[0].parameters == {"type": "object", "properties": {}}


def test_parse_response_schema_openapi_to_json_schema():
    body = {"contents": [{"role": "user", "parts": [{"text": "list"}]}],
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": {
                "type": "ARRAY", "items": {"type": "OBJECT", "properties": {
                    "name": {"type": "STRING"}, "age": {"type": "INTEGER", "nullable": True},
                    "kind": {"type": "STRING", "format": "enum", "enum": ["a", "b"]}},
                    "propertyOrdering": ["name", "age"], "required": ["name"]}}}}
    assert gc.parse_request(body).response_format == ResponseFormat("json_schema", {
        "type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "age": {"type": ["integer", "null"]},
            "kind": {"type": "string", "enum": ["a", "b"]}}, "required": ["name"]}})
    body["generationConfig"] = {"responseMimeType": "application/json"}
    assert gc.parse_request(body).response_format == ResponseFormat("json_object")


@pytest.mark.parametrize("tc, want", [
    ({"thinkingBudget": 0}, Reasoning(effort="none")),
    ({"thinkingBudget": -1, "includeThoughts": True}, Reasoning(include_thoughts=True)),
    ({"thinkingBudget": -1}, None),
    ({"thinkingLevel": "HIGH"}, Reasoning(effort="high")),
    ({"thinking_budget": 300.0}, Reasoning(budget_tokens=300)),
])
def test_parse_thinking_config(tc, want):
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": tc}}
    assert gc.parse_request(body).reasoning == want


def test_parse_refuses_what_the_ir_cannot_carry():
    audio = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/mp3", "data": "AAAA"}}]}]}
    with pytest.raises(TranslationError) as e:
        gc.parse_request(audio)
    assert e.value.param == "contents" and "audio/mp3" in e.value.message
    enum = {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING", "enum": ["a"]}}}
    with pytest.raises(TranslationError) as e:
        gc.parse_request(enum)
    assert e.value.param == "responseMimeType"
    with pytest.raises(TranslationError):
        gc.parse_request({"contents": [{"role": "system", "parts": [{"text": "x"}]}]})


def test_parse_ignores_code_execution_history_and_unknown_part_fields():
    body = {"contents": [{"role": "model", "parts": [
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
        {"text": "done", "videoMetadata": None, "partMetadata": {"k": "v"}}]}]}
    assert gc.parse_request(body).messages == [Message("assistant", [TextPart("done")])]


# ---------------------------------------------------------------------------------------------- build_request


def openai_like_conversation() -> ChatRequest:
    """What an OpenAI chat client's history looks like in the IR."""
    return ChatRequest(
        model="gemini-2.5-flash",
        system=["You are helpful.", "Answer briefly."],
        messages=[
            Message("user", [TextPart("Weather in Paris and Rome? Here's a map."), ImagePart(data=PNG, media_type="image/png")]),
            Message("assistant", [TextPart("")]),  # empty: skipped, the two user turns merge
            Message("user", [TextPart("Please hurry.")]),
            Message("assistant", [TextPart("Looking it up."),
                                  ToolCallPart("call_abc", "get_weather", '{"city": "Paris"}'),
                                  ToolCallPart("call_def", "get_weather", '"Rome"')]),
            Message("user", [ToolResultPart("call_abc", [TextPart('{"temp": 21}')]),
                             ToolResultPart("call_def", [TextPart("sunny, 25C")], name="get_weather")]),
        ],
        tools=[Tool("get_weather", "Get weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                   "required": ["city"], "additionalProperties": False}, strict=True)],
        tool_choice=ToolChoice("required"), parallel_tool_calls=False,
        temperature=0.2, top_p=0.8, top_k=30, max_tokens=1000, n=2, seed=1, presence_penalty=0.5,
        frequency_penalty=0.25, stop=["a", "b", "c", "d", "e", "f"], user="u-1", metadata={"k": "v"},
        response_format=ResponseFormat("json_schema", {"type": "object", "properties": {"x": {"type": "string"}}}),
        reasoning=Reasoning(effort="low", include_thoughts=True),
    )


def test_build_full_request():
    body, warnings = gc.build_request(openai_like_conversation(), "gemini-2.5-flash")
    validate_body(body)
    assert body["systemInstruction"] == {"parts": [{"text": "You are helpful.\n\nAnswer briefly."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome? Here's a map."},
                                   {"inlineData": {"mimeType": "image/png", "data": PNG}},
                                   {"text": "Please hurry."}]},
        {"role": "model", "parts": [
            {"text": "Looking it up."},
            {"functionCall": {"id": "call_abc", "name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": gc.SKIP_SIGNATURE},  # client dropped the signature: Gemini 3 placeholder
            {"functionCall": {"id": "call_def", "name": "get_weather", "args": {"value": "Rome"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": "call_abc", "name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"id": "call_def", "name": "get_weather", "response": {"result": "sunny, 25C"}}}]},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.2, "topP": 0.8, "topK": 30, "candidateCount": 2, "maxOutputTokens": 1000,
        "presencePenalty": 0.5, "frequencyPenalty": 0.25, "seed": 1, "stopSequences": ["a", "b", "c", "d", "e"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Get weather", "parameters": {
        "type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert len(warnings) == 5 and all(isinstance(w, str) for w in warnings)
    for word in ("stop", "strict", "parallel_tool_calls", "user", "metadata"):
        assert any(word in w for w in warnings), word


@pytest.mark.parametrize("choice, want", [
    (ToolChoice("auto"), {"mode": "AUTO"}),
    (ToolChoice("none"), {"mode": "NONE"}),
    (ToolChoice("required"), {"mode": "ANY"}),
    (ToolChoice("tool", "f"), {"mode": "ANY", "allowedFunctionNames": ["f"]}),
])
def test_build_tool_choice(choice, want):
    req = ChatRequest("m", [Message("user", [TextPart("x")])], tools=[Tool("f")], tool_choice=choice)
    body, _ = gc.build_request(req, "m")
    assert body["toolConfig"] == {"functionCallingConfig": want}
    assert body["tools"] == [{"functionDeclarations": [{"name": "f"}]}]  # no properties → no parameters
    validate_body(body)
    no_tools, _ = gc.build_request(ChatRequest("m", [Message("user", [TextPart("x")])], tool_choice=choice), "m")
    assert "toolConfig" not in no_tools and "tools" not in no_tools


@pytest.mark.parametrize("reasoning, model, want, warned", [
    (Reasoning(effort="none"), "gemini-2.5-flash", {"thinkingBudget": 0}, False),
    (Reasoning(effort="minimal"), "gemini-2.5-flash", {"thinkingBudget": 512}, False),
    (Reasoning(effort="medium"), "gemini-2.5-flash", {"thinkingBudget": 8192}, False),
    (Reasoning(effort="high"), "gemini-2.5-flash", {"thinkingBudget": 24576}, False),
    (Reasoning(effort="max"), "gemini-2.5-flash", {"thinkingBudget": 24576}, False),
    (Reasoning(effort="low", budget_tokens=3000), "gemini-2.5-flash", {"thinkingBudget": 3000}, False),
    (Reasoning(effort="none"), "gemini-2.5-pro", {"thinkingBudget": 128}, True),
    (Reasoning(effort="none", include_thoughts=True), "gemini-2.5-flash", {"thinkingBudget": 0}, True),
    (Reasoning(include_thoughts=True), "gemini-2.5-flash", {"includeThoughts": True}, False),
])
def test_build_reasoning(reasoning, model, want, warned):
    body, warnings = gc.build_request(ChatRequest("m", [Message("user", [TextPart("x")])], reasoning=reasoning), model)
    assert body["generationConfig"]["thinkingConfig"] == want
    assert bool(warnings) == warned


def test_build_json_object_and_no_generation_config():
    req = ChatRequest("m", [Message("user", [TextPart("json please")])], response_format=ResponseFormat("json_object"))
    assert gc.build_request(req, "m")[0]["generationConfig"] == {"responseMimeType": "application/json"}
    body, warnings = gc.build_request(ChatRequest("m", [Message("user", [TextPart("hi")])]), "m")
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]} and warnings == []


def test_build_thinking_signatures_follow_gemini_positions():
    req = ChatRequest("m", [
        Message("user", [TextPart("q")]),
        Message("assistant", [ThinkingPart("plan A", SIG), ToolCallPart("c1", "f", "{}"), ToolCallPart("c2", "f", "")]),
        Message("user", [ToolResultPart("c1", [TextPart("1")]), ToolResultPart("c2", [TextPart("2")])]),
        Message("assistant", [ThinkingPart("unsigned musing"), ThinkingPart(redacted="opaque"),
                              TextPart("Answer."), ThinkingPart("", "ZW5kc2ln")]),
        Message("user", [ThinkingPart("user-side thinking is meaningless"), TextPart("thanks")]),
        Message("assistant", [ThinkingPart("closing thought", "czM=")]),
    ])
    body, warnings = gc.build_request(req, "gemini-3-pro-preview")
    validate_body(body)
    assert body["contents"][1]["parts"] == [
        {"text": "plan A", "thought": True},
        {"functionCall": {"id": "c1", "name": "f", "args": {}}, "thoughtSignature": SIG},
        {"functionCall": {"id": "c2", "name": "f", "args": {}}},
    ]
    assert body["contents"][3]["parts"] == [{"text": "Answer."}, {"text": "", "thoughtSignature": "ZW5kc2ln"}]
    assert body["contents"][4]["parts"] == [{"text": "thanks"}]
    assert body["contents"][5]["parts"] == [{"text": "closing thought", "thought": True, "thoughtSignature": "czM="}]
    assert len(warnings) == 2 and any("redacted" in w for w in warnings)


def test_build_placeholder_signature_only_in_current_turn():
    calls = lambda i: Message("assistant", [ToolCallPart(f"c{i}", "f", "{}")])  # noqa: E731
    result = lambda i: Message("user", [ToolResultPart(f"c{i}", [TextPart("ok")], name="f")])  # noqa: E731
    req = ChatRequest("m", [Message("user", [TextPart("old turn")]), calls(0), result(0),
                            Message("assistant", [TextPart("done")]), Message("user", [TextPart("new turn")]),
                            calls(1), result(1), calls(2), result(2)])
    body, _ = gc.build_request(req, "gemini-3-flash")
    signed = [c["parts"][0]["functionCall"]["id"] for c in body["contents"]
              if c["role"] == "model" and "thoughtSignature" in c["parts"][0]]
    assert signed == ["c1", "c2"]


def test_build_placeholder_signature_skips_older_models():
    req = ChatRequest("m", [Message("user", [TextPart("q")]), Message("assistant", [ToolCallPart("c", "f", "{}")]),
                            Message("user", [ToolResultPart("c", [TextPart("ok")], name="f")])])
    assert "thoughtSignature" not in gc.build_request(req, "gemini-2.0-flash")[0]["contents"][1]["parts"][0]
    assert gc.build_request(req, "gemini-2.5-flash")[0]["contents"][1]["parts"][0]["thoughtSignature"] == gc.SKIP_SIGNATURE


def test_image_detail_both_ways():
    body = {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": PNG}, "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}}]}]}
    assert [p.detail for p in gc.parse_request(body).messages[0].parts] == ["high", None]
    req = ChatRequest("m", [Message("user", [ImagePart(data=PNG, detail="low"), ImagePart(data=PNG, detail="auto")])])
    body, warnings = gc.build_request(req, "m")
    assert body["contents"][0]["parts"][0] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert warnings == ["image detail dropped: Gemini has no per-image detail setting"]


def test_build_media_and_results():
    req = ChatRequest("m", [
        Message("user", [ImagePart(url="gs://b/cat.png"), ImagePart(url="data:image/webp;base64,UklGRgAA"),
                         ImagePart(data="/9j/4AAQ"), DocumentPart(data="JVBERi0x", filename="a.pdf"),
                         DocumentPart(url="https://generativelanguage.googleapis.com/v1beta/files/f1")]),
        Message("assistant", [ToolCallPart("t1", "shot", "{}")]),
        Message("user", [ToolResultPart("t1", [TextPart("[1, 2]"), ImagePart(data=PNG, media_type="image/png")],
                                        is_error=True)]),
    ])
    body, _ = gc.build_request(req, "m")
    validate_body(body)
    assert body["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRgAA"}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/f1"}},
    ]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"id": "t1", "name": "shot", "response": {"error": "[1, 2]"}}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


def test_build_refusals():
    def build(**kw):
        base = dict(model="m", messages=[Message("user", [TextPart("x")])])
        return gc.build_request(ChatRequest(**{**base, **kw}), "m")

    with pytest.raises(TranslationError) as e:
        build(messages=[Message("user", [ImagePart(url="https://example.com/cat.png")])])
    assert e.value.param == "image_url" and "fetched" in e.value.message
    with pytest.raises(TranslationError) as e:
        build(messages=[Message("user", [DocumentPart(url="https://example.com/a.pdf")])])
    assert e.value.param == "file"
    with pytest.raises(TranslationError) as e:
        build(unsupported={"logprobs": True})
    assert e.value.param == "logprobs" and e.value.status == 400
    with pytest.raises(TranslationError) as e:
        build(messages=[Message("user", [ToolResultPart("nope", [TextPart("x")])])])
    assert e.value.param == "tool_call_id"
    with pytest.raises(TranslationError) as e:
        build(messages=[Message("assistant", [TextPart("")])])
    assert e.value.param == "messages"
    with pytest.raises(TranslationError) as e:
        build(n=2, unsupported={"n": 2})  # an OpenAI client's n > 1: only candidate 0 would come back
    assert e.value.param == "n"
    with pytest.raises(TranslationError) as e:
        build(unsupported={"web_search_options": {}})  # unknown to this builder: presumed meaning-changing
    assert e.value.param == "web_search_options" and "Gemini" in e.value.message
    body, warnings = build(unsupported={"logprobs": False, "service_tier": "flex", "safetySettings": [{"x": 1}],
                                        "googleSearch": {}, "cachedContent": "cachedContents/x",
                                        "mediaResolution": "MEDIA_RESOLUTION_LOW"})
    assert warnings == ["service_tier dropped: Gemini has no equivalent"]
    assert body["tools"] == [{"googleSearch": {}}] and body["cachedContent"] == "cachedContents/x"
    assert body["safetySettings"] == [{"x": 1}]
    assert body["generationConfig"] == {"mediaResolution": "MEDIA_RESOLUTION_LOW"}


def test_gemini_request_round_trips_through_ir():
    body = sdk_body(
        [gt.Content(role="user", parts=[gt.Part.from_text(text="hi")]),
         gt.Content(role="model", parts=[gt.Part(text="Let me think", thought=True),
                                         gt.Part(function_call=gt.FunctionCall(id="x1", name="f", args={"a": [1, 2]}),
                                                 thought_signature=b"sig-bytes"),
                                         gt.Part(function_call=gt.FunctionCall(id="x2", name="f", args={}))]),
         gt.Content(role="user", parts=[gt.Part(function_response=gt.FunctionResponse(id="x1", name="f", response={"ok": 1})),
                                        gt.Part(function_response=gt.FunctionResponse(id="x2", name="f", response={"ok": 2}))])],
        gt.GenerateContentConfig(system_instruction="sys", max_output_tokens=99))
    rebuilt, warnings = gc.build_request(gc.parse_request(body), "gemini-2.5-flash")
    assert warnings == []
    want = orjson.loads(orjson.dumps(body))
    del want["systemInstruction"]["role"]
    for c in want["contents"]:
        c.setdefault("role", "user")
    assert {k: rebuilt[k] for k in ("systemInstruction", "generationConfig")} == {
        "systemInstruction": want["systemInstruction"], "generationConfig": want["generationConfig"]}
    assert rebuilt["contents"] == [{"role": c["role"], "parts": c["parts"]} for c in want["contents"]]


# ---------------------------------------------------------------------------------------------- schemas


def test_clean_schema_pydantic_style():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {
            "Address": {"type": "object", "properties": {"street": {"type": "string", "format": "uri"},
                                                         "zip": {"type": "string", "pattern": "^[0-9]+$"}},
                        "required": ["street", "missing"], "additionalProperties": False},
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}},
        },
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Address", "description": "where"},
            "nick": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Nick"},
            "kind": {"const": "person"},
            "age": {"type": ["integer", "null"], "minimum": 0, "exclusiveMinimum": 0, "format": "int32"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "both": {"allOf": [{"$ref": "#/$defs/Address"}, {"properties": {"extra": {"type": "boolean"}}}]},
            "tree": {"$ref": "#/$defs/Node"},
            "level": {"enum": [1, 2, 3], "type": "integer"},
            "free": {"type": "object", "additionalProperties": {"type": "string"}},
            "multi": {"type": ["string", "number"]},
        },
        "required": ["home", "kind"],
    }
    out = clean_schema(schema)
    gt.Schema.model_validate(out)
    address = {"type": "OBJECT", "properties": {"street": {"type": "STRING"}, "zip": {"type": "STRING", "pattern": "^[0-9]+$"}},
               "required": ["street"]}
    p = out["properties"]
    assert out["type"] == "OBJECT" and out["required"] == ["home", "kind"] and "$schema" not in out
    assert p["home"] == {**address, "description": "where"}
    assert p["nick"] == {"type": "STRING", "default": None, "title": "Nick", "nullable": True}
    assert p["kind"] == {"type": "STRING", "enum": ["person"]}
    assert p["age"] == {"type": "INTEGER", "minimum": 0, "nullable": True, "format": "int32"}
    assert p["tags"] == {"type": "ARRAY", "maxItems": 3, "items": {"type": "STRING"}}
    assert p["either"] == {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}
    assert p["both"]["properties"].keys() == {"street", "zip", "extra"}
    assert p["tree"] == {"type": "OBJECT", "properties": {"child": {"type": "OBJECT"}}}  # recursion cut
    assert p["level"] == {"type": "INTEGER"}  # non-string enum dropped
    assert p["free"] == {"type": "OBJECT"}
    assert p["multi"] == {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}


def test_tool_parameters_object_rules():
    assert tool_parameters({"type": "object", "properties": {}}) is None
    assert tool_parameters(None) is None
    assert tool_parameters({"type": "string"}) == {"type": "OBJECT", "properties": {"value": {"type": "STRING"}},
                                                   "required": ["value"]}
    assert tool_parameters({"properties": {"a": {"type": "integer"}}}) == {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}


def test_openapi_to_json_schema_accepts_snake_case():
    assert openapi_to_json_schema({"type": "OBJECT", "properties": {"a": {"any_of": [{"type": "STRING"}], "nullable": True}},
                                   "property_ordering": ["a"]}) == {
        "type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}


# ---------------------------------------------------------------------------------------------- responses

RESPONSE = {
    "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "**Plan** call both", "thought": True},
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ]},
        "finishReason": "STOP", "index": 0, "safetyRatings": [],
    }],
    "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
                      "cachedContentTokenCount": 10, "totalTokenCount": 100},
    "modelVersion": "gemini-2.5-flash", "responseId": "resp-123",
}


def test_parse_response_tool_calls_and_usage():
    resp = gc.parse_response(RESPONSE)
    ids = [p.id for p in resp.parts if isinstance(p, ToolCallPart)]
    assert resp.parts == [
        ThinkingPart("**Plan** call both"), TextPart("Checking."), ThinkingPart("", SIG),
        ToolCallPart(ids[0], "get_weather", '{"city":"Paris"}'), ToolCallPart(ids[1], "get_weather", '{"city":"Rome"}'),
    ]
    assert all(i.startswith("call_") and len(i) == 29 and i[5:].isalnum() for i in ids) and ids[0] != ids[1]
    assert gc.parse_response(RESPONSE).parts[3].id == ids[0]  # deterministic per response
    other = gc.parse_response({**RESPONSE, "responseId": "resp-456"})
    assert other.parts[3].id != ids[0]  # distinct across answers
    assert resp.finish == "tool_calls"  # STOP with function calls (pitfall 9)
    assert resp.usage == Usage(input=50, output=50, cache_read=10, reasoning=30)
    assert (resp.id, resp.model) == ("resp-123", "gemini-2.5-flash")


@pytest.mark.parametrize("reason, want", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("BLOCKLIST", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"), ("OTHER", "stop"), ("SOMETHING_NEW", "stop"), (None, "stop"),
])
def test_parse_response_finish_table(reason, want):
    body = {"candidates": [{"content": {"role": "model"}, "finishReason": reason}]}
    resp = gc.parse_response(body)
    assert resp.finish == want and resp.parts == [] and resp.id.startswith("gen-")


def test_parse_response_blocked_prompt():
    resp = gc.parse_response({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                              "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}})
    assert (resp.finish, resp.parts, resp.usage) == ("content_filter", [], Usage(input=8))


def test_render_response_sdk_parses_it():
    resp = ChatResponse("chatcmpl-1", "gpt-x", [
        ThinkingPart("thinking...", SIG), TextPart("Here you go."),
        ToolCallPart("call_1", "search", '{"q": "x"}'), ToolCallPart("call_2", "noargs", ""),
    ], finish="tool_calls", usage=Usage(input=100, output=40, cache_read=20, reasoning=15))
    body = gc.render_response(resp, "gemini-2.5-flash")
    assert body == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": True},
            {"text": "Here you go.", "thoughtSignature": SIG},
            {"functionCall": {"id": "call_1", "name": "search", "args": {"q": "x"}}},
            {"functionCall": {"id": "call_2", "name": "noargs", "args": {}}}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 25, "totalTokenCount": 140,
                          "cachedContentTokenCount": 20, "thoughtsTokenCount": 15},
        "modelVersion": "gemini-2.5-flash", "responseId": "chatcmpl-1",
    }
    sdk = gt.GenerateContentResponse.model_validate_json(orjson.dumps(body))
    assert [(f.id, f.name, f.args) for f in sdk.function_calls] == [("call_1", "search", {"q": "x"}), ("call_2", "noargs", {})]
    assert sdk.usage_metadata.thoughts_token_count == 15
    back = gc.parse_response(body)
    assert back.usage == resp.usage and back.finish == "tool_calls"
    for finish, want in (("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), ("stop", "STOP"), ("error", "OTHER")):
        r = gc.render_response(ChatResponse("x", "m", [], finish=finish), "m")
        assert r["candidates"][0]["finishReason"] == want and "usageMetadata" not in r
        gt.GenerateContentResponse.model_validate_json(orjson.dumps(r))


# ---------------------------------------------------------------------------------------------- streams


def frames(chunks: list[dict]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


USAGE_1 = {"promptTokenCount": 12, "totalTokenCount": 12}
USAGE_2 = {"promptTokenCount": 12, "candidatesTokenCount": 9, "thoughtsTokenCount": 20, "totalTokenCount": 41}
TAIL = {"modelVersion": "gemini-2.5-flash", "responseId": "r-1"}
UPSTREAM = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Thinking about it", "thought": True}]}, "index": 0}],
     "usageMetadata": USAGE_1, **TAIL},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me "}]}, "index": 0}], "usageMetadata": USAGE_1, **TAIL},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "check."}]}, "index": 0}], "usageMetadata": USAGE_1, **TAIL},
    {"usageMetadata": USAGE_1, **TAIL},  # no candidates (pitfall 27)
    {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
        {"functionCall": {"id": "given-id", "name": "get_time", "args": {}}}]}, "index": 0}],
     "usageMetadata": USAGE_1, **TAIL},
    {"candidates": [{"content": {"role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": USAGE_2, **TAIL},
]


def decode(raw: bytes, chunk: int = 7) -> list:
    parser, dec, out = SSEParser(), gc.StreamDecoder(), []
    for i in range(0, len(raw), chunk):  # frames split anywhere, CRLF included
        for ev in parser.feed(raw[i:i + chunk]):
            out.extend(dec.feed(ev))
    for ev in parser.flush():
        out.extend(dec.feed(ev))
    return out + dec.close()


def test_stream_decode_realistic():
    events = decode(frames(UPSTREAM))
    start = events[6]
    assert isinstance(start, ToolCallStart) and start.id.startswith("call_")
    assert events == [
        StreamStart("r-1", "gemini-2.5-flash"),
        ThinkingDelta("Thinking about it"),
        UsageUpdate(Usage(input=12)),
        TextDelta("Let me "), TextDelta("check."),
        ThinkingDelta("", SIG),
        ToolCallStart(0, start.id, "get_weather"), ToolCallDelta(0, '{"city":"Paris"}'), ToolCallEnd(0),
        ToolCallStart(1, "given-id", "get_time"), ToolCallDelta(1, "{}"), ToolCallEnd(1),
        UsageUpdate(Usage(input=12, output=29, reasoning=20)),
        Finish("tool_calls"),
    ]
    assert decode(frames(UPSTREAM))[6].id == start.id  # deterministic from responseId


def test_stream_decode_errors_blocks_and_junk():
    events = decode(frames([{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}, **TAIL}]))
    assert events == [StreamStart("r-1", "gemini-2.5-flash"), UsageUpdate(Usage(input=3)), Finish("content_filter")]
    err = frames([UPSTREAM[1]]) + b'data: {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}\r\n\r\n'
    assert decode(err)[-1] == StreamError(429, "Resource exhausted")
    assert decode(b"") == []
    assert decode(b": keep-alive\r\n\r\ndata: [DONE]\r\n\r\ndata: {not json\r\n\r\n") == []
    events = decode(frames([{"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}],
                             "futureField": 1}]))
    assert events[0].id.startswith("gen-") and events[1:] == [TextDelta("x"), Finish("length")]
    events = decode(frames([{"candidates": [{"finishReason": "SAFETY", "index": 0}], **TAIL}]))
    assert events[-1] == Finish("content_filter")


def test_stream_encode_exact_frames():
    enc = gc.StreamEncoder("gemini-2.5-flash")
    seq = [
        StreamStart("msg_01", "claude-x", Usage(input=30)),
        ThinkingDelta("Hmm"), ThinkingDelta("", SIG),
        TextDelta("Hello"), TextDelta(""),
        ToolCallStart(0, "toolu_1", "get_weather"), ToolCallDelta(0, '{"ci'), TextDelta(" world"),
        ToolCallDelta(0, 'ty": "Paris"}'), ToolCallEnd(0),
        ToolCallStart(1, "toolu_2", "ping"), ToolCallEnd(1),
        UsageUpdate(Usage(input=30, output=25, reasoning=5)), Finish("tool_calls"),
    ]
    out = [enc.feed(e) for e in seq]
    tail = b']},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"msg_01"}\r\n\r\n'
    head = b'data: {"candidates":[{"content":{"role":"model","parts":['
    assert out == [
        b"", head + b'{"text":"Hmm","thought":true}' + tail,
        head + b'{"text":"","thought":true,"thoughtSignature":"' + SIG.encode() + b'"}' + tail,
        head + b'{"text":"Hello"}' + tail, b"", b"", b"", head + b'{"text":" world"}' + tail, b"",
        head + b'{"functionCall":{"id":"toolu_1","name":"get_weather","args":{"city":"Paris"}}}' + tail,
        b"", head + b'{"functionCall":{"id":"toolu_2","name":"ping","args":{}}}' + tail, b"", b"",
    ]
    final = enc.close()
    assert enc.close() == b"" and enc.feed(TextDelta("late")) == b""
    assert final == (b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],'
                     b'"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":20,"totalTokenCount":55,'
                     b'"thoughtsTokenCount":5},"modelVersion":"gemini-2.5-flash","responseId":"msg_01"}\r\n\r\n')
    parsed = [e for chunk in out + [final] for e in SSEParser().feed(chunk)]
    for ev in parsed:  # every frame is a valid GenerateContentResponse for the SDK
        gt.GenerateContentResponse.model_validate_json(ev.data)
    assert "".join(gt.GenerateContentResponse.model_validate_json(ev.data).text or "" for ev in parsed[2:]) == "Hello world"


def test_stream_encode_without_finish_error_and_unclosed_call():
    enc = gc.StreamEncoder("m")
    assert enc.feed(TextDelta("a")).startswith(b'data: {"candidates"')
    enc.feed(ToolCallStart(0, "c", "f"))
    enc.feed(ToolCallDelta(0, '{"x": 1'))  # cut mid-arguments: still a valid object for the client
    final = enc.close()
    objs = [orjson.loads(e.data) for e in SSEParser().feed(final)]
    assert objs[0]["candidates"][0]["content"]["parts"] == [{"functionCall": {"id": "c", "name": "f", "args": {"value": '{"x": 1'}}}]
    assert objs[1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" not in objs[1]
    enc = gc.StreamEncoder("m")
    enc.feed(TextDelta("partial"))
    err = enc.feed(StreamError(529, "Overloaded"))
    assert orjson.loads(SSEParser().feed(err)[0].data) == {"error": {"code": 529, "message": "Overloaded", "status": "UNAVAILABLE"}}
    assert enc.close() == b""
    empty = gc.StreamEncoder("m").close()
    gt.GenerateContentResponse.model_validate_json(SSEParser().feed(empty)[0].data)


# ---------------------------------------------------------------------------------------------- properties

NAMES = st.sampled_from(["get_weather", "search", "f"])
TEXT = st.text(min_size=1, max_size=20)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=8),
                   st.floats(allow_nan=False, allow_infinity=False))
JSON_OBJ = st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=6),
                           st.recursive(SCALAR, lambda c: st.lists(c, max_size=3) | st.dictionaries(
                               st.text(string.ascii_letters, min_size=1, max_size=4), c, max_size=3), max_leaves=6),
                           max_size=4)


@st.composite
def chat_requests(draw) -> ChatRequest:
    messages, unanswered, n = [], [], 0
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            parts = [TextPart(t) for t in draw(st.lists(TEXT, max_size=2))]
            for _ in range(draw(st.integers(0, 2))):
                args = draw(JSON_OBJ)
                call = ToolCallPart(f"call_{draw(st.text(string.ascii_letters, min_size=3, max_size=6))}{n}",
                                    draw(NAMES), orjson.dumps(args).decode())
                n += 1
                parts.append(call)
                unanswered.append(call)
            messages.append(Message("assistant", parts))
        else:
            parts = []
            while unanswered and draw(st.booleans()):
                call = unanswered.pop(0)
                text = draw(st.one_of(TEXT, JSON_OBJ.map(lambda o: orjson.dumps(o).decode())))
                parts.append(ToolResultPart(call.id, [TextPart(text)], name=draw(st.sampled_from([None, call.name]))))
            parts += [TextPart(t) for t in draw(st.lists(TEXT, max_size=2))]
            messages.append(Message("user", parts))
    return ChatRequest(
        model="gemini-2.5-flash", messages=messages, system=draw(st.lists(TEXT, max_size=2)),
        temperature=draw(st.none() | st.floats(0, 2)), top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 100)), max_tokens=draw(st.none() | st.integers(1, 10000)),
        stop=draw(st.lists(TEXT, max_size=5)), seed=draw(st.none() | st.integers(0, 2**31)),
        n=draw(st.none() | st.integers(1, 4)),
    )


def normalised(req: ChatRequest) -> ChatRequest:
    """The documented normalisation of build → parse: system joined, empty turns dropped, same-role turns
    merged, result names recovered, result text as JSON of the functionResponse object."""
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, ToolCallPart)}
    messages: list[Message] = []
    for m in req.messages:
        parts = []
        for p in m.parts:
            if isinstance(p, ToolResultPart):
                text = p.content[0].text
                try:
                    obj = orjson.loads(text) if text.lstrip().startswith("{") else None
                except orjson.JSONDecodeError:
                    obj = None
                obj = obj if isinstance(obj, dict) else {"result": text}
                parts.append(ToolResultPart(p.tool_call_id, [TextPart(orjson.dumps(obj).decode())], name=names[p.tool_call_id]))
            else:
                parts.append(p)
        if not parts:
            continue
        if messages and messages[-1].role == m.role:
            messages[-1].parts.extend(parts)
        else:
            messages.append(Message(m.role, parts))
    system = "\n\n".join(req.system)
    return ChatRequest(model=req.model, messages=messages, system=[system] if system else [],
                       temperature=req.temperature, top_p=req.top_p, top_k=req.top_k, max_tokens=req.max_tokens,
                       stop=req.stop, seed=req.seed, n=req.n)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_requests())
def test_property_request_round_trip(req):
    if not any(m.parts for m in req.messages):
        with pytest.raises(TranslationError):
            gc.build_request(req, req.model)
        return
    body, warnings = gc.build_request(req, req.model)
    assert warnings == []
    validate_body(body)
    back = gc.parse_request(orjson.loads(orjson.dumps(body)), model=req.model)
    assert back == normalised(req)


@st.composite
def event_sequences(draw) -> list:
    seq: list = [StreamStart(draw(st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)), "up")]
    calls = 0
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["text", "think", "sig", "call", "usage"]))
        if kind == "text":
            seq.append(TextDelta(draw(TEXT)))
        elif kind == "think":
            seq.append(ThinkingDelta(draw(TEXT), draw(st.none() | st.just(SIG))))
        elif kind == "sig":
            seq.append(ThinkingDelta("", SIG))
        elif kind == "call":
            args = orjson.dumps(draw(JSON_OBJ)).decode()
            cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
            pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)])]
            seq += [ToolCallStart(calls, f"call_{calls}", draw(NAMES)), *[ToolCallDelta(calls, p) for p in pieces],
                    ToolCallEnd(calls)]
            calls += 1
        else:
            out = draw(st.integers(0, 500))
            inp = draw(st.integers(0, 500))
            seq.append(UsageUpdate(Usage(input=inp, output=out, reasoning=draw(st.integers(0, out)),
                                         cache_read=draw(st.integers(0, inp)))))
    if draw(st.booleans()):
        seq.append(Finish(draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error"]))))
    return seq


@settings(max_examples=200, deadline=None)
@given(event_sequences())
def test_property_stream_round_trip(seq):
    enc = gc.StreamEncoder("gemini-x")
    raw = b"".join(enc.feed(e) for e in seq) + enc.close()
    got = decode(raw, chunk=5)
    want: list = [StreamStart(seq[0].id, "gemini-x")]
    usage, finish, calls = None, "stop", 0
    for e in seq[1:]:
        if isinstance(e, (TextDelta, ThinkingDelta)):
            want.append(e)
        elif isinstance(e, ToolCallStart):
            want.append(e)
        elif isinstance(e, ToolCallDelta):
            if isinstance(want[-1], ToolCallDelta) and want[-1].index == e.index:
                want[-1] = ToolCallDelta(e.index, want[-1].arguments + e.arguments)
            else:
                want.append(ToolCallDelta(e.index, e.arguments))
        elif isinstance(e, ToolCallEnd):
            if not isinstance(want[-1], ToolCallDelta):
                want.append(ToolCallDelta(e.index, "{}"))
            want[-1] = ToolCallDelta(e.index, orjson.dumps(orjson.loads(want[-1].arguments)).decode())
            want.append(e)
            calls += 1
        elif isinstance(e, UsageUpdate):
            usage = usage or Usage()
            usage.merge(e.usage)
        elif isinstance(e, Finish):
            finish = e.reason
    if usage is not None:
        want.append(UsageUpdate(Usage(input=usage.input, output=usage.output, cache_read=usage.cache_read,
                                      reasoning=usage.reasoning)))
    finish = {"error": "stop"}.get(finish, finish)
    want.append(Finish("tool_calls" if calls and finish in ("stop", "tool_calls") else
                       "stop" if finish == "tool_calls" else finish))
    assert got == want


def test_stream_decode_reads_candidate_zero_only():
    other = {"candidates": [{"content": {"role": "model", "parts": [{"text": "second"}]}, "index": 1}], **TAIL}
    both = {"candidates": [{"content": {"role": "model", "parts": [{"text": "first"}]}, "index": 0},
                           {"content": {"role": "model", "parts": [{"text": "second"}]}, "index": 1}], **TAIL}
    assert [e for e in decode(frames([other, both])) if isinstance(e, TextDelta)] == [TextDelta("first")]
    assert gc.parse_response(both).parts == [TextPart("first")]


def test_decoder_accepts_json_array_event():
    events = gc.StreamDecoder().feed(SSEEvent(None, orjson.dumps(UPSTREAM[1:3])))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("Let me "), TextDelta("check.")]
