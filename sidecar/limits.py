"""Request limits (``[limits]``): body size, header size and count, messages and content parts per request.

Body and header limits are enforced by aiohttp itself, before any handler runs (`parser_settings`,
``client_max_size``). An oversized header line or too many headers get aiohttp's own **400** (plain text,
connection closed; it does not hang), since no handler runs; its log line would quote the first 100 bytes of
the offending line, which can be an ``Authorization`` header or a ``?key=`` URL, so `quiet_parser_errors`
rewrites it into one warning naming the limit instead.

Messages and parts are counted by `check_counts` on the JSON the proxy parses anyway (every request is
parsed once, pass-through included, to read ``model`` and ``stream``), so the count adds a walk over the
message list and no second parse: 30-60 µs per 100 messages on a 2-core dev box, a quarter to a fifth of
what orjson takes to parse the same body. Too many → **413** in the caller's own format, naming the limit
and its config key.

Defaults are generous on purpose: a long Claude Code session replays hundreds of messages (each tool use is
a call and a result), thousands after many hours, each with a few content parts; the defaults sit an order of
magnitude above that, as a guard against runaway loops and garbage rather than a quota.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """``[limits]`` in the config file; every field is a positive integer."""

    max_body_bytes: int = 64 * MIB
    """``max_body_mb``: base64 images and PDFs inflate 4/3; Anthropic accepts 32 MB requests, Gemini 20 MB
    inline, so 64 MiB passes anything a provider would take (aiohttp's own default, 1 MiB, would not)."""
    max_header_bytes: int = 64 * 1024
    """One header line (name + value) or the request line. aiohttp's default is 8190 bytes (nginx's 8 KB);
    SDK headers are far smaller, but long JWT bearer tokens, ``baggage``/``traceparent`` chains and
    ``anthropic-beta`` lists grow, and 64 KiB × ``max_headers`` still bounds a request's headers to 8 MiB."""
    max_headers: int = 128
    """aiohttp's default. SDKs send 10–30 (the Stainless ``x-stainless-*`` set, ``anthropic-beta``, ...)."""
    max_messages: int = 10_000
    """Messages (OpenAI/Anthropic), ``contents`` (Gemini) or ``input`` items (Responses) in one request."""
    max_parts: int = 100_000
    """Content parts in one request, all messages together (text, images, tool calls and results, ...)."""


def parser_settings(limits: RequestLimits) -> dict[str, int]:
    """Keyword arguments for ``web.AppRunner``: aiohttp's HTTP parser enforces these before any handler."""
    return {"max_line_size": limits.max_header_bytes, "max_field_size": limits.max_header_bytes,
            "max_headers": limits.max_headers}


def body_too_large(limits: RequestLimits) -> str:
    """The 413 message for a body over ``client_max_size`` (aiohttp stops reading at the limit)."""
    return (f"request body too large: the limit is {limits.max_body_bytes / MIB:g} MiB "
            "([limits] max_body_mb in the sidecar's config)")


def count(fmt: str, body: dict[str, Any]) -> tuple[int, int]:
    """(messages, content parts) of a parsed request in inbound format ``fmt``; malformed shapes count as 0
    (the adapters or the provider reject them with a better message)."""
    if fmt == "gemini":
        items = body.get("contents")
        parts_key = "parts"
        extra = body.get("systemInstruction") or body.get("system_instruction")
        extra_parts = _len(extra.get("parts")) if isinstance(extra, dict) else 0
    else:
        items = body.get("input" if fmt == "openai_responses" else "messages")
        parts_key = "content"
        extra_parts = _len(body.get("system")) if fmt == "anthropic" else 0
        if isinstance(items, str):  # Responses: `input` may be a plain string
            return 1, 1
    if not isinstance(items, list):
        return 0, extra_parts
    parts = extra_parts
    nested = fmt == "anthropic"  # Anthropic tool_result blocks carry their own content list
    for item in items:  # plain type checks, no calls: this runs on every request
        if type(item) is not dict:
            parts += 1
            continue
        content = item.get(parts_key)
        if type(content) is list:
            parts += len(content)
            if nested:
                for part in content:
                    if type(part) is dict and type(inner := part.get("content")) is list:
                        parts += len(inner)
        else:  # a string, or an item that is itself one part (a Responses function_call, ...)
            parts += 1
        if type(calls := item.get("tool_calls")) is list:  # OpenAI Chat: calls live beside the content
            parts += len(calls)
    return len(items), parts


def check_counts(fmt: str, body: dict[str, Any], limits: RequestLimits) -> str | None:
    """None when the request is within ``max_messages`` and ``max_parts``; else the 413 message."""
    messages, parts = count(fmt, body)
    if messages > limits.max_messages:
        return (f"too many messages: {messages} in one request, the limit is {limits.max_messages} "
                "([limits] max_messages in the sidecar's config)")
    if parts > limits.max_parts:
        return (f"too many content parts: {parts} in one request, the limit is {limits.max_parts} "
                "([limits] max_parts in the sidecar's config)")
    return None


def _len(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


class _ParserErrorFilter(logging.Filter):
    """Turns aiohttp's traceback for a request it refused while parsing into one warning without the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Imported here: the config imports this module, and light CLI commands must not pay for aiohttp.
        from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else "?"
            why = f"a header or request line longer than {limit} bytes ([limits] max_header_bytes)"
        elif "Too many headers" in str(exc.message):
            why = "too many headers ([limits] max_headers)"
        else:
            why = f"a malformed HTTP request ({type(exc).__name__})"
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg, record.args = "refused a request from %s with 400: %s", (peer, why)
        record.exc_info, record.exc_text = None, None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER = _ParserErrorFilter()


def quiet_parser_errors() -> None:
    """Install the filter on aiohttp's server logger (idempotent): logs never quote a refused header."""
    logger = logging.getLogger("aiohttp.server")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
