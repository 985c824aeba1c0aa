"""SidecarApp driven headless by Textual's pilot against the fake control API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tui import run
from tui.app import SidecarApp
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.traffic import TrafficScreen
from tui.widgets.status_bar import StatusBar
from tui.widgets import traffic_table
from tui.widgets.traffic_table import TrafficTable

if TYPE_CHECKING:
    from conftest import FakeSidecar

Rec = Callable[..., dict[str, Any]]
SIZE = (140, 40)


def text_of(app: SidecarApp, selector: str) -> str:
    if selector == "#status":
        return app.screen.query_one(StatusBar).text
    return str(app.screen.query_one(selector, Static).content)


def cell(table: TrafficTable, rid: str, column: str) -> str:
    return table.cell_text(rid, column)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 200) -> None:
    """Let the app run (timers, HTTP, workers) until `cond` holds; bounded, no timing asserts."""
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def started(rid: str, sec: int) -> dict[str, Any]:
    return {
        "id": rid, "ts": f"2025-01-01T10:00:{sec:02d}Z", "inbound": "anthropic",
        "requested_model": "smart", "stream": True, "client": "t", "path": "/v1/messages",
    }  # fmt: skip


async def test_traffic_rows_pending_update_and_detail(sidecar: FakeSidecar, make_record: Rec) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(TrafficTable)
        await until(pilot, lambda: table.row_count == 2 and sidecar.subscribers == 1)
        assert table.selected_id() == "r2"  # newest first, cursor follows it
        assert cell(table, "r2", "cost") == "?" and cell(table, "r1", "cost") == "$0.0012"
        await until(pilot, lambda: "connected to" in text_of(app, "#status"))
        assert "rows 2/2" in text_of(app, "#status") and "+1 unpriced" in text_of(app, "#status")

        sidecar.publish("request_started", started("r3", 3))
        await until(pilot, lambda: table.row_count == 3)
        assert table.selected_id() == "r3" and cell(table, "r3", "status") == "…"
        assert "anthropic→smart" in cell(table, "r3", "route")

        attempts = [
            {"provider": "openai", "model": "gpt-4.1", "status": 429, "error": "rate limited",
             "duration_ms": 20.0},
            {"provider": "anthropic", "model": "claude-x", "status": 200, "error": None,
             "duration_ms": 900.0},
        ]
        for att in attempts:
            sidecar.publish("attempt", {"request_id": "r3", **att})
        final = make_record("r3", "2025-01-01T10:00:03Z", inbound="anthropic", provider="anthropic",
                            model="claude-x", requested_model="smart", stream=True, attempts=attempts,
                            cost_usd=0.0042, ttft_ms=250.0)  # fmt: skip
        sidecar.records.insert(0, final)
        sidecar.bodies["r3"] = {
            "request_body": '{"model": "smart", "messages": [{"role": "user", "content": "hi"}]}',
            "response_body": '{"id": "msg_1", "content": [{"type": "text", "text": "hello there"}]}',
        }
        sidecar.publish("request_finished", final)
        await until(pilot, lambda: cell(table, "r3", "status") == "200")
        assert table.row_count == 3  # updated in place, not appended
        assert cell(table, "r3", "attempts") == "2 ↻" and cell(table, "r3", "cost") == "$0.0042"
        assert cell(table, "r3", "route") == "anthropic→anthropic/claude-x (smart)"

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await until(pilot, lambda: "hello there" in text_of(app, "#response-body"))
        chain = text_of(app, "#attempts")
        assert "1. openai/gpt-4.1  429" in chain and "rate limited" in chain
        assert "2. anthropic/claude-x  200" in chain
        assert '"role": "user"' in text_of(app, "#request-body")  # pretty-printed
        assert "$0.0042" in text_of(app, "#usage")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))


async def test_follow_pause_and_help(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, TrafficScreen)
        table = screen.query_one(TrafficTable)
        await until(pilot, lambda: table.row_count == 2 and sidecar.subscribers == 1)
        assert screen.follow

        await pilot.press("Z")
        assert screen.paused
        sidecar.publish("request_started", started("p1", 5))
        await until(pilot, lambda: "paused +1 new" in text_of(app, "#status"))
        assert table.row_count == 2  # frozen view
        await pilot.press("Z")
        await until(pilot, lambda: table.row_count == 3)
        assert not screen.paused and table.selected_id() == "p1"

        await pilot.press("down")  # moving off the newest row ends follow
        await until(pilot, lambda: not screen.follow)
        assert "follow" not in text_of(app, "#status")
        await pilot.press("F")
        assert screen.follow and table.cursor_row == 0
        await pilot.press("F")
        assert not screen.follow

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = text_of(app, "#help-text")
        for expected in ("traffic.follow", "traffic.pause", "traffic.detail", "app.quit", "Follow"):
            assert expected in help_text
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_sidecar_down_shows_retrying(dead_url: str) -> None:
    app = SidecarApp(dead_url, backoff=(0.02, 0.05))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "(retrying" in text_of(app, "#status"))
        assert f"connecting to {dead_url}" in text_of(app, "#status")
        assert "connecting to" in text_of(app, "#empty")
        await pilot.press("enter")  # nothing selected: a bell, not a crash
        assert isinstance(app.screen, TrafficScreen)


def test_run_refuses_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    # Under pytest's capture stdout is not a TTY: exactly the piped/redirected case.
    assert run("http://127.0.0.1:1") == 2
    assert "not a terminal" in capsys.readouterr().err


async def test_table_is_capped_and_keeps_the_newest(
    sidecar: FakeSidecar, make_record: Rec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traffic_table, "MAX_ROWS", 5)
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(TrafficTable)
        await until(pilot, lambda: table.row_count == 2 and sidecar.subscribers == 1)
        for i in range(10):
            sidecar.publish("request_finished", make_record(f"n{i}", f"2025-01-01T11:00:{i:02d}Z"))
        await until(pilot, lambda: len(app.model) == 12 and table.selected_id() == "n9")
        assert table.row_count <= 7 and "r1" not in table.shown
        assert "/12" in text_of(app, "#status")


async def test_detail_of_a_request_the_sidecar_does_not_know(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(TrafficTable)
        await until(pilot, lambda: table.row_count == 2 and sidecar.subscribers == 1)
        sidecar.publish("request_started", started("ghost", 9))
        await until(pilot, lambda: table.selected_id() == "ghost")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await until(pilot, lambda: "still in flight" in text_of(app, "#response-body"))
        assert "ghost" in text_of(app, "#summary") and "…" in text_of(app, "#summary")
        await pilot.press("q")  # q is "back" here, not quit
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))
        assert app.is_running
