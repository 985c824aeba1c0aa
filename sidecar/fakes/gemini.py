"""Fake Gemini: generateContent / streamGenerateContent and model listing, as google-genai expects."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

from . import CACHED_TOKENS, THOUGHTS_TOKENS, TOOL_ARGS, FakeUpstream, ReceivedRequest, is_dict_list, texts
from .realism import RateSnapshot
from .validate_gemini import check_generate

BASE_PATH = ""
DEFAULT_MODELS = ["gemini-2.5-flash", "gemini-2.5-pro"]
# HTTP status -> google.rpc status, formats.md §5; others fall back by status class.
_ERRORS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

FAULTS: dict[int, tuple[float, str]] = {
    429: (4, "Resource has been exhausted (e.g. check quota)."),
    500: (2, "An internal error has occurred. Please retry or report in "
             "https://developers.generativeai.google/guide/troubleshooting"),
    503: (2, "The model is overloaded. Please try again later."),
}
"""Random faults (`FakeUpstream.fault_rate`): status -> (weight, the message Google sends with it)."""


def add_routes(fake: FakeUpstream, app: web.Application) -> None:
    # Google serves both API versions; google-genai 3.x defaults to v1, older SDKs to v1beta.
    for version in ("v1beta", "v1"):
        app.router.add_post(f"/{version}/models/{{spec}}", fake._endpoint(generate, generation=True))
        app.router.add_get(f"/{version}/models", fake._endpoint(models, generation=False))
        app.router.add_get(f"/{version}/models/{{spec}}", fake._endpoint(model, generation=False))


def api_key(rec: ReceivedRequest) -> str | None:
    return rec.headers.get("x-goog-api-key", rec.query.get("key"))


def response_headers() -> dict[str, str]:
    return {}


def rate_limit_headers(snap: RateSnapshot) -> dict[str, str]:
    """Gemini sends no rate-limit headers; a 429 carries RetryInfo in the body instead."""
    return {}


def rate_limit_message(bucket: str, wait: int) -> str:
    return "Resource has been exhausted (e.g. check quota)."


def error_payload(status: int, message: str, headers: dict[str, str], *, param: str | None = None,
                  code: str | None = None) -> dict[str, Any]:
    """Gemini's error shape. A wrong key is really 400 INVALID_ARGUMENT upstream; the fake answers
    401 (like the other kinds) but keeps Google's ErrorInfo reason API_KEY_INVALID. A validation
    error's field goes into a google.rpc.BadRequest fieldViolation, as Google does."""
    details: list[dict[str, Any]] = []
    if param is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": param, "description": message.strip()}]})
    if status == 401:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"})
    if status == 429:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{headers.get('retry-after', '1')}s"})
    rpc = _ERRORS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": rpc, "details": details}}


def _info(fake: FakeUpstream, name: str) -> dict[str, Any]:
    return {"name": f"models/{name}", "version": "001", "displayName": name, "description": f"fake-{fake.name} model",
            "inputTokenLimit": 1048576, "outputTokenLimit": 65536, "temperature": 1.0, "maxTemperature": 2.0,
            "topP": 0.95, "topK": 64, "thinking": True,
            "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"]}


async def models(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    return fake._json({"models": [_info(fake, m) for m in fake.models]})


async def model(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    name = request.match_info["spec"]
    if name not in fake.models:
        return fake._error(request, 404, f"models/{name} is not found.")
    return fake._json(_info(fake, name))


async def generate(fake: FakeUpstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """`models/{model}:generateContent` and `:streamGenerateContent` (SSE with alt=sse, else one
    JSON array). Accepts camelCase and snake_case fields, as Google's parser does."""
    name, _, method = request.match_info["spec"].partition(":")
    if method not in ("generateContent", "streamGenerateContent"):
        return fake._error(request, 404, f"Method {method!r} not found.")
    if fake.validate:
        check_generate(body, name)
    turns = []
    for c in is_dict_list(body.get("contents")):
        parts = is_dict_list(c.get("parts"))
        is_result = any("functionResponse" in p or "function_response" in p for p in parts)
        turns.append(("tool" if is_result else c.get("role", "user"), texts(parts)))
    sysi = body.get("systemInstruction", body.get("system_instruction"))
    system = texts(sysi.get("parts")) if isinstance(sysi, dict) else texts(sysi)
    tools = [d["name"] for t in is_dict_list(body.get("tools"))
             for d in is_dict_list(t.get("functionDeclarations", t.get("function_declarations"))) if "name" in d]
    a = fake._answer(name, system, turns, tools)
    rid = secrets.token_urlsafe(16)

    def usage(out: int) -> dict[str, Any]:
        return {"promptTokenCount": a.prompt, "candidatesTokenCount": out,
                "totalTokenCount": a.prompt + out + THOUGHTS_TOKENS, "cachedContentTokenCount": CACHED_TOKENS,
                "thoughtsTokenCount": THOUGHTS_TOKENS, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": a.prompt}]}

    def reply(parts: list[dict[str, Any]], out: int, last: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            cand["finishReason"] = "STOP"  # also for function calls, as the real API does
        return {"candidates": [cand], "usageMetadata": usage(out), "modelVersion": name, "responseId": rid}

    fake.last_usage = usage(a.output)
    call = [{"functionCall": {"name": a.tool, "args": TOOL_ARGS}}]
    if method == "generateContent":
        return fake._json(reply(call if a.tool else [{"text": a.text}], a.output, True))
    chunks = ([reply(call, a.output, True)] if a.tool else
              [reply([{"text": p}], i + 1, i + 1 == len(a.pieces)) for i, p in enumerate(a.pieces)])
    if request.query.get("alt") == "sse":
        return await fake._stream(request, [b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks])
    frames = [(b"[" if i == 0 else b",\r\n") + orjson.dumps(c) for i, c in enumerate(chunks)] + [b"]"]
    return await fake._stream(request, frames, "application/json; charset=UTF-8")
