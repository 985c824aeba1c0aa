"""Filter bar, sort, marks, Spend and Providers views, driven by the pilot against the fake API."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tui.app import SidecarApp
from tui.screens.help import HelpScreen
from tui.screens.provider_page import ProviderPageScreen
from tui.screens.providers import ProvidersScreen
from tui.screens.spend import SpendScreen
from tui.screens.traffic import TrafficScreen
from tui.spend import Bucket, Window, projection
from tui.widgets.filter_bar import FilterBar
from tui.widgets.status_bar import StatusBar
from tui.widgets.traffic_table import TrafficTable

if TYPE_CHECKING:
    from conftest import FakeSidecar

Rec = Callable[..., dict[str, Any]]
SIZE = (120, 36)
ATT = {"provider": "openai", "model": "gpt-4.1", "status": 200, "error": None, "duration_ms": 5}


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 200) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def status(app: SidecarApp) -> str:
    return app.screen.query_one(StatusBar).text


def order(table: DataTable[Any] | TrafficTable) -> list[str]:
    if isinstance(table, TrafficTable):
        return table.ordered_ids
    return [str(r.key.value) for r in table.ordered_rows]


def cell(table: DataTable[Any] | TrafficTable, row: str, col: str) -> str:
    if isinstance(table, TrafficTable):
        return table.cell_text(row, col)
    return str(table.get_cell(row, col))


@pytest.fixture
def traffic(sidecar: FakeSidecar, make_record: Rec) -> FakeSidecar:
    """Five finished requests, newest first: a mix of providers, errors, streams and a failover."""
    sidecar.records = [
        make_record("e5", "2025-01-01T10:00:05Z", provider="anthropic", model="claude-sonnet-4",
                    stream=True, latency_ms=4200.0, ttft_ms=900.0, cost_usd=0.05,
                    output_tokens=900),
        make_record("e4", "2025-01-01T10:00:04Z", status=429, error="rate limited",
                    latency_ms=40.0, cost_usd=None, input_tokens=None, output_tokens=None),
        make_record("e3", "2025-01-01T10:00:03Z", provider="gemini", model="gemini-2.5-flash",
                    latency_ms=2500.0, cost_usd=0.002,
                    attempts=[{**ATT, "status": 503, "error": "down"}, {**ATT, "provider": "gemini"}]),
        make_record("e2", "2025-01-01T10:00:02Z", status=502, error="bad gateway", latency_ms=300.0,
                    cost_usd=None, input_tokens=None, output_tokens=None),
        make_record("e1", "2025-01-01T10:00:01Z", latency_ms=1000.0, cost_usd=0.01),
    ]  # fmt: skip
    return sidecar


async def start(pilot: Pilot[Any], app: SidecarApp, sidecar: FakeSidecar, rows: int) -> TrafficTable:
    table = app.screen.query_one(TrafficTable)
    await until(pilot, lambda: table.row_count == rows and sidecar.subscribers == 1)
    return table


async def test_filter_bar_applies_rejects_and_clears(traffic: FakeSidecar, make_record: Rec) -> None:
    app = SidecarApp(traffic.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = await start(pilot, app, traffic, 5)
        bar = app.screen.query_one(FilterBar)
        await pilot.press("slash")
        assert bar.display and bar.input.has_focus
        await pilot.press(*"~e|~fo", "enter")
        await until(pilot, lambda: table.row_count == 3)
        assert set(order(table)) == {"e4", "e3", "e2"} and not bar.display and table.has_focus
        await until(pilot, lambda: "filter ~e|~fo" in status(app) and "rows 3/5" in status(app))

        # Live rows are filtered too: one that matches appears, one that doesn't stays out.
        traffic.publish("request_finished", make_record("e6", "2025-01-01T10:00:06Z", status=500))
        traffic.publish("request_finished", make_record("e7", "2025-01-01T10:00:07Z"))
        await until(pilot, lambda: len(app.model) == 7)
        await until(pilot, lambda: "rows 4/7" in status(app))
        assert order(table) == ["e6", "e4", "e3", "e2"]

        # A bad expression: inline error with its position, the old filter stays in force.
        await pilot.press("slash")
        assert bar.input.value == "~e|~fo"  # opens on the active filter, to edit it
        bar.input.value = "~p openai & ~lat >2"
        await pilot.press("enter")
        await until(pilot, lambda: "with a unit" in bar.error_text)
        assert bar.error_text.startswith(" " * 19 + "^ ")  # under ">2", offset 17 in the input
        assert "not '>2'" in bar.error_text
        assert bar.display and table.row_count == 4 and "filter ~e|~fo" in status(app)

        bar.input.value = "~p open"
        bar.input.cursor_position = 7
        await pilot.press(*"ai ~lat >.5s", "enter")  # s and p in the bar are text, not view keys
        await until(pilot, lambda: table.row_count == 3)
        assert order(table) == ["e7", "e6", "e1"] and isinstance(app.screen, TrafficScreen)

        await pilot.press("escape")  # escape on the list clears the filter
        await until(pilot, lambda: table.row_count == 7)
        assert "filter" not in status(app)

        await pilot.press("slash", *"sonnet", "escape")  # escape in the bar: clear and close
        await until(pilot, lambda: not bar.display)
        screen = app.screen
        assert isinstance(screen, TrafficScreen) and screen.filter is None and table.row_count == 7


async def test_filter_that_matches_nothing_says_so(traffic: FakeSidecar) -> None:
    app = SidecarApp(traffic.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = await start(pilot, app, traffic, 5)
        await pilot.press("slash", *"~p nobody", "enter")
        await until(pilot, lambda: table.row_count == 0)
        empty = str(app.screen.query_one("#empty", Static).content)
        assert "No requests match ~p nobody" in empty


async def test_sort_cycles_and_reverses(traffic: FakeSidecar) -> None:
    app = SidecarApp(traffic.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = await start(pilot, app, traffic, 5)
        assert order(table) == ["e5", "e4", "e3", "e2", "e1"]
        await pilot.press("o")
        assert table.sort_column == "latency"
        assert order(table) == ["e5", "e3", "e1", "e2", "e4"]
        assert "latency▼" in table.header_labels()
        await until(pilot, lambda: "sort latency ▼" in status(app))
        await pilot.press("v")
        assert order(table) == ["e4", "e2", "e1", "e3", "e5"]
        assert "latency▲" in table.header_labels()
        await pilot.press("v", "o")  # ttft: only e5 has one; the rest keep newest first
        assert table.sort_column == "ttft" and order(table) == ["e5", "e4", "e3", "e2", "e1"]
        await pilot.press("o")  # cost: unpriced last
        assert order(table) == ["e5", "e1", "e3", "e4", "e2"]
        await pilot.press("o")  # tokens (in + out)
        assert table.sort_column == "tokens" and order(table)[:1] == ["e5"]
        assert order(table)[-2:] == ["e4", "e2"]
        await pilot.press("o")  # status: errors (largest codes) first
        assert table.sort_column == "status" and "status▼" in table.header_labels()
        statuses = [table.shown[rid].status or 0 for rid in order(table)]
        assert statuses == sorted(statuses, reverse=True)
        await pilot.press("o")  # attempts: failed-over requests first
        assert table.sort_column == "attempts"
        tries = [len(table.shown[rid].attempts) for rid in order(table)]
        assert tries == sorted(tries, reverse=True)
        await pilot.press("o")
        assert table.sort_column == "time" and order(table) == ["e5", "e4", "e3", "e2", "e1"]
        await until(pilot, lambda: "sort" not in status(app))


async def test_sort_keeps_order_as_rows_arrive(traffic: FakeSidecar, make_record: Rec) -> None:
    app = SidecarApp(traffic.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = await start(pilot, app, traffic, 5)
        await pilot.press("o")
        traffic.publish("request_finished", make_record("mid", "2025-01-01T10:00:09Z", latency_ms=2000.0))
        await until(pilot, lambda: table.row_count == 6)
        assert order(table) == ["e5", "e3", "mid", "e1", "e2", "e4"]


async def test_marks_and_marked_only(traffic: FakeSidecar, make_record: Rec) -> None:
    app = SidecarApp(traffic.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = await start(pilot, app, traffic, 5)
        await pilot.press("m")  # marks e5 and moves to the next row, as mitmproxy does
        assert table.marks == {"e5"} and table.selected_id() == "e4"
        await pilot.press("down", "m")
        assert table.marks == {"e5", "e3"}
        assert cell(table, "e5", "route").startswith("● ") and not cell(table, "e4", "route").startswith("●")
        await until(pilot, lambda: "2 marked" in status(app))

        await pilot.press("M")
        await until(pilot, lambda: table.row_count == 2)
        assert order(table) == ["e5", "e3"] and "2 marked (only)" in status(app)
        traffic.publish("request_finished", make_record("new", "2025-01-01T10:00:08Z"))
        await until(pilot, lambda: len(app.model) == 6)
        await pilot.pause(0.15)
        assert table.row_count == 2  # unmarked arrivals stay hidden

        await pilot.press("slash", *"~s", "enter")  # the filter narrows the marked set further
        await until(pilot, lambda: order(table) == ["e5"])
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == 2)
        table.move_cursor(row=1)
        await pilot.press("m")  # unmarking in marked-only view hides the row
        await until(pilot, lambda: order(table) == ["e5"])
        await pilot.press("M")
        await until(pilot, lambda: table.row_count == 6)
        assert table.marks == {"e5"}


def _ts(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def test_spend_screen(sidecar: FakeSidecar, make_record: Rec) -> None:
    now = datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = midnight + (now - midnight) / 2
    sidecar.records = [
        make_record("t1", _ts(today), cost_usd=0.01, input_tokens=1000, output_tokens=100),
        make_record("t2", _ts(today), provider="local", model="mystery-1", cost_usd=None,
                    input_tokens=50, output_tokens=5),
        make_record("w1", _ts(midnight - timedelta(days=2, hours=-1)), provider="anthropic",
                    model="claude-sonnet-4", cost_usd=0.05),
        make_record("m1", _ts(midnight - timedelta(days=20)), cost_usd=0.1),
        make_record("old", _ts(midnight - timedelta(days=40)), cost_usd=1.0),
    ]  # fmt: skip
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SpendScreen) and app.screen.loads == 1)
        screen = app.screen
        assert isinstance(screen, SpendScreen)
        summary = str(screen.query_one("#spend-summary", Static).content)
        lines = summary.splitlines()
        assert lines[0].split()[:3] == ["today", "$0.0100", "2"] and "+1 unpriced" in lines[0]
        assert lines[1].split()[:4] == ["7", "days", "$0.0600", "3"]
        assert lines[2].split()[:4] == ["30", "days", "$0.1600", "4"]
        assert "projected" in lines[3] and "$" in lines[3]
        assert [s for s in sidecar.stats_since if s and s.endswith("T00:00:00Z")] == sidecar.stats_since

        by_p = screen.query_one("#by-provider", DataTable)
        assert "7 days" in str(screen.query_one("#by-provider-title", Static).content)
        assert sorted(order(by_p)) == ["anthropic", "local", "openai"]
        assert cell(by_p, "local", "cost") == "?" and cell(by_p, "local", "unpriced") == "1"
        assert cell(by_p, "openai", "cost") == "$0.0100" and cell(by_p, "openai", "in") == "1,000"
        assert cell(by_p, "anthropic", "cost") == "$0.0500"
        by_m = screen.query_one("#by-model", DataTable)
        assert cell(by_m, "local/mystery-1", "cost") == "?"
        assert cell(by_m, "anthropic/claude-sonnet-4", "requests") == "1"

        await pilot.press("w")  # 30 days
        assert "30 days" in str(screen.query_one("#by-provider-title", Static).content)
        assert cell(by_p, "openai", "cost") == "$0.1100" and cell(by_p, "openai", "requests") == "2"
        await pilot.press("w")  # today: no anthropic
        assert sorted(order(by_p)) == ["local", "openai"]

        await pilot.press("p")  # straight to another view; escape returns to traffic
        await until(pilot, lambda: isinstance(app.screen, ProvidersScreen))
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))


def test_projection_is_month_to_date_plus_daily_rate() -> None:
    now = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)  # 21.5 days left in March
    week = Window("7 days", datetime(2025, 3, 4, tzinfo=timezone.utc), Bucket("7 days", 7, cost_usd=6.5))
    p = projection(now, Bucket("month", cost_usd=9.0, unpriced=2), week)
    assert p.per_day == pytest.approx(1.0)  # $6.50 over 6.5 days
    assert p.days_left == pytest.approx(21.5)
    assert p.projected == pytest.approx(30.5) and p.unpriced == 2
    unknown = Window("7 days", week.since, Bucket("7 days", 3, cost_usd=None, unpriced=3))
    assert projection(now, Bucket("month", cost_usd=None, unpriced=3), unknown).projected is None
    assert Bucket.parse({"requests": "x", "cost_usd": True}, "b") == Bucket("b", cost_usd=None)


async def test_providers_screen_and_detail(sidecar: FakeSidecar) -> None:
    sidecar.providers = [
        {"id": "openai", "adapter": "openai", "base_url": "https://api.openai.com/v1",
         "needs_key": True, "has_key": True},
        {"id": "anthropic", "adapter": "anthropic", "base_url": "https://api.anthropic.com",
         "needs_key": True, "has_key": False},
        {"id": "ollama", "adapter": "openai", "base_url": "http://localhost:11434/v1",
         "needs_key": False, "has_key": None},
        {"id": "vault", "adapter": "openai", "base_url": "http://v", "needs_key": True, "has_key": None},
    ]  # fmt: skip
    health = {"consecutive_failures": 0, "cooldown_until": None, "cooldown_reason": None,
              "open_until": None, "recent_attempts": 10, "error_rate": 0.0, "latency_ms_p50": 420.0,
              "latency_ms_p95": 1900.0, "ttft_ms_ewma": {}}  # fmt: skip
    sidecar.providers_health = [
        {**health, "provider": "openai", "breaker": "closed",
         "ttft_ms_ewma": {"gpt-4.1": 310.5, "gpt-4.1-mini": 180.0}},
        {**health, "provider": "anthropic", "breaker": "open", "consecutive_failures": 5,
         "cooldown_until": "2030-01-01T00:00:00Z", "cooldown_reason": "429 retry-after 30s",
         "open_until": "2030-01-01T00:00:30Z", "error_rate": 0.5, "ttft_ms_ewma": {"claude-x": 1200.0}},
        {**health, "provider": "gemini", "breaker": "half_open", "error_rate": 0.005},
    ]  # fmt: skip
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ProvidersScreen) and app.screen.loads >= 1)
        table = app.screen.query_one(DataTable)
        assert order(table) == ["openai", "anthropic", "ollama", "vault", "gemini"]
        keys = {p: cell(table, p, "key") for p in order(table)}
        assert keys == {"openai": "yes", "anthropic": "no", "ollama": "not needed",
                        "vault": "unknown", "gemini": "unknown"}  # fmt: skip
        breakers = {p: cell(table, p, "breaker") for p in order(table)}
        assert breakers == {"openai": "closed", "anthropic": "OPEN", "ollama": "-", "vault": "-",
                            "gemini": "half-open"}  # fmt: skip
        assert cell(table, "anthropic", "errors") == "50%" and cell(table, "gemini", "errors") == "<1%"
        assert cell(table, "openai", "p50") == "420ms" and cell(table, "openai", "p95") == "1.90s"
        assert cell(table, "openai", "ttft") == "180ms–310ms" and cell(table, "ollama", "ttft") == "-"
        assert cell(table, "anthropic", "cooldown") != "-" and cell(table, "openai", "cooldown") == "-"
        colours = {p: table.get_cell(p, "breaker").style for p in ("openai", "anthropic", "gemini")}
        tv = app.theme_variables
        assert str(colours["openai"]) == tv["text-success"]
        assert tv["text-error"] in str(colours["anthropic"]) and str(colours["gemini"]) == tv["text-warning"]
        assert "2 not healthy" in str(app.screen.query_one("#providers-status", Static).content)

        await pilot.press("down", "enter")
        # The fake API has no /providers/{id}: the page falls back to /health and /stats for these two tabs.
        await until(pilot, lambda: isinstance(app.screen, ProviderPageScreen) and app.screen.loads >= 1)
        out = io.StringIO()
        for tab in ("overview", "health"):
            content = app.screen.query_one(f"#provider-{tab}", Static).content
            Console(file=out, width=76, color_system=None).print(content)
        text = out.getvalue()
        for expected in ("https://api.anthropic.com", "key in keyring        no", "provider page unavailable",
                         "OPEN", "429 retry-after 30s", "50%", "claude-x", "1.20s"):  # fmt: skip
            assert expected in text, expected
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ProvidersScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))


async def test_new_actions_are_in_help_and_command_palette(traffic: FakeSidecar) -> None:
    app = SidecarApp(traffic.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, app, traffic, 5)
        traffic_screen = app.screen
        titles = {c.title: c for c in app.get_system_commands(traffic_screen)}
        for title in ("Spend", "Providers", "Filter", "Sort", "Reverse", "Mark", "Marked only",
                      "Follow", "Pause", "Detail", "Theme"):  # fmt: skip
            assert title in titles, title
        assert "[s]" in titles["Spend"].help

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = str(app.screen.query_one("#help-text", Static).content)
        for expected in ("traffic.filter", "traffic.sort", "traffic.reverse", "traffic.mark",
                         "traffic.marked_only", "app.spend", "app.providers", "Filter expressions",
                         "~fo", "~lat >2s", "~cost >0.01", "a | b"):  # fmt: skip
            assert expected in help_text, expected
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is traffic_screen)

        await titles["Spend"].callback()  # what the palette runs
        await until(pilot, lambda: isinstance(app.screen, SpendScreen))
        spend_titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Window", "Refresh", "Back", "Providers"} <= spend_titles
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = str(app.screen.query_one("#help-text", Static).content)
        assert "spend.window" in help_text and "Filter expressions" not in help_text
