"""What the fake OpenAI refuses on the Responses API (formats.md §2.2, pitfall 26).

`check_responses(body)` raises `Invalid` for the first broken rule, worded like the real API; the
fake answers ``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``. Sources are
cited next to each rule.
"""

from __future__ import annotations

from typing import Any

from .checks import Invalid
from .validate_openai import bad_type, bad_value, function_name, missing, number_in_range, strict_schema, texts_of

RESP_PARAMS = frozenset((  # openai-python ResponseCreateParams, plus `stream`
    "access_programs", "background", "background_options", "context_management", "conversation", "image",
    "include", "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model",
    "moderation", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
    "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
    "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p",
    "truncation", "user"))
RESP_MOVED = {"response_format": "text.format", "max_tokens": "max_output_tokens",
              "max_completion_tokens": "max_output_tokens", "reasoning_effort": "reasoning.effort"}
RESP_ITEMS = frozenset((  # input item types (openai-python ResponseInputItemParam)
    "message", "function_call", "function_call_output", "reasoning", "item_reference", "additional_tools",
    "apply_patch_call", "apply_patch_call_output", "code_interpreter_call", "compaction", "compaction_trigger",
    "computer_call", "computer_call_output", "configuration_update", "container_reference", "custom_tool_call",
    "custom_tool_call_output", "file_search_call", "image_generation_call", "local_shell_call",
    "local_shell_call_output", "mcp_approval_request", "mcp_approval_response", "mcp_call", "mcp_list_tools",
    "program", "program_output", "shell_call", "shell_call_output", "tool_search_call", "tool_search_output",
    "web_search_call"))
RESP_ROLES = ("assistant", "system", "developer", "user")
RESP_IN_PARTS = ("input_text", "input_image", "input_file", "input_audio")
RESP_OUT_PARTS = ("output_text", "refusal")



