"""Latency view (`l`): a real sidecar (its store, its `/_sidecar/latency`) in front of the fake upstream
providers, driven by the pilot at 80x24; plus the pure sparkline and format rules it draws with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from textual.pilot import Pilot

from sidecar.app import build_app
from sidecar.config import config_from_dict
from sidecar.keys import MemoryKeyStore
from sidecar.records import RequestRecord
from sidecar.store import RequestStore
from tui.app import SidecarApp
from tui.latency import Report, fmt_error_rate, fmt_rate, resample, sparkline
from tui.screens.latency import LatencyScreen, LatencyTable, column_widths
from tui.screens.traffic import TrafficScreen

SIZE = (80, 24)


@dataclass
class Live:
    url: str
    port: int
    store: RequestStore
    runner: web.AppRunner | None
    start: Callable[[int], Any]


@pytest.fixture
async def live(upstreams: Any, tmp_path: Path) -> AsyncIterator[Live]:
    """A real sidecar on its own SQLite log; `await live.start(port)` serves a fresh app on the same log."""
    raw = {"providers": {p: {"base_url": getattr(upstreams, p).base_url} for p in ("openai", "anthropic", "gemini")}}
    config = replace(config_from_dict(raw), data_dir=tmp_path / "data")
    keys = MemoryKeyStore({p: getattr(upstreams, p).expect_key for p in ("openai", "anthropic", "gemini")})

    async def start(port: int) -> None:
        store = RequestStore(config.db_path, body_cap=config.body_cap_bytes)
        # Not `start_server`: its 60 s graceful shutdown would wait out the TUI's open event stream.
        runner = web.AppRunner(build_app(config, keys=keys, store=store), handler_cancellation=True,
                               shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        state.runner, state.store, state.port = runner, store, runner.addresses[0][1]
        state.url = f"http://127.0.0.1:{state.port}"

    state = Live("", 0, None, None, start)  # type: ignore[arg-type]
    await start(0)
    yield state
    if state.runner is not None:
        await state.runner.cleanup()


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def send_traffic(live: Live) -> None:
    """One streamed chat (TTFT, tokens/s), one plain Anthropic call, one Gemini call, all through the proxy."""
    calls = [
        ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "stream": True,
                                  "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                          "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}),
    ]  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for path, body in calls:
            async with http.post(live.url + path, data=orjson.dumps(body)) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
        async with asyncio.timeout(20):  # a stream's record is final once its end is written
            while True:
                await live.store.flush()
                async with http.get(live.url + "/_sidecar/latency?window=15m") as resp:
                    totals = (await resp.json())["totals"]
                if totals["requests"] == 3 and totals["streams"] == 1:
                    return
                await asyncio.sleep(0.02)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 750) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def rows(app: SidecarApp) -> dict[str, list[str]]:
    table = app.screen.query_one(LatencyTable)
    return {str(table.get_row(r.key)[0]): [str(c) for c in table.get_row(r.key)] for r in table.ordered_rows}


def screen_text(app: SidecarApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def loaded(pilot: Pilot[Any], screen: LatencyScreen, window: str, after: int) -> None:
    await until(pilot, lambda: screen.loads > after and screen.report is not None
                and screen.report.window == window)


async def test_latency_view_rows_windows_metric_and_back(live: Live) -> None:
    await send_traffic(live)
    # History the TUI never saw live: 3 hours old, so it is in the 6h and 24h windows only.
    live.store.add(RequestRecord(id="old1", ts=iso(datetime.now(UTC) - timedelta(hours=3)), inbound="openai_chat",
                                 requested_model="gpt-4.1", provider="openai", model="gpt-4.1", status=200,
                                 latency_ms=2500.0))
    await live.store.flush()

    app = SidecarApp(live.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LatencyScreen) and app.screen.loads >= 1)
        screen = app.screen
        assert isinstance(screen, LatencyScreen) and screen.window == "1h"
        table = screen.query_one(LatencyTable)
        got = rows(app)
        assert set(got) == {"all", "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"}
        name, req, err, ttft50, ttft95, tot50, tot95, tps, trend = got["openai/gpt-4o-mini"]
        assert (req, err) == ("1", "-") and ttft50 != "-" and tot50 != "-" and tps != "-" and trend.strip()
        assert got["anthropic/claude-haiku-4-5"][3] == "-" and got["anthropic/claude-haiku-4-5"][5] != "-"
        assert got["all"][1] == "3"
        # 80 columns: every column is on screen, nothing scrolls sideways, and the plot panel is there.
        assert table.virtual_size.width <= table.size.width
        text = screen_text(app)
        assert "trend" in text and "tok/s" in text and "total p95" in text and "last 1h" in text

        await pilot.press("3")  # 6h: the 3-hour-old record appears
        await loaded(pilot, screen, "6h", 1)
        assert rows(app)["openai/gpt-4.1"][5] == "2.50s"
        await pilot.press("w")  # cycles on to 24h
        await loaded(pilot, screen, "24h", 2)
        assert "openai/gpt-4.1" in rows(app) and screen.report.buckets == 48
        await pilot.press("1")
        await loaded(pilot, screen, "15m", 3)
        assert "openai/gpt-4.1" not in rows(app) and "openai/gpt-4o-mini" in rows(app)

        trend_label = lambda: next(str(c.label) for k, c in table.columns.items() if k.value == "trend")  # noqa: E731
        assert trend_label() == "trend\ntotal p95"
        await pilot.press("j", "j")
        picked = table.selected_key()
        assert picked is not None and picked != "\x00all"
        await pilot.press("m")  # the trend column now plots p50 total latency; rows and cursor stay
        assert trend_label() == "trend\ntotal p50" and len(rows(app)) == 4 and table.selected_key() == picked
        name = table.get_row(picked)[0]
        assert f"{name} · last 15m" in screen_text(app)  # the plot panel follows the cursor

        await pilot.press("escape")
        assert isinstance(app.screen, TrafficScreen)


async def test_latency_view_survives_a_proxy_restart(live: Live) -> None:
    await send_traffic(live)
    app = SidecarApp(live.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LatencyScreen) and app.screen.loads >= 1)
        screen = app.screen
        assert isinstance(screen, LatencyScreen) and len(rows(app)) == 4

        port = live.port
        await live.runner.cleanup()
        live.runner = None
        await pilot.press("r")
        await until(pilot, lambda: screen.error is not None)
        assert "could not load latency" in screen_text(app)
        assert len(rows(app)) == 4  # the last figures stay up while the sidecar is away

        await live.start(port)  # a new process, in effect: same log, nothing in memory
        loads = screen.loads
        await pilot.press("r")
        await until(pilot, lambda: screen.loads > loads)
        assert screen.error is None and rows(app)["all"][1] == "3"
        assert "could not load" not in screen_text(app)


def test_sparkline_scales_from_zero_and_leaves_gaps_blank() -> None:
    assert sparkline([None, 0, 1, 4, 8]) == "  ▁▄█"
    assert sparkline([900, 1000]) == "▇█"  # 10% apart looks 10% apart, not like a cliff
    assert sparkline([None, None]) == "  " and sparkline([]) == ""
    assert sparkline([5, 10], top=20) == "▂▄"


def test_resample_keeps_spikes_and_steady_rates() -> None:
    assert resample([1, 9, 2, 2, None, None], 3) == [9, 2, None]  # percentiles: worst of each run
    assert resample([4, 4, 4, 4, 4], 3, "mean") == [4, 4, 4]  # counts: a steady rate stays flat
    assert resample([1, 2], 10) == [1, 2]  # never stretched
    assert len(sparkline(list(range(60)), 10)) == 10


def test_formats_and_tolerant_parsing() -> None:
    assert [fmt_rate(v) for v in (None, 8.46, 87.4, 1234, 45678)] == ["-", "8.5", "87", "1.2k", "46k"]
    assert [fmt_error_rate(e, n) for e, n in ((0, 5), (1, 500), (3, 10), (5, 5))] == ["-", "<1%", "30%", "100%"]
    report = Report.parse({"window": "1h", "buckets": 3, "series": [
        {"provider": "openai", "model": "m", "requests": 2, "latency_ms_p95": "fast",
         "buckets": {"requests": [1, 1], "latency_ms_p95": [10, True, None, 5]}},
    ]}, "1h")  # fmt: skip
    [s] = report.rows  # a single model: no redundant "all" row
    assert s.name == "openai/m" and s.latency_p95 is None and s.requests == 2
    assert s.column("requests", 3) == [1, 1, None] and s.column("latency_ms_p95", 3) == [10, None, None]
    assert Report.parse(None, "6h").rows == [] and Report.parse(None, "6h").window == "6h"


def test_columns_fit_80_and_grow_with_the_terminal() -> None:
    name, trend = column_widths(80, 60)
    assert trend == 10 and name >= 14
    name, trend = column_widths(160, 60)
    assert trend == 30 and name > 30
    assert column_widths(160, 24)[1] == 24  # one cell per bucket at most
