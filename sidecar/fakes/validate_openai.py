"""What the fake OpenAI refuses on Chat Completions: the 400s the real API returns. Also the OpenAI
error helpers shared with `validate_responses`.

`check_chat(body)` raises `Invalid` (message, `param`, `code` copied from the real API as closely as
known) for the first broken rule; the fake answers
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``.

Sources are cited next to each rule: formats.md sections / pitfall numbers, or the public issue the
error text was taken from. Deliberately NOT enforced, because OpenAI-compatible providers served by
the same fake accept them or the real rule is unclear: unknown message fields (pitfall 25), the
deprecated `function` role, named tool_choice naming an undeclared tool.
"""

from __future__ import annotations

import re
from typing import Any

from .checks import Invalid, is_int, is_num, json_type, listing

CHAT_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
# Content part types per role (openai-python ChatCompletion*MessageParam; formats.md §2.1).
CHAT_PARTS = {"user": ("text", "image_url", "input_audio", "file"), "assistant": ("text", "refusal"),
              "system": ("text",), "developer": ("text",), "tool": ("text",), "function": ("text",)}
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
DATA_URL_RE = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,")
# Responses / Gemini / Anthropic field names that Chat Completions answers with
# "Unrecognized request argument supplied: X" (translation leaks; no compat provider takes them).
CHAT_FOREIGN = ("input", "instructions", "max_output_tokens", "previous_response_id", "system", "contents",
                "generationConfig", "stop_sequences")
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")  # pitfall 22: these reject max_tokens
O_SERIES = re.compile(r"^o\d")                 # reject temperature != 1

# ---- error helpers (wording of the real API) ---------------------------------------------------
def missing(path: str) -> Invalid:
    return Invalid(f"Missing required parameter: '{path}'.", param=path, code="missing_required_parameter")


def bad_type(path: str, expected: str, got: Any) -> Invalid:
    return Invalid(f"Invalid type for '{path}': expected {expected}, but got {json_type(got)} instead.",
                   param=path, code="invalid_type")


def bad_value(path: str, value: Any, allowed: tuple[str, ...]) -> Invalid:
    return Invalid(f"Invalid value: '{value}'. Supported values are: {listing(allowed)}.", param=path,
                   code="invalid_value")


def empty_array(path: str) -> Invalid:
    return Invalid(f"Invalid '{path}': empty array. Expected an array with minimum length 1, but got an empty "
                   "array instead.", param=path, code="empty_array")


def number_in_range(body: dict[str, Any], key: str, lo: float, hi: float | None, *, integer: bool = False) -> None:
    """`key` absent/null, or a number (integer if asked) within [lo, hi]."""
    v = body.get(key)
    if v is None:
        return
    kind = "integer" if integer else "decimal"
    if not (is_int(v) if integer else is_num(v)):
        raise bad_type(key, f"an {kind}" if integer else "a decimal", v)
    if v < lo:
        raise Invalid(f"Invalid '{key}': {kind} below minimum value. Expected a value >= {lo:g}, but got {v} "
                      "instead.", param=key, code=f"{kind}_below_min_value")
    if hi is not None and v > hi:
        raise Invalid(f"Invalid '{key}': {kind} above maximum value. Expected a value <= {hi:g}, but got {v} "
                      "instead.", param=key, code=f"{kind}_above_max_value")


def function_name(path: str, name: Any) -> None:
    """Function / schema names: ^[a-zA-Z0-9_-]+$, at most 64 characters (OpenAI function-calling docs)."""
    if name is None:
        raise missing(path)
    if not isinstance(name, str):
        raise bad_type(path, "a string", name)
    if not NAME_RE.match(name):
        raise Invalid(f"Invalid '{path}': string does not match pattern. Expected a string that matches the "
                      "pattern '^[a-zA-Z0-9_-]+$'.", param=path, code="invalid_value")
    if len(name) > 64:
        raise Invalid(f"Invalid '{path}': string too long. Expected a string with maximum length 64, but got a "
                      f"string with length {len(name)} instead.", param=path, code="string_above_max_length")


