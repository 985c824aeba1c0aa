"""OpenAI Chat Completions: usage, stream metering and error shapes (formats.md §3.2, §4.1, §5).

This is also the wire format of every OpenAI-compatible upstream (Azure, Groq, Mistral,
DeepSeek, vLLM, Ollama…), so the readers tolerate their variations: null detail objects, usage
under ``x_groq``, ``{"error": "plain text"}`` bodies.
"""

from __future__ import annotations

import orjson

from .ir import Usage
from .jsonutil import as_count as _n, as_dict as _d, loads_or_none as _loads
from .sse import SSEEvent, format_event, has_value

FORMAT = "openai_chat"

# HTTP status -> (error.type, default error.code), per formats.md §5.
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", None),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}





def _usage(u: object) -> Usage | None:
    if type(u) is not dict:
        return None
    prompt = _d(u.get("prompt_tokens_details"))
    return Usage(
        input=_n(u.get("prompt_tokens")),
        output=_n(u.get("completion_tokens")),
        cache_read=_n(prompt.get("cached_tokens")),
        cache_write=_n(prompt.get("cache_write_tokens")),
        reasoning=_n(_d(u.get("completion_tokens_details")).get("reasoning_tokens")),
    )


def _message(obj: object) -> str | None:
    """``{"error":{"message"}}``, or the plain-string ``{"error":"…"}`` of Ollama and friends."""
    if type(obj) is list and obj:
        obj = obj[0]
    if type(obj) is not dict:
        return None
    err = obj.get("error", obj)
    if type(err) is str:
        return err or None
    if type(err) is dict:
        for key in ("message", "type", "code"):
            if type(v := err.get(key)) is str and v:
                return v
    return None


def usage_from_response(body: dict) -> Usage | None:
    """Usage of a non-streamed ``chat.completion``; None when it has none."""
    return _usage(body.get("usage")) if type(body) is dict else None


class StreamMeter:
    """Reads usage, finish and errors from a stream's events as they pass by, without changing
    them. Only chunks whose bytes show a non-null ``"usage"`` or an ``"error"`` key are parsed:
    with ``include_usage`` every other chunk says ``"usage":null``."""

    __slots__ = ("usage", "finished", "error")

    SKIP_UNLESS = (b'"usage"', b'"error"', b"[DONE]")
    """A chunk of whole events with none of these bytes holds nothing `feed` reads (the relay need not parse it)."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.error: str | None = None

    def feed(self, event: SSEEvent) -> None:
        data = event.data
        if data.startswith(b"[DONE]"):
            self.finished = True
            return
        if not (has_value(data, b'"usage"') or has_value(data, b'"error"')):
            return
        obj = _loads(data)
        if type(obj) is not dict:
            return
        u = _usage(obj.get("usage")) or _usage(_d(obj.get("x_groq")).get("usage"))
        if u is not None:
            if self.usage is None:
                self.usage = u
            else:
                self.usage.merge(u)
        if obj.get("error") and self.error is None:
            self.error = _message(obj) or "stream error"


def is_usage_only_chunk(data: bytes) -> bool:
    """True for the extra final chunk (``"choices": []`` + usage) that ``include_usage`` adds,
    so the proxy can strip it when the sidecar, not the client, asked for usage."""
    if not has_value(data, b'"usage"'):
        return False
    obj = _loads(data)
    return type(obj) is dict and not obj.get("choices") and type(obj.get("usage")) is dict


def _kind(status: int) -> tuple[str, str | None]:
    """(type, default code) for a status; unknown 4xx -> invalid_request_error, 5xx -> server_error."""
    return _ERRORS.get(status) or ("server_error" if status >= 500 else "invalid_request_error", None)


def error_body(status: int, message: str, *, code: str | None = None) -> bytes:
    """``{"error":{message,type,param,code}}`` with the type OpenAI uses for ``status``."""
    etype, default_code = _kind(status)
    err = {"message": message, "type": etype, "param": None, "code": code or default_code}
    return orjson.dumps({"error": err})


def stream_error_event(status: int, message: str) -> bytes:
    """A mid-stream ``data: {"error":{…}}`` frame (the OpenAI SDK raises APIError on it)."""
    return format_event(error_body(status, message))


def error_message(body: bytes) -> str | None:
    """Best-effort message of an upstream error body; None if unparseable. Never raises."""
    try:
        return _message(orjson.loads(body))
    except Exception:  # any garbage (wrong type, bad UTF-8, deep nesting) means "no message"
        return None
