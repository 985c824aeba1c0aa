"""Anthropic Messages requests -> IR: `parse_request` and its helpers (system, content blocks, tools,
thinking, output format). `anthropic_codec` re-exports `parse_request`; the inbound choices are documented
in its module docstring.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from .anthropic_stream import _d, decode_tool_id
from .ir import (ChatRequest, DocumentPart, ImagePart, Message, Part, Reasoning, ResponseFormat, TextPart,
                 ThinkingPart, Tool, ToolCallPart, ToolChoice, ToolResultPart, TranslationError)

# ---------------------------------------------------------------------------------------------- small readers


def _num(v: object) -> float | None:
    return v if type(v) in (int, float) else None


def _int(v: object) -> int | None:
    return v if type(v) is int else None


def _str(v: object) -> str | None:
    return v if type(v) is str else None


# ---------------------------------------------------------------------------------------------- parse_request


def parse_request(body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> ChatRequest:
    """An Anthropic client's /v1/messages body -> IR. Raises TranslationError (400) on malformed input and on
    inputs that only Anthropic can resolve (Files API sources)."""
    if type(body) is not dict:
        raise TranslationError("body", "the request body must be a JSON object")
    name = model or body.get("model")
    if type(name) is not str or not name:
        raise TranslationError("model", "model is required")
    req = ChatRequest(model=name)
    req.stream = stream if stream is not None else body.get("stream") is True
    req.system = _system(body.get("system"), "system")
    msgs = body.get("messages")
    if type(msgs) is not list:
        raise TranslationError("messages", "messages must be an array of {role, content} objects")
    names: dict[str, str] = {}
    extra: set[str] = set()
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if type(m) is not dict:
            raise TranslationError(where, f"{where} must be an object with role and content")
        role = m.get("role")
        if role == "system":  # not valid Anthropic, but some clients send it: hoist, as the API's own SDK docs advise
            req.system.extend(_system(m.get("content"), where))
            continue
        if role not in ("user", "assistant"):
            raise TranslationError(f"{where}.role", f"{where}.role must be 'user' or 'assistant', not {role!r}")
        req.messages.append(Message(role, _parts(m.get("content"), names, extra, where)))
    if extra:
        req.unsupported["content_blocks"] = sorted(extra)

    req.max_tokens = _int(body.get("max_tokens"))
    req.temperature = _num(body.get("temperature"))
    req.top_p = _num(body.get("top_p"))
    req.top_k = _int(body.get("top_k"))
    stops = body.get("stop_sequences")
    if type(stops) is str:
        stops = [stops]
    if type(stops) is list:
        req.stop = [s for s in stops if type(s) is str]

    _parse_tools(body, req)
    req.reasoning = _parse_reasoning(body)
    req.response_format = _parse_format(body)
    user = _str(_d(body.get("metadata")).get("user_id"))
    if user:
        req.user = user
    for key in ("mcp_servers", "container", "context_management", "service_tier"):
        if body.get(key):
            req.unsupported[key] = body[key]
    return req


def _system(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if type(value) is str:
        return [value] if value else []
    if type(value) is list:
        return [t for b in value if type(b) is dict and type(t := b.get("text")) is str and t]
    raise TranslationError(where, f"{where} must be a string or an array of text blocks")


def _parts(content: object, names: dict[str, str], extra: set[str], where: str) -> list[Part]:
    if content is None:
        return []
    if type(content) is str:
        return [TextPart(content)] if content else []
    if type(content) is not list:
        raise TranslationError(f"{where}.content", f"{where}.content must be a string or an array of content blocks")
    parts: list[Part] = []
    for j, b in enumerate(content):
        if type(b) is not dict:
            raise TranslationError(f"{where}.content[{j}]", f"{where}.content[{j}] must be a content block object")
        t = b.get("type")
        if t == "text":
            text = b.get("text")
            if type(text) is str and text:
                parts.append(TextPart(text))
        elif t == "tool_use":
            tid = decode_tool_id(str(b.get("id") or ""))
            tname = str(b.get("name") or "")
            names[tid] = tname
            inp = b.get("input")
            args = inp if type(inp) is str and inp else orjson.dumps(inp if type(inp) is dict else {}).decode()
            parts.append(ToolCallPart(tid, tname, args))
        elif t == "tool_result":
            tid = decode_tool_id(str(b.get("tool_use_id") or ""))
            items = _result_items(b.get("content"), extra, f"{where}.content[{j}]")
            parts.append(ToolResultPart(tid, items, names.get(tid), b.get("is_error") is True))
        elif t == "image":
            parts.append(_image_part(_d(b.get("source")), f"{where}.content[{j}]"))
        elif t == "document":
            parts.extend(_document_parts(b, f"{where}.content[{j}]"))
        elif t == "thinking":
            parts.append(ThinkingPart(_str(b.get("thinking")) or "", _str(b.get("signature")) or None))
        elif t == "redacted_thinking":
            parts.append(ThinkingPart(redacted=_str(b.get("data")) or ""))
        else:
            extra.add(str(t))
    return parts


def _result_items(content: object, extra: set[str], where: str) -> list[TextPart | ImagePart]:
    if type(content) is str:
        return [TextPart(content)] if content else []
    items: list[TextPart | ImagePart] = []
    for b in content if type(content) is list else ():
        t = _d(b).get("type")
        if t == "text" and _str(b.get("text")):
            items.append(TextPart(b["text"]))
        elif t == "image":
            items.append(_image_part(_d(b.get("source")), where))
        elif t == "document" and _d(b.get("source")).get("type") == "text":
            items.append(TextPart(str(b["source"].get("data") or "")))
        elif t is not None:
            extra.add(f"tool_result.{t}")
    return items


def _image_part(src: dict, where: str) -> ImagePart:
    st = src.get("type")
    if st == "base64":
        return ImagePart(data=_str(src.get("data")) or "", media_type=_str(src.get("media_type")))
    if st == "url":
        return ImagePart(url=_str(src.get("url")) or "")
    raise TranslationError(where, f"image source type {st!r} (Anthropic Files API) cannot be sent to another provider")


def _document_parts(b: dict, where: str) -> list[Part]:
    src = _d(b.get("source"))
    st = src.get("type")
    title = _str(b.get("title"))
    if st == "base64":
        return [DocumentPart(data=_str(src.get("data")) or "",
                             media_type=_str(src.get("media_type")) or "application/pdf", filename=title)]
    if st == "url":
        return [DocumentPart(url=_str(src.get("url")) or "", filename=title)]
    if st == "text":
        return [DocumentPart(data=base64.b64encode((_str(src.get("data")) or "").encode()).decode(),
                             media_type=_str(src.get("media_type")) or "text/plain", filename=title)]
    if st == "content":  # a custom document made of blocks: its text and images stand in for it
        return list(_result_items(src.get("content"), set(), where))
    raise TranslationError(where, f"document source type {st!r} (Anthropic Files API) cannot be sent to another "
                                  "provider")


_CHOICE_MODES = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}


def _parse_tools(body: dict, req: ChatRequest) -> None:
    server: list[Any] = []
    for t in body.get("tools") or ():
        if type(t) is not dict:
            continue
        if t.get("type") in (None, "custom"):
            schema = t.get("input_schema")
            strict = t.get("strict")
            req.tools.append(Tool(
                name=str(t.get("name") or ""), description=_str(t.get("description")),
                parameters=schema if type(schema) is dict else {"type": "object", "properties": {}},
                strict=strict if type(strict) is bool else None,
            ))
        else:
            server.append(t)  # web_search_20250305, code_execution, bash, text_editor…: Anthropic-run tools
    if server:
        req.unsupported["tools"] = server
    tc = body.get("tool_choice")
    if type(tc) is dict:
        mode = _CHOICE_MODES.get(tc.get("type"), "auto")
        req.tool_choice = ToolChoice(mode, _str(tc.get("name")) if mode == "tool" else None)  # type: ignore[arg-type]
        if tc.get("disable_parallel_tool_use") is True:
            req.parallel_tool_calls = False


def _parse_reasoning(body: dict) -> Reasoning | None:
    th = _d(body.get("thinking"))
    effort = _str(_d(body.get("output_config")).get("effort"))
    kind = th.get("type")
    shown = th.get("display") != "omitted"
    if kind == "enabled":  # the budget stays a budget: each target maps it to its own scale
        return Reasoning(effort, _int(th.get("budget_tokens")), shown)
    if kind in ("adaptive", "between_tools"):
        return Reasoning(effort or "high", None, shown)  # Anthropic's documented default effort is high
    if kind == "disabled":
        return Reasoning("none")
    return Reasoning(effort) if effort else None


def _parse_format(body: dict) -> ResponseFormat | None:
    fmt = _d(_d(body.get("output_config")).get("format")) or _d(body.get("output_format"))
    if fmt.get("type") == "json_schema" and type(fmt.get("schema")) is dict:
        return ResponseFormat("json_schema", fmt["schema"])
    return None
