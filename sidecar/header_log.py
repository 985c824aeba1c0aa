"""Headers as the request log keeps them: what the client sent and what the provider answered, minus secrets.

The detail view shows them because they explain most surprises (an SDK's beta flag, a provider's rate-limit
or request-id header), but they are also where keys travel. So credential headers are replaced outright,
whatever they hold, and every other value is scrubbed of the provider key the request used (a provider may
echo it in a custom header). Built only when bodies are stored, at the end of a request, off the streaming path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sidecar.redact import scrub_text

CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie", "set-cookie",
    "x-sidecar-token",
})
REDACTED = "[redacted]"
MAX_HEADERS = 100
"""Kept per side; a hostile client can send many (the server's own limit is `[limits] max_headers`)."""
MAX_VALUE_CHARS = 2048


def loggable(headers: Mapping[str, str] | None, secret: bytes | None) -> dict[str, str] | None:
    """Lower-cased names to values, repeated headers joined with ", ", credentials replaced, values capped."""
    if not headers:
        return None
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in CREDENTIAL_HEADERS:
            value = REDACTED
        else:
            value = scrub_text(value, secret) or ""
            if len(value) > MAX_VALUE_CHARS:
                value = value[:MAX_VALUE_CHARS] + "…"
        if key in out:
            out[key] = f"{out[key]}, {value}"
        elif len(out) < MAX_HEADERS:
            out[key] = value
    return out


def header_record(request: Mapping[str, str] | None, response: Mapping[str, str] | None,
                  secret: bytes | None) -> dict[str, Any] | None:
    """``{"request": {...}, "response": {...}}`` for the store, or None when neither side is known."""
    req, resp = loggable(request, secret), loggable(response, secret)
    if req is None and resp is None:
        return None
    return {"request": req or {}, "response": resp or {}}
