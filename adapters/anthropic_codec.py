"""Anthropic Messages <-> IR: inbound (Claude Code, the anthropic SDK on /v1/messages) and outbound (the
Anthropic provider). Streams live in `anthropic_stream` and are re-exported here, so the proxy's
``codec("anthropic")`` has the whole module shape of `adapters.codec`.

Inbound notes:
- A trailing assistant message is a *prefill* (Claude continues it). It stays the last IR message; the
  OpenAI and Gemini formats treat a trailing assistant turn as plain history (the model answers with a
  new turn), so the "continue from here" meaning is theirs to keep or lose.
- Consecutive same-role turns are kept as they came (Anthropic merges them itself); outbound
  builders merge where their format needs it.
- Inbound fields the IR cannot hold are kept in ``req.unsupported`` under these keys, so other
  builders can refuse or warn by name: ``tools`` (server tools such as ``web_search_20250305``),
  ``content_blocks`` (history block types with no IR part, e.g. ``server_tool_use``),
  ``mcp_servers``, ``container``, ``context_management`` (when non-empty) and ``service_tier``. Fields that
  change nothing elsewhere are ignored: ``cache_control`` (Anthropic's caching hint), ``speed``,
  ``inference_geo``, ``diagnostics``, unknown future fields.

Outbound decisions are documented next to the tables below (max_tokens defaults, effort budgets,
which unsupported parameters are refused).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from .anthropic import usage_from_response
from .anthropic_stream import (FINISH_TO_STOP, STOP_REASONS, StreamDecoder, StreamEncoder, _d, decode_tool_id,
                               encode_tool_id, message_id, stop_reason, usage_json)
from .ir import (ADVISORY_PARAMS, ChatRequest, ChatResponse, DocumentPart, ImagePart, Message, Part, Reasoning, ResponseFormat, TextPart,
                 ThinkingPart, Tool, ToolCallPart, ToolChoice, ToolResultPart, TranslationError, Usage)

__all__ = ["ACCEPTS_IMAGE_URLS", "FINISH_TO_STOP", "STOP_REASONS", "StreamDecoder", "StreamEncoder", "build_request",
           "decode_tool_id", "default_max_tokens", "encode_tool_id", "parse_request", "parse_response",
           "render_response"]

ACCEPTS_IMAGE_URLS = True
"""Anthropic fetches image URLs itself; inlining them would bloat requests past its 5 MB/image limit (pitfall 18)."""

# ---------------------------------------------------------------------------------------------- tables

MAX_OUTPUT: tuple[tuple[str, int], ...] = (
    ("claude-3-5-", 8192), ("claude-3-7-", 64000), ("claude-3-", 4096), ("claude-2", 4096), ("claude-instant", 4096),
    ("claude-", 32000),  # every 4.x model allows at least 32000 (Opus 4/4.1); the rest 64000
)
"""Model family (substring of the model name, first match wins; Bedrock/Vertex names contain it too) ->
the family's maximum output tokens."""

DEFAULT_CAP_STREAM = 32000
DEFAULT_CAP_NONSTREAM = 16384
UNKNOWN_MODEL_MAX_TOKENS = 4096
"""``max_tokens`` is required by Anthropic and has no default. When the client's format left it out, the
sidecar sends the family maximum, capped at 32000 for streams and 16384 otherwise: a client that omits a
limit expects "no limit", but a non-streamed answer that long risks upstream/proxy timeouts (the
anthropic SDK itself refuses non-streamed requests expected to take over 10 minutes, about 21k
tokens). Result: claude-3-haiku/opus/sonnet 4096, claude-3-5-* 8192, claude-3-7 and claude-*-4*
16384 / 32000 (stream). Unknown models on Anthropic-compatible hosts get 4096, which every host takes."""

EFFORT_BUDGET: dict[str, int] = {
    "minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384,
}
"""Reasoning effort -> ``thinking.budget_tokens`` (LiteLLM's low/medium/high; minimal clamped to Anthropic's
1024 floor; xhigh/max continue the doubling). ``none`` turns thinking off."""
MIN_BUDGET = 1024
NO_THINKING = ("claude-3-5-", "claude-3-haiku", "claude-3-opus", "claude-3-sonnet", "claude-2", "claude-instant")
"""Model families without extended thinking: a reasoning request to them is dropped with a warning instead of
the 400 Anthropic would answer (clients such as agent frameworks often send an effort on every call)."""


JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
"""OpenAI's JSON mode has no Anthropic equivalent; it becomes structured output with this schema."""

_IMAGE_MAGIC = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))
"""Base64 prefixes of the image magic numbers: Anthropic rejects a media_type that doesn't match the bytes."""


