"""OpenAI Responses, outbound to the client: the `response` object and its SSE event stream (formats.md §3, §4.2,
§4.5 "Any upstream → Responses inbound").

Shared by `render_response` (non-streamed, in `openai_responses_codec`) and `StreamEncoder` here, so both
produce the same ids, statuses, items and echo fields. Ids are derived from the upstream's answer id
(``resp_<alnum of upstream id>``, items ``msg_/rs_/fc_<same base><output index>``) so a reply can be traced back
to the upstream log; tool calls keep the upstream's id as ``call_id`` (the pairing key the client sends back in
``function_call_output``) and only get a synthesized ``call_<24 alnum>`` when the upstream had none.

Reasoning signatures (Anthropic thinking signatures, Gemini thought signatures) are carried to the client in the
reasoning item's ``encrypted_content`` inside a sidecar envelope (`SIG_PREFIX`), which clients that keep no server
state (Codex CLI: ``store: false``) replay verbatim, so the codec can hand them back to the provider that made
them. Genuine OpenAI ciphertext never looks like the envelope.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson

from . import openai_responses
from .ir import (
    ChatRequest,
    Finish,
    FinishReason,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

SIG_PREFIX = "sidecar-sig.v1."
"""Opens ``encrypted_content`` that the sidecar wrote: base64url of ``{"s": signature, "r": redacted}``."""

# IR finish reason -> (response.status, incomplete_details.reason), formats.md §3.1.
STATUS: dict[str, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
    "error": ("failed", None),
}

# HTTP status of a mid-stream failure -> response.error.code (the SDK's ResponseError.code vocabulary).
FAILED_CODE: dict[int, str] = {429: "rate_limit_exceeded", 400: "invalid_prompt"}

_TERMINAL_EVENT = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}


# ---------------------------------------------------------------------------------------------- shared pieces


def id_base(upstream_id: str | None) -> str:
    """The alphanumeric stem every id of one answer shares; random when the upstream gave no id."""
    if upstream_id:
        for sep in ("_", "-"):  # drop the upstream's own prefix: msg_…, chatcmpl-…, resp_…
            head, found, tail = upstream_id.partition(sep)
            if found and tail and head.isalpha():
                upstream_id = tail
                break
        base = "".join(c for c in upstream_id if c.isascii() and c.isalnum())
        if base:
            return base
    return uuid.uuid4().hex


def call_id(base: str, n: int) -> str:
    """A synthesized tool-call id (``call_`` + 24 alnum), deterministic per answer."""
    return f"call_{base[:20]:0<20}{n:04d}"


def encode_signature(signature: str | None, redacted: str | None = None) -> str | None:
    if not signature and not redacted:
        return None
    blob = orjson.dumps({"s": signature, "r": redacted})
    return SIG_PREFIX + base64.urlsafe_b64encode(blob).decode("ascii")


def decode_signature(encrypted: object) -> tuple[str | None, str | None]:
    """(signature, redacted) from a sidecar envelope; (None, None) for anything else, e.g. OpenAI's own
    ciphertext, which no other provider can read."""
    if type(encrypted) is not str or not encrypted.startswith(SIG_PREFIX):
        return None, None
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(encrypted[len(SIG_PREFIX):]))
    except (ValueError, orjson.JSONDecodeError):
        return None, None
    if type(obj) is not dict:
        return None, None
    s, r = obj.get("s"), obj.get("r")
    return (s if type(s) is str else None), (r if type(r) is str else None)


def usage_obj(u: Usage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total,
    }


def echo_fields(req: ChatRequest | None) -> dict[str, Any]:
    """The request parameters a `response` object repeats back. The SDK's Response model requires ``tools``,
    ``tool_choice`` and ``parallel_tool_calls``; without the request they get the API's defaults."""
    if req is None:
        return {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True, "text": {"format": {"type": "text"}}}
    tools = [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters,
              "strict": t.strict} for t in req.tools]
    tc: Any = "auto"
    if req.tool_choice is not None:
        tc = {"type": "function", "name": req.tool_choice.name} if req.tool_choice.mode == "tool" else req.tool_choice.mode
    fmt: dict[str, Any] = {"type": "text"}
    rf = req.response_format
    if rf is not None and rf.type == "json_schema":
        fmt = {"type": "json_schema", "name": rf.name or "response", "schema": rf.schema or {}, "strict": rf.strict}
    elif rf is not None and rf.type == "json_object":
        fmt = {"type": "json_object"}
    out: dict[str, Any] = {
        "tools": tools, "tool_choice": tc,
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "text": {"format": fmt}, "instructions": "\n\n".join(req.system) or None,
        "temperature": req.temperature, "top_p": req.top_p, "max_output_tokens": req.max_tokens,
        "metadata": req.metadata or {}, "user": req.user, "store": False,
    }
    if req.reasoning is not None:
        out["reasoning"] = {"effort": req.reasoning.effort, "summary": "auto" if req.reasoning.include_thoughts else None}
    return out


