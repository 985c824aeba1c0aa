"""Anthropic Messages streams <-> IR stream events, plus the tables and id helpers both directions share.

`anthropic_codec` re-exports `StreamDecoder` and `StreamEncoder` from here, so the proxy only ever
imports the codec. The shared helpers live in this module (not the codec) so the import goes one
way only: codec -> stream.

Per-event work is kept small: one ``orjson.loads`` per upstream event (the deltas must be read
anyway), dict lookups for dispatch, and pre-framed byte templates for the hot delta events.
"""

from __future__ import annotations

import base64
import re
import secrets
import string

import orjson

from .anthropic import _ERRORS, stream_error_event, usage_from_response
from .ir import (Finish, FinishReason, StreamError, StreamEvent, StreamStart, TextDelta, ThinkingDelta, ToolCallDelta,
                 ToolCallEnd, ToolCallStart, Usage, UsageUpdate)
from .sse import SSEEvent, payload_type

# ---------------------------------------------------------------------------------------------- tables

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server tool paused the turn; for a client it is a (resumable) stop
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic ``stop_reason`` -> IR finish (formats.md §3.1). Unknown values fall back to ``stop``."""

FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",  # Anthropic has no error stop; the error itself travels as an `error` event
}
"""IR finish -> Anthropic ``stop_reason`` (``stop`` with a matched stop sequence becomes ``stop_sequence``)."""

ERROR_STATUS: dict[str, int] = {etype: status for status, etype in _ERRORS.items()}
"""Anthropic ``error.type`` -> HTTP status, for errors that arrive inside a stream."""


def stop_reason(finish: str | None, stop_sequence: str | None, saw_tool_calls: bool) -> str:
    """The Anthropic stop_reason for an IR finish. A "stop" after tool calls becomes ``tool_use``, because
    Anthropic clients (Claude Code) only run tools when the turn says so (pitfall 9 seen from this side)."""
    if finish is None or finish == "stop":
        if stop_sequence:
            return "stop_sequence"
        return "tool_use" if saw_tool_calls else "end_turn"
    return FINISH_TO_STOP.get(finish, "end_turn")


# ---------------------------------------------------------------------------------------------- tool ids

_ID_OK = re.compile(r"[A-Za-z0-9_-]+")
ID_PREFIX = "sdcx_"
"""Marks a tool id that was re-encoded because Anthropic would reject its characters (pitfall 1)."""


def encode_tool_id(tool_id: str) -> str:
    """A tool id Anthropic accepts (``^[a-zA-Z0-9_-]+$``), reversibly.

    Valid ids pass unchanged. Others (``functions.search:0`` from Kimi/Groq, empty ids) become
    ``sdcx_`` + unpadded URL-safe base64 of the UTF-8 id, whose alphabet is exactly Anthropic's.
    Valid ids that already start with the prefix are encoded too, so `decode_tool_id` is an exact
    inverse on everything this function returns. Deterministic: tool_use and tool_result map alike.
    """
    if tool_id and not tool_id.startswith(ID_PREFIX) and _ID_OK.fullmatch(tool_id):
        return tool_id
    return ID_PREFIX + base64.urlsafe_b64encode(tool_id.encode()).rstrip(b"=").decode()


def decode_tool_id(tool_id: str) -> str:
    """The original of an id `encode_tool_id` produced; any other id is returned unchanged."""
    if not tool_id.startswith(ID_PREFIX):
        return tool_id
    raw = tool_id[len(ID_PREFIX):]
    try:
        original = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return tool_id
    return original if encode_tool_id(original) == tool_id else tool_id


_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def message_id(upstream_id: str | None) -> str:
    """``msg_…`` for a client: the upstream's id when it already is one, else its letters and digits
    behind ``msg_`` (traceable in logs), else a fresh random one."""
    if upstream_id and upstream_id.startswith("msg_"):
        return upstream_id
    tail = "".join(c for c in upstream_id or "" if c.isascii() and c.isalnum())
    return "msg_" + (tail or new_id("", 24))


def usage_json(u: Usage) -> dict:
    """Normalised usage back to Anthropic's convention: ``input_tokens`` excludes cache reads/writes."""
    out = {
        "input_tokens": max(0, u.input - u.cache_read - u.cache_write),
        "output_tokens": u.output,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
    }
    if u.reasoning:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    return out


