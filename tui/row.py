"""`RequestRow`: one request as the TUI holds it, and the tolerant parsing of control-API records.

No textual import. Field names follow the record contract (`sidecar/records.py`, design.md);
values are type-checked one by one so a sidecar sending an odd value costs one blank cell,
never a crashed feed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RECORD_FIELDS = (
    "inbound", "requested_model", "provider", "model", "status", "latency_ms", "ttft_ms",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "usage_source", "error", "client", "path",
)  # fmt: skip
"""Scalar record fields copied onto a row (`id`, `ts`, `stream`, `attempts` are handled apart)."""


def parse_epoch(ts: Any) -> float:
    """ISO 8601 to epoch seconds; the arrival time when the sidecar sent something odd, so a bad
    timestamp sorts the row as "now" instead of dropping it."""
    if isinstance(ts, str):
        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


def record_id(v: Any) -> str:
    """The id of a record or event; `ValueError` when missing, so callers skip the event."""
    if not isinstance(v, str) or not v:
        raise ValueError(f"record without a usable id: {v!r}")
    return v


def _as_int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _as_float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _as_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _coerce(name: str, value: Any) -> Any:
    if name == "status" or name.endswith("_tokens"):
        return _as_int(value)
    if name.endswith("_ms") or name == "cost_usd":
        return _as_float(value)
    if name == "error" and value is not None and not isinstance(value, str):
        return str(value)  # an error is an error even when the sidecar sends it structured
    return _as_str(value)


def parse_attempt(d: Any) -> dict[str, Any] | None:
    """`{provider, model, status, error, duration_ms}` with checked types, or None if not a dict."""
    if not isinstance(d, dict):
        return None
    return {
        "provider": _as_str(d.get("provider")) or "?",
        "model": _as_str(d.get("model")) or "?",
        "status": _as_int(d.get("status")),
        "error": _coerce("error", d.get("error")),
        "duration_ms": _as_float(d.get("duration_ms")),
    }


@dataclass(slots=True)
class RequestRow:
    """One request as the traffic list shows it: the record's summary fields, no bodies."""

    id: str
    ts: str
    epoch: float
    """`ts` parsed once; rows are ordered by (epoch, seq)."""
    seq: int
    """Arrival order in this TUI; breaks ties between requests in the same millisecond."""
    inbound: str = ""
    requested_model: str = ""
    provider: str | None = None
    model: str | None = None
    stream: bool = False
    status: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    """None means the price is unknown: shown as "?", never as $0."""
    usage_source: str | None = None
    error: str | None = None
    client: str | None = None
    path: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    pending: bool = True
    """True until `request_finished` (or a history record) arrives for this id."""

    @classmethod
    def new(cls, d: dict[str, Any], seq: int) -> RequestRow:
        """An empty (pending) row for the record or event `d`; raises `ValueError` without an id."""
        ts = d.get("ts")
        rid = record_id(d.get("id"))
        return cls(id=rid, ts=ts if isinstance(ts, str) else "", epoch=parse_epoch(ts), seq=seq)

    @classmethod
    def from_record(cls, rec: dict[str, Any], seq: int = 0) -> RequestRow:
        row = cls.new(rec, seq)
        row.update(rec)
        return row

    def update(self, rec: dict[str, Any]) -> None:
        """Take every field present in a full record and mark the row finished."""
        for name in RECORD_FIELDS:
            if name in rec:
                setattr(self, name, _coerce(name, rec[name]))
        self.inbound = self.inbound or ""
        self.requested_model = self.requested_model or ""
        if "stream" in rec:
            self.stream = bool(rec["stream"])
        atts = rec.get("attempts")
        if isinstance(atts, list):
            self.attempts = [a for a in map(parse_attempt, atts) if a is not None]
        self.pending = False

    def start(self, ev: dict[str, Any]) -> None:
        """Take the fields a `request_started` event carries."""
        self.stream = bool(ev.get("stream"))
        for name in ("inbound", "requested_model", "client", "path"):
            setattr(self, name, _as_str(ev.get(name)) or getattr(self, name))

    @property
    def order(self) -> tuple[float, int]:
        return (self.epoch, self.seq)

    @property
    def is_error(self) -> bool:
        """A finished request the client did not get a clean answer for (includes a stream that
        started with 200 and then broke, which sets `error`)."""
        if self.pending:
            return False
        return self.error is not None or self.status is None or self.status >= 400

    @property
    def has_usage(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None
