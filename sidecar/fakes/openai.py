"""Fake OpenAI: Chat Completions, Responses and model listing, as the openai SDK expects them."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from aiohttp import web

from . import (CACHED_TOKENS, TOOL_ARGS_JSON, Answer, FakeUpstream, ReceivedRequest, is_dict_list,
               split_args, sse, texts, uid)
from .realism import RateSnapshot
from .validate_openai import check_chat
from .validate_responses import check_responses

BASE_PATH = "/v1"
DEFAULT_MODELS = ["gpt-4o-mini", "gpt-4o"]
# HTTP status -> (error.type, error.code), formats.md §5; others fall back by status class.
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


FAULTS: dict[int, tuple[float, str]] = {
    429: (4, "Rate limit reached for requests per min (RPM). Please try again shortly. Visit "
             "https://platform.openai.com/account/rate-limits to learn more."),
    500: (2, "The server had an error while processing your request. Sorry about that!"),
    503: (2, "The engine is currently overloaded, please try again later."),
}
"""Random faults (`FakeUpstream.fault_rate`): status -> (weight, the message OpenAI sends with it)."""


def add_routes(fake: FakeUpstream, app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", fake._endpoint(chat, generation=True))
    app.router.add_post("/v1/responses", fake._endpoint(responses, generation=True))
    app.router.add_get("/v1/models", fake._endpoint(models, generation=False))


def api_key(rec: ReceivedRequest) -> str | None:
    auth = rec.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def response_headers() -> dict[str, str]:
    return {"x-request-id": uid("req_")}


def go_duration(seconds: float) -> str:
    """OpenAI's reset format, Go's time.Duration: "12ms", "1.5s", "1m0s"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes >= 1 else text


def rate_limit_headers(snap: RateSnapshot) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": str(snap.limit_requests),
            "x-ratelimit-limit-tokens": str(snap.limit_tokens),
            "x-ratelimit-remaining-requests": str(snap.remaining_requests),
            "x-ratelimit-remaining-tokens": str(snap.remaining_tokens),
            "x-ratelimit-reset-requests": go_duration(snap.reset_requests_s),
            "x-ratelimit-reset-tokens": go_duration(snap.reset_tokens_s)}


def rate_limit_message(bucket: str, wait: int) -> str:
    unit = "requests per min (RPM)" if bucket == "requests" else "tokens per min (TPM)"
    return f"Rate limit reached on {unit}. Please try again in {wait}s."


def error_payload(status: int, message: str, headers: dict[str, str], *, param: str | None = None,
                  code: str | None = None) -> dict[str, Any]:
    etype, default_code = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": etype, "param": param, "code": code or default_code}}


