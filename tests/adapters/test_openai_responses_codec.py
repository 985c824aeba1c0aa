"""OpenAI Responses codec (inbound only): request parsing, response rendering, stream encoding.

Fixtures are hand-written from formats.md §2.2/§3/§4.2 and the openai SDK's types, plus a Codex CLI request as
that client sends it. Every rendered object and every streamed event is validated with the installed openai
SDK's own models, and whole answers are driven through the SDK's client over an in-process mock transport.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from adapters import openai_responses_codec as rc
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

EVENT = TypeAdapter(ResponseStreamEvent)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").decode()
SHELL_TOOL = {
    "type": "function", "name": "shell", "description": "Runs a shell command and returns its output.", "strict": False,
    "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}},
                                                    "workdir": {"type": "string"}, "timeout_ms": {"type": "number"}},
                   "required": ["command"], "additionalProperties": False},
}

# What Codex CLI sends on the second turn of a tool loop (store:false, so the whole history is replayed,
# including OpenAI's opaque reasoning ciphertext from an earlier OpenAI-served turn).
CODEX = {
    "model": "anthropic/claude-sonnet-4-5",
    "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI.",
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>workspace-write</permissions>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>\n  <cwd>/home/dev/proj</cwd>\n</environment_context>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
        {"type": "reasoning", "id": "rs_68b2c1", "summary": [{"type": "summary_text", "text": "**Listing files**"}],
         "content": None, "encrypted_content": "gAAAAABouM0z3Z0bWZ4aW5nLW9wYXF1ZQ=="},
        {"type": "function_call", "id": "fc_68b2c2", "name": "shell",
         "arguments": "{\"command\":[\"bash\",\"-lc\",\"ls\"],\"workdir\":\"/home/dev/proj\"}", "call_id": "call_Xy12ab"},
        {"type": "function_call_output", "call_id": "call_Xy12ab",
         "output": "{\"output\":\"README.md\\nsrc\\n\",\"metadata\":{\"exit_code\":0,\"duration_seconds\":0.0}}"},
    ],
    "tools": [SHELL_TOOL, {"type": "web_search"}],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199f1b2-6c4e-7a10-9d1e-3f2a5b6c7d8e",
    "client_metadata": {"originator": "codex_cli_rs"},
    "service_tier": "auto",
    "truncation": "disabled",
}


def parse(**body) -> ChatRequest:
    body.setdefault("model", "claude-sonnet-4-5")
    return rc.parse_request(body)


def refused(param: str, **body) -> TranslationError:
    with pytest.raises(TranslationError) as ei:
        parse(**body)
    assert ei.value.param == param and ei.value.status == 400
    return ei.value


# ============================================================================================== parse_request


def test_string_input_and_instructions():
    req = parse(input="Tell me a joke", instructions="Be brief.")
    assert req.model == "claude-sonnet-4-5" and req.stream is False
    assert req.system == ["Be brief."]
    assert req.messages == [Message("user", [TextPart("Tell me a joke")])]


def test_codex_cli_request():
    req = rc.parse_request(CODEX)
    assert req.model == "anthropic/claude-sonnet-4-5" and req.stream is True
    assert req.system == [CODEX["instructions"], "<permissions>workspace-write</permissions>"]
    user, assistant, results = req.messages
    assert user.role == "user" and [p.text for p in user.parts] == [  # two user items merge into one turn
        "<environment_context>\n  <cwd>/home/dev/proj</cwd>\n</environment_context>", "list the files"]
    # OpenAI's ciphertext can't be replayed elsewhere: the summary survives, the blob doesn't.
    assert assistant == Message("assistant", [
        ThinkingPart(text="**Listing files**"),
        ToolCallPart(id="call_Xy12ab", name="shell", arguments=CODEX["input"][4]["arguments"]),
    ])
    assert results == Message("user", [ToolResultPart(tool_call_id="call_Xy12ab", name="shell",
                                                      content=[TextPart(CODEX["input"][5]["output"])])])
    assert [t.name for t in req.tools] == ["shell"] and req.tools[0].strict is False
    assert req.tools[0].parameters == SHELL_TOOL["parameters"]
    assert req.unsupported == {"tools": ["web_search"]}  # hosted: only OpenAI can run it
    assert req.tool_choice == ToolChoice("auto") and req.parallel_tool_calls is False
    assert req.reasoning == Reasoning(effort="medium", include_thoughts=True)


def test_system_and_developer_items_hoisted_in_order():
    req = parse(instructions="A", input=[
        {"role": "system", "content": "B"},
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "C"},
                                                             {"type": "input_text", "text": "D"}]},
        {"role": "assistant", "content": "hello"},
    ])
    assert req.system == ["A", "B", "C\n\nD"]
    assert [m.role for m in req.messages] == ["user", "assistant"]


def test_multi_turn_with_replayed_assistant_output_and_refusal():
    req = parse(input=[
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "do something bad"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        {"role": "user", "content": "ok"},
    ])
    assert [(m.role, [p.text for p in m.parts]) for m in req.messages] == [
        ("user", ["hi"]), ("assistant", ["Hello!"]), ("user", ["do something bad"]),
        ("assistant", ["I can't help with that."]), ("user", ["ok"])]


def test_consecutive_same_role_items_merge_and_empty_content_is_dropped():
    req = parse(input=[
        {"role": "user", "content": "a"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "input_text", "text": ""}, {"type": "input_text", "text": "b"}]},
        {"role": "assistant", "content": []},
        {"role": "user", "content": "c"},
    ])
    assert req.messages == [Message("user", [TextPart("a"), TextPart("b"), TextPart("c")])]


@pytest.mark.parametrize("inp", ["", [], [{"role": "user", "content": ""}], None])
def test_empty_input_refused(inp):
    body = {"instructions": "x"} if inp is None else {"input": inp}
    assert "input" in refused("input", **body).message


def test_sampling_params_and_misc():
    req = parse(input="x", max_output_tokens=512, temperature=0.2, top_p=0.9, user="u-1",
                metadata={"run": "42"}, stream=True)
    assert (req.max_tokens, req.temperature, req.top_p, req.user, req.metadata, req.stream) == (
        512, 0.2, 0.9, "u-1", {"run": "42"}, True)
    assert parse(input="x", safety_identifier="hash-9").user == "hash-9"
    assert rc.parse_request({"model": "m", "input": "x", "stream": True}, model="other", stream=False).model == "other"
    assert rc.parse_request({"model": "m", "input": "x", "stream": True}, stream=False).stream is False
    # Responses has no stop, n or penalties: nothing to map, and nothing is invented.
    assert req.stop == [] and req.n is None and req.seed is None


@pytest.mark.parametrize("key,value", [("temperature", "hot"), ("max_output_tokens", 1.5), ("top_p", True)])
def test_bad_sampling_types(key, value):
    refused(key, input="x", **{key: value})


def test_ignored_server_fields_and_unknown_fields():
    req = parse(input="x", store=True, include=["reasoning.encrypted_content", "web_search_call.action.sources"],
                client_metadata={"a": "b"}, prompt_cache_key="k", service_tier="flex", truncation="auto",
                background=False, stream_options={"include_obfuscation": False}, brand_new_field={"x": 1},
                prompt_cache_retention="24h")
    assert req.unsupported == {}
    assert req.messages == [Message("user", [TextPart("x")])]


@pytest.mark.parametrize("key,value", [
    ("previous_response_id", "resp_abc"), ("conversation", "conv_123"), ("conversation", {"id": "conv_123"}),
    ("prompt", {"id": "pmpt_1", "version": "2"}), ("background", True),
])
def test_server_state_refused(key, value):
    err = refused(key, input="x", **{key: value})
    assert "OpenAI" in err.message


def test_item_reference_refused():
    assert "stored" in refused("input", input=[{"type": "item_reference", "id": "msg_1"}]).message


def test_missing_model():
    with pytest.raises(TranslationError) as ei:
        rc.parse_request({"input": "x"})
    assert ei.value.param == "model"
    with pytest.raises(TranslationError):
        rc.parse_request(["not", "an", "object"])  # type: ignore[arg-type]


def test_logprobs_and_tool_call_caps_are_unsupported():
    req = parse(input="x", top_logprobs=5, include=["message.output_text.logprobs"], max_tool_calls=3)
    assert req.unsupported == {"top_logprobs": 5, "logprobs": True, "max_tool_calls": 3}


# --------------------------------------------------------------------------------------------- tools


def test_tools_flat_functions_and_hosted():
    req = parse(input="x", tools=[
        {"type": "function", "name": "get_weather", "description": "Weather by city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
         "strict": True},
        {"type": "function", "name": "now"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]}, {"type": "computer_use_preview"},
        {"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "image_generation"},
        {"type": "local_shell"}, {"type": "mcp", "server_label": "x"}, {"type": "web_search"},
        {"type": "custom", "name": "apply_patch"}, {"type": "web_search"},
    ])
    assert req.tools == [
        Tool("get_weather", "Weather by city",
             {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, True),
        Tool("now"),
    ]
    assert req.unsupported["tools"] == ["file_search", "computer_use_preview", "code_interpreter",
                                        "image_generation", "local_shell", "mcp", "web_search", "custom"]


@pytest.mark.parametrize("choice,expected", [
    ("auto", ToolChoice("auto")), ("none", ToolChoice("none")), ("required", ToolChoice("required")),
    ({"type": "function", "name": "get_weather"}, ToolChoice("tool", "get_weather")),
])
def test_tool_choice_modes(choice, expected):
    assert parse(input="x", tool_choice=choice).tool_choice == expected


def test_tool_choice_allowed_tools_filters_the_list():
    tools = [{"type": "function", "name": n} for n in ("a", "b", "c")]
    req = parse(input="x", tools=tools, tool_choice={
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "a"},
                                                              {"type": "function", "name": "c"}]})
    assert [t.name for t in req.tools] == ["a", "c"] and req.tool_choice == ToolChoice("required")


def test_tool_choice_hosted_is_unsupported_and_garbage_refused():
    assert parse(input="x", tool_choice={"type": "web_search_preview"}).unsupported == {
        "tool_choice": {"type": "web_search_preview"}}
    refused("tool_choice", input="x", tool_choice="any")
    refused("tool_choice", input="x", tool_choice={"type": "function"})
    refused("tools", input="x", tools=[{"type": "function", "parameters": {}}])


def test_parallel_function_calls_and_results():
    req = parse(input=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "function_call", "id": "fc_1", "call_id": "call_p", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_r", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "call_r", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_p", "output": [
            {"type": "input_text", "text": "21C"}, {"type": "input_image", "image_url": "https://x.test/map.png", "detail": "low"}]},
        {"role": "user", "content": "thanks"},
    ])
    _, assistant, user = req.messages
    assert assistant.parts == [ToolCallPart("call_p", "get_weather", "{\"city\":\"Paris\"}"),
                               ToolCallPart("call_r", "get_weather", "{\"city\":\"Rome\"}")]
    assert user.parts == [
        ToolResultPart("call_r", [TextPart("18C")], name="get_weather"),
        ToolResultPart("call_p", [TextPart("21C"), ImagePart(url="https://x.test/map.png", detail="low")], name="get_weather"),
        TextPart("thanks"),
    ]


def test_function_call_edge_cases():
    req = parse(input=[
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "call_1", "name": "now", "arguments": ""},
        {"type": "function_call", "call_id": "call_2", "name": "f", "arguments": {"a": 1}},
        {"type": "function_call_output", "call_id": "call_1", "output": ""},
        {"type": "function_call_output", "call_id": "call_orphan", "output": "x"},
    ])
    assert req.messages[1].parts == [ToolCallPart("call_1", "now", "{}"), ToolCallPart("call_2", "f", '{"a":1}')]
    assert req.messages[2].parts == [ToolResultPart("call_1", [], name="now"), ToolResultPart("call_orphan", [TextPart("x")])]
    refused("input", input=[{"type": "function_call", "name": "f", "arguments": "{}"}])
    refused("input", input=[{"type": "function_call_output", "output": "x"}])
    refused("input", input=[{"type": "function_call_output", "call_id": "c", "output": [
        {"type": "input_file", "file_data": "data:application/pdf;base64," + PDF}]}])


def test_hosted_tool_history_items_are_unsupported():
    req = parse(input=[
        {"role": "user", "content": "search"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "c1", "status": "completed", "action": {"type": "exec", "command": ["ls"], "env": {}}},
        {"type": "web_search_call", "id": "ws_2", "status": "completed"},
        {"role": "assistant", "content": "found it"},
    ])
    assert req.unsupported == {"input": ["web_search_call", "local_shell_call"]}
    assert [m.role for m in req.messages] == ["user", "assistant"]


# --------------------------------------------------------------------------------------------- content


def test_images_url_and_base64():
    req = parse(input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what's here?"},
        {"type": "input_image", "image_url": "https://upload.test/cat.jpg", "detail": "high"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        {"type": "input_image", "image_url": "data:image/svg+xml,%3Csvg%2F%3E"},
    ]}])
    assert req.messages[0].parts[1:] == [
        ImagePart(url="https://upload.test/cat.jpg", detail="high"),
        ImagePart(data=PNG, media_type="image/png", detail="auto"),
        ImagePart(data=base64.b64encode(b"<svg/>").decode(), media_type="image/svg+xml"),
    ]


def test_files():
    req = parse(input=[{"role": "user", "content": [
        {"type": "input_file", "filename": "paper.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        {"type": "input_file", "filename": "notes.txt", "file_data": base64.b64encode(b"hi").decode()},
        {"type": "input_file", "file_url": "https://arxiv.test/1706.03762.pdf"},
    ]}])
    assert req.messages[0].parts == [
        DocumentPart(data=PDF, media_type="application/pdf", filename="paper.pdf"),
        DocumentPart(data=base64.b64encode(b"hi").decode(), media_type="text/plain", filename="notes.txt"),
        DocumentPart(url="https://arxiv.test/1706.03762.pdf"),
    ]


@pytest.mark.parametrize("part", [
    {"type": "input_image", "file_id": "file-abc", "detail": "auto"},
    {"type": "input_file", "file_id": "file-abc"},
    {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
    {"type": "input_image", "detail": "auto"},
])
def test_untranslatable_content_refused(part):
    refused("input", input=[{"role": "user", "content": [part]}])


def test_malformed_items_refused():
    refused("input", input=[{"role": "tool", "content": "x"}])
    refused("input", input=[{"content": "no role"}])
    refused("input", input=["just a string"])
    refused("input", input=[{"role": "system", "content": [{"type": "input_image", "image_url": "https://x.test/a.png"}]}])
    refused("input", input=42)
    refused("instructions", input="x", instructions=["a"])


# --------------------------------------------------------------------------------------------- format, reasoning


def test_structured_output():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    req = parse(input="x", text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True,
                                            "description": "the answer"}})
    assert req.response_format == ResponseFormat("json_schema", schema, "answer", True)
    assert parse(input="x", text={"format": {"type": "json_object"}}).response_format == ResponseFormat("json_object")
    assert parse(input="x", text={"format": {"type": "text"}}).response_format == ResponseFormat("text")
    assert parse(input="x", text={"verbosity": "low"}).unsupported == {"verbosity": "low"}
    refused("text.format", input="x", text={"format": {"type": "json_schema", "name": "a"}})
    refused("text.format", input="x", text={"format": {"type": "xml"}})


def test_reasoning_options():
    assert parse(input="x", reasoning={"effort": "high"}).reasoning == Reasoning(effort="high")
    assert parse(input="x", reasoning={"effort": "low", "summary": "detailed"}).reasoning == Reasoning("low", None, True)
    assert parse(input="x", reasoning={"generate_summary": "concise"}).reasoning == Reasoning(include_thoughts=True)
    assert parse(input="x", reasoning={"effort": None, "summary": None}).reasoning is None


def test_reasoning_items():
    env = rc.SIG_PREFIX + base64.urlsafe_b64encode(b'{"s":"EqQBCkYIBxgCKkD","r":null}').decode()
    req = parse(input=[
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "step 1"},
                                                       {"type": "summary_text", "text": "step 2"}]},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAAAB-openai-only"},
        {"type": "reasoning", "id": "rs_3", "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]},
        {"type": "reasoning", "id": "rs_4", "summary": [{"type": "summary_text", "text": "signed"}], "encrypted_content": env},
        {"role": "assistant", "content": "answer"},
    ])
    assert req.messages[1].parts == [ThinkingPart("step 1\n\nstep 2"), ThinkingPart("raw"),
                                     ThinkingPart("signed", signature="EqQBCkYIBxgCKkD"), TextPart("answer")]


# ============================================================================================== render_response


def full_response(**kw) -> ChatResponse:
    parts = [ThinkingPart("Need the weather.", signature="EqQBsig"), TextPart("Let me check"), TextPart("."),
             ToolCallPart("toolu_01A09q90qw90lq917835lq9", "get_weather", '{"city":"Paris"}'),
             ToolCallPart("", "now", "")]
    defaults = dict(id="msg_01XFDUDYJgAACzvnptvVoYEL", model="claude-sonnet-4-5", parts=parts, finish="tool_calls",
                    usage=Usage(input=2095, output=503, cache_read=2048, cache_write=12, reasoning=100),
                    created=1741476542)
    defaults.update(kw)
    return ChatResponse(**defaults)


def test_render_full_response_validates_in_sdk():
    body = rc.render_response(full_response(), "claude-sonnet-4-5")
    r = Response.model_validate(body)
    assert r.id == "resp_01XFDUDYJgAACzvnptvVoYEL" and r.object == "response" and r.created_at == 1741476542
    assert r.status == "completed" and r.incomplete_details is None and r.error is None
    assert r.model == "claude-sonnet-4-5" and r.output_text == "Let me check."
    rs, msg, fc1, fc2 = r.output
    assert rs.type == "reasoning" and rs.id.startswith("rs_") and rs.summary[0].text == "Need the weather."
    assert rs.encrypted_content.startswith(rc.SIG_PREFIX)
    assert msg.type == "message" and msg.id.startswith("msg_") and msg.status == "completed" and len(msg.content) == 1
    assert (fc1.type, fc1.call_id, fc1.name, fc1.arguments, fc1.status) == (
        "function_call", "toolu_01A09q90qw90lq917835lq9", "get_weather", '{"city":"Paris"}', "completed")
    assert fc1.id.startswith("fc_") and fc1.id != fc1.call_id
    assert fc2.call_id.startswith("call_") and len(fc2.call_id) == 29 and fc2.call_id[5:].isalnum()
    assert fc2.arguments == "{}"
    assert len({o.id for o in r.output}) == 4
    assert body["usage"] == {"input_tokens": 2095, "input_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 12},
                             "output_tokens": 503, "output_tokens_details": {"reasoning_tokens": 100}, "total_tokens": 2598}
    assert body["tools"] == [] and body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True
    # deterministic: the same answer renders the same ids
    assert rc.render_response(full_response(), "m")["output"] == body["output"]


@pytest.mark.parametrize("finish,status,reason", [
    ("stop", "completed", None), ("length", "incomplete", "max_output_tokens"),
    ("content_filter", "incomplete", "content_filter"), ("error", "failed", None),
])
def test_render_statuses(finish, status, reason):
    body = rc.render_response(ChatResponse(id="", model="m", parts=[TextPart("partial")], finish=finish), "gpt-x")
    r = Response.model_validate(body)
    assert r.status == status and r.usage is None and r.id.startswith("resp_")
    assert (r.incomplete_details.reason if r.incomplete_details else None) == reason
    assert r.output[0].status == ("incomplete" if status == "incomplete" else "completed")
    assert (r.error is not None) == (status == "failed")


def test_render_echoes_request():
    req = parse(input="x", instructions="sys", tools=[SHELL_TOOL], tool_choice={"type": "function", "name": "shell"},
                parallel_tool_calls=False, temperature=0.3, max_output_tokens=99, metadata={"k": "v"},
                reasoning={"effort": "low", "summary": "auto"},
                text={"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": True}})
    body = rc.render_response(ChatResponse(id="x", model="m", parts=[TextPart("{}")]), "m", request=req)
    r = Response.model_validate(body)
    assert r.tools[0].name == "shell" and r.tool_choice.name == "shell" and r.parallel_tool_calls is False
    assert r.instructions == "sys" and r.temperature == 0.3 and r.max_output_tokens == 99 and r.metadata == {"k": "v"}
    assert r.text.format.type == "json_schema" and r.reasoning.effort == "low" and r.store is False


def test_rendered_output_replays_as_input():
    """A stateless client (Codex: store:false) sends our output items back as input: the turn comes back
    intact, with tool ids stable and the thinking signature recovered for the provider that made it."""
    resp = full_response(parts=[ThinkingPart("plan", signature="sig-1"), ThinkingPart("", redacted="opaque=="),
                                TextPart("ok"), ToolCallPart("toolu_1", "f", '{"a":1}')])
    out = rc.render_response(resp, "m")["output"]
    req = parse(input=[{"role": "user", "content": "q"}, *out,
                       {"type": "function_call_output", "call_id": "toolu_1", "output": "done"}])
    assert req.messages[1].parts == resp.parts
    assert req.messages[2].parts == [ToolResultPart("toolu_1", [TextPart("done")], name="f")]


def test_signature_envelope_rejects_garbage():
    for enc in (rc.SIG_PREFIX + "!!!", rc.SIG_PREFIX + base64.urlsafe_b64encode(b"[1]").decode(), 42, None):
        req = parse(input=[{"role": "user", "content": "q"},
                           {"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": enc}])
        assert req.messages[1].parts == [ThinkingPart("t")]


# ============================================================================================== stream encoder


def encode(events, *, model="claude-sonnet-4-5", chunked=False, **kw) -> list[tuple[str, dict]]:
    enc = rc.StreamEncoder(model, **kw)
    raw = b"".join(enc.feed(e) for e in events) + enc.close()
    assert enc.close() == b"" and enc.feed(TextDelta("late")) == b""
    parser = SSEParser()
    if chunked:  # split frames at awkward places
        sse = [e for i in range(0, len(raw), 7) for e in parser.feed(raw[i:i + 7])]
    else:
        sse = parser.feed(raw)
    sse += parser.flush()
    out = []
    for i, e in enumerate(sse):
        obj = orjson.loads(e.data)
        ev = EVENT.validate_python(obj)  # the SDK's own model for this event type
        assert e.event == obj["type"] == ev.type and obj["sequence_number"] == i
        assert e.data.startswith(b'{"type":')
        out.append((e.event, obj))
    return out


REALISTIC = [
    StreamStart(id="msg_01XFDUDYJgAACzvnptvVoYEL", model="claude-sonnet-4-5", usage=Usage(input=472)),
    ThinkingDelta("The user wants"), ThinkingDelta(" the weather."), ThinkingDelta(signature="EqQBCkYIBxgC"),
    TextDelta("Let me"), TextDelta(" check.\n"),
    ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
    ToolCallDelta(0, ""), ToolCallDelta(0, '{"location": "San'), ToolCallDelta(0, ' Francisco, CA"}'), ToolCallEnd(0),
    Finish("tool_calls"), UsageUpdate(Usage(input=472, output=89, reasoning=20)),
]


def test_stream_exact_event_sequence():
    evs = encode(REALISTIC)
    assert [t for t, _ in evs] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    d = dict(enumerate(o for _, o in evs))
    created, in_progress, completed = d[0]["response"], d[1]["response"], d[21]["response"]
    assert created["status"] == in_progress["status"] == "in_progress" and created["output"] == []
    assert created["id"] == completed["id"] == "resp_01XFDUDYJgAACzvnptvVoYEL"
    rs_id, msg_id, fc_id = d[2]["item"]["id"], d[9]["item"]["id"], d[16]["item"]["id"]
    assert rs_id.startswith("rs_") and msg_id.startswith("msg_") and fc_id.startswith("fc_")
    assert [d[i]["output_index"] for i in (2, 9, 16)] == [0, 1, 2]
    assert d[11] | {"sequence_number": 0} == {"type": "response.output_text.delta", "item_id": msg_id, "output_index": 1,
                                              "content_index": 0, "delta": "Let me", "logprobs": [], "sequence_number": 0}
    assert d[13]["text"] == "Let me check.\n" and d[14]["part"]["text"] == "Let me check.\n"
    assert d[16]["item"] == {"id": fc_id, "type": "function_call", "status": "in_progress", "arguments": "",
                             "call_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather"}
    assert d[19]["arguments"] == '{"location": "San Francisco, CA"}' and d[19]["name"] == "get_weather"
    assert d[8]["item"]["encrypted_content"].startswith(rc.SIG_PREFIX)
    r = Response.model_validate(completed)
    assert r.status == "completed" and r.output_text == "Let me check.\n"
    assert [o.type for o in r.output] == ["reasoning", "message", "function_call"]
    assert r.output[0].summary[0].text == "The user wants the weather."
    assert r.usage.input_tokens == 472 and r.usage.output_tokens == 89 and r.usage.total_tokens == 561
    assert r.usage.output_tokens_details.reasoning_tokens == 20
    chunked = encode(REALISTIC, chunked=True)
    assert [(t, o.get("delta")) for t, o in chunked] == [(t, o.get("delta")) for t, o in evs]


def test_stream_emits_each_delta_at_once():
    enc = rc.StreamEncoder("m")
    assert b"response.created" in enc.feed(StreamStart("x", "m"))
    out = enc.feed(TextDelta("Hel"))
    assert b"response.output_item.added" in out and b'"delta":"Hel"' in out
    assert enc.feed(TextDelta('lo "world"\n')).count(b"\n\n") == 1
    assert enc.feed(ToolCallDelta(3, "orphan")) == b""  # a delta for a call never started: nothing to carry it


@pytest.mark.parametrize("finish,terminal,reason", [("length", "response.incomplete", "max_output_tokens"),
                                                    ("content_filter", "response.incomplete", "content_filter"),
                                                    ("stop", "response.completed", None)])
def test_stream_incomplete(finish, terminal, reason):
    evs = encode([StreamStart("a", "m"), TextDelta("partial"), Finish(finish)])
    assert evs[-1][0] == terminal
    resp = evs[-1][1]["response"]
    assert (resp["incomplete_details"] or {}).get("reason") == reason
    assert resp["output"][0]["status"] == ("incomplete" if reason else "completed")
    assert evs[-2][1]["item"]["status"] == resp["output"][0]["status"]


def test_stream_error_mid_stream():
    evs = encode([StreamStart("a", "m"), TextDelta("half"), ToolCallStart(0, "call_1", "f"), ToolCallDelta(0, "{"),
                  StreamError(529, "Overloaded")])
    types = [t for t, _ in evs]
    assert types[-2:] == ["error", "response.failed"] and types.count("response.output_item.done") == 1  # the message
    err, failed = evs[-2][1], evs[-1][1]["response"]
    assert err == {"type": "error", "code": "server_error", "message": "Overloaded", "param": None,
                   "sequence_number": len(evs) - 2}
    assert failed["status"] == "failed" and failed["error"] == {"code": "server_error", "message": "Overloaded"}
    assert [(o["type"], o["status"]) for o in failed["output"]] == [("message", "completed"), ("function_call", "incomplete")]
    rate = encode([StreamError(429, "slow down")])
    assert [t for t, _ in rate] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert rate[2][1]["code"] == "rate_limit_exceeded" and rate[3][1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_stream_finish_error_is_failed():
    evs = encode([StreamStart("a", "m"), TextDelta("x"), Finish("error")])
    assert evs[-1][0] == "response.failed" and evs[-1][1]["response"]["error"]["code"] == "server_error"


def test_empty_stream_and_missing_finish():
    assert [t for t, _ in encode([])] == ["response.created", "response.in_progress", "response.completed"]
    evs = encode([TextDelta("no start, no finish")])  # ids invented, well-formed ending all the same
    assert evs[0][1]["response"]["id"].startswith("resp_") and evs[-1][0] == "response.completed"
    assert evs[-1][1]["response"]["output"][0]["content"][0]["text"] == "no start, no finish"
    assert evs[-1][1]["response"]["usage"] is None


def test_stream_tool_calls_parallel_interleaved_and_empty_args():
    evs = encode([
        StreamStart("a", "m"), ToolCallStart(0, "call_a", "f"), ToolCallStart(1, "", "now"),
        ToolCallDelta(0, '{"x":'), ToolCallDelta(0, "1}"), ToolCallEnd(1), ToolCallEnd(0), ToolCallEnd(0),
        ToolCallStart(0, "dup", "dup"), Finish("tool_calls"),
    ])
    final = Response.model_validate(evs[-1][1]["response"])
    assert [(o.call_id[:5], o.name, o.arguments) for o in final.output] == [("call_", "f", '{"x":1}'), ("call_", "now", "{}")]
    assert final.output[0].call_id == "call_a" and len(final.output[1].call_id) == 29
    deltas = [(o["output_index"], o["delta"]) for t, o in evs if t == "response.function_call_arguments.delta"]
    assert deltas == [(0, '{"x":'), (0, "1}"), (1, "{}")]


def test_stream_thinking_blocks_and_loose_signatures():
    evs = encode([
        StreamStart("a", "m"), ThinkingDelta("one"), ThinkingDelta(signature="s1"), ThinkingDelta("two"),
        ThinkingDelta(signature="s2"), ToolCallStart(0, "c", "f"), ThinkingDelta(signature="gemini-sig"),
        ToolCallDelta(0, "{}"), ThinkingDelta(""), Finish("tool_calls"),
    ])
    out = evs[-1][1]["response"]["output"]
    assert [o["type"] for o in out] == ["reasoning", "reasoning", "function_call", "reasoning"]
    assert [o["summary"] for o in out if o["type"] == "reasoning"][2] == []
    assert out[2]["arguments"] == "{}"  # the call stayed open while the signature item went by
    replay = parse(input=[{"role": "user", "content": "q"}, *out])
    assert replay.messages[1].parts == [ThinkingPart("one", "s1"), ThinkingPart("two", "s2"),
                                        ToolCallPart("c", "f", "{}"), ThinkingPart("", "gemini-sig")]


def test_stream_echo_and_model():
    req = parse(input="x", tools=[SHELL_TOOL], tool_choice="required")
    evs = encode([TextDelta("hi")], model="my-alias", request=req)
    for _, o in (evs[0], evs[-1]):
        assert o["response"]["model"] == "my-alias" and o["response"]["tool_choice"] == "required"
        assert o["response"]["tools"][0]["name"] == "shell"


# ============================================================================================== the SDK, end to end


def sdk_client(handler):
    openai = pytest.importorskip("openai")
    try:
        import httpx2 as httpx  # the installed SDK's HTTP library
    except ImportError:  # older SDKs use httpx
        import httpx
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return openai.OpenAI(api_key="placeholder", base_url="http://sidecar.test/v1", http_client=http,
                         max_retries=0, _strict_response_validation=True), httpx


def test_sdk_non_stream_and_stream():
    seen = []

    def handler(request):
        req = rc.parse_request(orjson.loads(request.content))
        seen.append(req)
        if not req.stream:
            return httpx.Response(200, json=rc.render_response(full_response(), req.model, request=req))
        enc = rc.StreamEncoder(req.model, request=req)
        body = b"".join(enc.feed(e) for e in REALISTIC) + enc.close()
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client, httpx = sdk_client(handler)
    r = client.responses.create(model="claude-sonnet-4-5", input="weather?", tools=[SHELL_TOOL])
    assert r.output_text == "Let me check." and r.output[2].call_id == "toolu_01A09q90qw90lq917835lq9"
    assert r.usage.input_tokens_details.cached_tokens == 2048 and r.tools[0].name == "shell"

    events = list(client.responses.create(model="claude-sonnet-4-5", input="weather?", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "Let me check.\n"
    assert [e.sequence_number for e in events] == list(range(len(events)))

    with client.responses.stream(model="claude-sonnet-4-5", input="weather?") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Let me check.\n"
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[2].arguments == '{"location": "San Francisco, CA"}'
    assert seen[1].stream is True and seen[0].stream is False


def test_sdk_stream_error_raises_or_reports():
    def handler(request):
        enc = rc.StreamEncoder("m")
        body = enc.feed(TextDelta("partial")) + enc.feed(StreamError(503, "upstream went away")) + enc.close()
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client, httpx = sdk_client(handler)
    import openai
    try:
        events = list(client.responses.create(model="m", input="x", stream=True))
    except openai.APIError as e:
        assert "upstream went away" in str(e)
    else:  # this SDK version yields the error event instead of raising
        assert [e.type for e in events][-2:] == ["error", "response.failed"]
        assert events[-2].message == "upstream went away" and events[-1].response.error.message == "upstream went away"


# ============================================================================================== properties

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
json_obj = st.dictionaries(ident, st.one_of(st.integers(-2**53, 2**53), text, st.booleans(), st.none()), max_size=3).map(
    lambda d: orjson.dumps(d).decode())


@st.composite
def conversations(draw) -> ChatRequest:
    """Alternating-ish turns; results answer calls made earlier, as a real client does."""
    msgs: list[Message] = [Message("user", [TextPart(draw(text))])]
    calls: list[ToolCallPart] = []
    n = 0
    for _ in range(draw(st.integers(0, 4))):
        if msgs[-1].role == "user":
            parts: list = []
            if draw(st.booleans()):
                parts.append(ThinkingPart(draw(text), signature=draw(st.none() | text)))
            parts += [TextPart(t) for t in draw(st.lists(text, max_size=2))]
            for _ in range(draw(st.integers(0 if parts else 1, 2))):
                n += 1
                calls.append(ToolCallPart(f"call_{n}", draw(ident), draw(json_obj)))
                parts.append(calls[-1])
            msgs.append(Message("assistant", parts))
        else:
            made = [p for p in msgs[-1].parts if isinstance(p, ToolCallPart)]
            parts = [ToolResultPart(c.id, [TextPart(t) for t in draw(st.lists(text, max_size=2))], name=c.name)
                     for c in made]
            parts += [TextPart(t) for t in draw(st.lists(text, min_size=0 if parts else 1, max_size=2))]
            msgs.append(Message("user", parts))
    tools = [Tool(name, draw(st.none() | text), {"type": "object", "properties": {}}, draw(st.none() | st.booleans()))
             for name in draw(st.lists(ident, max_size=3, unique=True))]
    choice = draw(st.none() | st.sampled_from([ToolChoice("auto"), ToolChoice("none"), ToolChoice("required")])
                  | ident.map(lambda n: ToolChoice("tool", n)))
    return ChatRequest(
        model="m", messages=msgs, system=draw(st.lists(text, max_size=2)), tools=tools, tool_choice=choice,
        parallel_tool_calls=draw(st.none() | st.booleans()), max_tokens=draw(st.none() | st.integers(1, 10**6)),
        temperature=draw(st.none() | st.floats(0, 2)), top_p=draw(st.none() | st.floats(0, 1)),
        user=draw(st.none() | ident), stream=draw(st.booleans()),
        reasoning=draw(st.none() | st.sampled_from(["low", "medium", "high"]).map(lambda e: Reasoning(effort=e))),
    )


def to_wire(req: ChatRequest) -> dict:
    """A reference Responses body for an IR request, written straight from formats.md §2.2."""
    items: list[dict] = [{"role": "developer", "content": s} for s in req.system[1:]]
    for m in req.messages:
        for p in m.parts:
            if isinstance(p, TextPart):
                kind = "output_text" if m.role == "assistant" else "input_text"
                items.append({"type": "message", "role": m.role, "content": [{"type": kind, "text": p.text}]})
            elif isinstance(p, ThinkingPart):
                items.append({"type": "reasoning", "id": "rs_x", "summary": [{"type": "summary_text", "text": p.text}],
                              "encrypted_content": rc.render_response(ChatResponse("r", "m", [p]), "m")["output"][0].get("encrypted_content")})
            elif isinstance(p, ToolCallPart):
                items.append({"type": "function_call", "id": "fc_" + p.id, "call_id": p.id, "name": p.name, "arguments": p.arguments})
            elif isinstance(p, ToolResultPart):
                out = [{"type": "input_text", "text": c.text} for c in p.content]
                items.append({"type": "function_call_output", "call_id": p.tool_call_id,
                              "output": out[0]["text"] if len(out) == 1 else out})
    body: dict = {"model": req.model, "input": items, "stream": req.stream}
    if req.system:
        body["instructions"] = req.system[0]
    if req.tools:
        body["tools"] = [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
                          "strict": t.strict} for t in req.tools]
    if req.tool_choice:
        tc = req.tool_choice
        body["tool_choice"] = {"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode
    for key, val in (("parallel_tool_calls", req.parallel_tool_calls), ("max_output_tokens", req.max_tokens),
                     ("temperature", req.temperature), ("top_p", req.top_p), ("user", req.user)):
        if val is not None:
            body[key] = val
    if req.reasoning:
        body["reasoning"] = {"effort": req.reasoning.effort}
    return body


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_property_request_round_trip(req):
    assert rc.parse_request(to_wire(req)) == req


@st.composite
def stream_events(draw) -> tuple[list, list[tuple]]:
    """A random upstream answer as IR events, and the output items a Responses client should end up with."""
    events: list = [StreamStart("msg_" + draw(ident), "m")] if draw(st.booleans()) else []
    expected: list[list] = []  # [kind, text-or-args, extra]
    n = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "thinking", "call"]))
        if kind == "call":
            args = draw(json_obj)
            cut = draw(st.integers(0, len(args)))
            events += [ToolCallStart(n, f"call_{n}", f"f{n}"), ToolCallDelta(n, args[:cut]), ToolCallDelta(n, args[cut:])]
            if draw(st.booleans()):
                events.append(ToolCallEnd(n))
            expected.append(["function_call", args, f"call_{n}"])
            n += 1
            continue
        chunks = draw(st.lists(text, min_size=1, max_size=3))
        events += [TextDelta(c) if kind == "text" else ThinkingDelta(c) for c in chunks]
        signed = kind == "thinking" and draw(st.booleans())
        if signed:
            events.append(ThinkingDelta(signature="sig"))
        item = "message" if kind == "text" else "reasoning"
        if expected and expected[-1][0] == item and expected[-1][2] is None:
            expected[-1][1] += "".join(chunks)  # the run continues in the open item
            expected[-1][2] = "sig" if signed else None
        else:
            expected.append([item, "".join(chunks), "sig" if signed else None])
    if draw(st.booleans()):
        events.append(UsageUpdate(Usage(input=draw(st.integers(0, 9999)), output=draw(st.integers(0, 9999)))))
    finish = draw(st.sampled_from(["stop", "tool_calls", "length", None]))
    if finish:
        events.append(Finish(finish))
    return events, [tuple(e) for e in expected]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_events(), st.integers(1, 64))
def test_property_stream_events_rebuild_the_answer(case, chunk):
    from openai.lib.streaming.responses import ResponseStreamState
    from openai._types import omit

    events, expected = case
    enc = rc.StreamEncoder("m")
    raw = b"".join(enc.feed(e) for e in events) + enc.close()
    parser = SSEParser()
    sse = [e for i in range(0, len(raw), chunk) for e in parser.feed(raw[i:i + chunk])] + parser.flush()
    items: dict[int, dict] = {}
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for i, e in enumerate(sse):
        ev = EVENT.validate_json(e.data)
        assert ev.sequence_number == i and ev.type == e.event
        state.handle_event(ev)
        if ev.type == "response.output_item.added":
            items[ev.output_index] = {"type": ev.item.type, "text": "", "sig": None,
                                      "call_id": getattr(ev.item, "call_id", None)}
        elif ev.type in ("response.output_text.delta", "response.reasoning_summary_text.delta",
                         "response.function_call_arguments.delta"):
            items[ev.output_index]["text"] += ev.delta
        elif ev.type == "response.output_item.done" and ev.item.type == "reasoning" and ev.item.encrypted_content:
            items[ev.output_index]["sig"] = "sig"
    got = [(it["type"], it["text"], it["call_id"] if it["type"] == "function_call" else it["sig"])
           for _, it in sorted(items.items())]
    assert got == expected
    final = Response.model_validate(orjson.loads(sse[-1].data)["response"])
    assert final.status == ("incomplete" if events and isinstance(events[-1], Finish) and events[-1].reason == "length"
                            else "completed")
    assert [o.type for o in final.output] == [e[0] for e in expected]
    if final.status == "completed":  # the SDK's own accumulator agrees
        assert state._completed_response.output_text == final.output_text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
item_keys = st.sampled_from(["type", "role", "content", "call_id", "name", "arguments", "output", "summary",
                             "encrypted_content", "id", "text", "image_url", "file_data", "mode", "tools", "format"])
items = st.dictionaries(item_keys, json_values | st.sampled_from(
    ["message", "user", "assistant", "developer", "function_call", "function_call_output", "reasoning",
     "input_text", "input_image", "input_file", "allowed_tools", "json_schema"]), max_size=5)
body_keys = st.sampled_from(["input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens",
                             "temperature", "top_p", "metadata", "include", "user", "parallel_tool_calls", "stream"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(body_keys, json_values | st.lists(items, max_size=4) | items, max_size=6))
def test_property_garbage_is_refused_cleanly(body):
    """Whatever a client sends, the answer is an IR request or a TranslationError (a 400), never a crash."""
    body = {"model": "m", **body}
    try:
        rc.parse_request(body)
    except TranslationError as e:
        assert e.param and e.message
