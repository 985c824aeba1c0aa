"""OpenAI Responses: usage, stream metering and error shapes (formats.md §3.2, §4.2, §5).

Errors use the Chat Completions shape, so ``error_body`` and ``error_message`` come from
``openai_chat``. Usage only ever arrives in the terminal event, under ``response.usage``.
"""

from __future__ import annotations

import orjson

from . import openai_chat
from .ir import Usage
from .jsonutil import as_count as _n, as_dict as _d, loads_or_none as _loads
from .sse import SSEEvent, format_event, payload_type

FORMAT = "openai_responses"

_TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))

error_body = openai_chat.error_body
error_message = openai_chat.error_message





def _usage(u: object) -> Usage | None:
    if type(u) is not dict:
        return None
    inp = _d(u.get("input_tokens_details"))
    return Usage(
        input=_n(u.get("input_tokens")),
        output=_n(u.get("output_tokens")),
        cache_read=_n(inp.get("cached_tokens")),
        cache_write=_n(inp.get("cache_write_tokens")),
        reasoning=_n(_d(u.get("output_tokens_details")).get("reasoning_tokens")),
    )


def usage_from_response(body: dict) -> Usage | None:
    """Usage of a non-streamed ``response`` object; None when it has none."""
    return _usage(body.get("usage")) if type(body) is dict else None


class StreamMeter:
    """Reads usage, finish and errors from a stream's events as they pass by, without changing
    them. Decides by event name (or the payload's leading ``type`` when a server omits
    ``event:`` lines); only terminal and error events are parsed."""

    __slots__ = ("usage", "finished", "error")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.error: str | None = None

    def feed(self, event: SSEEvent) -> None:
        name = event.event or payload_type(event.data)
        if name is None:  # no event line and `type` not leading: rare, so parse to find out
            obj = _loads(event.data)
            name = _d(obj).get("type")
        elif name in _TERMINAL or name == "error":
            obj = _loads(event.data)
        else:
            return
        obj = _d(obj)
        if name in _TERMINAL:
            self.finished = True
            resp = _d(obj.get("response"))
            u = _usage(resp.get("usage"))
            if u is not None:
                if self.usage is None:
                    self.usage = u
                else:
                    self.usage.merge(u)
            if name == "response.failed" and self.error is None:
                self.error = openai_chat._message(resp) or "response failed"
        elif name == "error" and self.error is None:
            msg = obj.get("message")
            self.error = msg if type(msg) is str and msg else openai_chat._message(obj) or "stream error"


def stream_error_event(
    status: int, message: str, *, sequence_number: int = 0, code: str | None = None
) -> bytes:
    """An ``event: error`` frame: ``{type:"error", code, message, param, sequence_number}``.
    The code defaults to what OpenAI sends for the status (rate_limit_exceeded, server_error…)."""
    if code is None:
        etype, code = openai_chat._kind(status)
        code = code or etype
    payload = {
        "type": "error",
        "code": code,
        "message": message,
        "param": None,
        "sequence_number": sequence_number,
    }
    return format_event(orjson.dumps(payload), "error")
