"""IR -> Anthropic Messages requests: `build_request` and its helpers (messages, content blocks, tools,
thinking budget), with the outbound tables next to the decisions they encode. `anthropic_codec` re-exports
`build_request`, `default_max_tokens` and the tables.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from .anthropic_stream import encode_tool_id
from .ir import (ADVISORY_PARAMS, ChatRequest, DocumentPart, ImagePart, Message, Part, Reasoning, TextPart,
                 ThinkingPart, ToolCallPart, ToolResultPart, TranslationError)

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


ANTHROPIC_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _image_block(p: ImagePart) -> dict:
    data, media = p.data, p.media_type
    if not data and p.url:
        data, media = _split_data_url(p.url)
        if media is None:
            return {"type": "image", "source": {"type": "url", "url": p.url}}
    if not data:
        raise TranslationError("messages", "an image part has neither data nor a URL")
    sniffed = next((m for prefix, m in _IMAGE_MAGIC if data.startswith(prefix)), None)
    media = sniffed or media or "image/png"
    if media not in ANTHROPIC_IMAGE_TYPES:
        raise TranslationError("image", f"Anthropic takes JPEG, PNG, GIF or WebP images, not {media}")
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


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
