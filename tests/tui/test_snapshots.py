"""SVG snapshots of the main views, compared with the accepted ones in `__snapshots__/`.

Each test drives the app with the pilot against the fake control API (fixed records, fixed listen
address, UTC clock), then compares Textual's own SVG export with the stored file using
pytest-textual-snapshot's SVG extension for syrupy. After a deliberate UI change, review and
accept with `bash tests/run tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot

from tui.app import SidecarApp
from tui.widgets.traffic_table import TrafficTable

Rec = Callable[..., dict[str, Any]]


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")  # the time column shows local time
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def fixed(sidecar: Any, make_record: Rec) -> Any:
    """A small, varied history: streams, a failover, an error, an unpriced model, a cached prompt."""
    sidecar.listen = "http://127.0.0.1:8787"
    ts = "2025-01-01T10:00:{:02d}.000Z"
    failover = [
        {"provider": "openai", "model": "gpt-4o", "status": 503, "error": "upstream 503", "duration_ms": 120.0},
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "status": 200, "error": None, "duration_ms": 900.0},
    ]
    sidecar.records = [
        make_record("r6", ts.format(6), inbound="anthropic", provider="anthropic", model="claude-haiku-4-5",
                    requested_model="claude-haiku-4-5", stream=True, ttft_ms=312.0, latency_ms=1480.0,
                    input_tokens=2400, output_tokens=310, cache_read_tokens=2000, cost_usd=0.00187),
        make_record("r5", ts.format(5), provider=None, model=None, requested_model="mystery-model-9",
                    status=404, latency_ms=2.0, input_tokens=None, output_tokens=None, cost_usd=None,
                    usage_source=None, error="no provider serves model 'mystery-model-9'", attempts=[]),
        make_record("r4", ts.format(4), requested_model="smart", provider="anthropic", model="claude-sonnet-4-5",
                    latency_ms=1020.0, cost_usd=0.0105, attempts=failover),
        make_record("r3", ts.format(3), inbound="gemini", provider="gemini", model="gemini-2.5-flash",
                    requested_model="gemini-2.5-flash", stream=True, ttft_ms=420.0, latency_ms=2310.0,
                    input_tokens=1800, output_tokens=640, reasoning_tokens=200, cost_usd=0.00214),
        make_record("r2", ts.format(2), model="local-llama", requested_model="local/local-llama",
                    provider="local", cost_usd=None, latency_ms=640.0),
        make_record("r1", ts.format(1), model="gpt-4o-mini", requested_model="openai/gpt-4o-mini",
                    latency_ms=812.0, cost_usd=0.0000360),
    ]
    sidecar.bodies["r4"] = {
        "request_body": '{"model": "smart", "messages": [{"role": "user", "content": "Fail over, please"}]}',
        "response_body": '{"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "Done."}}]}',
        "headers": {"request": {"authorization": "[redacted]", "content-type": "application/json",
                                "user-agent": "OpenAI/Python 1.99.0"},
                    "response": {"content-type": "application/json", "request-id": "req_01",
                                 "anthropic-ratelimit-requests-remaining": "49"}},
    }
    return sidecar


async def _loaded(pilot: Pilot[Any], app: SidecarApp, rows: int) -> None:
    for _ in range(300):
        table = app.screen.query(TrafficTable)
        if table and table.first().row_count == rows and app.feed.status.state.name == "CONNECTED":
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def _shot(app: SidecarApp, pilot: Pilot[Any]) -> str:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    return app.export_screenshot()


@pytest.mark.parametrize("size", [(120, 30), (80, 24)], ids=["120x30", "80x24"])
async def test_traffic_view(fixed: Any, svg: SnapshotAssertion, size: tuple[int, int]) -> None:
    app = SidecarApp(fixed.url, backoff=(0.02, 0.1))
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot, app, 6)
        assert await _shot(app, pilot) == svg


async def test_traffic_view_filtered_to_errors_and_failovers(fixed: Any, svg: SnapshotAssertion) -> None:
    app = SidecarApp(fixed.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(120, 30)) as pilot:
        await _loaded(pilot, app, 6)
        await pilot.press("slash", *"~e | ~fo", "enter")
        for _ in range(100):
            if app.screen.query_one(TrafficTable).row_count == 2:
                break
            await pilot.pause(0.02)
        assert await _shot(app, pilot) == svg


async def test_request_detail(fixed: Any, svg: SnapshotAssertion) -> None:
    app = SidecarApp(fixed.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app, 6)
        await pilot.press("j", "j", "enter")  # r4: the failed-over request
        for _ in range(100):
            if "Done." in str(app.screen.query("*").results()) or app.screen.__class__.__name__ == "DetailScreen":
                break
            await pilot.pause(0.02)
        await pilot.pause(0.3)  # the record and bodies arrive over HTTP
        assert await _shot(app, pilot) == svg


async def test_help_screen(fixed: Any, svg: SnapshotAssertion) -> None:
    app = SidecarApp(fixed.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(100, 40)) as pilot:
        await _loaded(pilot, app, 6)
        await pilot.press("question_mark")
        assert await _shot(app, pilot) == svg
