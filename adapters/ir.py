"""The internal representation every format translates through.

Every inbound request is parsed into a `ChatRequest`, rendered into the upstream's format, and the
upstream's answer comes back as a `ChatResponse` (or, for streams, as a sequence of `StreamEvent`s) to be
rendered in the client's format. With N formats that is 2·N converters instead of N² pairwise ones.

The shape is the superset one: content *parts* (as Anthropic and Gemini have them) rather than strings,
system text hoisted out of the turns, and tool results as parts of a user turn (OpenAI's separate ``tool``
messages are folded in on parse and split out again on render).

Usage is normalised to one convention whatever the wire format said, so cost and totals can be
computed without knowing where the numbers came from:

- ``input``  counts *all* prompt tokens, cached ones included (OpenAI's convention; Anthropic's
  ``input_tokens`` excludes cache reads and writes, so its adapter adds them back);
- ``output`` counts all generated tokens, reasoning included (Gemini's ``candidatesTokenCount``
  excludes thoughts, so its adapter adds ``thoughtsTokenCount``);
- ``cache_read``, ``cache_write`` and ``reasoning`` are subsets of the above, never extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union


@dataclass(slots=True)
class Usage:
    """Token counts of one upstream answer, in the normalised convention above."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output

    def merge(self, other: "Usage") -> None:
        """Take the larger of each counter.

        Streams report usage piecewise and cumulatively (Anthropic sends input in message_start
        and a running output count in message_delta; Gemini repeats usageMetadata on chunks), so
        the largest value seen is the right one and repeated reports never double count.
        """
        self.input = max(self.input, other.input)
        self.output = max(self.output, other.output)
        self.cache_read = max(self.cache_read, other.cache_read)
        self.cache_write = max(self.cache_write, other.cache_write)
        self.reasoning = max(self.reasoning, other.reasoning)


# ---------------------------------------------------------------------------------------------- errors


class TranslationError(ValueError):
    """The request cannot be expressed for the target without changing its meaning.

    Rendered as a 400 in the caller's own format; ``param`` names the offending parameter so the
    developer knows exactly what to drop or change.
    """

    def __init__(self, param: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status


# ---------------------------------------------------------------------------------------------- content

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
"""OpenAI's vocabulary, the most common; every adapter maps its own reasons to and from it by a table."""


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image by URL (``url``) or inline (``data`` = base64 without the ``data:`` prefix)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class DocumentPart:
    """A file (PDF, plain text) by URL or inline base64."""

    url: str | None = None
    data: str | None = None
    media_type: str = "application/pdf"
    filename: str | None = None


@dataclass(slots=True)
class ToolCallPart:
    """A call the assistant made. ``arguments`` is the JSON text, exactly as produced (may be partial-free but
    unparsed): OpenAI carries strings, Anthropic and Gemini objects; adapters convert at the edge."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(slots=True)
class ToolResultPart:
    """A tool's answer, sent back by the client. ``name`` is needed by Gemini (functionResponse.name) and is
    recovered from the matching call in history when the inbound format doesn't carry it."""

    tool_call_id: str
    content: list[TextPart | ImagePart] = field(default_factory=list)
    name: str | None = None
    is_error: bool = False


@dataclass(slots=True)
class ThinkingPart:
    """Reasoning text. ``signature`` (Anthropic) / thought signatures (Gemini) must be replayed verbatim to the
    provider that produced them; ``redacted`` holds Anthropic's opaque redacted_thinking data."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


Part = Union[TextPart, ImagePart, DocumentPart, ToolCallPart, ToolResultPart, ThinkingPart]


@dataclass(slots=True)
class Message:
    role: Literal["user", "assistant"]
    parts: list[Part] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- request


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments (standard JSON Schema; the Gemini adapter cleans it for its subset)."""
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None
    """The forced tool when ``mode == "tool"``."""


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Reasoning:
    """How much the model should think: an effort word, a token budget, or both (each adapter maps to its own)."""

    effort: str | None = None
    """none | minimal | low | medium | high | xhigh | max"""
    budget_tokens: int | None = None
    include_thoughts: bool | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    """System/developer instructions in order; formats with one system slot get them joined by blank lines."""
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    reasoning: Reasoning | None = None
    stream: bool = False
    include_usage: bool = False
    """OpenAI chat clients that asked for the final usage chunk (``stream_options.include_usage``)."""
    unsupported: dict[str, Any] = field(default_factory=dict)
    """Inbound parameters the IR has no field for (e.g. ``logprobs``), kept so the outbound adapter can refuse
    them by name (meaning-changing) or drop them with a warning (advisory) — never silently."""


# ---------------------------------------------------------------------------------------------- response


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Part] = field(default_factory=list)
    """TextPart, ToolCallPart and ThinkingPart, in the order the model produced them."""
    finish: FinishReason = "stop"
    stop_sequence: str | None = None
    usage: Usage | None = None
    created: int | None = None
    """Unix seconds, when the upstream said."""


# ---------------------------------------------------------------------------------------------- stream events


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    usage: Usage | None = None
    """Some upstreams (Anthropic) report the input tokens up front."""


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None


@dataclass(slots=True)
class ToolCallStart:
    index: int
    """0-based position among this answer's tool calls; deltas and the end refer to it."""
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str
    """A fragment of the JSON arguments text; fragments concatenate to the whole."""


@dataclass(slots=True)
class ToolCallEnd:
    index: int


@dataclass(slots=True)
class UsageUpdate:
    usage: Usage


@dataclass(slots=True)
class Finish:
    """The model stopped. Encoders emit their closing events when the stream ends (`StreamEncoder.close`),
    because usage may still arrive after the finish reason (OpenAI's usage chunk, Anthropic's message_delta)."""

    reason: FinishReason
    stop_sequence: str | None = None


@dataclass(slots=True)
class StreamError:
    status: int
    message: str


StreamEvent = Union[
    StreamStart, TextDelta, ThinkingDelta, ToolCallStart, ToolCallDelta, ToolCallEnd, UsageUpdate, Finish, StreamError
]


ADVISORY_PARAMS = frozenset({
    "store", "service_tier", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
    "prompt_cache_options", "verbosity", "prediction", "include", "truncation", "cache_control",
    "safety_settings", "safetySettings", "mediaResolution", "max_tool_calls", "speed", "inference_geo", "top_k",
    # Server-side context editing (Claude Code sends it on every request): without it the full context is sent.
    "context_management",
    # Hosted tools the client *offers* (OpenAI web_search, Anthropic server tools, Gemini googleSearch …) run only
    # inside their own provider: another provider answers without them. Forcing one (tool_choice) is refused.
    "tools", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext", "fileSearch", "googleMaps",
    "computerUse", "enterpriseWebSearch", "retrieval",
})
"""`ChatRequest.unsupported` keys (from any inbound format) that only tune cost, latency, caching, logging or
style. A target that can't take one drops it with an ``x-sidecar-warning``; every other unsupported key is
presumed to change the answer and is refused with a 400 naming it. One list for every codec, so an OpenAI
client's ``store: true`` means the same thing whichever provider serves it."""
