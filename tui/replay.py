"""Replay a recorded request through the sidecar's inbound endpoint, never around it.

Going through the proxy (not straight to the provider) means the replay obeys everything a client's
request does: routing and failover, keys from the keyring, budgets, the pause switch, and the Host and
client-token rules (it carries the TUI's own token, `SIDECAR_TOKEN`). It is recorded like any request and
shows up in the traffic list. It is labelled `X-Sidecar-Client: tui-replay`; when the TUI presents a
client token, the sidecar labels it with that token's name instead (a token's name is authoritative,
so per-client budgets cannot be dodged by relabelling).

The body is sent exactly as stored, so the replay streams when the original did: the point is to
reproduce the request (stream code paths, time to first token), not a cheaper variant of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tui.client import ControlClient
from tui.curl import inbound_request

REPLAY_CLIENT = "tui-replay"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    status: int
    request_id: str | None
    """The new record's id (`x-sidecar-request-id`); None when the sidecar refused before recording it."""
    error: str | None
    """The error message of an error answer, in whichever API format it came back."""

    @property
    def ok(self) -> bool:
        return self.status < 400

    def describe(self, original: str) -> str:
        """One line for a toast."""
        new = f" as {self.request_id}" if self.request_id else ""
        if self.ok:
            return f"replayed {original}{new}: HTTP {self.status}"
        verb = "replay refused" if self.request_id is None else f"replay of {original}{new} failed"
        return f"{verb}: HTTP {self.status}" + (f": {self.error}" if self.error else "")


async def replay(client: ControlClient, record: Mapping[str, Any]) -> ReplayResult:
    """Send the record's request again through the proxy; `NotReplayable` when it cannot be rebuilt."""
    req = inbound_request(record)
    headers = {**req.headers, "X-Sidecar-Client": REPLAY_CLIENT}
    status, answer_headers, head = await client.post_raw(req.path, req.body.encode(), headers)
    rid = next((v for k, v in answer_headers.items() if k.lower() == "x-sidecar-request-id"), None)
    return ReplayResult(status, rid, error_message(head) if status >= 400 else None)


def error_message(body: bytes, limit: int = 300) -> str | None:
    """`error.message` of an OpenAI, Anthropic or Gemini error body (all three put it there)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return message[:limit] if isinstance(message, str) and message else None