def default_max_tokens(model: str, stream: bool) -> int:
    for family, limit in MAX_OUTPUT:
        if family in model:
            return min(limit, DEFAULT_CAP_STREAM if stream else DEFAULT_CAP_NONSTREAM)
    return UNKNOWN_MODEL_MAX_TOKENS


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


# ---------------------------------------------------------------------------------------------- build_request


def build_request(req: ChatRequest, model: str) -> tuple[dict[str, Any], list[str]]:
    """IR -> an Anthropic /v1/messages body, plus warnings for advisory options that were dropped or changed."""
    warnings: list[str] = []
    warn = warnings.append
    if req.n is not None and req.n > 1:
        raise TranslationError("n", "Anthropic Messages returns one answer per request; n > 1 cannot be translated")
    for key in req.unsupported:
        if key not in ADVISORY_PARAMS:
            raise TranslationError(key, f"{key} has no equivalent in Anthropic Messages (it would change the answer)")
        warn(f"{key} dropped: Anthropic Messages has no equivalent")

    body: dict[str, Any] = {"model": model}
    messages = _build_messages(req.messages, warnings)
    system = "\n\n".join(s for s in req.system if s)
    if system:
        body["system"] = system
    body["messages"] = messages

    max_tokens = req.max_tokens if req.max_tokens is not None else default_max_tokens(model, req.stream)
    budget = _thinking_budget(req.reasoning)
    if budget is not None and any(family in model for family in NO_THINKING):
        warn(f"reasoning dropped: {model} has no extended thinking")
        budget = None
    if budget is not None and _unreplayable_tool_turn(messages):
        warn("reasoning turned off for this request: Anthropic requires the last assistant tool-use turn to start "
             "with its signed thinking block, which this conversation does not carry")
        budget = None
    temperature, top_p, top_k = req.temperature, req.top_p, req.top_k
    if budget is not None:
        if max_tokens <= budget:
            if req.max_tokens is not None:
                warn(f"max_tokens raised to {budget + max_tokens}: Anthropic counts the thinking budget "
                     f"({budget}) inside max_tokens")
            max_tokens += budget
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        tc = req.tool_choice
        if tc is not None and tc.mode in ("required", "tool"):
            raise TranslationError("tool_choice", "Anthropic rejects a forced tool_choice ('required' or a named "
                                   "tool) while extended thinking is on; use 'auto' or turn reasoning off")
        if temperature is not None and temperature != 1:
            warn("temperature dropped: Anthropic does not allow changing it while thinking is on")
        temperature = None
        if top_k is not None:
            warn("top_k dropped: Anthropic does not allow it while thinking is on")
            top_k = None
        if top_p is not None and top_p < 0.95:
            warn("top_p dropped: Anthropic allows only 0.95-1 while thinking is on")
            top_p = None
    body["max_tokens"] = max_tokens

    if temperature is not None:
        if not 0 <= temperature <= 1:
            clamped = min(1.0, max(0.0, temperature))
            warn(f"temperature {temperature} clamped to {clamped:g}: Anthropic accepts 0-1")
            temperature = clamped
        body["temperature"] = temperature
        if top_p is not None:
            warn("top_p dropped: Anthropic rejects temperature and top_p together")
            top_p = None
    if top_p is not None:
        body["top_p"] = top_p
    if top_k is not None:
        body["top_k"] = top_k
    if req.stop:
        stops = [s for s in req.stop if s.strip()]
        if len(stops) < len(req.stop):
            warn("whitespace-only stop sequences dropped: Anthropic rejects them")
        if stops:
            body["stop_sequences"] = stops
    if req.seed is not None:
        warn("seed dropped: Anthropic has no seed")
    for label, value in (("presence_penalty", req.presence_penalty), ("frequency_penalty", req.frequency_penalty)):
        if value:
            warn(f"{label} dropped: Anthropic has no penalties")
    if req.metadata:
        warn("metadata dropped: Anthropic only takes metadata.user_id")
    if req.user:
        body["metadata"] = {"user_id": req.user}

    _build_tools(req, model, body, warn)
    rf = req.response_format
    if rf is not None and rf.type in ("json_schema", "json_object"):
        schema = rf.schema if rf.type == "json_schema" and rf.schema else JSON_OBJECT_SCHEMA
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if req.stream:
        body["stream"] = True
    return body, list(dict.fromkeys(warnings))