def strict_schema(schema: Any, where: str, param: str, code: str, ctx: tuple[str, ...] = ()) -> None:
    """Structured-outputs strict mode: every object schema has additionalProperties false and lists all
    its properties in `required` (OpenAI structured-outputs docs, "Supported schemas")."""
    if not isinstance(schema, dict):
        return
    types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    head = f"Invalid schema for {where}: In context={ctx!r}, "
    if "object" in types or props:
        if schema.get("additionalProperties") is not False:
            raise Invalid(head + "'additionalProperties' is required to be supplied and to be false.",
                          param=param, code=code)
        req = schema.get("required") if isinstance(schema.get("required"), list) else []
        if lost := [k for k in props if k not in req]:
            raise Invalid(head + "'required' is required to be supplied and to be an array including every key "
                          f"in properties. Missing '{lost[0]}'.", param=param, code=code)
    for k, sub in props.items():
        strict_schema(sub, where, param, code, (*ctx, "properties", k))
    if "items" in schema:
        strict_schema(schema["items"], where, param, code, (*ctx, "items"))
    for key in ("anyOf", "$defs", "definitions"):
        subs = schema.get(key)
        for k, sub in (subs.items() if isinstance(subs, dict) else enumerate(subs or [])):
            strict_schema(sub, where, param, code, (*ctx, key, str(k)))


def texts_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [p["text"] for p in content or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]


# ---- Chat Completions ------------------------------------------------------------------------------
def check_chat(body: dict[str, Any]) -> None:
    """Validate a POST /v1/chat/completions body (formats.md §2.1)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("you must provide a model parameter")
    for key in CHAT_FOREIGN:
        if key in body:
            raise Invalid(f"Unrecognized request argument supplied: {key}")
    msgs = body.get("messages")
    if msgs is None:
        raise missing("messages")
    if not isinstance(msgs, list):
        raise bad_type("messages", "an array", msgs)
    if not msgs:
        raise empty_array("messages")
    for i, m in enumerate(msgs):
        _chat_message(i, m)
    _chat_tool_sequence(msgs)
    _chat_tools(body)
    _chat_format(body, msgs)
    _chat_sampling(body)


def _chat_message(i: int, m: Any) -> None:
    p = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad_type(p, "an object", m)
    role = m.get("role")
    if role is None:
        raise missing(f"{p}.role")
    if role not in CHAT_ROLES:
        raise bad_value(f"{p}.role", role, CHAT_ROLES)
    content, calls = m.get("content"), m.get("tool_calls")
    if role == "assistant" and calls is not None:
        _tool_calls(p, calls)
    # formats.md §2.1: assistant content may be null only with tool_calls; others need content.
    if "content" not in m and role != "assistant":
        raise missing(f"{p}.content")
    if content is None and not (role == "assistant" and (calls or m.get("function_call"))):
        raise Invalid("Invalid value for 'content': expected a string, got null.", param=f"messages.[{i}].content")
    if content is not None:
        _chat_content(p, role, content)
    if role == "tool" and not isinstance(m.get("tool_call_id"), str):
        raise missing(f"{p}.tool_call_id")


def _chat_content(p: str, role: str, content: Any) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_type(f"{p}.content", "one of a string or array of objects", content)
    if not content and role != "assistant":
        raise empty_array(f"{p}.content")
    for j, part in enumerate(content):
        q = f"{p}.content[{j}]"
        if not isinstance(part, dict):
            raise bad_type(q, "an object", part)
        t = part.get("type")
        if t is None:
            raise missing(f"{q}.type")
        if t not in CHAT_PARTS[role]:
            raise bad_value(f"{q}.type", t, CHAT_PARTS[role])
        if t in ("text", "refusal") and not isinstance(part.get(t), str):
            raise missing(f"{q}.{t}") if part.get(t) is None else bad_type(f"{q}.{t}", "a string", part[t])
        elif t == "image_url":
            _image_url(f"{q}.image_url", part.get("image_url"))
        elif t == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise missing(f"{q}.input_audio.data")
            if audio.get("format") not in ("wav", "mp3"):
                raise bad_value(f"{q}.input_audio.format", audio.get("format"), ("wav", "mp3"))
        elif t == "file":
            f = part.get("file")
            if not isinstance(f, dict) or not (f.get("file_data") or f.get("file_id")):
                raise Invalid(f"Invalid '{q}.file': one of 'file_data' or 'file_id' must be provided.",
                              param=f"{q}.file", code="invalid_value")


def _image_url(path: str, v: Any) -> None:
    """image_url parts carry {"url": https URL or data:<image mime>;base64,...} (formats.md §2.1)."""
    if v is None:
        raise missing(path)
    if not isinstance(v, dict):
        raise bad_type(path, "an object", v)
    url = v.get("url")
    if url is None:
        raise missing(f"{path}.url")
    if not isinstance(url, str):
        raise bad_type(f"{path}.url", "a string", url)
    if url.startswith(("http://", "https://")):
        return
    m = DATA_URL_RE.match(url)
    if not m or not m.group(1).startswith("image/"):
        why = "an invalid format" if url.startswith("data:") else "without the 'data:' prefix"
        raise Invalid(f"Invalid '{path}.url'. Expected a base64-encoded data URL with an image MIME type (e.g. "
                      f"'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value {why}.",
                      param=f"{path}.url", code="invalid_value")


def _tool_calls(p: str, calls: Any) -> None:
    if not isinstance(calls, list):
        raise bad_type(f"{p}.tool_calls", "an array", calls)
    if not calls:  # widely reported: tool_calls: [] -> empty_array
        raise empty_array(f"{p}.tool_calls")
    for k, c in enumerate(calls):
        q = f"{p}.tool_calls[{k}]"
        if not isinstance(c, dict):
            raise bad_type(q, "an object", c)
        if not isinstance(c.get("id"), str):
            raise missing(f"{q}.id")
        if c.get("type") is None:
            raise missing(f"{q}.type")
        if c["type"] not in ("function", "custom"):
            raise bad_value(f"{q}.type", c["type"], ("function", "custom"))
        fn = c.get(c["type"])
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise missing(f"{q}.{c['type']}.name")
        if c["type"] == "function":
            # formats.md §2.1: arguments is a JSON *string*
            if fn.get("arguments") is None:
                raise missing(f"{q}.function.arguments")
            if not isinstance(fn["arguments"], str):
                raise bad_type(f"{q}.function.arguments", "a string", fn["arguments"])


def _chat_tool_sequence(msgs: list[dict[str, Any]]) -> None:
    """Tool messages answer the tool_calls of the assistant message right before them, and every call
    is answered before the next user/assistant message. Source: formats.md §2.1 ("one message per
    call"); error texts from the real API (e.g. BerriAI/litellm, langchain issues)."""
    issued: list[str] = []
    pending: list[str] = []
    owner = 0
    for i, m in enumerate(msgs):
        role = m["role"]
        if role == "tool":
            tid = m["tool_call_id"]
            if not issued:
                raise Invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                              "message with 'tool_calls'.", param=f"messages.[{i}].role")
            if tid not in issued:
                raise Invalid(f"Invalid parameter: 'tool_call_id' of '{tid}' not found in 'tool_calls' of previous "
                              "message.", param=f"messages.[{i}].tool_call_id")
            pending = [t for t in pending if t != tid]
        elif role in ("user", "assistant", "function"):
            if pending:
                raise _unanswered(owner, pending)
            issued = [c["id"] for c in m.get("tool_calls") or []] if role == "assistant" else []
            pending, owner = list(issued), i
    if pending:
        raise _unanswered(owner, pending)


