"""Gemini answers ⇄ IR: non-streamed (`parse_response`, `render_response`) and streamed
(`StreamDecoder`, `StreamEncoder`), plus the part conversions the request side shares.

Decisions worth knowing (formats.md §3, §4.4, pitfalls 3, 9, 15, 27):

- Only candidate 0 is read: the IR answer has one choice (other candidates are not carried back).
- ``finishReason`` maps by `FINISH_FROM_GEMINI`; ``STOP`` becomes ``tool_calls`` whenever a functionCall
  was seen (in the answer, or anywhere earlier in the stream). Broken-tool-call reasons
  (``MALFORMED_FUNCTION_CALL``…), ``OTHER`` and unknown ones map to ``stop`` (formats.md §3.1, LiteLLM).
  A prompt blocked before any candidate (``promptFeedback.blockReason``) is ``content_filter``, no parts.
- Function calls without ``id`` get ``call_<24 hex>`` = hash(responseId, position): deterministic for a
  given answer, distinct across answers (a conversation must never hold two calls with one id); without a
  responseId the seed is random per answer/stream. The tool-call ``index`` is a per-stream counter.
- Thought signatures: on a thought part, the signature signs that thought run (``ThinkingPart(text,
  sig)``); on any other part it closes the unsigned thought run right before it, or else travels as a
  signature-only ``ThinkingPart("", sig)`` just before that part. The way back (`gemini_model_parts`) puts
  a ThinkingPart's signature on the *next* non-thought part of the turn (where Gemini returns them: the
  first functionCall, or the final text), or, with nothing after it, on its own thought part or an empty
  text part. So signatures return where Gemini put them, whatever merging of thinking blocks other
  formats' clients do in between.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

import orjson

from .gemini import error_body, usage_from_response
from .ir import (
    ChatResponse, Finish, FinishReason, Part, StreamError, StreamEvent, StreamStart, TextDelta, TextPart,
    ThinkingDelta, ThinkingPart, ToolCallDelta, ToolCallEnd, ToolCallPart, ToolCallStart, Usage, UsageUpdate,
)
from .sse import SSEEvent

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""Google's documented placeholder for a function call whose real signature was lost; never read back."""
_FILTER = "content_filter"
FINISH_FROM_GEMINI: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",  # per-request token limit reached, answer not complete
    "SAFETY": _FILTER, "RECITATION": _FILTER, "BLOCKLIST": _FILTER, "PROHIBITED_CONTENT": _FILTER,
    "SPII": _FILTER, "LANGUAGE": _FILTER, "IMAGE_SAFETY": _FILTER, "IMAGE_PROHIBITED_CONTENT": _FILTER,
    "IMAGE_RECITATION": _FILTER, "MODEL_ARMOR": _FILTER, "ESCALATION": _FILTER, "PUP_LIMITED_DISABLED": _FILTER,
    # Broken tool calls, OTHER, unknown → "stop" (formats.md §3.1), via the .get default.
}
FINISH_TO_GEMINI: dict[str, str] = {
    "stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY", "error": "OTHER",
}


def map_finish(reason: Any, saw_call: bool) -> FinishReason:
    finish = FINISH_FROM_GEMINI.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if finish == "stop" and saw_call else finish


def call_id(seed: str, index: int) -> str:
    """A synthesized tool-call id, stable for (answer, position)."""
    return "call_" + hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=12).hexdigest()


def first_candidate(cands: Any) -> dict | None:
    """Candidate 0: the first one unless it says another index (``candidateCount > 1`` streams may send
    other candidates' chunks alone)."""
    if type(cands) is not list or not cands:
        return None
    for c in cands:
        if type(c) is dict and c.get("index", 0) in (0, None):
            return c
    return None


def _d(v: Any) -> dict:
    return v if type(v) is dict else {}


def args_object(arguments: str) -> dict[str, Any]:
    """Tool-call arguments (JSON text) as the object Gemini wants: ``""`` → ``{}`` (pitfall 17), a
    non-object JSON value → ``{"value": v}``, unparseable text → ``{"value": text}``."""
    if not arguments or arguments.isspace():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"value": arguments}
    return value if type(value) is dict else {"value": value}