def _d(v: object) -> dict:
    return v if type(v) is dict else {}


# ---------------------------------------------------------------------------------------------- decoder


class StreamDecoder:
    """An Anthropic upstream's SSE events -> IR events, one upstream event at a time.

    IR tool indexes count tool blocks (0, 1, …), not Anthropic block indexes (which also count text
    and thinking blocks). A tool block that streamed no ``input_json_delta`` (zero-argument tools)
    gets a ``"{}"`` delta before its end, so every consumer sees valid JSON arguments (pitfall 17).
    ``redacted_thinking`` blocks are dropped: the IR stream has no event for them.
    """

    __slots__ = ("_tools", "_usage", "_finished", "_seen_tools")

    def __init__(self) -> None:
        self._tools: dict[int, list] = {}  # block index -> [ir index, args seen, input from the start block]
        self._usage: Usage | None = None
        self._finished = False
        self._seen_tools = 0

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        name = event.event or payload_type(event.data)
        if name == "ping":
            return []
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return []
        if type(obj) is not dict:
            return []
        if name is None:
            name = obj.get("type")
        if name == "content_block_delta":
            return self._delta(obj)
        if name == "content_block_start":
            return self._start(obj)
        if name == "content_block_stop":
            tool = self._tools.pop(obj.get("index"), None)
            return self._end_tool(tool) if tool is not None else []
        if name == "message_start":
            msg = _d(obj.get("message"))
            usage = usage_from_response(msg)
            if usage is not None:
                self._add_usage(usage)
            return [StreamStart(str(msg.get("id") or ""), str(msg.get("model") or ""), usage)]
        if name == "message_delta":
            out: list[StreamEvent] = []
            delta = _d(obj.get("delta"))
            reason = delta.get("stop_reason")
            if type(reason) is str and not self._finished:
                self._finished = True
                seq = delta.get("stop_sequence")
                out.append(Finish(STOP_REASONS.get(reason, "stop"), seq if type(seq) is str else None))
            usage = usage_from_response(obj)
            if usage is not None:
                out.append(UsageUpdate(self._add_usage(usage)))
            return out
        if name == "message_stop":
            if self._finished:
                return []
            self._finished = True
            return [*self.close(), Finish("tool_calls" if self._seen_tools else "stop")]
        if name == "error":
            err = _d(obj.get("error"))
            etype = err.get("type")
            status = ERROR_STATUS.get(etype, 500) if type(etype) is str else 500
            msg = err.get("message")
            return [StreamError(status, msg if type(msg) is str and msg else str(etype or "stream error"))]
        return []

    def close(self) -> list[StreamEvent]:
        """End of body: end tool calls whose blocks never stopped, so the IR stays well-formed. No finish is
        made up here (the relay reports a cut stream as an error)."""
        out: list[StreamEvent] = []
        for tool in self._tools.values():
            out.extend(self._end_tool(tool))
        self._tools.clear()
        return out

    # -- helpers

    def _add_usage(self, usage: Usage) -> Usage:
        """Merge a cumulative report; return a copy of the running total (consumers may keep it)."""
        if self._usage is None:
            self._usage = Usage()  # never alias an object already handed out in an event
        self._usage.merge(usage)
        u = self._usage
        return Usage(u.input, u.output, u.cache_read, u.cache_write, u.reasoning)

    def _delta(self, obj: dict) -> list[StreamEvent]:
        delta = _d(obj.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if type(text) is str and text else []
        if kind == "input_json_delta":
            tool = self._tools.get(obj.get("index"))
            part = delta.get("partial_json")
            if tool is None or type(part) is not str or not part:
                return []
            tool[1] = True
            return [ToolCallDelta(tool[0], part)]
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ThinkingDelta(text)] if type(text) is str and text else []
        if kind == "signature_delta":
            sig = delta.get("signature")
            return [ThinkingDelta("", sig)] if type(sig) is str and sig else []
        return []  # citations_delta and future kinds: nothing the IR carries

    def _start(self, obj: dict) -> list[StreamEvent]:
        block = _d(obj.get("content_block"))
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            return [TextDelta(text)] if type(text) is str and text else []
        if kind == "tool_use":
            k = self._seen_tools
            self._seen_tools += 1
            start_input = block.get("input")
            self._tools[obj.get("index")] = [k, False, start_input if type(start_input) is dict else None]
            return [ToolCallStart(k, decode_tool_id(str(block.get("id") or "")), str(block.get("name") or ""))]
        if kind == "thinking":
            out: list[StreamEvent] = []
            text, sig = block.get("thinking"), block.get("signature")
            if type(text) is str and text:
                out.append(ThinkingDelta(text))
            if type(sig) is str and sig:
                out.append(ThinkingDelta("", sig))
            return out
        return []  # redacted_thinking, server tool blocks: no IR stream event

    @staticmethod
    def _end_tool(tool: list) -> list[StreamEvent]:
        k, args_seen, start_input = tool
        if args_seen:
            return [ToolCallEnd(k)]
        args = orjson.dumps(start_input).decode() if start_input else "{}"
        return [ToolCallDelta(k, args), ToolCallEnd(k)]


