"""`sidecar demo`'s live mode, headless: the real demo stack (fakes + sidecar + traffic generator)
with the TUI attached the way the demo attaches it, driven by Textual's pilot.

Bounded waits only (a number of short pilot pauses); the fakes answer without simulated latency so
rows arrive within a second or two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from sidecar.config import config_from_dict
from sidecar.demo import SIMULATED, DemoStack, start_stack, traffic, tui_token
from tui.app import SidecarApp
from tui.screens.providers import ProvidersScreen
from tui.screens.spend import SpendScreen
from tui.widgets.traffic_table import TrafficTable

FORMATS = {"openai_chat", "openai_responses", "anthropic", "gemini"}


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 400) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.025)
    assert cond(), "condition not reached"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[DemoStack]:
    config = replace(config_from_dict({"server": {"require_token": True}}), data_dir=tmp_path / "data", port=0)
    s = await start_stack(config, live=True, seed=5, latency=False)
    yield s
    await s.close()


async def test_demo_opens_the_tui_and_every_view_fills(stack: DemoStack) -> None:
    # require_token is on: the TUI and the pretend clients get in with the demo's own tokens.
    with tui_token(stack):
        async with traffic(stack, rate=25, seed=5, concurrency=3) as gen:
            app = SidecarApp(stack.url, backoff=(0.05, 0.5))
            async with app.run_test(size=(120, 32)) as pilot:
                table = app.screen.query_one(TrafficTable)
                finished = lambda: [r for r in app.model.newest(500) if not r.pending]  # noqa: E731
                await until(pilot, lambda: table.row_count >= 12 and len(finished()) >= 12)
                rows = finished()
                assert {r.status for r in rows} & {200}
                assert len({r.inbound for r in rows}) >= 3  # a mix of formats within the first dozen
                assert {r.client for r in rows} <= {"claude-code", "codex", "gemini-cli", "notebook"}

                await pilot.press("s")
                await until(pilot, lambda: isinstance(app.screen, SpendScreen) and len(app.screen.budgets) >= 4)
                spend = app.screen
                assert isinstance(spend, SpendScreen)
                assert {b["scope"] for b in spend.budgets} >= {"global", "provider anthropic", "client claude-code"}

                await pilot.press("p")
                await until(pilot, lambda: isinstance(app.screen, ProvidersScreen) and app.screen.loads > 0)
                providers = app.screen
                assert isinstance(providers, ProvidersScreen)
                assert set(SIMULATED) <= {p.id for p in providers.rows}
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, ProvidersScreen))
        assert gen.sent >= 12 and set(gen.inbound) <= FORMATS