def check_responses(body: dict[str, Any]) -> None:
    """Validate a POST /v1/responses body (formats.md §2.2, pitfall 26)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise missing("model")
    for key in body:
        if key in RESP_MOVED:  # the real API points at the new home of chat-style parameters
            raise Invalid(f"Unsupported parameter: '{key}'. In the Responses API, this parameter has moved to "
                          f"'{RESP_MOVED[key]}'. Try again with the new parameter. See the API documentation for "
                          "more information: https://platform.openai.com/docs/api-reference/responses/create.",
                          param=key, code="unsupported_parameter")
        if key not in RESP_PARAMS:
            raise Invalid(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    inp = body.get("input")
    stateful = any(body.get(k) for k in ("previous_response_id", "conversation", "prompt"))
    if inp is None and not stateful:
        raise missing("input")
    if inp is not None and not isinstance(inp, (str, list)):
        raise bad_type("input", "one of a string or array of input items", inp)
    items = inp if isinstance(inp, list) else []
    for i, item in enumerate(items):
        _resp_item(i, item)
    if not stateful:
        _resp_pairing(items)
    _resp_tools(body)
    _resp_text(body, items)
    number_in_range(body, "max_output_tokens", 16, None, integer=True)  # widely reported: minimum 16
    number_in_range(body, "temperature", 0, 2)
    number_in_range(body, "top_p", 0, 1)


def _resp_item(i: int, item: Any) -> None:
    p = f"input[{i}]"
    if not isinstance(item, dict):
        raise bad_type(p, "an object", item)
    t = item.get("type", "message" if "role" in item else None)
    if t is None:
        raise missing(f"{p}.type")
    if t not in RESP_ITEMS and not t.endswith(("_call", "_call_output")):
        raise bad_value(f"{p}.type", t, ("message", "function_call", "function_call_output", "reasoning",
                                         "item_reference"))
    if t == "message":
        role = item.get("role")
        if role not in RESP_ROLES:
            raise missing(f"{p}.role") if role is None else bad_value(f"{p}.role", role, RESP_ROLES)
        content = item.get("content")
        if content is None:
            raise missing(f"{p}.content")
        if not isinstance(content, (str, list)):
            raise bad_type(f"{p}.content", "one of a string or array of input items", content)
        allowed = RESP_OUT_PARTS if role == "assistant" else RESP_IN_PARTS
        for j, part in enumerate(content if isinstance(content, list) else []):
            q = f"{p}.content[{j}]"
            if not isinstance(part, dict):
                raise bad_type(q, "an object", part)
            # replayed assistant text uses output_text parts, user text input_text (formats.md §2.2)
            if part.get("type") not in allowed:
                raise bad_value(f"{q}.type" if part.get("type") is None else q, part.get("type"), allowed)
            if part["type"] in ("input_text", "output_text") and not isinstance(part.get("text"), str):
                raise missing(f"{q}.text")
            if part["type"] == "input_image":
                url = part.get("image_url")
                if url is not None and not isinstance(url, str):  # a string here, unlike chat's {"url"}
                    raise bad_type(f"{q}.image_url", "a string", url)
                if url is None and part.get("file_id") is None:
                    raise Invalid(f"Invalid '{q}': one of 'image_url' or 'file_id' must be provided.", param=q,
                                  code="invalid_value")
    elif t == "function_call":
        for key in ("call_id", "name", "arguments"):
            if item.get(key) is None:
                raise missing(f"{p}.{key}")
            if not isinstance(item[key], str):
                raise bad_type(f"{p}.{key}", "a string", item[key])
        # pitfall 26: the item id is fc_..., not the call id
        if item.get("id") is not None and not str(item["id"]).startswith("fc"):
            raise Invalid(f"Invalid '{p}.id': '{item['id']}'. Expected an ID that begins with 'fc'.",
                          param=f"{p}.id", code="invalid_value")
    elif t == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise missing(f"{p}.call_id")
        out = item.get("output")
        if out is None:
            raise missing(f"{p}.output")
        if not isinstance(out, (str, list)):  # pitfall 26 (a list of parts is accepted too, recently)
            raise bad_type(f"{p}.output", "one of a string or array of objects", out)
    elif t == "reasoning" and not isinstance(item.get("summary"), list):
        raise missing(f"{p}.summary")


def _resp_pairing(items: list[dict[str, Any]]) -> None:
    """Without previous_response_id every function_call_output answers an earlier function_call of the
    same input, and every function_call is answered (pitfall 26; real error texts)."""
    calls: list[str] = []
    answered: set[str] = set()
    for item in items:
        t = item.get("type", "message")
        if t == "function_call":
            calls.append(item["call_id"])
        elif t == "function_call_output":
            if item["call_id"] not in calls:
                raise Invalid(f"No tool call found for function call output with call_id {item['call_id']}.",
                              param="input")
            answered.add(item["call_id"])
    for cid in calls:
        if cid not in answered:
            raise Invalid(f"No tool output found for function call {cid}.", param="input")


def _resp_tools(body: dict[str, Any]) -> None:
    """Responses tools are flat {"type":"function","name",...} (formats.md §2.2)."""
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise bad_type("tools", "an array", tools)
    for i, t in enumerate(tools or []):
        p = f"tools[{i}]"
        if not isinstance(t, dict):
            raise bad_type(p, "an object", t)
        if t.get("type") is None:
            raise missing(f"{p}.type")
        if t["type"] == "function":
            function_name(f"{p}.name", t.get("name"))  # a nested chat-style {"function": {...}} has no name here
            if t.get("parameters") is not None and not isinstance(t["parameters"], dict):
                raise bad_type(f"{p}.parameters", "an object", t["parameters"])
            if t.get("strict") is True and t.get("parameters"):
                strict_schema(t["parameters"], f"function '{t['name']}'", f"{p}.parameters",
                              "invalid_function_parameters")
    tc = body.get("tool_choice")
    if isinstance(tc, str) and tc not in ("none", "auto", "required"):
        raise bad_value("tool_choice", tc, ("none", "auto", "required"))
    if isinstance(tc, dict) and tc.get("type") == "function" and not isinstance(tc.get("name"), str):
        raise missing("tool_choice.name")  # chat-style {"function": {"name"}} is wrong here


def _resp_text(body: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """text.format shapes (formats.md §2.2)."""
    text = body.get("text")
    if text is None:
        return
    if not isinstance(text, dict):
        raise bad_type("text", "an object", text)
    fmt = text.get("format")
    if fmt is None:
        return
    kinds = ("text", "json_object", "json_schema")
    if not isinstance(fmt, dict) or fmt.get("type") not in kinds:
        raise bad_value("text.format.type", (fmt or {}).get("type") if isinstance(fmt, dict) else fmt, kinds)
    if fmt["type"] == "json_schema":
        function_name("text.format.name", fmt.get("name"))
        if not isinstance(fmt.get("schema"), dict):
            raise missing("text.format.schema")
        if fmt.get("strict") is True:
            strict_schema(fmt["schema"], f"text.format '{fmt['name']}'", "text.format.schema", "invalid_json_schema")
    if fmt["type"] == "json_object":
        words = [t for it in items for t in texts_of(it.get("content"))]
        words += texts_of(body.get("instructions")) + ([body["input"]] if isinstance(body.get("input"), str) else [])
        if not any("json" in w.lower() for w in words):
            raise Invalid("Response input messages must contain the word 'json' in some form to use 'text.format' "
                          "of type 'json_object'.", param="input")