def usage_metadata(u: Usage) -> dict[str, int]:
    """Normalised usage back into Gemini's convention: candidates exclude thoughts (pitfall 12)."""
    out = {
        "promptTokenCount": u.input,
        "candidatesTokenCount": max(u.output - u.reasoning, 0),
        "totalTokenCount": u.input + u.output,
    }
    if u.cache_read:
        out["cachedContentTokenCount"] = u.cache_read
    if u.reasoning:
        out["thoughtsTokenCount"] = u.reasoning
    return out


# ---------------------------------------------------------------------------------------------- parts


def _sign(out: list[Part], sig: str) -> None:
    """A signature found on a non-thought part: it closes the unsigned thought run right before, or
    travels as a signature-only ThinkingPart in front of the part."""
    last = out[-1] if out else None
    if type(last) is ThinkingPart and last.signature is None and last.redacted is None:
        last.signature = sig
    else:
        out.append(ThinkingPart("", sig))


def parts_from_gemini(parts: Any, on_call: Callable[[dict], ToolCallPart],
                      other: Callable[[dict], list[Part]] | None = None) -> list[Part]:
    """Gemini parts → IR parts: text, thought runs (merged, signed as described above), function calls
    (``on_call`` assigns the id); anything else goes to ``other`` or is skipped."""
    out: list[Part] = []
    if type(parts) is not list:
        return out
    for p in parts:
        if type(p) is not dict:
            continue
        sig = p.get("thoughtSignature") or p.get("thought_signature")
        sig = sig if isinstance(sig, str) and sig != SKIP_SIGNATURE else None
        text = p.get("text")
        if p.get("thought") is True:
            text = text if isinstance(text, str) else ""
            last = out[-1] if out else None
            if type(last) is ThinkingPart and last.signature is None and last.redacted is None:
                last.text += text
                last.signature = sig
            elif text or sig:
                out.append(ThinkingPart(text, sig))
            continue
        if sig:
            _sign(out, sig)
        if isinstance(text, str):
            if text:
                out.append(TextPart(text))
            continue
        fc = p.get("functionCall") or p.get("function_call")
        if type(fc) is dict:
            out.append(on_call(fc))
        elif other is not None:
            out.extend(other(p))
    return out


def gemini_model_parts(parts: list[Any], warnings: list[str] | None, *,
                       other: Callable[[Any], dict | None] | None = None) -> list[dict]:
    """IR parts of an assistant turn → Gemini parts, with the signature rule of the module docstring.

    ``warnings`` is given when replaying history to Gemini: then unsigned thought text and Anthropic's
    redacted thinking are dropped with a warning (Gemini reads nothing from unsigned thoughts). Without it
    (rendering an answer for a Gemini client) every thought is shown as a ``thought: true`` part."""
    out: list[dict] = []
    pending: str | None = None
    pending_at: int | None = None

    def flush() -> None:
        if pending_at is not None:
            out[pending_at]["thoughtSignature"] = pending
        else:
            out.append({"text": "", "thoughtSignature": pending})

    for part in parts:
        kind = type(part)
        if kind is ThinkingPart:
            if part.redacted is not None and not part.text:
                _warn(warnings, "redacted thinking blocks were dropped: Gemini cannot replay them")
                continue
            if part.signature and pending:
                flush()
                pending = None
            at = None
            if part.text:
                if warnings is not None and not part.signature:
                    _warn(warnings, "reasoning text without a thought signature was dropped from history "
                                    "(Gemini only uses signed thoughts)")
                else:
                    out.append({"text": part.text, "thought": True})
                    at = len(out) - 1
            if part.signature:
                pending, pending_at = part.signature, at
            continue
        if kind is TextPart:
            if not part.text:
                continue
            d: dict | None = {"text": part.text}
        elif kind is ToolCallPart:
            d = {"functionCall": {"id": part.id, "name": part.name, "args": args_object(part.arguments)}}
        else:
            d = other(part) if other is not None else None
        if d is None:
            continue
        if pending:
            d["thoughtSignature"] = pending
            pending = None
        out.append(d)
    if pending:
        flush()
    return out


def _warn(warnings: list[str] | None, msg: str) -> None:
    if warnings is not None and msg not in warnings:
        warnings.append(msg)


# ---------------------------------------------------------------------------------------------- answers


