"""The filter language and the list's sort/narrow rules, as plain functions over `RequestRow`."""

from __future__ import annotations

from typing import Any

import pytest

from tui.filters import FILTERS, FilterError, help_entries, parse
from tui.model import Changes, TrafficModel
from tui.row import RequestRow
from tui.view import narrow, sort_key

ATT = {"provider": "openai", "model": "gpt-4.1", "status": 200, "error": None, "duration_ms": 5}


def row(rid: str = "r", sec: int = 0, **over: Any) -> RequestRow:
    rec: dict[str, Any] = {
        "id": rid, "ts": f"2025-01-01T10:00:{sec:02d}Z", "inbound": "openai_chat",
        "provider": "openai", "model": "gpt-4.1", "requested_model": "smart", "stream": False,
        "status": 200, "latency_ms": 800.0, "ttft_ms": None, "input_tokens": 100,
        "output_tokens": 20, "cost_usd": 0.002, "error": None, "client": "aider",
        "path": "/v1/chat/completions", "attempts": [ATT],
    }  # fmt: skip
    rec.update(over)
    return RequestRow.from_record(rec, sec)


OK = row("ok", 1)
SLOW = row("slow", 2, provider="anthropic", model="claude-sonnet-4", inbound="anthropic",
           stream=True, latency_ms=4200.0, ttft_ms=1500.0, cost_usd=0.05,
           path="/v1/messages")  # fmt: skip
RATE = row("rate", 3, status=429, error="rate limited", cost_usd=None, input_tokens=None,
           output_tokens=None, latency_ms=30.0)  # fmt: skip
FAILOVER = row("fo", 4, provider="gemini", model="gemini-2.5-flash", status=200, cost_usd=None,
               attempts=[{**ATT, "status": 503, "error": "down"}, {**ATT, "provider": "gemini"}])
BROKEN = row("broken", 5, status=200, error="stream reset", stream=True)
PENDING = RequestRow.new({"id": "pending", "ts": "2025-01-01T10:00:00Z"}, 99)
ROWS = [OK, SLOW, RATE, FAILOVER, BROKEN, PENDING]


def ids(expr: str) -> set[str]:
    f = parse(expr)
    assert f is not None
    return {r.id for r in ROWS if f(r)}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("~e", {"rate", "broken"}),
        ("~s", {"slow", "broken"}),
        ("~fo", {"fo"}),
        ("~pending", {"pending"}),
        ("~p anthropic", {"slow"}),
        ("~p OPEN", {"ok", "rate", "broken"}),  # case-insensitive substring (a regex)
        ("~p ^gem", {"fo"}),
        ("~m sonnet", {"slow"}),
        ("~m smart", {"ok", "slow", "rate", "fo", "broken"}),  # requested model too
        ('~m "gpt-4\\.1|gemini"', {"ok", "rate", "broken", "fo"}),
        ("~c 429", {"rate"}),
        ("~c 4xx", {"rate"}),
        ("~c 2XX", {"ok", "slow", "fo", "broken"}),
        ("~c 5xx", set()),
        ("~lat >2s", {"slow"}),
        ("~lat <500ms", {"rate"}),
        ("~lat > 2s", {"slow"}),  # operator and value may be split
        ("~lat >=800ms", {"ok", "slow", "fo", "broken"}),
        ("~lat <=0.8s", {"ok", "rate", "fo", "broken"}),
        ("~lat >1m", set()),
        ("~ttft >1s", {"slow"}),
        ("~cost >0.01", {"slow"}),
        ("~cost <$0.01", {"ok", "broken"}),  # unpriced never matches a cost comparison
        ("~tok >100", {"ok", "slow", "fo", "broken"}),
        ("~tok >1k", set()),
        ("~i anthropic", {"slow"}),
        ("~cl aider", {"ok", "slow", "rate", "fo", "broken"}),
        ("sonnet", {"slow"}),
        ("/v1/messages", {"slow"}),
        ("GEMINI", {"fo"}),
    ],
)
def test_each_predicate(expr: str, expected: set[str]) -> None:
    assert ids(expr) == expected


def test_pending_rows_match_no_value_filter() -> None:
    for expr in ("~c 2xx", "~lat <1m", "~ttft <1m", "~cost >=0", "~tok >=0", "~e"):
        assert "pending" not in ids(expr), expr


