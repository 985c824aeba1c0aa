"""Gemini generateContent: usage, stream metering and error shapes (formats.md §3.2, §4.4, §5).

``candidatesTokenCount`` excludes thoughts, so the normalised output adds ``thoughtsTokenCount``
(pitfall 12); input adds ``toolUsePromptTokenCount``. Streams repeat a cumulative
``usageMetadata`` on every chunk: the meter parses only that small object, skips it when it is
byte-identical to the last one, and ``Usage.merge`` (max per counter) never double counts.
"""

from __future__ import annotations

import orjson

from .ir import Usage
from .jsonutil import as_count as _n, as_dict as _d, loads_or_none as _loads
from .sse import SSEEvent, format_event, has_value, value_start

FORMAT = "gemini"

# HTTP status -> google.rpc status name, per formats.md §5.
_ERRORS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}
_KEY = b'"usageMetadata"'





def _usage(u: object) -> Usage | None:
    if type(u) is not dict:
        return None
    thoughts = _n(u.get("thoughtsTokenCount"))
    return Usage(
        input=_n(u.get("promptTokenCount")) + _n(u.get("toolUsePromptTokenCount")),
        output=_n(u.get("candidatesTokenCount")) + thoughts,
        cache_read=_n(u.get("cachedContentTokenCount")),
        reasoning=thoughts,
    )


def _message(obj: object) -> str | None:
    """``{"error":{code,message,status}}``, also wrapped in a list (JSON-array streams)."""
    if type(obj) is list and obj:
        obj = obj[0]
    if type(obj) is not dict:
        return None
    err = obj.get("error", obj)
    if type(err) is str:
        return err or None
    if type(err) is dict:
        for key in ("message", "status"):
            if type(v := err.get(key)) is str and v:
                return v
    return None


def _object_at(data: bytes, key_end: int) -> bytes | None:
    """The raw ``{…}`` value after the key ending at ``key_end``, found by brace counting with
    C-level find/count (usageMetadata holds no strings with braces), or None."""
    start = value_start(data, key_end)
    if start < 0 or data[start] != 0x7B:
        return None
    end = data.find(b"}", start)
    while end >= 0 and data.count(b"{", start, end) != data.count(b"}", start, end + 1):
        end = data.find(b"}", end + 1)
    return data[start : end + 1] if end >= 0 else None


def usage_from_response(body: dict) -> Usage | None:
    """Usage of a non-streamed GenerateContentResponse; None when it has none."""
    return _usage(body.get("usageMetadata")) if type(body) is dict else None


def usage_from_json_array_stream(body: bytes) -> Usage | None:
    """Usage of a ``streamGenerateContent`` body without ``alt=sse`` (one JSON array of
    responses): the last usageMetadata. A body cut off mid-stream is not valid JSON, so then
    the last complete usageMetadata object in the bytes is used."""
    obj = _loads(body)
    if type(obj) is dict:
        return usage_from_response(obj)
    if type(obj) is list:
        for item in reversed(obj):
            if (u := usage_from_response(item)) is not None:
                return u
        return None
    i = body.rfind(_KEY)
    while i >= 0:
        raw = _object_at(body, i + len(_KEY))
        if raw is not None and (u := _usage(_loads(raw))) is not None:
            return u
        i = body.rfind(_KEY, 0, i)
    return None


class StreamMeter:
    """Reads usage, finish and errors from a stream's events as they pass by, without changing
    them. Chunks may lack candidates, content or parts. The whole chunk is parsed only when its
    bytes show a finishReason, blockReason or error, i.e. about once per stream."""

    __slots__ = ("usage", "finished", "error", "_last")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.error: str | None = None
        self._last = b""  # raw bytes of the last usageMetadata, to skip repeats unparsed

    def feed(self, event: SSEEvent) -> None:
        data = event.data
        i = data.rfind(_KEY)  # after candidates in Gemini's field order, so last is the real one
        if i >= 0:
            raw = _object_at(data, i + len(_KEY))
            if raw is not None and raw != self._last:
                self._last = raw
                u = _usage(_loads(raw))
                if u is not None:
                    if self.usage is None:
                        self.usage = u
                    else:
                        self.usage.merge(u)
        if not (
            has_value(data, b'"finishReason"')
            or has_value(data, b'"blockReason"')
            or has_value(data, b'"error"')
        ):
            return
        obj = _d(_loads(data))
        if obj.get("error") and self.error is None:
            self.error = _message(obj) or "stream error"
        cands = obj.get("candidates")
        if type(cands) is list and any(_d(c).get("finishReason") for c in cands):
            self.finished = True
        elif _d(obj.get("promptFeedback")).get("blockReason"):
            self.finished = True  # a blocked prompt is a complete (empty) answer, not a cut stream


def error_body(status: int, message: str, *, code: str | None = None) -> bytes:
    """``{"error":{code,message,status}}``; unknown 4xx -> INVALID_ARGUMENT, 5xx -> INTERNAL.
    ``code`` (e.g. ``API_KEY_INVALID``) becomes an ``ErrorInfo.reason`` detail, as Google sends it."""
    name = _ERRORS.get(status) or ("INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    err: dict = {"code": status, "message": message, "status": name}
    if code:
        err["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": code,
                "domain": "googleapis.com",
            }
        ]
    return orjson.dumps({"error": err})


def stream_error_event(status: int, message: str) -> bytes:
    """A mid-stream ``data: {"error":{…}}`` frame."""
    return format_event(error_body(status, message))


def error_message(body: bytes) -> str | None:
    """Best-effort message of an upstream error body; None if unparseable. Never raises."""
    try:
        return _message(orjson.loads(body))
    except Exception:  # any garbage (wrong type, bad UTF-8, deep nesting) means "no message"
        return None
