"""TrafficModel and the shared formatting rules, as plain functions (no UI, no network)."""

from __future__ import annotations

from typing import Any

import pytest

from tui import format as fmt
from tui.model import TrafficModel


def rec(rid: str, sec: int = 0, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": rid, "ts": f"2025-01-01T10:00:{sec:02d}+00:00", "inbound": "anthropic",
        "provider": "anthropic", "model": "claude-x", "requested_model": "claude-x", "stream": True,
        "status": 200, "latency_ms": 1500.0, "ttft_ms": 300.0, "input_tokens": 10,
        "output_tokens": 5, "cost_usd": 0.5, "error": None, "attempts": [],
    }  # fmt: skip
    base.update(over)
    return base


def started(rid: str, sec: int = 0) -> dict[str, Any]:
    return {
        "id": rid, "ts": f"2025-01-01T10:00:{sec:02d}Z", "inbound": "openai_chat",
        "requested_model": "smart", "stream": False, "client": "t", "path": "/v1/chat/completions",
    }  # fmt: skip


def test_ring_evicts_oldest_but_totals_are_cumulative() -> None:
    m = TrafficModel(capacity=3)
    for i in range(5):
        m.finish(rec(f"r{i}", i))
    assert len(m) == 3 and "r0" not in m and "r1" not in m and "r4" in m
    assert m.totals.requests == 5
    assert m.totals.cost_usd == pytest.approx(2.5)
    assert [r.id for r in m.newest(2)] == ["r4", "r3"]
    # History overlapping what was already evicted must not be re-added (or re-counted).
    m.load_history([rec("r1", 1)])
    assert "r1" not in m and m.totals.requests == 5


def test_started_row_is_updated_in_place_and_never_reverts() -> None:
    m = TrafficModel()
    row = m.start(started("a"))
    assert row is not None and row.pending and m.totals.in_flight == 1
    m.attempt({"request_id": "a", "provider": "openai", "model": "gpt-4.1", "status": 429,
               "error": "rate limited", "duration_ms": 12})  # fmt: skip
    m.attempt({"request_id": "a", "provider": "anthropic", "model": "claude-x", "status": 200,
               "error": None, "duration_ms": 900})  # fmt: skip
    assert (row.provider, row.model, len(row.attempts)) == ("anthropic", "claude-x", 2)
    finished = m.finish(rec("a", 0, attempts=row.attempts, cost_usd=0.25))
    assert finished is row and not row.pending and len(m) == 1
    assert m.totals.in_flight == 0 and m.totals.cost_usd == pytest.approx(0.25)
    # A late or replayed request_started must not turn the finished row back into pending.
    assert m.start(started("a")) is None and not row.pending
    # Re-applying the same record (history reload) changes nothing in the totals.
    m.finish(rec("a", 0, cost_usd=0.25))
    assert m.totals.requests == 1 and m.totals.cost_usd == pytest.approx(0.25)


def test_totals_errors_and_unknown_cost() -> None:
    m = TrafficModel()
    m.finish(rec("ok", 1))
    m.finish(rec("priceless", 2, cost_usd=None))
    m.finish(rec("failed", 3, status=502, error="upstream down", cost_usd=None,
                 input_tokens=None, output_tokens=None))  # fmt: skip
    m.finish(rec("broken-stream", 4, status=200, error="stream reset"))
    t = m.totals
    assert (t.requests, t.errors, t.unpriced) == (4, 2, 1)
    assert t.cost_usd == pytest.approx(1.0)
    assert fmt.row_cost(m.get("priceless")) == "?"  # type: ignore[arg-type]
    assert fmt.row_cost(m.get("failed")) == "-"  # type: ignore[arg-type]
    assert fmt.fmt_cost(None) == "?" and fmt.fmt_cost(0.0012) == "$0.0012"
    assert fmt.fmt_cost(0.000006) == "$0.000006" and fmt.fmt_cost(0.000228) == "$0.00023"
    assert fmt.fmt_cost(0.0468) == "$0.0468" and fmt.fmt_cost(12.5) == "$12.50"
    assert fmt.fmt_cost(4e-8) == "<$0.0000001"


def test_drain_batches_changes_and_resets_after_a_long_pause() -> None:
    m = TrafficModel(capacity=4)
    m.start(started("a", 1))
    m.finish(rec("b", 2))
    ch = m.drain()
    assert [r.id for r in ch.added] == ["a", "b"] and not ch.updated and not m.drain()
    m.finish(rec("a", 1))
    ch = m.drain()
    assert [r.id for r in ch.updated] == ["a"] and not ch.added
    for i in range(3, 10):  # more than the ring holds without a drain: rebuild instead of patch
        m.finish(rec(f"x{i}", i))
    assert m.new_since_drain == 7
    assert m.drain().reset


def test_malformed_input_raises_value_error_without_corrupting_state() -> None:
    m = TrafficModel()
    with pytest.raises(ValueError):
        m.finish({"ts": "2025-01-01T00:00:00Z"})
    with pytest.raises(ValueError):
        m.start({"id": 42})
    assert m.load_history([rec("ok"), "junk", {"id": None}]) == 1
    row = m.finish(rec("odd", status="200", input_tokens="many", ts="yesterday"))
    assert row is not None and row.status is None and row.input_tokens is None
    assert len(m) == 2


def test_abandon_pending_after_sidecar_restart() -> None:
    m = TrafficModel()
    m.start(started("lost"))
    assert m.abandon_pending("sidecar restarted") == 1
    row = m.get("lost")
    assert row is not None and not row.pending and row.is_error
    assert m.totals.in_flight == 0 and m.totals.errors == 1


def test_route_status_and_attempt_formatting() -> None:
    m = TrafficModel()
    row = m.start(started("p"))
    assert row is not None
    assert fmt.fmt_route(row) == "chat→smart" and fmt.fmt_status(row) == "…"
    chain = [
        {"provider": "x", "model": "y", "status": 503},
        {"provider": "openai", "model": "gpt-4.1", "status": 200},
    ]
    m.finish(rec("p", inbound="openai_chat", provider="openai", model="gpt-4.1",
                 requested_model="smart", attempts=chain))  # fmt: skip
    assert fmt.fmt_route(row) == "chat→openai/gpt-4.1 (smart)"
    assert fmt.fmt_attempts(row) == "2 ↻" and fmt.status_level(row) == "success"
    assert fmt.fmt_ms(850) == "850ms" and fmt.fmt_ms(1234) == "1.23s" and fmt.fmt_ms(125_000) == "2m05s"
    assert fmt.fmt_tokens(1234) == "1,234" and fmt.fmt_tokens(None) == "-"


def test_detail_cost_formula_lists_each_meter():
    from tui.screens.detail import cost_formula

    text = cost_formula({"source": "genai-prices 0.2.3", "total_usd": 0.0000051, "meters": [
        {"meter": "input (uncached)", "tokens": 4, "usd_per_mtok": 0.15, "usd": 6e-7},
        {"meter": "output (incl. reasoning)", "tokens": 7, "usd_per_mtok": 0.6, "usd": 4.2e-6}]}).plain
    assert "input (uncached)" in text and "× $0.15/M" in text and "genai-prices 0.2.3" in text
    assert cost_formula(None).plain == ""
