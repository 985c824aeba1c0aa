"""OpenAI Chat Completions answers <-> IR: non-streamed ``chat.completion`` objects and
``chat.completion.chunk`` streams (formats.md §3, §4.1, §4.5), with the tables both directions share.
`openai_chat_codec` (requests) re-exports everything here, so the proxy sees one codec module.

The readers take every OpenAI-compatible upstream (OpenAI, Azure, Groq, Mistral, DeepSeek, OpenRouter,
Together, xAI, Ollama, vLLM) and tolerate their variations: usage under ``x_groq``, reasoning text as
``reasoning_content`` or ``reasoning``, tool-call fragments without ``index``, Azure's choice-less
``prompt_filter_results`` chunks, ``{"error": ...}`` frames after HTTP 200, a missing ``[DONE]``.

The writers produce exactly what OpenAI sends, so every OpenAI SDK parses it. Stream chunks are built from
a pre-serialised head and tail around the one small delta object: one ``orjson.dumps`` of a tiny dict per
event, no buffering.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from typing import Any

import orjson

from .ir import (ChatResponse, Finish, FinishReason, Part, StreamError, StreamEvent, StreamStart, TextDelta,
                 TextPart, ThinkingDelta, ThinkingPart, ToolCallDelta, ToolCallEnd, ToolCallPart, ToolCallStart,
                 Usage, UsageUpdate)
from .openai_chat import stream_error_event, usage_from_response
from .sse import SSEEvent

# ---------------------------------------------------------------------------------------------- tables

FINISH_FROM_WIRE: dict[str, FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
    "function_call": "tool_calls",  # the deprecated functions API
    # compat providers' own words: Together "eos", Mistral "model_length" (context full), Mistral/vLLM "error",
    # vLLM "abort" (aborted server-side), and Anthropic-style words from some gateways
    "eos": "stop", "end_turn": "stop", "max_tokens": "length", "model_length": "length", "tool_use": "tool_calls",
    "error": "error", "abort": "error",
}
"""Upstream ``finish_reason`` -> IR. Unknown values count as ``stop`` (formats.md §3.1)."""

FINISH_TO_WIRE: dict[str, str] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
    "error": "stop",  # OpenAI has no word for it; the SDK's Literal allows only the four above (+function_call)
}
"""IR -> the ``finish_reason`` OpenAI clients see."""

_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400, "authentication_error": 401, "invalid_api_key": 401, "permission_denied": 403,
    "permission_error": 403, "not_found_error": 404, "model_not_found": 404, "rate_limit_exceeded": 429,
    "rate_limit_error": 429, "insufficient_quota": 429, "tokens": 429, "server_error": 500, "api_error": 500,
    "overloaded_error": 503, "service_unavailable": 503, "timeout": 504,
}
"""Mid-stream ``{"error": {type, code}}`` -> status for the IR `StreamError` (unknown: 502)."""

_ALNUM = frozenset(string.ascii_letters + string.digits)

# ---------------------------------------------------------------------------------------------- helpers


def finish_from_wire(value: object, *, saw_tool_calls: bool = False) -> FinishReason:
    """Map an upstream finish reason. ``stop`` after tool calls becomes ``tool_calls``: Ollama and some other
    compat servers say ``stop`` there (pitfall 9), and clients of other formats then wouldn't run the tools."""
    reason: FinishReason = FINISH_FROM_WIRE.get(value, "stop") if type(value) is str else "stop"
    if reason == "stop" and saw_tool_calls:
        return "tool_calls"
    return reason


def chat_id(source: str | None) -> str:
    """A ``chatcmpl-`` id for the client, derived from the upstream's id (so logs line up) or random."""
    if source and source.startswith("chatcmpl-"):
        return source
    tail = "".join(c for c in source if c in _ALNUM) if source else ""
    return "chatcmpl-" + (tail or random_alnum(29))


def random_alnum(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def synth_call_id(seed: str, index: int) -> str:
    """``call_<24 alnum>`` for a tool call that came without an id: deterministic in (seed, index), so the same
    stream or response always yields the same id and the client's tool result finds its call again."""
    return "call_" + hashlib.sha256(f"{seed}\x00{index}".encode()).hexdigest()[:24]


def usage_to_wire(u: Usage) -> dict[str, Any]:
    """IR usage -> OpenAI ``usage``. The IR already uses OpenAI's convention (input includes cached tokens,
    output includes reasoning), so this is a renaming; ``cache_write_tokens`` only when there were some."""
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read}
    if u.cache_write:
        prompt_details["cache_write_tokens"] = u.cache_write
    return {
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    }