async def models(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return fake._json({"object": "list", "data": [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": f"fake-{fake.name}"} for m in fake.models]})


def _usage(a: Answer) -> dict[str, Any]:
    return {"prompt_tokens": a.prompt, "completion_tokens": a.output, "total_tokens": a.prompt + a.output,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


async def chat(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    if fake.validate:
        check_chat(body)
    if not body.get("model") or not isinstance(body.get("messages"), list):
        return fake._error(request, 400, "'model' and 'messages' are required.")
    msgs = is_dict_list(body["messages"])
    system = [t for m in msgs if m.get("role") in ("system", "developer") for t in texts(m.get("content"))]
    turns = [(m.get("role", ""), texts(m.get("content"))) for m in msgs if m.get("role") not in ("system", "developer")]
    tools = [t["function"]["name"] for t in is_dict_list(body.get("tools")) if "function" in t]
    a = fake._answer(body["model"], system, turns, tools)
    usage = _usage(a)
    cid, created, call_id = uid("chatcmpl-"), int(time.time()), uid("call_")
    finish = "tool_calls" if a.tool else "stop"
    if not body.get("stream"):
        msg: dict[str, Any] = {"role": "assistant", "content": a.text, "refusal": None, "annotations": []}
        if a.tool:
            msg["content"] = None
            msg["tool_calls"] = [{"id": call_id, "type": "function",
                                  "function": {"name": a.tool, "arguments": TOOL_ARGS_JSON}}]
        fake.last_usage = usage
        return fake._json({"id": cid, "object": "chat.completion", "created": created, "model": a.model,
                           "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
                           "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake"})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], fin: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": a.model,
                             "system_fingerprint": "fp_fake",
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}]}
        if include_usage:
            c["usage"] = None
        return c

    if a.tool:
        chunks = [chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": a.tool, "arguments": ""}}]})]
        chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in split_args()]
    else:
        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        chunks += [chunk({"content": p}) for p in a.pieces]
    chunks.append(chunk({}, finish))
    if include_usage:
        chunks.append({**chunk({}), "choices": [], "usage": usage})
        fake.last_usage = usage
    return await fake._stream(request, [sse(None, c) for c in chunks] + [b"data: [DONE]\n\n"])


async def responses(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    if fake.validate:
        check_responses(body)
    if not body.get("model"):
        return fake._error(request, 400, "'model' is required.")
    inp = body.get("input")
    turns: list[tuple[str, list[str]]] = []
    for item in [{"role": "user", "content": inp}] if isinstance(inp, str) else is_dict_list(inp):
        if item.get("type") == "function_call_output":
            turns.append(("tool", []))
        elif item.get("type") in (None, "message"):
            turns.append((item.get("role", "user"), texts(item.get("content"))))
        else:  # function_call, reasoning, ...: model-side items without countable text
            turns.append(("assistant", []))
    tools = [t["name"] for t in is_dict_list(body.get("tools")) if t.get("type") == "function" and "name" in t]
    a = fake._answer(body["model"], texts(body.get("instructions")), turns, tools)
    usage = {"input_tokens": a.prompt, "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
             "output_tokens": a.output, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": a.prompt + a.output}
    fake.last_usage = usage
    item_id = uid("fc_" if a.tool else "msg_")
    part = {"type": "output_text", "text": a.text, "annotations": [], "logprobs": []}
    item: dict[str, Any] = (
        {"id": item_id, "type": "function_call", "status": "completed", "call_id": uid("call_"),
         "name": a.tool, "arguments": TOOL_ARGS_JSON} if a.tool else
        {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]})
    resp: dict[str, Any] = {
        "id": uid("resp_"), "object": "response", "created_at": int(time.time()), "status": "completed",
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": a.model, "output": [item],
        "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": bool(body.get("store", True)), "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": 1.0,
        "truncation": "disabled", "usage": usage, "user": None, "metadata": {}}
    if not body.get("stream"):
        return fake._json(resp)
    seq = itertools.count()
    frames: list[bytes] = []

    def ev(etype: str, **fields: Any) -> None:
        frames.append(sse(etype, {"type": etype, "sequence_number": next(seq), **fields}))

    pending = {**resp, "status": "in_progress", "output": [], "usage": None}
    ev("response.created", response=pending)
    ev("response.in_progress", response=pending)
    at = {"item_id": item_id, "output_index": 0}
    if a.tool:
        ev("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "arguments": ""})
        for f in split_args():
            ev("response.function_call_arguments.delta", **at, delta=f)
        ev("response.function_call_arguments.done", **at, arguments=TOOL_ARGS_JSON, name=a.tool)
    else:
        ev("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []})
        ev("response.content_part.added", **at, content_index=0, part={**part, "text": ""})
        for p in a.pieces:
            ev("response.output_text.delta", **at, content_index=0, delta=p, logprobs=[])
        ev("response.output_text.done", **at, content_index=0, text=a.text, logprobs=[])
        ev("response.content_part.done", **at, content_index=0, part=part)
    ev("response.output_item.done", output_index=0, item=item)
    ev("response.completed", response=resp)
    return await fake._stream(request, frames)