def _unanswered(owner: int, pending: list[str]) -> Invalid:
    return Invalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                   f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                   f"{', '.join(pending)}", param=f"messages.[{owner}].role")


def _chat_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad_type("tools", "an array", tools)
        if not tools:  # widely reported (langchain/litellm): tools: [] is refused
            raise empty_array("tools")
        for i, t in enumerate(tools):
            p = f"tools[{i}]"
            if not isinstance(t, dict):
                raise bad_type(p, "an object", t)
            if t.get("type") is None:
                raise missing(f"{p}.type")
            if t["type"] not in ("function", "custom"):
                raise bad_value(f"{p}.type", t["type"], ("function", "custom"))
            fn = t.get(t["type"])
            if fn is None:  # e.g. a flat Responses-style tool sent to chat
                raise missing(f"{p}.{t['type']}")
            if not isinstance(fn, dict):
                raise bad_type(f"{p}.{t['type']}", "an object", fn)
            function_name(f"{p}.{t['type']}.name", fn.get("name"))
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise bad_type(f"{p}.function.parameters", "an object", params)
            if fn.get("strict") is True and params:
                strict_schema(params, f"function '{fn['name']}'", f"{p}.function.parameters",
                              "invalid_function_parameters")
    # openai/swarm #30 and writer-framework #1013: both only allowed together with tools
    for key in ("tool_choice", "parallel_tool_calls"):
        if body.get(key) is not None and not tools:
            raise Invalid(f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.", param=key)
    tc = body.get("tool_choice")
    if isinstance(tc, str) and tc not in ("none", "auto", "required"):
        raise bad_value("tool_choice", tc, ("none", "auto", "required"))
    if isinstance(tc, dict):
        if tc.get("type") not in ("function", "allowed_tools", "custom"):
            raise bad_value("tool_choice.type", tc.get("type"), ("function", "allowed_tools", "custom"))
        if tc["type"] == "function" and not isinstance((tc.get("function") or {}).get("name"), str):
            fn_given = isinstance(tc.get("function"), dict)
            raise missing("tool_choice.function.name" if fn_given else "tool_choice.function")
    elif tc is not None and not isinstance(tc, str):
        raise bad_type("tool_choice", "one of a string or an object", tc)


def _chat_format(body: dict[str, Any], msgs: list[dict[str, Any]]) -> None:
    """response_format shapes (formats.md §2.1)."""
    rf = body.get("response_format")
    if rf is None:
        return
    if not isinstance(rf, dict):
        raise bad_type("response_format", "an object", rf)
    kinds = ("text", "json_object", "json_schema")
    if rf.get("type") not in kinds:
        raise missing("response_format.type") if rf.get("type") is None else bad_value(
            "response_format.type", rf["type"], kinds)
    if rf["type"] == "json_schema":
        js = rf.get("json_schema")
        if js is None:
            raise missing("response_format.json_schema")
        if not isinstance(js, dict):
            raise bad_type("response_format.json_schema", "an object", js)
        function_name("response_format.json_schema.name", js.get("name"))
        schema = js.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise bad_type("response_format.json_schema.schema", "an object", schema)
        if js.get("strict") is True and schema:
            strict_schema(schema, f"response_format '{js['name']}'", "response_format", "invalid_json_schema")
    # formats.md §2.1 (OpenAI JSON-mode docs): the word "JSON" must appear in the messages
    if rf["type"] == "json_object" and not any("json" in t.lower() for m in msgs for t in texts_of(m.get("content"))):
        raise Invalid("'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                      "'json_object'.", param="messages")


def _chat_sampling(body: dict[str, Any]) -> None:
    model = body["model"]
    # BerriAI/litellm #5803: stream_options without stream
    if body.get("stream_options") is not None and not body.get("stream"):
        raise Invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                      param="stream_options")
    # langchain-ai/langgraph #5943
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise Invalid("Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
                      param="max_tokens", code="invalid_parameter_combination")
    # pitfall 22: reasoning models reject max_tokens
    if body.get("max_tokens") is not None and REASONING_MODEL.match(model):
        raise Invalid("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                      "'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    # o-series reasoning models only take the default temperature (widely reported)
    if body.get("temperature") not in (None, 1) and O_SERIES.match(model):
        raise Invalid(f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                      "Only the default (1) value is supported.", param="temperature", code="unsupported_value")
    number_in_range(body, "max_tokens", 1, None, integer=True)
    number_in_range(body, "max_completion_tokens", 1, None, integer=True)
    number_in_range(body, "n", 1, 128, integer=True)          # formats.md §2.1 `n`
    number_in_range(body, "temperature", 0, 2)                # formats.md §2.1: temperature 0-2
    number_in_range(body, "top_p", 0, 1)
    number_in_range(body, "presence_penalty", -2, 2)
    number_in_range(body, "frequency_penalty", -2, 2)
    number_in_range(body, "top_logprobs", 0, 20, integer=True)
    stop = body.get("stop")  # formats.md §2.1: string or up to 4 strings
    if isinstance(stop, list) and len(stop) > 4:
        raise Invalid(f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array "
                      f"with length {len(stop)} instead.", param="stop", code="array_above_max_length")
    if stop is not None and not isinstance(stop, (str, list)):
        raise bad_type("stop", "one of a string or array of strings", stop)
    efforts = ("none", "minimal", "low", "medium", "high", "xhigh", "max")  # formats.md §2.1
    if body.get("reasoning_effort") is not None and body["reasoning_effort"] not in efforts:
        raise bad_value("reasoning_effort", body["reasoning_effort"], efforts)