def error_status(err: object) -> int:
    """Status for a mid-stream error object: its integer ``code`` if it is one, else by ``type``/``code``."""
    if type(err) is not dict:
        return 502
    for key in ("status", "code"):
        v = err.get(key)
        if type(v) is int and 400 <= v <= 599:
            return v
    for key in ("type", "code"):
        v = err.get(key)
        if type(v) is str and v in _ERROR_STATUS:
            return _ERROR_STATUS[v]
    return 502


def _error_message(err: object) -> str:
    if type(err) is str:
        return err or "upstream stream error"
    if type(err) is dict:
        for key in ("message", "type", "code"):
            v = err.get(key)
            if type(v) is str and v:
                return v
    return "upstream stream error"


# ---------------------------------------------------------------------------------------------- responses


def parse_response(body: dict[str, Any]) -> ChatResponse:
    """An upstream ``chat.completion`` -> IR (first choice). Tool calls without ids get deterministic ones;
    a refusal becomes text with finish ``content_filter`` (what the other formats call a refusal)."""
    choices = body.get("choices")
    if not choices and body.get("error"):
        err = body["error"]
        raise ValueError(err.get("message", "upstream error") if type(err) is dict else str(err))
    choice = choices[0] if type(choices) is list and choices and type(choices[0]) is dict else {}
    msg = choice.get("message") if type(choice.get("message")) is dict else {}
    rid = body.get("id") if type(body.get("id")) is str else ""
    parts: list[Part] = []
    thinking = msg.get("reasoning_content") or msg.get("reasoning")
    if type(thinking) is str and thinking:
        parts.append(ThinkingPart(thinking))
    content = msg.get("content")
    if type(content) is list:  # a few compat servers answer with text parts
        content = "".join(p.get("text", "") for p in content if type(p) is dict and type(p.get("text")) is str)
    if type(content) is str and content:
        parts.append(TextPart(content))
    refusal = msg.get("refusal")
    refused = type(refusal) is str and bool(refusal)
    if refused and not content:
        parts.append(TextPart(refusal))
    calls = msg.get("tool_calls")
    for k, call in enumerate(calls if type(calls) is list else []):
        fn = call.get("function") if type(call) is dict else None
        if type(fn) is not dict:
            continue
        args = fn.get("arguments")
        args = orjson.dumps(args).decode() if type(args) is dict else (args if type(args) is str and args else "{}")
        cid = call.get("id") if type(call.get("id")) is str and call.get("id") else synth_call_id(rid, k)
        parts.append(ToolCallPart(cid, fn.get("name") or "", args))
    finish = finish_from_wire(choice.get("finish_reason"), saw_tool_calls=any(type(p) is ToolCallPart for p in parts))
    if refused and finish == "stop":
        finish = "content_filter"
    stop = choice.get("stop_reason")  # vLLM reports the matched stop string here
    created = body.get("created")
    model = body.get("model")
    return ChatResponse(
        id=rid, model=model if type(model) is str else "", parts=parts, finish=finish,
        stop_sequence=stop if type(stop) is str else None, usage=usage_from_response(body),
        created=created if type(created) is int else None,
    )