# ---------------------------------------------------------------------------------------------- encoder

_TEXT = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
         b'"delta":{"type":"text_delta","text":%b}}\n\n')
_JSON = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
         b'"delta":{"type":"input_json_delta","partial_json":%b}}\n\n')
_THINK = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
          b'"delta":{"type":"thinking_delta","thinking":%b}}\n\n')
_SIG = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
        b'"delta":{"type":"signature_delta","signature":%b}}\n\n')
_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_TEXT_START = b'{"type":"text","text":""}'
_THINK_START = b'{"type":"thinking","thinking":"","signature":""}'


def _block_start(index: int, block: bytes) -> bytes:
    return (b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,"content_block":%b}\n\n'
            % (index, block))


def _event(name: str, payload: dict) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (name.encode(), orjson.dumps(payload))


class _Pending:
    """A tool call whose block cannot open yet because another tool block is open."""

    __slots__ = ("id", "name", "args", "ended")

    def __init__(self, tool_id: str, name: str) -> None:
        self.id, self.name, self.args, self.ended = tool_id, name, [], False


class StreamEncoder:
    """IR events -> Anthropic Messages SSE bytes for an Anthropic client (Claude Code, the SDK).

    Blocks are emitted strictly one after another with increasing indexes, as Anthropic does: a text
    block opens on the first text delta and closes when another kind of block starts. Tool-call
    deltas that interleave between IR indexes (possible with OpenAI parallel calls) are held back
    until the open tool block ends (its ToolCallEnd, or the finish), then sent in order — only
    those; text is always sent as it arrives.

    ``message_delta`` (stop reason + usage) and ``message_stop`` are emitted by `close`, because
    usage can arrive after the finish (OpenAI's usage chunk). After a `StreamError` only the
    ``event: error`` frame goes out and `close` adds nothing, as Anthropic itself ends such streams.
    """

    __slots__ = ("model", "_started", "_done", "_index", "_open", "_signed", "_tool", "_pending",
                 "_known", "_tool_blocks", "_usage", "_finish", "_stop_sequence", "_seed")

    def __init__(self, model: str, *, include_usage: bool = False) -> None:
        self.model = model
        self._started = False
        self._done = False
        self._index = -1  # Anthropic index of the last block opened
        self._open: str | None = None  # "text" | "thinking" | "tool" while a block is open
        self._signed = False  # the open thinking block got its signature
        self._tool: int | None = None  # IR index of the open tool block
        self._pending: dict[int, _Pending] = {}
        self._known: set[int] = set()  # IR tool indexes already started
        self._tool_blocks = 0
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._seed = ""

    def feed(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        t = type(event)
        if t is TextDelta:
            if not event.text:
                return b""
            out = b"" if self._open == "text" else self._open_block("text", _TEXT_START)
            return out + _TEXT % (self._index, orjson.dumps(event.text))
        if t is ToolCallDelta:
            if not event.arguments:
                return b""
            if event.index == self._tool:
                return _JSON % (self._index, orjson.dumps(event.arguments))
            pending = self._pending.get(event.index)
            if pending is not None:
                pending.args.append(event.arguments)
            return b""  # unknown or already-closed index: nowhere to put it
        if t is ThinkingDelta:
            return self._thinking(event)
        if t is ToolCallStart:
            if event.index in self._known:
                return b""
            self._known.add(event.index)
            out = b"" if self._started else self._start(None)
            tool_id = event.id or f"toolu_{self._seed}{event.index:02d}"  # deterministic per stream
            if self._open == "tool":
                self._pending[event.index] = _Pending(tool_id, event.name)
                return out
            return out + self._open_tool(event.index, tool_id, event.name)
        if t is ToolCallEnd:
            if event.index == self._tool:
                return self._close_block() + self._promote()
            pending = self._pending.get(event.index)
            if pending is not None:
                pending.ended = True
            return b""
        if t is StreamStart:
            out = b""
            if event.usage is not None:
                self._merge(event.usage)
            if not self._started:
                out = self._start(event.id)
            return out
        if t is UsageUpdate:
            self._merge(event.usage)
            return b""
        if t is Finish:
            if self._finish is None:
                self._finish, self._stop_sequence = event.reason, event.stop_sequence
            return self._close_all()
        if t is StreamError:
            self._done = True
            return stream_error_event(event.status, event.message)
        return b""

    def close(self) -> bytes:
        """The closing events (idempotent): message_start if nothing was sent yet, the open block's stop,
        ``message_delta`` with the mapped stop reason and usage, ``message_stop``."""
        if self._done:
            return b""
        out = b"" if self._started else self._start(None)
        out += self._close_all()
        self._done = True
        u = self._usage
        usage = usage_json(u) if u is not None and u.input else {"output_tokens": u.output if u else 0}
        delta = {
            "stop_reason": stop_reason(self._finish, self._stop_sequence, self._tool_blocks > 0),
            "stop_sequence": self._stop_sequence,
        }
        return out + _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}) + _MESSAGE_STOP

    # -- helpers

    def _merge(self, usage: Usage) -> None:
        if self._usage is None:
            self._usage = Usage(usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning)
        else:
            self._usage.merge(usage)

    def _start(self, upstream_id: str | None) -> bytes:
        self._started = True
        mid = message_id(upstream_id)
        self._seed = mid[4:28]
        u = self._usage
        usage = usage_json(u) if u is not None else {"input_tokens": 0, "output_tokens": 0}
        usage["output_tokens"] = 1  # what Anthropic itself reports before generating
        message = {"id": mid, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": usage}
        return _event("message_start", {"type": "message_start", "message": message}) + _PING

    def _open_block(self, kind: str, block: bytes) -> bytes:
        """Start a non-tool block: closes whatever is open, including tool calls still held back."""
        out = b"" if self._started else self._start(None)
        out += self._close_all()
        self._index += 1
        self._open = kind
        self._signed = False
        return out + _block_start(self._index, block)

    def _open_tool(self, k: int, tool_id: str, name: str) -> bytes:
        out = b"" if self._started else self._start(None)
        out += self._close_block()
        self._index += 1
        self._open, self._tool = "tool", k
        self._tool_blocks += 1
        block = orjson.dumps({"type": "tool_use", "id": encode_tool_id(tool_id), "name": name, "input": {}})
        return out + _block_start(self._index, block)

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        self._tool = None
        return _STOP % self._index

    def _promote(self, force: bool = False) -> bytes:
        """Open held-back tool calls in order, flushing their arguments; stop at one still streaming
        (unless ``force``: the stream is moving on, so everything held back is closed)."""
        out = b""
        while self._pending:
            k = next(iter(self._pending))
            p = self._pending.pop(k)
            out += self._open_tool(k, p.id, p.name)
            if p.args:
                out += _JSON % (self._index, orjson.dumps("".join(p.args)))
            if not (p.ended or force):
                break
            out += self._close_block()
        return out

    def _close_all(self) -> bytes:
        out = self._close_block()
        if self._pending:
            out += self._promote(force=True)
        return out

    def _thinking(self, event: ThinkingDelta) -> bytes:
        out = b""
        if event.text:
            if self._open != "thinking" or self._signed:
                out = self._open_block("thinking", _THINK_START)
            out += _THINK % (self._index, orjson.dumps(event.text))
        if event.signature:
            if self._open != "thinking":
                out += self._open_block("thinking", _THINK_START)
            out += _SIG % (self._index, orjson.dumps(event.signature))
            self._signed = True
        return out