def response_obj(rid: str, created: int, model: str, status: str, output: list[dict[str, Any]],
                 usage: Usage | None, echo: dict[str, Any], *, reason: str | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid, "object": "response", "created_at": created, "status": status,
        "error": error, "incomplete_details": {"reason": reason} if reason else None,
        "model": model, "output": output, "usage": usage_obj(usage),
    }
    body.update(echo)
    if status != "in_progress":
        body["completed_at"] = int(time.time()) if status == "completed" else None
    return body


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [text_part(text)] if status != "in_progress" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, text: str | None, encrypted: str | None, status: str) -> dict[str, Any]:
    """``text`` None means no summary part was opened (a signature-only item)."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning",
                            "summary": [] if text is None else [{"type": "summary_text", "text": text}]}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    item["status"] = status
    return item


def call_item(item_id: str, cid: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments, "call_id": cid,
            "name": name}


# ---------------------------------------------------------------------------------------------- stream encoder


class _Item:
    """One open output item. ``chunks`` keeps the text/arguments seen so far: the closing events and the final
    response repeat it in full (accumulated while streaming, never held back)."""

    __slots__ = ("kind", "index", "id", "chunks", "prefix", "call_id", "name", "sig", "summary")

    def __init__(self, kind: str, index: int, item_id: str) -> None:
        self.kind = kind
        self.index = index
        self.id = item_id
        self.chunks: list[str] = []
        self.prefix = b""  # pre-rendered head of this item's delta events (the per-chunk hot path)
        self.call_id = ""
        self.name = ""
        self.sig: str | None = None
        self.summary = False  # a reasoning summary part is open


class StreamEncoder:
    """IR stream events → Responses SSE bytes, one ``event:``/``data:`` frame per event, numbered from 0.

    Text and reasoning run in one item until another kind starts; function calls stay open until their
    ToolCallEnd (or until text/reasoning starts), so interleaved argument deltas of parallel calls still land in
    the right item (every event names its ``output_index``). The terminal event is sent by `close`, because usage
    may arrive after the finish reason.
    """

    def __init__(self, model: str, *, include_usage: bool = False, request: ChatRequest | None = None) -> None:
        self._model = model
        self._echo = echo_fields(request)
        self._created = int(time.time())
        self._seq = 0
        self._base = ""
        self._rid = ""
        self._started = False
        self._done = False
        self._open: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # open function calls by IR tool index
        self._seen_calls: set[int] = set()
        self._output: dict[int, dict[str, Any]] = {}  # finished items by output_index
        self._next_index = 0
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None

    # -- framing

    def _ev(self, payload: dict[str, Any]) -> bytes:
        """Frame one event; ``payload`` must start with its ``type`` (the meter peeks at it)."""
        payload["sequence_number"] = self._seq
        self._seq += 1
        return b"event: %b\ndata: %b\n\n" % (payload["type"].encode(), orjson.dumps(payload))

    def _delta(self, item: _Item, text: str) -> bytes:
        """A delta event from the item's pre-rendered head: no dict building per chunk. orjson escapes
        newlines inside strings, so the data line needs no splitting."""
        item.chunks.append(text)
        seq = self._seq
        self._seq += 1
        return b"%b%d,\"delta\":%b%b" % (item.prefix, seq, orjson.dumps(text),
                                          b",\"logprobs\":[]}\n\n" if item.kind == "message" else b"}\n\n")

    def _response(self, status: str, output: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        return response_obj(self._rid, self._created, self._model, status, output, self._usage, self._echo, **kw)

    def _start(self, upstream_id: str | None) -> bytes:
        self._started = True
        self._base = id_base(upstream_id)
        self._rid = "resp_" + self._base
        head = self._response("in_progress", [])
        return (self._ev({"type": "response.created", "response": head})
                + self._ev({"type": "response.in_progress", "response": head}))

    def _new_item(self, kind: str, prefix: str) -> _Item:
        index = self._next_index
        self._next_index += 1
        return _Item(kind, index, f"{prefix}_{self._base}{index:04d}")

    # -- items

    def _open_message(self) -> bytes:
        it = self._open = self._new_item("message", "msg")
        it.prefix = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"%b",'
                     b'"output_index":%d,"content_index":0,"sequence_number":' % (it.id.encode(), it.index))
        return (self._ev({"type": "response.output_item.added", "output_index": it.index,
                          "item": message_item(it.id, "", "in_progress")})
                + self._ev({"type": "response.content_part.added", "item_id": it.id, "output_index": it.index,
                            "content_index": 0, "part": text_part("")}))

    def _open_reasoning(self) -> bytes:
        it = self._open = self._new_item("reasoning", "rs")
        it.prefix = (b'event: response.reasoning_summary_text.delta\ndata: {"type":"response.reasoning_summary_text.delta",'
                     b'"item_id":"%b","output_index":%d,"summary_index":0,"sequence_number":' % (it.id.encode(), it.index))
        return self._ev({"type": "response.output_item.added", "output_index": it.index,
                         "item": reasoning_item(it.id, None, None, "in_progress")})

    def _summary_part(self, it: _Item) -> bytes:
        it.summary = True
        return self._ev({"type": "response.reasoning_summary_part.added", "item_id": it.id, "output_index": it.index,
                         "summary_index": 0, "part": {"type": "summary_text", "text": ""}})

    def _item_status(self) -> str:
        return "incomplete" if self._finish in ("length", "content_filter") else "completed"

    def _close_open(self) -> bytes:
        it = self._open
        if it is None:
            return b""
        self._open = None
        status = self._item_status()
        text = "".join(it.chunks)
        base = {"item_id": it.id, "output_index": it.index}
        if it.kind == "message":
            item = message_item(it.id, text, status)
            out = (self._ev({"type": "response.output_text.done", **base, "content_index": 0, "text": text,
                             "logprobs": []})
                   + self._ev({"type": "response.content_part.done", **base, "content_index": 0,
                               "part": text_part(text)}))
        else:
            item = reasoning_item(it.id, text if it.summary else None, encode_signature(it.sig), status)
            out = b""
            if it.summary:
                out = (self._ev({"type": "response.reasoning_summary_text.done", **base, "summary_index": 0,
                                 "text": text})
                       + self._ev({"type": "response.reasoning_summary_part.done", **base, "summary_index": 0,
                                   "part": {"type": "summary_text", "text": text}}))
        self._output[it.index] = item
        return out + self._ev({"type": "response.output_item.done", "output_index": it.index, "item": item})

    def _close_call(self, k: int) -> bytes:
        it = self._calls.pop(k)
        out = b"" if it.chunks else self._delta(it, "{}")  # no arguments at all: still a JSON object (pitfall 17)
        args = "".join(it.chunks)
        item = call_item(it.id, it.call_id, it.name, args, self._item_status())
        self._output[it.index] = item
        return (out + self._ev({"type": "response.function_call_arguments.done", "item_id": it.id,
                                "output_index": it.index, "arguments": args, "name": it.name})
                + self._ev({"type": "response.output_item.done", "output_index": it.index, "item": item}))

    def _close_calls(self) -> bytes:
        return b"".join([self._close_call(k) for k in list(self._calls)]) if self._calls else b""

    def _snapshot_open(self) -> None:
        """Record still-open items as incomplete in the final output (a failed stream)."""
        it = self._open
        if it is not None:
            text = "".join(it.chunks)
            self._output[it.index] = (message_item(it.id, text, "incomplete") if it.kind == "message" else
                                      reasoning_item(it.id, text if it.summary else None, encode_signature(it.sig),
                                                     "incomplete"))
            self._open = None
        for it in self._calls.values():
            self._output[it.index] = call_item(it.id, it.call_id, it.name, "".join(it.chunks), "incomplete")
        self._calls.clear()

    def _final_output(self) -> list[dict[str, Any]]:
        return [self._output[i] for i in sorted(self._output)]

    # -- public

    def feed(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        out = b""
        if not self._started:
            if isinstance(event, StreamStart):
                if event.usage is not None:
                    self._usage = Usage()
                    self._usage.merge(event.usage)
                return self._start(event.id)
            out = self._start(None)
        if isinstance(event, TextDelta):
            if not event.text:
                return out
            it = self._open
            if it is None or it.kind != "message":
                out += self._close_calls() + self._close_open() + self._open_message()
                it = self._open
            return out + self._delta(it, event.text)  # type: ignore[arg-type]
        if isinstance(event, ThinkingDelta):
            return out + self._thinking(event)
        if isinstance(event, ToolCallStart):
            if event.index in self._seen_calls:
                return out
            self._seen_calls.add(event.index)
            out += self._close_open()
            it = self._calls[event.index] = self._new_item("function_call", "fc")
            it.call_id = event.id or call_id(self._base, event.index)
            it.name = event.name
            it.prefix = (b'event: response.function_call_arguments.delta\ndata: {"type":'
                         b'"response.function_call_arguments.delta","item_id":"%b","output_index":%d,'
                         b'"sequence_number":' % (it.id.encode(), it.index))
            return out + self._ev({"type": "response.output_item.added", "output_index": it.index,
                                   "item": call_item(it.id, it.call_id, it.name, "", "in_progress")})
        if isinstance(event, ToolCallDelta):
            it = self._calls.get(event.index)
            if it is None or not event.arguments:  # unknown or already finished call: nothing can carry it
                return out
            return out + self._delta(it, event.arguments)
        if isinstance(event, ToolCallEnd):
            return out + (self._close_call(event.index) if event.index in self._calls else b"")
        if isinstance(event, UsageUpdate):
            if self._usage is None:
                self._usage = Usage()
            self._usage.merge(event.usage)
            return out
        if isinstance(event, Finish):
            self._finish = event.reason
            return out
        if isinstance(event, StreamError):
            return out + self._fail(event)
        if isinstance(event, StreamStart) and event.usage is not None:  # a repeated start: only its usage counts
            if self._usage is None:
                self._usage = Usage()
            self._usage.merge(event.usage)
        return out

    def _thinking(self, event: ThinkingDelta) -> bytes:
        out = b""
        if event.text:
            it = self._open
            if it is None or it.kind != "reasoning" or it.sig is not None:  # a signed block is finished
                out += self._close_calls() + self._close_open() + self._open_reasoning()
                it = self._open
            if not it.summary:  # type: ignore[union-attr]
                out += self._summary_part(it)  # type: ignore[arg-type]
            out += self._delta(it, event.text)  # type: ignore[arg-type]
        if event.signature:
            it = self._open
            if it is not None and it.kind == "reasoning" and it.sig is None:
                it.sig = event.signature
            else:
                # A signature with no open thinking (Gemini puts them on function-call parts): a whole reasoning
                # item of its own, emitted at once so open function calls are left undisturbed.
                it = self._new_item("reasoning", "rs")
                item = reasoning_item(it.id, None, encode_signature(event.signature), "completed")
                self._output[it.index] = item
                out += (self._ev({"type": "response.output_item.added", "output_index": it.index,
                                  "item": reasoning_item(it.id, None, None, "in_progress")})
                        + self._ev({"type": "response.output_item.done", "output_index": it.index, "item": item}))
        return out

    def _fail(self, event: StreamError) -> bytes:
        self._done = True
        self._snapshot_open()
        err = {"code": FAILED_CODE.get(event.status, "server_error"), "message": event.message}
        out = openai_responses.stream_error_event(event.status, event.message, sequence_number=self._seq)
        self._seq += 1
        return out + self._ev({"type": "response.failed",
                               "response": self._response("failed", self._final_output(), error=err)})

    def close(self) -> bytes:
        """Close open items and send the terminal event; idempotent, and well-formed even for an empty stream
        or one that never said why it finished (taken as a normal stop)."""
        if self._done:
            return b""
        out = b"" if self._started else self._start(None)
        self._done = True
        out += self._close_calls() + self._close_open()
        status, reason = STATUS[self._finish or "stop"]
        err = None
        if status == "failed":
            err = {"code": "server_error", "message": "the upstream model stopped with an error"}
        resp = self._response(status, self._final_output(), reason=reason, error=err)
        return out + self._ev({"type": _TERMINAL_EVENT[status], "response": resp})
