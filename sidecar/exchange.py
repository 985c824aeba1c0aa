"""Per-request state that the pipeline steps (proxy, relay) share."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.ir import ChatRequest, Usage
from sidecar.records import RequestRecord


@dataclass(slots=True)
class Failure:
    """An attempt that produced no answer for the client (yet): the caller may try the next target."""

    status: int
    message: str
    retryable: bool = True


@dataclass(slots=True)
class Exchange:
    """Per-request state shared by the pipeline steps."""

    record: RequestRecord
    started: float
    fmt: str
    body: bytes = b""
    parsed: dict[str, Any] = field(default_factory=dict)
    response_body: bytes | None = None
    usage: Usage | None = None
    secret: bytes | None = None
    """The key sent upstream in this request, to scrub from anything going back or being stored."""
    ir: ChatRequest | None = None
    """The request in IR, parsed on the first attempt that needs translation and reused by later ones."""
    images_inlined: bool = False
    warnings: list[str] = field(default_factory=list)
    """Advisory options a translation dropped; sent to the client in ``x-sidecar-warning``."""
    prepared: web.StreamResponse | None = None
    """Set once the client's response has started: from then on, no failover."""
    request_headers: Mapping[str, str] | None = None
    """The client's headers (a reference, no copy): redacted into the log only when bodies are stored."""
    upstream_headers: Mapping[str, str] | None = None
    """The last upstream response's headers (a reference), for the same log."""

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)
