"""Estimating usage when the upstream never says it: a cut stream, a client that left, a silent provider.

Why estimate at all: a request that produced tokens but recorded none reads as free, and spend you can't see is
the spend that surprises you. So the sidecar records an estimate, marked ``usage_source = "estimated"``, and
prices it like any other usage.

How: about four characters per token (OpenAI's and Anthropic's own rule of thumb for English text; no tokenizer
is installed and none is worth a heavy dependency for a fallback). Input = the text of the request body (every
string value except names, ids, roles, signatures and inline binary data); output = the text and tool-call
arguments actually relayed to the client, counted from the client-format bytes as they go by. A partial report
(Anthropic's input count in ``message_start``, Gemini's running counts) is kept where it is larger.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from adapters.ir import Usage
from adapters.sse import SSEParser

CHARS_PER_TOKEN = 4

_SKIP_KEYS = frozenset({
    "model", "role", "type", "id", "tool_call_id", "tool_use_id", "call_id", "data", "url", "image_url",
    "file_data", "file_id", "mime_type", "mimeType", "media_type", "signature", "thoughtSignature",
    "thought_signature", "encrypted_content", "stop", "stop_sequences", "previous_response_id", "user",
})
_GEMINI_TEXT = re.compile(rb'"text"\s*:\s*"((?:[^"\\]|\\.)*)"')


def tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def request_chars(value: Any, key: str | None = None) -> int:
    """Characters of prompt text in a parsed request body (any format)."""
    if isinstance(value, str):
        if key in _SKIP_KEYS or value.startswith("data:"):
            return 0
        return len(value)
    if isinstance(value, dict):
        return sum(request_chars(v, k) for k, v in value.items() if k not in ("inline_data", "inlineData"))
    if isinstance(value, list):
        return sum(request_chars(v, key) for v in value)
    return 0


def _s(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def output_chars(fmt: str, obj: Any) -> int:
    """Generated characters in one client-format object: a stream event's data or a whole answer."""
    if not isinstance(obj, dict):
        return 0
    n = 0
    if fmt == "openai_chat":
        for choice in obj.get("choices") or ():
            part = (choice.get("delta") or choice.get("message") or {}) if isinstance(choice, dict) else {}
            n += _s(part.get("content")) + _s(part.get("refusal")) + _s(part.get("reasoning_content"))
            for call in part.get("tool_calls") or ():
                fn = call.get("function") or {} if isinstance(call, dict) else {}
                n += _s(fn.get("arguments")) + _s(fn.get("name"))
    elif fmt == "openai_responses":
        etype = obj.get("type")
        if isinstance(etype, str):  # a stream event: only deltas, the *.done events repeat them
            return _s(obj.get("delta")) if etype.endswith(".delta") else 0
        for item in obj.get("output") or ():
            if isinstance(item, dict):
                n += _s(item.get("arguments"))
                for part in (item.get("content") or ()) + tuple(item.get("summary") or ()):
                    n += _s(part.get("text")) if isinstance(part, dict) else 0
    elif fmt == "anthropic":
        if obj.get("type") == "content_block_delta":
            d = obj.get("delta") or {}
            return _s(d.get("text")) + _s(d.get("partial_json")) + _s(d.get("thinking"))
        for block in obj.get("content") or ():
            if isinstance(block, dict):
                n += _s(block.get("text")) + _s(block.get("thinking"))
                if "input" in block:
                    n += len(orjson.dumps(block["input"]))
    elif fmt == "gemini":
        for cand in obj.get("candidates") or ():
            for part in ((cand.get("content") or {}).get("parts") or ()) if isinstance(cand, dict) else ():
                if isinstance(part, dict):
                    n += _s(part.get("text"))
                    if "functionCall" in part:
                        n += len(orjson.dumps(part["functionCall"].get("args", {})))
    return n


def body_output_chars(fmt: str, body: bytes | None) -> int:
    if not body:
        return 0
    try:
        return output_chars(fmt, orjson.loads(body))
    except orjson.JSONDecodeError:
        return 0


class CountingStream:
    """Wraps a relay's stream transform and keeps what it sends to the client, to count the generated text
    only if the upstream never reports usage.

    Per chunk this is one bounded ``bytearray`` append (most streams do report usage, so parsing every chunk
    a second time would be wasted); the parse happens once, at the end, when an estimate is needed. Past
    `KEEP_BYTES` the count is scaled from the kept prefix. A Gemini JSON-array stream (no SSE framing) is
    counted by its ``"text"`` fields.
    """

    KEEP_BYTES = 4 * 1024 * 1024

    def __init__(self, inner: Any, fmt: str) -> None:
        self.inner = inner
        self.fmt = fmt
        self._kept = bytearray()
        self._total = 0

    # the relay reads and writes these on the transform itself
    usage = property(lambda self: self.inner.usage)
    upstream_error = property(lambda self: self.inner.upstream_error)
    complete = property(lambda self: self.inner.complete)

    def _keep(self, out: bytes) -> bytes:
        if out:
            self._total += len(out)
            if len(self._kept) < self.KEEP_BYTES:
                self._kept += out
        return out

    def feed(self, chunk: bytes) -> bytes:
        return self._keep(self.inner.feed(chunk))

    def finish(self, incomplete_message: str) -> bytes:
        return self._keep(self.inner.finish(incomplete_message))

    def fail(self, message: str) -> bytes:
        return self._keep(self.inner.fail(message))

    def relayed_chars(self) -> int:
        kept = bytes(self._kept)
        if kept.lstrip()[:1] == b"[":
            chars = sum(len(m.group(1)) for m in _GEMINI_TEXT.finditer(kept))
        else:
            chars = 0
            parser = SSEParser()
            for event in [*parser.feed(kept), *parser.flush()]:
                if event.data and event.data[:1] == b"{":
                    try:
                        chars += output_chars(self.fmt, orjson.loads(event.data))
                    except orjson.JSONDecodeError:
                        pass
        if self._total > len(kept) and kept:
            chars = int(chars * self._total / len(kept))
        return chars


def estimate(partial: Usage | None, input_chars: int, out_chars: int) -> Usage:
    """Usage from character counts, keeping whatever the upstream did report where it is larger."""
    est = Usage(input=tokens(input_chars), output=tokens(out_chars))
    if partial is not None:
        est.merge(partial)
    return est
