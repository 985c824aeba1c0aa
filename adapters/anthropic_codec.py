"""Anthropic Messages <-> IR: inbound (Claude Code, the anthropic SDK on /v1/messages) and outbound (the
Anthropic provider). Requests are parsed in `anthropic_parse` and built in `anthropic_build`, streams live in
`anthropic_stream`; all are re-exported here, so the proxy's ``codec("anthropic")`` has the whole module shape
of `adapters.codec`.

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

Outbound decisions are documented next to the tables in `anthropic_build` (max_tokens defaults, effort
budgets, which unsupported parameters are refused).
"""

from __future__ import annotations

from typing import Any

import orjson

from .anthropic import usage_from_response
from .anthropic_build import (  # noqa: F401  (re-exported: the outbound tables)
    DEFAULT_CAP_NONSTREAM, DEFAULT_CAP_STREAM, EFFORT_BUDGET, JSON_OBJECT_SCHEMA, MAX_OUTPUT, MIN_BUDGET, NO_THINKING,
    UNKNOWN_MODEL_MAX_TOKENS, build_request, default_max_tokens,
)
from .anthropic_parse import _str, parse_request
from .anthropic_stream import (FINISH_TO_STOP, STOP_REASONS, StreamDecoder, StreamEncoder, _d, decode_tool_id,
                               encode_tool_id, message_id, stop_reason, usage_json)
from .ir import ChatResponse, Part, TextPart, ThinkingPart, ToolCallPart, Usage

__all__ = ["ACCEPTS_IMAGE_URLS", "FINISH_TO_STOP", "STOP_REASONS", "StreamDecoder", "StreamEncoder", "build_request",
           "decode_tool_id", "default_max_tokens", "encode_tool_id", "parse_request", "parse_response",
           "render_response"]

ACCEPTS_IMAGE_URLS = True
"""Anthropic fetches image URLs itself; inlining them would bloat requests past its 5 MB/image limit (pitfall 18)."""


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
