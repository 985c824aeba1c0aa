"""The request record: one row per client request, the unit the store, events and TUI share.

Field names are a public contract (design.md): scripts read them from `/_sidecar/requests`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Attempt:
    """One try against one upstream target; a failed-over request has several."""

    provider: str
    model: str
    status: int | None = None
    """Upstream HTTP status, or None when no response arrived (connect error, timeout)."""
    error: str | None = None
    duration_ms: float | None = None


@dataclass(slots=True)
class RequestRecord:
    """Everything recorded about one client request. Never holds key material."""

    id: str
    ts: str
    """ISO 8601 UTC time the request arrived."""
    inbound: str
    """openai_chat | openai_responses | anthropic | gemini"""
    requested_model: str
    provider: str | None = None
    model: str | None = None
    """The model name as sent upstream."""
    stream: bool = False
    status: int | None = None
    """HTTP status returned to the client (the stream's start status for streams)."""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    """None when the price is unknown; never a made-up zero."""
    usage_source: str | None = None
    """reported | estimated, or None when there is no usage (e.g. an error before any upstream)."""
    error: str | None = None
    client: str | None = None
    """The calling app's label (user agent for now; a client token's name later)."""
    path: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    cost_breakdown: dict[str, Any] | None = None
    """How ``cost_usd`` was computed: per meter tokens × USD per million, and the price source/version."""

    def to_dict(self) -> dict[str, Any]:
        """Written out by hand: ``dataclasses.asdict`` deep-copies generically and costs ~18 µs a request."""
        return {
            "id": self.id, "ts": self.ts, "inbound": self.inbound, "requested_model": self.requested_model,
            "provider": self.provider, "model": self.model, "stream": self.stream, "status": self.status,
            "latency_ms": self.latency_ms, "ttft_ms": self.ttft_ms, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens, "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd, "usage_source": self.usage_source, "error": self.error,
            "client": self.client, "path": self.path,
            "attempts": [{"provider": a.provider, "model": a.model, "status": a.status, "error": a.error,
                          "duration_ms": a.duration_ms} for a in self.attempts],
            "cost_breakdown": self.cost_breakdown,
        }