@pytest.mark.parametrize(
    ("expr", "canonical", "expected"),
    [
        ("~e | ~s & ~p anthropic", "(~e | (~s & ~p anthropic))", {"rate", "broken", "slow"}),
        ("(~e | ~s) & ~p anthropic", "((~e | ~s) & ~p anthropic)", {"slow"}),
        ("~s ~e", "(~s & ~e)", {"broken"}),  # juxtaposition is AND
        ("!~e ~s", "(!~e & ~s)", {"slow"}),  # ! binds tighter than AND
        ("!(~e | ~s)", "!(~e | ~s)", {"ok", "fo", "pending"}),
        ("!!~fo", "!!~fo", {"fo"}),
        ("~s | ~fo | ~c 429", "(~s | ~fo | ~c 429)", {"slow", "broken", "fo", "rate"}),
        ("a & b & c", "(a & b & c)", set()),
        ('~m "a b"', '~m "a b"', set()),
    ],
)
def test_precedence_and_canonical_form(expr: str, canonical: str, expected: set[str]) -> None:
    assert str(parse(expr)) == canonical
    assert ids(expr) == expected


def test_empty_expression_is_no_filter() -> None:
    assert parse("") is None and parse("   ") is None


@pytest.mark.parametrize(
    ("expr", "pos", "fragment"),
    [
        ("~x", 0, "unknown filter ~x"),
        ("~e & ~zz", 5, "unknown filter ~zz"),
        ("~p", 2, "~p needs an argument"),
        ("~p & ~e", 3, "~p needs an argument"),
        ("~c abc", 3, "~c expects a status"),
        ("~c 600", 3, "~c expects a status"),
        ("~lat >2", 5, "with a unit"),
        ("~lat fast", 5, "with a unit"),
        ("~cost >cheap", 6, "~cost expects"),
        ("~tok >many", 5, "~tok expects"),
        ("~m (", 3, "needs an argument"),
        ('~m "[a-"', 3, "bad regular expression"),
        ("(~e", 3, "missing )"),
        ("(~e ~s", 6, "missing )"),
        ("~e)", 2, "unexpected ')'"),
        ("~e |", 4, "ends too early"),
        ("& ~e", 0, "unexpected '&'"),
        ("!", 1, "ends too early"),
        ('~p "open', 3, "unclosed \" quote"),
        ("~ e", 0, "expected a filter name"),
    ],
)
def test_errors_name_the_position(expr: str, pos: int, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(expr)
    assert info.value.pos == pos
    assert fragment in info.value.message
    assert f"column {pos + 1}" in str(info.value)


def test_help_is_generated_from_filter_classes() -> None:
    entries = dict(help_entries())
    for cls in FILTERS:
        assert cls.code and cls.help
        assert any(k.startswith(f"~{cls.code}") for k in entries)
    for key in ("~e", "~s", "~fo", "~p regex", "~m regex", "~c code", "~lat >2s", "~cost >0.01"):
        assert key in entries
    assert "!" in entries and "a | b" in entries


def test_sort_keys_put_unknown_last_in_both_directions() -> None:
    rows = [OK, SLOW, RATE, PENDING]

    def order(column: str, flipped: bool = False) -> list[str]:
        return [r.id for r in sorted(rows, key=lambda r: sort_key(r, column, flipped), reverse=True)]

    assert order("latency") == ["slow", "ok", "rate", "pending"]
    assert order("latency", True) == ["rate", "ok", "slow", "pending"]
    assert order("cost") == ["slow", "ok", "rate", "pending"]  # unpriced and pending last
    assert order("cost", True) == ["ok", "slow", "pending", "rate"]  # ties: oldest first
    assert order("tokens")[-2:] == ["rate", "pending"]
    assert order("time") == ["rate", "slow", "ok", "pending"]
    assert order("time", True) == ["pending", "ok", "slow", "rate"]


def test_narrow_adds_and_removes_rows_whose_match_changed() -> None:
    m = TrafficModel()
    m.finish({"id": "a", "ts": "2025-01-01T10:00:00Z", "status": 200})
    m.start({"id": "b", "ts": "2025-01-01T10:00:01Z"})
    m.start({"id": "c", "ts": "2025-01-01T10:00:02Z"})
    m.drain()
    m.finish({"id": "b", "ts": "2025-01-01T10:00:01Z", "status": 500})  # starts matching ~e
    m.finish({"id": "c", "ts": "2025-01-01T10:00:02Z", "status": 200})  # stops matching
    m.finish({"id": "d", "ts": "2025-01-01T10:00:03Z", "status": 502})
    m.finish({"id": "e", "ts": "2025-01-01T10:00:04Z", "status": 200})
    err = parse("~e | ~pending")
    assert err is not None
    out = narrow(m.drain(), err, shown={"c"})
    assert sorted(r.id for r in out.added) == ["b", "d"]
    assert out.removed == ["c"] and not out.updated
    assert narrow(Changes(reset=True), err, set()).reset
    assert [r.id for r in m.newest(10, err)] == ["d", "b"]
