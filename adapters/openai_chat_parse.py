"""OpenAI Chat Completions requests -> IR: `parse_request` and its helpers (messages, content parts, tools,
response format, parameters without an IR field). `openai_chat_codec` re-exports `parse_request`; the
normalisations are documented in its module docstring.
"""

from __future__ import annotations

from typing import Any

import orjson

from .ir import (ChatRequest, DocumentPart, ImagePart, Message, Part, Reasoning, ResponseFormat, TextPart,
                 ThinkingPart, Tool, ToolCallPart, ToolChoice, ToolResultPart, TranslationError)
from .openai_chat_stream import synth_call_id


# ============================================================================================ parse request


def _num(body: dict[str, Any], key: str, kinds: tuple[type, ...] = (int, float)) -> Any:
    v = body.get(key)
    if v is not None and type(v) not in kinds:
        raise TranslationError(key, f"{key} must be {'an integer' if kinds == (int,) else 'a number'}")
    return v


def _str(v: object) -> str | None:
    return v if type(v) is str and v else None


def _data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<mime>;base64,<b64>`` -> (mime, b64)."""
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise TranslationError(param, "data URLs must be base64 (data:<mime>;base64,<data>)")
    return head[5:-7] or "application/octet-stream", data


def _texts(content: object, param: str) -> list[str]:
    """Text of a system/developer/tool message: a string or text parts (one entry per part)."""
    if content is None:
        return []
    if type(content) is str:
        return [content]
    if type(content) is not list:
        raise TranslationError(param, "content must be a string or a list of content parts")
    for j, part in enumerate(content):
        if type(part) is not dict or part.get("type") != "text" or type(part.get("text")) is not str:
            raise TranslationError(f"{param}[{j}]", "only text parts are allowed here")
    return [part["text"] for part in content]


def _user_part(part: object, param: str) -> Part | None:
    kind = part.get("type") if type(part) is dict else None
    if kind == "text":
        if type(text := part.get("text")) is not str:
            raise TranslationError(f"{param}.text", "text must be a string")
        return TextPart(text) if text else None
    if kind == "image_url":
        img = part.get("image_url")
        img = {"url": img} if type(img) is str else img  # some clients send the URL bare
        url = _str(img.get("url")) if type(img) is dict else None
        if url is None:
            raise TranslationError(f"{param}.image_url.url", "image_url.url is required")
        detail = _str(img.get("detail"))
        if url.startswith("data:"):
            mime, data = _data_url(url, f"{param}.image_url.url")
            return ImagePart(data=data, media_type=mime, detail=detail)
        return ImagePart(url=url, detail=detail)
    if kind == "file":
        f = part.get("file") if type(part.get("file")) is dict else {}
        if file_data := _str(f.get("file_data")):
            if not file_data.startswith("data:"):  # bare base64: OpenAI only takes PDFs this way
                return DocumentPart(data=file_data, filename=_str(f.get("filename")))
            mime, data = _data_url(file_data, f"{param}.file.file_data")
            return DocumentPart(data=data, media_type=mime, filename=_str(f.get("filename")))
        if f.get("file_id"):
            raise TranslationError(f"{param}.file.file_id", "file_id refers to a file stored at OpenAI, which "
                                   "other providers can't read; send the file inline as file_data")
        raise TranslationError(f"{param}.file", "file parts need file_data")
    if kind == "input_audio":
        raise TranslationError(param, "audio input (input_audio) can't be translated for this provider")
    raise TranslationError(f"{param}.type", f"unknown content part type {kind!r}")


def _user_parts(content: object, param: str) -> list[Part]:
    if content is None or type(content) is str:
        return [TextPart(content)] if content else []
    if type(content) is not list:
        raise TranslationError(param, "content must be a string or a list of content parts")
    return [p for j, part in enumerate(content) if (p := _user_part(part, f"{param}[{j}]")) is not None]


def _assistant_parts(msg: dict[str, Any], param: str, names: dict[str, str], turn: int) -> list[Part]:
    parts: list[Part] = []
    if thinking := _str(msg.get("reasoning_content")) or _str(msg.get("reasoning")):
        parts.append(ThinkingPart(thinking))
    content = msg.get("content")
    if type(content) is list:  # text and refusal parts
        for j, part in enumerate(content):
            text = part.get("text", part.get("refusal")) if type(part) is dict else None
            if type(text) is not str or part.get("type") not in ("text", "refusal"):
                raise TranslationError(f"{param}.content[{j}]", "assistant content parts must be text or refusal")
            if text:
                parts.append(TextPart(text))
    elif type(content) is str:
        if content:
            parts.append(TextPart(content))
    elif content is not None:
        raise TranslationError(f"{param}.content", "content must be a string, a list of parts, or null")
    if (refusal := _str(msg.get("refusal"))) and not any(type(p) is TextPart for p in parts):
        parts.append(TextPart(refusal))
    if msg.get("function_call"):
        raise TranslationError(f"{param}.function_call", "the deprecated function_call can't be translated")
    calls = msg.get("tool_calls") or []
    if type(calls) is not list:
        raise TranslationError(f"{param}.tool_calls", "tool_calls must be a list")
    for k, call in enumerate(calls):
        p = f"{param}.tool_calls[{k}]"
        if type(call) is not dict or call.get("type", "function") != "function":
            raise TranslationError(p, "only function tool calls can be translated")
        fn = call.get("function") if type(call.get("function")) is dict else {}
        if (name := _str(fn.get("name"))) is None:
            raise TranslationError(f"{p}.function.name", "tool calls need function.name")
        args = fn.get("arguments")
        args = orjson.dumps(args).decode() if type(args) is dict else args if _str(args) and args.strip() else "{}"
        cid = _str(call.get("id")) or synth_call_id(f"turn{turn}", k)
        names[cid] = name
        parts.append(ToolCallPart(cid, name, args))
    return parts


def _parse_messages(messages: list[Any], req: ChatRequest) -> None:
    names: dict[str, str] = {}  # tool call id -> name, to fill ToolResultPart.name
    prev = None  # wire role of the previous non-system message
    out = req.messages
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        role = msg.get("role") if type(msg) is dict else None
        if role in ("system", "developer"):
            req.system.extend(t for t in _texts(msg.get("content"), f"{param}.content") if t)
            continue
        if role == "user":
            parts = _user_parts(msg.get("content"), f"{param}.content")
            if prev == "tool":
                out[-1].parts.extend(parts)
            else:
                out.append(Message("user", parts))
        elif role == "assistant":
            out.append(Message("assistant", _assistant_parts(msg, param, names, i)))
        elif role == "tool":
            if (cid := _str(msg.get("tool_call_id"))) is None:
                raise TranslationError(f"{param}.tool_call_id", "tool messages need tool_call_id")
            texts = _texts(msg.get("content"), f"{param}.content")
            result = ToolResultPart(cid, [TextPart(t) for t in texts if t], name=names.get(cid))
            if prev == "tool":
                out[-1].parts.append(result)
            else:
                out.append(Message("user", [result]))
        elif role == "function":
            raise TranslationError(f"{param}.role", "the deprecated 'function' role can't be translated")
        else:
            raise TranslationError(f"{param}.role", f"unknown role {role!r}")
        prev = role


def _parse_tools(body: dict[str, Any], req: ChatRequest) -> None:
    tools = body.get("tools") or []
    if type(tools) is not list:
        raise TranslationError("tools", "tools must be a list")
    for k, t in enumerate(tools):
        if type(t) is not dict or t.get("type", "function") != "function":
            raise TranslationError(f"tools[{k}]", "only function tools can be translated (not custom tools)")
        fn = t.get("function") if type(t.get("function")) is dict else {}
        if (name := _str(fn.get("name"))) is None:
            raise TranslationError(f"tools[{k}].function.name", "tools need function.name")
        params, strict = fn.get("parameters"), fn.get("strict")
        req.tools.append(Tool(name, _str(fn.get("description")),
                              params if type(params) is dict else {"type": "object", "properties": {}},
                              strict if type(strict) is bool else None))
    choice = body.get("tool_choice")
    kind = choice.get("type") if type(choice) is dict else None
    if choice is None:
        return
    if choice in ("auto", "none", "required"):
        req.tool_choice = ToolChoice(choice)
    elif kind == "function":
        fn = choice.get("function")
        if (name := _str(fn.get("name") if type(fn) is dict else None)) is None:
            raise TranslationError("tool_choice.function.name", "tool_choice needs function.name")
        req.tool_choice = ToolChoice("tool", name)
    elif kind == "allowed_tools":
        # Allowing only some tools is the same as sending only those (history may still mention the others).
        allowed = choice.get("allowed_tools") if type(choice.get("allowed_tools")) is dict else {}
        mode = allowed.get("mode", "auto")
        if mode not in ("auto", "required") or type(allowed.get("tools")) is not list:
            raise TranslationError("tool_choice.allowed_tools", "allowed_tools needs mode auto|required and tools")
        keep = {f.get("name") if type(f := t.get("function")) is dict else t.get("name")
                for t in allowed["tools"] if type(t) is dict}
        req.tools = [t for t in req.tools if t.name in keep]
        req.tool_choice = ToolChoice(mode)
    else:
        raise TranslationError("tool_choice", f"tool_choice {choice!r} can't be translated for this provider")


def _parse_response_format(rf: object) -> ResponseFormat | None:
    kind = rf.get("type") if type(rf) is dict else None
    if rf is None:
        return None
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise TranslationError("response_format.type", f"unknown response_format {kind!r}")
    js = rf.get("json_schema")
    if type(js) is not dict or type(js.get("schema", {})) is not dict:
        raise TranslationError("response_format.json_schema", "json_schema needs a schema object")
    strict = js.get("strict")
    return ResponseFormat("json_schema", js.get("schema") or {}, _str(js.get("name")),
                          strict if type(strict) is bool else None)


def parse_request(body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> ChatRequest:
    """A client's ``/chat/completions`` body -> IR. Raises `TranslationError` (400) on malformed input or on
    content that has no IR form (audio input, stored file ids, custom tools, the deprecated functions API)."""
    if type(body) is not dict:
        raise TranslationError("body", "the request body must be a JSON object")
    if (name := _str(model) or _str(body.get("model"))) is None:
        raise TranslationError("model", "model is required")
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        raise TranslationError("messages", "messages must be a non-empty list")
    req = ChatRequest(model=name)
    _parse_messages(messages, req)
    _parse_tools(body, req)
    if type(ptc := body.get("parallel_tool_calls")) is bool:
        req.parallel_tool_calls = ptc
    req.response_format = _parse_response_format(body.get("response_format"))
    req.max_tokens = _num(body, "max_completion_tokens", (int,))
    if req.max_tokens is None:
        req.max_tokens = _num(body, "max_tokens", (int,))
    req.temperature, req.top_p = _num(body, "temperature"), _num(body, "top_p")
    req.top_k = _num(body, "top_k", (int,))  # vLLM / OpenRouter / Together extension
    req.presence_penalty, req.frequency_penalty = _num(body, "presence_penalty"), _num(body, "frequency_penalty")
    req.seed, req.n = _num(body, "seed", (int,)), _num(body, "n", (int,))
    stop = body.get("stop")
    if type(stop) is str or (type(stop) is list and all(type(s) is str for s in stop)):
        req.stop = [s for s in ([stop] if type(stop) is str else stop) if s]
    elif stop is not None:
        raise TranslationError("stop", "stop must be a string or a list of strings")
    effort, extra = body.get("reasoning_effort"), body.get("reasoning")  # OpenRouter: {"effort", "max_tokens"}
    if type(effort) is str or type(extra) is dict:
        extra = extra if type(extra) is dict else {}
        budget = extra.get("max_tokens")
        req.reasoning = Reasoning(_str(effort) or _str(extra.get("effort")), budget if type(budget) is int else None)
    req.stream = stream if stream is not None else body.get("stream") is True
    opts = body.get("stream_options")
    req.include_usage = req.stream and type(opts) is dict and opts.get("include_usage") is True
    req.user = _str(body.get("user")) or _str(body.get("safety_identifier"))
    if type(meta := body.get("metadata")) is dict and meta:
        req.metadata = {str(k): v if type(v) is str else orjson.dumps(v).decode() for k, v in meta.items()}
    _record_unsupported(body, req)
    return req


def _record_unsupported(body: dict[str, Any], req: ChatRequest) -> None:
    """Keep parameters without an IR field, only when they ask for something (a ``false``/default value
    changes nothing, and recording it would make other providers refuse the request for no reason)."""
    u = req.unsupported
    for key in ("logit_bias", "audio", "prediction", "web_search_options", "moderation", "functions",
                "function_call", "service_tier", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
                "prompt_cache_options", "verbosity", "top_logprobs"):
        if body.get(key):
            u[key] = body[key]
    for key in ("store", "logprobs"):  # false is chat's default
        if body.get(key) is True:
            u[key] = True
    if type(mods := body.get("modalities")) is list and any(m != "text" for m in mods):
        u["modalities"] = mods
    if req.n is not None and req.n > 1:
        u["n"] = req.n