def _thinking_budget(r: Reasoning | None) -> int | None:
    """The budget_tokens to send, or None for no thinking. An explicit budget wins over the effort word;
    Gemini's dynamic budget (-1) falls back to the effort (default medium)."""
    if r is None:
        return None
    if r.budget_tokens is not None and r.budget_tokens >= 0:
        return max(MIN_BUDGET, r.budget_tokens) if r.budget_tokens else None
    if r.effort == "none":
        return None
    if r.effort is None and r.budget_tokens is None and not r.include_thoughts:
        return None
    return EFFORT_BUDGET.get(r.effort or "medium", EFFORT_BUDGET["medium"])


def _unreplayable_tool_turn(messages: list[dict]) -> bool:
    """Pitfall 14: with thinking on, a final assistant turn that called tools must open with its thinking."""
    for msg in reversed(messages):
        if msg["role"] == "assistant":
            blocks = msg["content"]
            has_tool = any(b["type"] == "tool_use" for b in blocks)
            return has_tool and blocks[0]["type"] not in ("thinking", "redacted_thinking")
    return False


def _build_tools(req: ChatRequest, model: str, body: dict, warn: Any) -> None:
    tools = []
    for t in req.tools:
        schema = t.parameters if type(t.parameters) is dict else {}
        if "type" not in schema:
            schema = {"type": "object", **schema}
        tool: dict[str, Any] = {"name": t.name}
        if t.description:
            tool["description"] = t.description
        tool["input_schema"] = schema
        if t.strict:
            if "claude-3" in model:
                warn("strict tool schemas dropped: this Claude model has no strict tool use")
            else:
                tool["strict"] = True
        tools.append(tool)
    if tools:
        body["tools"] = tools
    tc = req.tool_choice
    choice: dict[str, Any] | None = None
    if tc is not None:
        if tc.mode == "none":
            choice = {"type": "none"} if tools else None  # no tools: nothing to call anyway (pitfall 28)
        elif tc.mode == "required":
            choice = {"type": "any"}
        elif tc.mode == "tool":
            if not tc.name:
                raise TranslationError("tool_choice", "tool_choice names no tool to force")
            choice = {"type": "tool", "name": tc.name}
        elif tools:
            choice = {"type": "auto"}
    if req.parallel_tool_calls is False and tools:
        if choice is None:
            choice = {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        body["tool_choice"] = choice


def _build_messages(messages: list[Message], warnings: list[str]) -> list[dict]:
    """Turns -> Anthropic messages: empty text dropped (pitfall 6), empty turns skipped, same-role turns merged
    (pitfall 4), tool results first in their user turn (pitfall 5), a trailing prefill right-stripped
    (Anthropic rejects trailing whitespace in the final assistant content)."""
    out: list[dict] = []
    for m in messages:
        blocks = [b for p in m.parts if (b := _block(p, warnings)) is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == m.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": m.role, "content": blocks})
    for msg in out:
        content = msg["content"]
        if msg["role"] == "user" and len(content) > 1:
            results = [b for b in content if b["type"] == "tool_result"]
            if results and len(results) < len(content):
                content[:] = results + [b for b in content if b["type"] != "tool_result"]
    if out and out[-1]["role"] == "assistant":
        content = out[-1]["content"]
        if content[-1]["type"] == "text":
            text = content[-1]["text"].rstrip()
            if text.strip():
                content[-1] = {"type": "text", "text": text}
            else:
                content.pop()
                if not content:
                    out.pop()
    return out


def _block(p: Part, warnings: list[str]) -> dict | None:
    t = type(p)
    if t is TextPart:
        return {"type": "text", "text": p.text} if p.text.strip() else None
    if t is ToolCallPart:
        return {"type": "tool_use", "id": encode_tool_id(p.id), "name": p.name, "input": _arguments(p, warnings)}
    if t is ToolResultPart:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": encode_tool_id(p.tool_call_id)}
        content = [b for item in p.content if (b := _block(item, warnings)) is not None]
        if content:
            block["content"] = content
        if p.is_error:
            block["is_error"] = True
        return block
    if t is ImagePart:
        return _image_block(p)
    if t is ThinkingPart:
        if p.redacted:
            return {"type": "redacted_thinking", "data": p.redacted}
        if p.signature:
            return {"type": "thinking", "thinking": p.text, "signature": p.signature}
        if p.text:
            warnings.append("reasoning text without a signature dropped from history: Anthropic only accepts "
                            "thinking it signed")
        return None
    if t is DocumentPart:
        return _document_block(p)
    return None


def _arguments(p: ToolCallPart, warnings: list[str]) -> dict:
    """Tool input must be a JSON object (pitfall 17): empty arguments are ``{}``."""
    if not p.arguments.strip():
        return {}
    try:
        value = orjson.loads(p.arguments)
    except orjson.JSONDecodeError:
        value = None
    if type(value) is dict:
        return value
    warnings.append(f"tool call {p.name!r} in history had arguments that are not a JSON object; sent as {{}}")
    return {}


def _split_data_url(url: str) -> tuple[str, str | None]:
    """``data:<mime>;base64,<data>`` -> (data, mime); anything else -> (url, None)."""
    if url.startswith("data:") and ";base64," in url[:200]:
        header, _, data = url.partition(",")
        return data, header[5:].split(";", 1)[0] or None
    return url, None


def _image_block(p: ImagePart) -> dict:
    data, media = p.data, p.media_type
    if not data and p.url:
        data, media = _split_data_url(p.url)
        if media is None:
            return {"type": "image", "source": {"type": "url", "url": p.url}}
    if not data:
        raise TranslationError("messages", "an image part has neither data nor a URL")
    sniffed = next((m for prefix, m in _IMAGE_MAGIC if data.startswith(prefix)), None)
    return {"type": "image", "source": {"type": "base64", "media_type": sniffed or media or "image/png", "data": data}}


def _document_block(p: DocumentPart) -> dict:
    data, media = p.data, p.media_type or "application/pdf"
    if not data and not p.url:
        raise TranslationError("messages", "a document part has neither data nor a URL")
    if not data:
        data, mime = _split_data_url(p.url)
        if mime is None:
            if media != "application/pdf":
                raise TranslationError("messages", f"Anthropic fetches only PDF documents by URL, not {media}")
            source: dict[str, Any] = {"type": "url", "url": p.url}
            data = None
        else:
            media = mime
    if data is not None:
        if media == "application/pdf":
            source = {"type": "base64", "media_type": media, "data": data}
        elif media.startswith("text/"):
            try:
                text = base64.b64decode(data).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise TranslationError("messages", "a text document is not valid base64 UTF-8") from None
            source = {"type": "text", "media_type": "text/plain", "data": text}
        else:
            raise TranslationError("messages", f"Anthropic accepts PDF and plain-text documents only, not {media}")
    block = {"type": "document", "source": source}
    if p.filename:
        block["title"] = p.filename
    return block


# ---------------------------------------------------------------------------------------------- responses


def parse_response(body: dict[str, Any]) -> ChatResponse:
    """An Anthropic ``message`` -> IR. Tool ids are the upstream's own (``toolu_…``)."""
    parts: list[Part] = []
    for b in body.get("content") or ():
        t = _d(b).get("type")
        if t == "text":
            parts.append(TextPart(_str(b.get("text")) or ""))
        elif t == "tool_use":
            inp = b.get("input")
            parts.append(ToolCallPart(decode_tool_id(str(b.get("id") or "")), str(b.get("name") or ""),
                                      orjson.dumps(inp if type(inp) is dict else {}).decode()))
        elif t == "thinking":
            parts.append(ThinkingPart(_str(b.get("thinking")) or "", _str(b.get("signature")) or None))
        elif t == "redacted_thinking":
            parts.append(ThinkingPart(redacted=_str(b.get("data")) or ""))
    reason = body.get("stop_reason")
    return ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish=STOP_REASONS.get(reason, "stop") if type(reason) is str else "stop",
        stop_sequence=_str(body.get("stop_sequence")),
        usage=usage_from_response(body),
    )


def render_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    """IR -> an Anthropic ``message`` for an Anthropic client. Tool ids pass as they are when Anthropic-valid,
    else in the reversible `encode_tool_id` form (decoded again when the client sends them back)."""
    mid = message_id(resp.id)
    content: list[dict[str, Any]] = []
    tools = 0
    for p in resp.parts:
        t = type(p)
        if t is TextPart:
            if p.text:
                content.append({"type": "text", "text": p.text})
        elif t is ToolCallPart:
            try:
                value = orjson.loads(p.arguments) if p.arguments.strip() else {}
            except orjson.JSONDecodeError:
                value = {}  # truncated arguments (finish "length"): Anthropic clients need an object
            tid = encode_tool_id(p.id) if p.id else f"toolu_{mid[4:28]}{tools:02d}"
            content.append({"type": "tool_use", "id": tid, "name": p.name,
                            "input": value if type(value) is dict else {}})
            tools += 1
        elif t is ThinkingPart:
            if p.redacted:
                content.append({"type": "redacted_thinking", "data": p.redacted})
            elif p.text or p.signature:
                content.append({"type": "thinking", "thinking": p.text, "signature": p.signature or ""})
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(resp.finish, resp.stop_sequence, tools > 0),
        "stop_sequence": resp.stop_sequence,
        "usage": usage_json(resp.usage or Usage()),
    }
