"""Anthropic Messages: usage, stream metering and error shapes (formats.md §3.2, §4.3, §5).

Anthropic's ``input_tokens`` excludes cache reads and writes; the normalised ``Usage.input``
adds them back (pitfall 11). In streams, input arrives in ``message_start`` and the cumulative
output count in ``message_delta``; ``Usage.merge`` (max per counter) joins them.
"""

from __future__ import annotations

import orjson

from .ir import Usage
from .jsonutil import as_count as _n, as_dict as _d, loads_or_none as _loads
from .sse import SSEEvent, format_event, payload_type

FORMAT = "anthropic"

# HTTP status -> error.type, per formats.md §5.
_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}





def _usage(u: object) -> Usage | None:
    if type(u) is not dict:
        return None
    read = _n(u.get("cache_read_input_tokens"))
    write = _n(u.get("cache_creation_input_tokens"))
    if not write:  # some hosts give only the per-TTL breakdown
        cc = _d(u.get("cache_creation"))
        write = _n(cc.get("ephemeral_5m_input_tokens")) + _n(cc.get("ephemeral_1h_input_tokens"))
    return Usage(
        input=_n(u.get("input_tokens")) + read + write,
        output=_n(u.get("output_tokens")),
        cache_read=read,
        cache_write=write,
        reasoning=_n(_d(u.get("output_tokens_details")).get("thinking_tokens")),
    )


def _message(obj: object) -> str | None:
    """``{"type":"error","error":{"type","message"}}``; tolerates a bare ``{"message"}``."""
    if type(obj) is not dict:
        return None
    err = obj.get("error", obj)
    if type(err) is str:
        return err or None
    if type(err) is dict:
        for key in ("message", "type"):
            if type(v := err.get(key)) is str and v:
                return v
    return None


def usage_from_response(body: dict) -> Usage | None:
    """Usage of a non-streamed ``message``; None when it has none."""
    return _usage(body.get("usage")) if type(body) is dict else None


class StreamMeter:
    """Reads usage, finish and errors from a stream's events as they pass by, without changing
    them. Decides by event name: only message_start, message_delta and error are parsed, never
    the content_block_delta events that make up almost all of a stream."""

    __slots__ = ("usage", "finished", "error")

    SKIP_UNLESS = (b"message_", b"error")
    """A chunk of whole events with none of these bytes holds nothing `feed` reads (the relay need not parse it)."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.error: str | None = None

    def feed(self, event: SSEEvent) -> None:
        name = event.event or payload_type(event.data)
        if name == "message_start":
            u = _usage(_d(_d(_loads(event.data)).get("message")).get("usage"))
        elif name == "message_delta":
            u = _usage(_d(_loads(event.data)).get("usage"))
        elif name == "message_stop":
            self.finished = True
            return
        elif name == "error":
            if self.error is None:
                self.error = _message(_loads(event.data)) or "stream error"
            return
        else:
            return
        if u is not None:
            if self.usage is None:
                self.usage = u
            else:
                self.usage.merge(u)


def error_body(status: int, message: str, *, code: str | None = None) -> bytes:
    """``{"type":"error","error":{type,message}}``; unknown 4xx -> invalid_request_error,
    5xx -> api_error. Anthropic errors have no code field, so ``code`` is accepted and unused."""
    etype = _ERRORS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})


def stream_error_event(status: int, message: str) -> bytes:
    """An ``event: error`` frame (the Anthropic SDK raises an APIStatusError carrying it)."""
    return format_event(error_body(status, message), "error")


def error_message(body: bytes) -> str | None:
    """Best-effort message of an upstream error body; None if unparseable. Never raises."""
    try:
        return _message(orjson.loads(body))
    except Exception:  # any garbage (wrong type, bad UTF-8, deep nesting) means "no message"
        return None
