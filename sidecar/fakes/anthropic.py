"""Fake Anthropic: Messages (plain and streamed) and model listing, as the anthropic SDK expects."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import (CACHE_WRITE_TOKENS, CACHED_TOKENS, TOOL_ARGS, FakeUpstream, ReceivedRequest, is_dict_list,
               split_args, sse, texts, uid)
from .realism import RateSnapshot
from .validate_anthropic import check_messages

BASE_PATH = ""
DEFAULT_MODELS = ["claude-haiku-4-5", "claude-sonnet-4-5"]
# HTTP status -> error.type, formats.md §5; others fall back by status class.
_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}

FAULTS: dict[int, tuple[float, str]] = {
    429: (4, "This request would exceed the rate limit for your organization. Please reduce the prompt length "
             "or the maximum tokens requested, or try again later."),
    500: (1, "Internal server error"),
    529: (3, "Overloaded"),
}
"""Random faults (`FakeUpstream.fault_rate`): status -> (weight, the message Anthropic sends with it)."""


def add_routes(fake: FakeUpstream, app: web.Application) -> None:
    app.router.add_post("/v1/messages", fake._endpoint(messages, generation=True))
    app.router.add_get("/v1/models", fake._endpoint(models, generation=False))


def api_key(rec: ReceivedRequest) -> str | None:
    """x-api-key, or a bearer token (what the SDK sends for auth tokens, and anthropic 2.x)."""
    auth = rec.headers.get("authorization", "")
    return rec.headers.get("x-api-key", auth[7:] if auth.lower().startswith("bearer ") else None)


def response_headers() -> dict[str, str]:
    return {"request-id": uid("req_")}


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(math.ceil(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rate_limit_headers(snap: RateSnapshot) -> dict[str, str]:
    """Anthropic states resets as the absolute time the bucket is full again (RFC 3339)."""
    return {"anthropic-ratelimit-requests-limit": str(snap.limit_requests),
            "anthropic-ratelimit-requests-remaining": str(snap.remaining_requests),
            "anthropic-ratelimit-requests-reset": _rfc3339(snap.now + snap.reset_requests_s),
            "anthropic-ratelimit-tokens-limit": str(snap.limit_tokens),
            "anthropic-ratelimit-tokens-remaining": str(snap.remaining_tokens),
            "anthropic-ratelimit-tokens-reset": _rfc3339(snap.now + snap.reset_tokens_s)}


def rate_limit_message(bucket: str, wait: int) -> str:
    return f"This request would exceed your organization's rate limit of {bucket} per minute."


def error_payload(status: int, message: str, headers: dict[str, str], *, param: str | None = None,
                  code: str | None = None) -> dict[str, Any]:
    """Anthropic's error shape; `param` / `code` have no place in it (the path is in the message)."""
    etype = _ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": headers.get("request-id")}


async def models(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in fake.models]
    return fake._json({"data": data, "has_more": False, "first_id": fake.models[0] if fake.models else None,
                       "last_id": fake.models[-1] if fake.models else None})


async def messages(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    if "anthropic-version" not in request.headers:
        return fake._error(request, 400, "anthropic-version: header is required")
    if fake.validate:
        check_messages(body)
    if not isinstance(body.get("max_tokens"), int):
        return fake._error(request, 400, "max_tokens: Field required")
    if not body.get("model") or not isinstance(body.get("messages"), list):
        return fake._error(request, 400, "model, messages: Field required")
    turns = []
    for m in is_dict_list(body["messages"]):
        content = m.get("content")
        is_result = any(b.get("type") == "tool_result" for b in is_dict_list(content))
        turns.append(("tool" if is_result else m.get("role", ""), texts(content)))
    tools = [t["name"] for t in is_dict_list(body.get("tools")) if "name" in t]
    a = fake._answer(body["model"], texts(body.get("system")), turns, tools)
    usage = {"input_tokens": a.prompt - CACHED_TOKENS - CACHE_WRITE_TOKENS,
             "cache_creation_input_tokens": CACHE_WRITE_TOKENS, "cache_read_input_tokens": CACHED_TOKENS,
             "cache_creation": {"ephemeral_5m_input_tokens": CACHE_WRITE_TOKENS, "ephemeral_1h_input_tokens": 0},
             "output_tokens": a.output, "service_tier": "standard"}
    fake.last_usage = usage
    stop = "tool_use" if a.tool else "end_turn"
    block: dict[str, Any] = ({"type": "tool_use", "id": uid("toolu_"), "name": a.tool, "input": TOOL_ARGS}
                             if a.tool else {"type": "text", "text": a.text})
    msg = {"id": uid("msg_"), "type": "message", "role": "assistant", "model": a.model, "content": [block],
           "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        return fake._json(msg)
    frames: list[bytes] = []

    def ev(etype: str, **fields: Any) -> None:
        frames.append(sse(etype, {"type": etype, **fields}))

    ev("message_start", message={**msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}})
    ev("ping")
    if a.tool:
        ev("content_block_start", index=0, content_block={**block, "input": {}})
        for f in ["", *split_args()]:  # the real API opens with an empty partial_json too
            ev("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": f})
    else:
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""})
        for p in a.pieces:
            ev("content_block_delta", index=0, delta={"type": "text_delta", "text": p})
    ev("content_block_stop", index=0)
    ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage=usage)
    ev("message_stop")
    return await fake._stream(request, frames)
