"""What happens to an upstream answer on its way to the client, one object per answer.

Pass-through (same format in and out) forwards the bytes untouched and only reads usage from them; the
one exception is the OpenAI usage chunk the sidecar asked for on the client's behalf, which is cut out
again. Translation decodes the upstream's format into IR events and encodes them in the client's format,
event by event as they arrive. The relay drives either through the same small interface.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

import re

import orjson

from adapters import gemini, openai_chat
from adapters.ir import ChatResponse, Finish, StreamError, StreamEvent, TextDelta, ToolCallDelta, Usage, UsageUpdate
from adapters.sse import SSEParser, format_event


class StreamTransform(Protocol):
    usage: Usage | None
    upstream_error: str | None
    """An error the upstream reported inside its stream; the client has already been told in its format."""
    complete: bool
    """The upstream's stream ended properly (its terminal marker or finish reason was seen)."""

    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self, incomplete_message: str) -> bytes:
        """End of the upstream body: the closing bytes for the client, with an error event first when the
        upstream stopped without finishing (``incomplete_message`` says so in the client's format)."""
        ...
    def fail(self, message: str) -> bytes:
        """The stream is being cut (timeout, broken connection): an error event and the closing bytes."""
        ...


class ModelRename:
    """Shows the client the model name it asked for (``openai/gpt-4o-mini``, or an alias) in a pass-through
    answer, where the provider wrote its own (``gpt-4o-mini``).

    The provider's name is learnt from the first ``"model"`` (or Gemini ``"modelVersion"``) field of the answer,
    which is the top-level one in every format; after that only that exact value is replaced, so a tool's
    argument that happens to be called "model" is left alone.
    """

    _FIRST = re.compile(rb'"model(?:Version)?"\s*:\s*"([^"\\]*)"')

    def __init__(self, client_model: str) -> None:
        self._new = orjson.dumps(client_model)[1:-1]
        self._pattern: re.Pattern[bytes] | None = None
        self._identity = False

    def apply(self, data: bytes) -> bytes:
        if self._identity:
            return data
        if self._pattern is None:
            m = self._FIRST.search(data)
            if m is None:
                return data
            if m.group(1) == self._new:
                self._identity = True
                return data
            self._pattern = re.compile(rb'("model(?:Version)?"\s*:\s*")' + re.escape(m.group(1)) + rb'"')
        new = self._new
        return self._pattern.sub(lambda m: m.group(1) + new + b'"', data)


class PassThroughStream:
    def __init__(self, fmt_module: ModuleType, *, sse: bool, strip_usage: bool,
                 rename: ModelRename | None = None) -> None:
        self._rename = rename
        self._fmt = fmt_module
        self._sse = sse
        self._strip = strip_usage
        self._parser = SSEParser()
        self._meter = fmt_module.StreamMeter()
        # Chunks the meter has no use for are forwarded unparsed; not for Responses, whose events are counted.
        self._skip_unless: tuple[bytes, ...] | None = (
            None if fmt_module.FORMAT == "openai_responses" else getattr(self._meter, "SKIP_UNLESS", None))
        self._array = bytearray()  # a non-SSE Gemini stream is one JSON array: usage is in its last element
        self.usage: Usage | None = None
        self.upstream_error: str | None = None
        self.complete = False
        self._events = 0  # Responses events are numbered; an error event we add must continue the sequence

    def feed(self, chunk: bytes) -> bytes:
        if not self._sse:
            if len(self._array) < 16 * 1024 * 1024:
                self._array += chunk
            return self._rename.apply(chunk) if self._rename else chunk
        parser = self._parser
        if self._skip_unless is not None and _lacks(chunk, self._skip_unless) and parser.skip_whole(chunk):
            return self._rename.apply(chunk) if self._rename else chunk  # the bulk of a stream: text deltas
        whole = parser.between_events  # this chunk starts a fresh event
        events = parser.feed(chunk)
        self._events += len(events)
        meter = self._meter
        for event in events:
            meter.feed(event)
        if self._strip:
            kept = [e for e in events if not openai_chat.is_usage_only_chunk(e.data)]
            # Re-framed only when an event must go or the chunk split one; otherwise forwarded as it came.
            if len(kept) != len(events) or not (whole and parser.between_events):
                chunk = b"".join([format_event(e.data, e.event) for e in kept])
        return self._rename.apply(chunk) if self._rename else chunk

    def finish(self, incomplete_message: str) -> bytes:
        if not self._sse:
            self.usage = gemini.usage_from_json_array_stream(bytes(self._array))
            self.complete = True  # a JSON array has no terminal marker to check; the body ended cleanly
            return b""
        for event in self._parser.flush():
            self._meter.feed(event)
        self.complete = self._meter.finished
        self.upstream_error = self._meter.error
        self.usage = self._meter.usage
        if not self.complete and not self.upstream_error:
            return self._error_event(incomplete_message)
        return b""

    def fail(self, message: str) -> bytes:
        self.usage = self._meter.usage
        return self._error_event(message)

    def _error_event(self, message: str) -> bytes:
        if not self._sse:  # close the JSON array the client is reading with an error element
            return b"," + gemini.error_body(502, message) + b"]"
        if self._fmt.FORMAT == "openai_responses":
            return self._fmt.stream_error_event(502, message, sequence_number=self._events)
        return self._fmt.stream_error_event(502, message)


