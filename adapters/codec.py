"""The shape every format's codec module has (``adapters/<format>_codec.py``), so reading one means reading all.

A codec converts between its wire format and the IR (`adapters.ir`), with no I/O:

- ``parse_request(body, *, model=None, stream=None) -> ChatRequest`` — a client's request in this format.
  ``model``/``stream`` are given when the format carries them outside the body (Gemini's URL).
  Raises `TranslationError` for input that is malformed for this format (status 400).
- ``build_request(req, model) -> tuple[dict, list[str]]`` — the upstream request body for this format, plus
  warnings for advisory options that were dropped (sent back in an ``x-sidecar-warning`` header). Raises
  `TranslationError` naming the parameter when the request asks for something this format cannot express
  without changing the answer's meaning (``n > 1`` to Anthropic, logprobs to Gemini, ...).
- ``parse_response(body) -> ChatResponse`` — an upstream's non-streamed answer in this format.
- ``render_response(resp, model) -> dict`` — the answer rendered for a client of this format.
- ``StreamDecoder()`` with ``feed(event: SSEEvent) -> list[StreamEvent]`` and ``close() -> list[StreamEvent]``
  (end of body) — an upstream's stream in this format, to IR events, incrementally.
- ``StreamEncoder(model, *, include_usage=False)`` with ``feed(event: StreamEvent) -> bytes`` and
  ``close() -> bytes`` (the format's closing events; idempotent) — IR events to this format's SSE bytes,
  incrementally: every call returns what can be sent now, never buffering text to the end.
- ``ACCEPTS_IMAGE_URLS: bool`` — whether image URLs can be sent as URLs (otherwise the proxy inlines them).

`openai_responses` is inbound-only (a Responses client talking to an OpenAI provider is a pass-through), so
its codec has no ``build_request``/``parse_response``/``StreamDecoder``.
"""

from __future__ import annotations

from typing import Any, Protocol

from adapters.ir import ChatRequest, ChatResponse, StreamEvent
from adapters.sse import SSEEvent


class StreamDecoder(Protocol):
    def feed(self, event: SSEEvent) -> list[StreamEvent]: ...
    def close(self) -> list[StreamEvent]: ...


class StreamEncoder(Protocol):
    def feed(self, event: StreamEvent) -> bytes: ...
    def close(self) -> bytes: ...


class Codec(Protocol):
    ACCEPTS_IMAGE_URLS: bool

    def parse_request(self, body: dict[str, Any], *, model: str | None = None,
                      stream: bool | None = None) -> ChatRequest: ...
    def build_request(self, req: ChatRequest, model: str) -> tuple[dict[str, Any], list[str]]: ...
    def parse_response(self, body: dict[str, Any]) -> ChatResponse: ...
    def render_response(self, resp: ChatResponse, model: str) -> dict[str, Any]: ...