def parse_response(body: dict[str, Any]) -> ChatResponse:
    """A GenerateContentResponse → IR answer (candidate 0)."""
    rid = body.get("responseId")
    seed = rid if isinstance(rid, str) and rid else secrets.token_hex(8)
    cand = first_candidate(body.get("candidates")) or {}
    count = 0

    def on_call(fc: dict) -> ToolCallPart:
        nonlocal count
        cid = fc.get("id")
        part = ToolCallPart(cid if isinstance(cid, str) and cid else call_id(seed, count),
                            str(fc.get("name") or ""), orjson.dumps(_d(fc.get("args"))).decode())
        count += 1
        return part

    parts = parts_from_gemini(_d(cand.get("content")).get("parts"), on_call)
    if cand:
        finish = map_finish(cand.get("finishReason"), count > 0)
    else:
        finish = _FILTER if _d(body.get("promptFeedback")).get("blockReason") else "stop"
    model = body.get("modelVersion")
    return ChatResponse(
        id=rid if isinstance(rid, str) and rid else "gen-" + seed,
        model=model if isinstance(model, str) else "",
        parts=parts, finish=finish, usage=usage_from_response(body),
    )


def render_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    """An IR answer as a GenerateContentResponse for a Gemini client."""
    body: dict[str, Any] = {
        "candidates": [{
            "content": {"role": "model", "parts": gemini_model_parts(resp.parts, None)},
            "finishReason": FINISH_TO_GEMINI.get(resp.finish, "STOP"),
            "index": 0,
        }],
    }
    if resp.usage is not None:
        body["usageMetadata"] = usage_metadata(resp.usage)
    body["modelVersion"] = model
    body["responseId"] = resp.id
    return body


# ---------------------------------------------------------------------------------------------- streams


class StreamDecoder:
    """``streamGenerateContent?alt=sse`` events → IR events, one chunk at a time. Each chunk carries only
    new parts; a functionCall arrives whole, so it becomes start + one arguments delta + end at once."""

    __slots__ = ("_started", "_seed", "_calls", "_finished", "_last_usage")

    def __init__(self) -> None:
        self._started = False
        self._seed = ""
        self._calls = 0  # tool-call counter: the IR index and the id seed position (pitfall 3)
        self._finished = False
        self._last_usage: Any = None  # the raw usageMetadata last reported, to skip repeats

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return []  # keep-alives, stray terminators: nothing to say
        out: list[StreamEvent] = []
        if type(obj) is dict:
            self._chunk(obj, out)
        elif type(obj) is list:  # a JSON-array body fed whole
            for item in obj:
                if type(item) is dict:
                    self._chunk(item, out)
        return out

    def _chunk(self, obj: dict, out: list[StreamEvent]) -> None:
        err = obj.get("error")
        if err:
            e = _d(err)
            code = e.get("code")
            message = e.get("message") or e.get("status") or (err if isinstance(err, str) else "upstream error")
            out.append(StreamError(code if type(code) is int and code >= 400 else 500, str(message)))
            return
        if not self._started:
            self._started = True
            rid = obj.get("responseId")
            self._seed = rid if isinstance(rid, str) and rid else secrets.token_hex(8)
            model = obj.get("modelVersion")
            out.append(StreamStart(rid if isinstance(rid, str) and rid else "gen-" + self._seed,
                                   model if isinstance(model, str) else ""))
        cands = obj.get("candidates")
        finish: FinishReason | None = None
        if type(cands) is list and cands:
            cand = first_candidate(cands) or {}
            parts = _d(cand.get("content")).get("parts")
            if type(parts) is list:
                for p in parts:
                    if type(p) is dict:
                        self._part(p, out)
            reason = cand.get("finishReason")
            if reason:
                finish = map_finish(reason, self._calls > 0)
        elif _d(obj.get("promptFeedback")).get("blockReason"):
            finish = _FILTER
        raw = obj.get("usageMetadata")
        if raw and raw != self._last_usage:
            self._last_usage = raw
            usage = usage_from_response(obj)
            if usage is not None:
                out.append(UsageUpdate(usage))
        if finish is not None and not self._finished:
            self._finished = True
            out.append(Finish(finish))

    def _part(self, p: dict, out: list[StreamEvent]) -> None:
        sig = p.get("thoughtSignature")
        text = p.get("text")
        if p.get("thought") is True:
            if text or sig:
                out.append(ThinkingDelta(text if isinstance(text, str) else "", sig if isinstance(sig, str) else None))
            return
        if isinstance(sig, str) and sig:
            out.append(ThinkingDelta("", sig))
        if isinstance(text, str):
            if text:
                out.append(TextDelta(text))
            return
        fc = p.get("functionCall")
        if type(fc) is dict:
            i = self._calls
            self._calls = i + 1
            cid = fc.get("id")
            out.append(ToolCallStart(i, cid if isinstance(cid, str) and cid else call_id(self._seed, i),
                                     str(fc.get("name") or "")))
            out.append(ToolCallDelta(i, orjson.dumps(_d(fc.get("args"))).decode()))
            out.append(ToolCallEnd(i))

    def close(self) -> list[StreamEvent]:
        """End of body. Nothing to add: a stream that stopped without a finishReason is reported as cut
        by the relay, and the client's encoder writes its own well-formed ending."""
        return []


