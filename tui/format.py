"""Plain-text formatting of request fields, shared by the traffic table, status bar and detail view.

No textual import, so the rules (what "unknown cost" looks like, how durations shorten) are tested
as plain functions and stay identical on every screen.
"""

from __future__ import annotations

import math
from datetime import datetime

from tui.row import RequestRow

INBOUND_LABELS = {
    "openai_chat": "chat",
    "openai_responses": "responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
}
"""Short names for the inbound dialect; the route column is the widest one, so save cells here."""

PENDING = "…"
NONE = "-"


def fmt_time(row: RequestRow) -> str:
    """Local wall-clock time (HH:MM:SS): the user correlates rows with their own terminal's clock."""
    try:
        return datetime.fromtimestamp(row.epoch).strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "??:??:??"


def fmt_ms(ms: float | None) -> str:
    """850ms, 1.24s, 12.3s, 2m05s: three significant figures at most, so columns stay narrow."""
    if ms is None:
        return NONE
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s"


def fmt_tokens(n: int | None) -> str:
    """1234 -> 1,234; 123456 -> 123k; 1.5M; None -> "-"."""
    if n is None:
        return NONE
    if n < 100_000:
        return f"{n:,}"
    if n < 10_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def fmt_cost(cost: float | None, *, unknown: str = "?") -> str:
    """Dollars with enough precision for single LLM calls ($0.0012); None is unknown, never "$0"."""
    if cost is None:
        return unknown
    if cost == 0:
        return "$0"
    if cost < 1e-7:
        return "<$0.0000001"  # rounding to "$0.0000000" would read as free
    if cost < 1:
        # At least two significant digits: cheap models cost millionths of a dollar per call.
        decimals = max(4, 1 - math.floor(math.log10(cost)))
        text = f"{cost:.{decimals}f}"
        return "$" + (text.rstrip("0") if decimals > 4 else text)
    if cost < 1000:
        return f"${cost:.2f}"
    return f"${cost:,.0f}"


def row_cost(row: RequestRow) -> str:
    """The cost cell: "?" only when tokens were used but nothing could price them; "-" when no
    usage was recorded at all (e.g. every attempt failed before a response)."""
    if row.pending:
        return PENDING
    if row.cost_usd is None and not row.has_usage:
        return NONE
    return fmt_cost(row.cost_usd)


def fmt_route(row: RequestRow) -> str:
    """`chat→openai/gpt-4.1 (smart)`: dialect, then the target, then the alias when it differs."""
    inbound = INBOUND_LABELS.get(row.inbound, row.inbound or "?")
    if row.provider or row.model:
        target = f"{row.provider or '?'}/{row.model or '?'}"
        if row.requested_model and row.requested_model not in (row.model, target):
            target += f" ({row.requested_model})"
    else:
        target = row.requested_model or "?"
    return f"{inbound}→{target}"


def fmt_status(row: RequestRow) -> str:
    """HTTP status, "…" in flight, "ERR" when no response ever came, "200!" for a broken stream."""
    if row.pending:
        return PENDING
    if row.status is None:
        return "ERR"
    if row.error and row.status < 400:
        return f"{row.status}!"
    return str(row.status)


def status_level(row: RequestRow) -> str:
    """Theme colour name for the status cell: pending, success, warning (4xx: the client's own
    mistake or a limit) or error (5xx, no response, broken stream)."""
    if row.pending:
        return "pending"
    if row.status is not None and 400 <= row.status < 500:
        return "warning"
    if row.is_error:
        return "error"
    return "success"


def fmt_attempts(row: RequestRow) -> str:
    """`1` normally; `2 ↻` when the request failed over; blank until the first attempt starts."""
    n = len(row.attempts)
    if n == 0:
        return "" if row.pending else NONE
    return f"{n} ↻" if n > 1 else "1"


def fmt_tokens_in(row: RequestRow) -> str:
    return PENDING if row.pending else fmt_tokens(row.input_tokens)


def fmt_tokens_out(row: RequestRow) -> str:
    return PENDING if row.pending else fmt_tokens(row.output_tokens)