def _lacks(chunk: bytes, markers: tuple[bytes, ...]) -> bool:
    for marker in markers:
        if chunk.find(marker) >= 0:  # not `in`: see adapters/sse.py on its cost
            return False
    return True


class TranslatedStream:
    """Upstream SSE → IR events (the upstream codec's decoder) → client bytes (the client codec's encoder)."""

    def __init__(self, decoder: Any, encoder: Any) -> None:
        self._parser = SSEParser()
        self._decoder = decoder
        self._encoder = encoder
        self.usage: Usage | None = None
        self.upstream_error: str | None = None
        self.complete = False

    def _encode(self, events: list[StreamEvent]) -> bytes:
        out = []
        encode = self._encoder.feed
        for event in events:
            kind = type(event)
            if kind is TextDelta or kind is ToolCallDelta:  # the bulk of a stream: nothing to note
                pass
            elif kind is UsageUpdate:
                if self.usage is None:
                    self.usage = Usage()
                self.usage.merge(event.usage)  # type: ignore[union-attr]
            elif kind is Finish:
                self.complete = True
            elif kind is StreamError:
                self.upstream_error = event.message  # type: ignore[union-attr]
            elif getattr(event, "usage", None) is not None:  # StreamStart carrying input tokens
                if self.usage is None:
                    self.usage = Usage()
                self.usage.merge(event.usage)  # type: ignore[union-attr]
            data = encode(event)
            if data:
                out.append(data)
        return out[0] if len(out) == 1 else b"".join(out)

    def feed(self, chunk: bytes) -> bytes:
        sse_events = self._parser.feed(chunk)
        if not sse_events:
            return b""
        decode = self._decoder.feed
        if len(sse_events) == 1:  # one upstream event per read is the common case while tokens trickle in
            events = decode(sse_events[0])
        else:
            events = [ir for sse_event in sse_events for ir in decode(sse_event)]
        return self._encode(events) if events else b""

    def finish(self, incomplete_message: str) -> bytes:
        events: list[StreamEvent] = []
        for sse_event in self._parser.flush():
            events.extend(self._decoder.feed(sse_event))
        out = self._encode(events)
        complete = self.complete  # judged before the decoder's close(), which may synthesise a finish
        out += self._encode(self._decoder.close())
        self.complete = complete
        if not complete and not self.upstream_error:
            out += self._encode([StreamError(502, incomplete_message)])
        return out + self._encoder.close()

    def fail(self, message: str) -> bytes:
        return self._encode([StreamError(502, message)]) + self._encoder.close()


def passthrough_body(fmt_module: ModuleType, data: bytes,
                     rename: ModelRename | None = None) -> tuple[bytes, Usage | None]:
    try:
        usage = fmt_module.usage_from_response(orjson.loads(data))
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        usage = None  # not JSON or no usage: pass-through relays it byte for byte, recorded without tokens
    return (rename.apply(data) if rename else data), usage


def translated_body(upstream_codec: ModuleType, client_codec: ModuleType, data: bytes,
                    model: str, **render_options: Any) -> tuple[bytes, Usage | None, ChatResponse]:
    """Raises ValueError (incl. orjson.JSONDecodeError) when the upstream's answer can't be read."""
    parsed = orjson.loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("upstream answer is not a JSON object")
    response = upstream_codec.parse_response(parsed)
    return orjson.dumps(client_codec.render_response(response, model, **render_options)), response.usage, response