_HEAD = b'data: {"candidates":[{"content":{"role":"model","parts":['


class StreamEncoder:
    """IR events → ``alt=sse`` GenerateContentResponse frames (CRLF-separated, no terminator).

    One frame per text/thought delta, written at once; a tool call is held until its end because Gemini
    clients expect whole ``args`` objects; the last frame (from `close`) carries finishReason and
    usageMetadata. Frames are assembled from a fixed head and tail around the one part that changes."""

    __slots__ = ("_model", "_id", "_tail", "_calls", "_usage", "_finish", "_errored", "_closed")

    def __init__(self, model: str, *, include_usage: bool = False) -> None:
        self._model = model
        self._id: str | None = None
        self._tail = b""
        self._calls: dict[int, tuple[str, str, list[str]]] = {}
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._errored = False
        self._closed = False

    def _frame(self, part: bytes) -> bytes:
        if not self._tail:
            self._start(None)
        return _HEAD + part + self._tail

    def _start(self, rid: str | None) -> None:
        self._id = rid or "gen-" + secrets.token_hex(12)
        self._tail = (b']},"index":0}],"modelVersion":' + orjson.dumps(self._model)
                      + b',"responseId":' + orjson.dumps(self._id) + b"}\r\n\r\n")

    def feed(self, event: StreamEvent) -> bytes:
        if self._closed:
            return b""
        kind = type(event)
        if kind is TextDelta:
            return self._frame(b'{"text":' + orjson.dumps(event.text) + b"}") if event.text else b""
        if kind is ThinkingDelta:
            if not event.text and not event.signature:
                return b""
            part: dict[str, Any] = {"text": event.text, "thought": True}
            if event.signature:
                part["thoughtSignature"] = event.signature
            return self._frame(orjson.dumps(part))
        if kind is ToolCallStart:
            self._calls[event.index] = (event.id, event.name, [])
        elif kind is ToolCallDelta:
            call = self._calls.get(event.index)
            if call is not None:
                call[2].append(event.arguments)
        elif kind is ToolCallEnd:
            call = self._calls.pop(event.index, None)
            if call is not None:
                return self._frame(self._call(call))
        elif kind is UsageUpdate:
            self._merge(event.usage)
        elif kind is Finish:
            self._finish = event.reason
        elif kind is StreamStart:
            if not self._tail:
                self._start(event.id)
            if event.usage is not None:
                self._merge(event.usage)
        elif kind is StreamError:
            self._errored = True
            return b"data: " + error_body(event.status, event.message) + b"\r\n\r\n"
        return b""

    def _merge(self, usage: Usage) -> None:
        if self._usage is None:
            self._usage = Usage()
        self._usage.merge(usage)

    @staticmethod
    def _call(call: tuple[str, str, list[str]]) -> bytes:
        cid, name, args = call
        return orjson.dumps({"functionCall": {"id": cid, "name": name, "args": args_object("".join(args))}})

    def close(self) -> bytes:
        """Unfinished tool calls, then the final frame with finishReason and usageMetadata (STOP when the
        upstream never said). After a stream error nothing follows the error frame. Idempotent."""
        if self._closed:
            return b""
        self._closed = True
        if self._errored:
            return b""
        out = [self._frame(self._call(self._calls[i])) for i in sorted(self._calls)]
        self._calls.clear()
        final: dict[str, Any] = {
            "candidates": [{
                "content": {"role": "model", "parts": [{"text": ""}]},
                "finishReason": FINISH_TO_GEMINI.get(self._finish or "stop", "STOP"),
                "index": 0,
            }],
        }
        if self._usage is not None:
            final["usageMetadata"] = usage_metadata(self._usage)
        if not self._tail:
            self._start(None)
        final["modelVersion"] = self._model
        final["responseId"] = self._id
        out.append(b"data: " + orjson.dumps(final) + b"\r\n\r\n")
        return b"".join(out)