def render_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    """IR -> a ``chat.completion`` for the client. ``content`` is null when the answer only calls tools;
    reasoning text, when there is some, goes in the non-standard ``reasoning_content`` (as DeepSeek does;
    the OpenAI SDK keeps it as an extra field), signatures are not expressible and are dropped."""
    text = "".join(p.text for p in resp.parts if type(p) is TextPart)
    thinking = "".join(p.text for p in resp.parts if type(p) is ThinkingPart)
    calls = [{"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments or "{}"}}
             for p in resp.parts if type(p) is ToolCallPart]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = thinking
    return {
        "id": chat_id(resp.id),
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": FINISH_TO_WIRE.get(resp.finish, "stop")}],
        "usage": usage_to_wire(resp.usage) if resp.usage is not None else None,
    }


# ---------------------------------------------------------------------------------------------- decoder


class StreamDecoder:
    """``chat.completion.chunk`` SSE events -> IR events, one upstream chunk at a time.

    Tool calls are keyed by the fragment's ``index`` and renumbered densely in order of appearance; they all
    end right before the `Finish` (fragments of different calls may interleave, so "the next call started"
    does not prove the previous one is complete). Usage is reported from ``usage`` or Groq's ``x_groq.usage``.
    """

    __slots__ = ("_started", "_id", "_calls", "_open", "_ids", "_last", "_finished", "_done", "_refusal", "_closed")

    def __init__(self) -> None:
        self._started = False
        self._id = ""
        self._calls: dict[object, int] = {}  # upstream key (index, or id for index-less servers) -> IR index
        self._open: list[int] = []  # IR tool-call indexes not yet ended
        self._ids: set[str] = set()
        self._last: object = None  # key of the last fragment: index-less continuation fragments belong to it
        self._finished = False
        self._done = False  # [DONE] or an error frame: nothing more is read
        self._refusal = False
        self._closed = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if self._done:
            return []
        data = event.data
        if data.startswith(b"[DONE]"):
            self._done = True
            # A compat server that ends with [DONE] but never said why still finished properly.
            return self._end(None, None) if self._started and not self._finished else []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # keep-alive junk or a comment-like line; nothing to translate
        if type(obj) is not dict:
            return []
        err = obj.get("error")
        if err:
            self._done = True
            return [StreamError(error_status(err), _error_message(err))]
        choices = obj.get("choices")
        usage = usage_from_response(obj)
        if usage is None and type(xg := obj.get("x_groq")) is dict:
            usage = usage_from_response(xg)
        if not choices and usage is None:
            return []  # Azure's prompt_filter_results chunk, or an empty keep-alive chunk
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            self._id = obj.get("id") if type(obj.get("id")) is str else ""
            model = obj.get("model")
            out.append(StreamStart(self._id, model if type(model) is str else ""))
        if choices and type(choices) is list:
            choice = choices[0]
            if type(choice) is dict and choice.get("index", 0) in (0, None):
                self._choice(choice, out)
        if usage is not None:
            out.append(UsageUpdate(usage))
        return out

    def _choice(self, choice: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if type(delta) is dict:
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if type(thinking) is str and thinking:
                out.append(ThinkingDelta(thinking))
            content = delta.get("content")
            if type(content) is str and content:
                out.append(TextDelta(content))
            refusal = delta.get("refusal")
            if type(refusal) is str and refusal:
                self._refusal = True
                out.append(TextDelta(refusal))
            calls = delta.get("tool_calls")
            if type(calls) is list:
                for fragment in calls:
                    if type(fragment) is dict:
                        self._tool_fragment(fragment, out)
        reason = choice.get("finish_reason")
        if reason is not None and not self._finished:
            stop = choice.get("stop_reason")  # vLLM: the stop string that matched
            out.extend(self._end(reason, stop if type(stop) is str else None))

    def _tool_fragment(self, fragment: dict[str, Any], out: list[StreamEvent]) -> None:
        fn = fragment.get("function")
        fn = fn if type(fn) is dict else {}
        tid = fragment.get("id")
        tid = tid if type(tid) is str and tid else None
        key: object = fragment.get("index")
        if type(key) is not int:
            # Index-less servers: a fragment with a new id opens a call, one without continues the last.
            key = ("id", tid) if tid is not None and tid not in self._ids else self._last
            if key is None:
                key = ("id", None)
        index = self._calls.get(key)
        if index is None:
            index = len(self._calls)
            self._calls[key] = index
            self._open.append(index)
            call_id = tid or synth_call_id(self._id, index)
            self._ids.add(call_id)
            name = fn.get("name")
            out.append(ToolCallStart(index, call_id, name if type(name) is str else ""))
        self._last = key
        args = fn.get("arguments")
        if type(args) is str:
            if args:
                out.append(ToolCallDelta(index, args))
        elif type(args) is dict:  # some compat servers send the parsed object
            out.append(ToolCallDelta(index, orjson.dumps(args).decode()))

    def _end(self, reason: object, stop_sequence: str | None) -> list[StreamEvent]:
        self._finished = True
        out: list[StreamEvent] = [ToolCallEnd(i) for i in self._open]
        self._open.clear()
        finish = finish_from_wire(reason, saw_tool_calls=bool(self._calls))
        if finish == "stop" and self._refusal:
            finish = "content_filter"
        out.append(Finish(finish, stop_sequence))
        return out

    def close(self) -> list[StreamEvent]:
        """End of body. A stream that started but never finished gets its open tool calls ended and a
        synthesised `Finish` so every encoder can write a well-formed ending; the proxy, which judged
        completeness before calling this, adds the truncation error itself."""
        if self._closed:
            return []
        self._closed = True
        if self._done or not self._started or self._finished:
            return []
        return self._end(None, None)


# ---------------------------------------------------------------------------------------------- encoder

_FIRST_DELTA = b'{"role":"assistant","content":"","refusal":null}'
_DONE = b"data: [DONE]\n\n"


class StreamEncoder:
    """IR events -> OpenAI ``chat.completion.chunk`` SSE bytes, as OpenAI itself frames them.

    ``ThinkingDelta`` text goes out as ``delta.reasoning_content`` (DeepSeek's non-standard field; the OpenAI
    SDK keeps unknown fields, and strict clients ignore it); signatures cannot be expressed and are dropped.
    The finish chunk goes out as soon as `Finish` arrives; the usage chunk and ``[DONE]`` wait for `close`,
    because usage may arrive after the finish. A `StreamError` becomes a ``data: {"error": ...}`` frame and
    ends the stream (no ``[DONE]``, as OpenAI does).
    """

    __slots__ = ("_model", "_include_usage", "_head", "_tail", "_id", "_created", "_started", "_finished",
                 "_closed", "_usage", "_tools")

    def __init__(self, model: str, *, include_usage: bool = False) -> None:
        self._model = model
        self._include_usage = include_usage
        self._head = b""
        self._tail = b',"logprobs":null,"finish_reason":null}]' + (b',"usage":null}' if include_usage else b"}")
        self._id = ""
        self._created = 0
        self._started = False
        self._finished = False
        self._closed = False
        self._usage: Usage | None = None
        self._tools = False

    def _start(self, source_id: str | None) -> bytes:
        self._started = True
        self._id = chat_id(source_id)
        self._created = int(time.time())
        self._head = (
            b'{"id":' + orjson.dumps(self._id) + b',"object":"chat.completion.chunk","created":'
            + str(self._created).encode() + b',"model":' + orjson.dumps(self._model)
            + b',"choices":[{"index":0,"delta":'
        )
        return self._chunk(_FIRST_DELTA)

    def _chunk(self, delta: bytes) -> bytes:
        return b"data: " + self._head + delta + self._tail + b"\n\n"

    def _add_usage(self, usage: Usage | None) -> None:
        if usage is None:
            return
        if self._usage is None:
            self._usage = Usage()
        self._usage.merge(usage)

    def feed(self, event: StreamEvent) -> bytes:
        if self._closed:
            return b""
        if type(event) is TextDelta and self._started:  # the hot path: one text chunk
            return self._chunk(orjson.dumps({"content": event.text})) if event.text else b""
        if isinstance(event, StreamStart):
            self._add_usage(event.usage)
            return b"" if self._started else self._start(event.id)
        if isinstance(event, StreamError):
            self._closed = True
            return stream_error_event(event.status, event.message)
        if isinstance(event, UsageUpdate):
            self._add_usage(event.usage)
            return b""
        if isinstance(event, ToolCallEnd):
            return b""
        pre = b"" if self._started else self._start(None)
        if isinstance(event, TextDelta):
            if not event.text:
                return pre
            return pre + self._chunk(orjson.dumps({"content": event.text}))
        if isinstance(event, ThinkingDelta):
            if not event.text:
                return pre
            return pre + self._chunk(orjson.dumps({"reasoning_content": event.text}))
        if isinstance(event, ToolCallStart):
            self._tools = True
            call = {"index": event.index, "id": event.id, "type": "function",
                    "function": {"name": event.name, "arguments": ""}}
            return pre + self._chunk(orjson.dumps({"tool_calls": [call]}))
        if isinstance(event, ToolCallDelta):
            if not event.arguments:
                return pre
            call = {"index": event.index, "function": {"arguments": event.arguments}}
            return pre + self._chunk(orjson.dumps({"tool_calls": [call]}))
        if isinstance(event, Finish):
            if self._finished:
                return pre
            return pre + self._finish(event.reason)
        return pre

    def _finish(self, reason: str) -> bytes:
        self._finished = True
        wire = FINISH_TO_WIRE.get(reason, "stop")
        tail = b',"logprobs":null,"finish_reason":"' + wire.encode() + b'"}]'
        tail += b',"usage":null}' if self._include_usage else b"}"
        return b"data: " + self._head + b"{}" + tail + b"\n\n"

    def close(self) -> bytes:
        """The finish chunk if none was sent (``tool_calls`` when calls were streamed, else ``stop``), the
        usage chunk when the client asked for it and usage is known, and ``[DONE]``. Idempotent."""
        if self._closed:
            return b""
        self._closed = True
        out = b"" if self._started else self._start(None)
        if not self._finished:
            out += self._finish("tool_calls" if self._tools else "stop")
        if self._include_usage and self._usage is not None:
            chunk = {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                     "model": self._model, "choices": [], "usage": usage_to_wire(self._usage)}
            out += b"data: " + orjson.dumps(chunk) + b"\n\n"
        return out + _DONE
