"""The provider page end to end at 80×24: the TUI against a real sidecar (`build_app`) in front of the fake
providers, so every tab shows what the control API really answers: `p`, `enter`, tabs `1`-`6`, `tab` and
`shift+tab`, `r`, `escape` back."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, Tab, TabbedContent

from sidecar.app import build_app
from sidecar.config import config_from_dict
from sidecar.keys import MemoryKeyStore
from sidecar.server import start_server
from sidecar.store import RequestStore
from tui.app import SidecarApp
from tui.screens.provider_page import ProviderPageScreen
from tui.screens.providers import ProvidersScreen
from tui.screens.traffic import TrafficScreen

if TYPE_CHECKING:  # never imported at run time: `conftest` is ambiguous between tests/ and tests/tui/
    from conftest import Upstreams

KEY = "sk-test-openai-0001"
LIMIT_HEADERS = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "41",
                 "x-ratelimit-reset-requests": "30s"}  # fmt: skip
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def real_sidecar(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[str]:
    raw = {"providers": {"openai": {"base_url": upstreams.openai.base_url},
                         "anthropic": {"base_url": upstreams.anthropic.base_url},
                         "gemini": {"base_url": upstreams.gemini.base_url}},
           "prices": {"openai/gpt-4o-mini": {"input": 0.5, "output": 1.5}}}  # fmt: skip
    config = replace(config_from_dict(raw), data_dir=tmp_path / "data")
    store = RequestStore(config.db_path, body_cap=config.body_cap_bytes)
    runner, url = await start_server(build_app(config, keys=MemoryKeyStore({"openai": KEY}), store=store),
                                     "127.0.0.1", 0)
    yield url
    await runner.cleanup()


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 250) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def text(app: SidecarApp, wid: str) -> str:
    """A tab's text as the terminal shows it (its Static holds a Rich renderable, not a string)."""
    out = io.StringIO()
    Console(file=out, width=76, color_system=None).print(app.screen.query_one(wid, Static).content)
    return out.getvalue()


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row(r.key)] for r in table.ordered_rows]


def model_lists(up: Any) -> int:
    return sum(1 for r in up.received if r.method == "GET" and r.path.endswith("/models"))


async def test_provider_page_tabs_at_80x24(real_sidecar: str, upstreams: Upstreams) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{real_sidecar}/v1/chat/completions", json=CHAT) as resp:
            assert resp.status == 200
        upstreams.openai.fail_next(400, headers=LIMIT_HEADERS)  # the request's fault: limits, no cool-down
        async with http.post(f"{real_sidecar}/v1/chat/completions", json=CHAT) as resp:
            assert resp.status == 400

    app = SidecarApp(real_sidecar, backoff=(0.02, 0.1))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ProvidersScreen) and app.screen.loads >= 1)
        await pilot.press("enter")  # openai is the first row
        await until(pilot, lambda: isinstance(app.screen, ProviderPageScreen) and app.screen.loads >= 1)
        page = app.screen
        tabs = page.query_one(TabbedContent)
        assert page.query_one("#provider").border_title == "Provider openai"
        assert [t.label_text for t in page.query(Tab)] == ["1 Overview", "2 Models", "3 Pricing", "4 Limits",
                                                            "5 Features", "6 Health"]  # fmt: skip
        assert all(0 < t.region.right <= 80 and t.region.y < 24 for t in page.query(Tab))  # all six fit
        overview = text(app, "#provider-overview")
        for expected in (upstreams.openai.base_url, "key in keyring        yes", "authorization", "openai_chat"):
            assert expected in overview, expected
        assert KEY not in overview

        await pilot.press("2")
        models = page.query_one("#models-table", DataTable)
        assert tabs.active == "models" and app.focused is models
        assert [r[0] for r in rows(models)] == sorted(upstreams.openai.models)
        assert "2 models from the provider's own list" in str(page.query_one("#models-status", Static).content)

        await pilot.press("3")
        pricing = {r[0]: r[1:] for r in rows(page.query_one("#pricing-table", DataTable))}
        assert tabs.active == "pricing"
        assert pricing["gpt-4o-mini"] == ["$0.5", "$1.5", "$0.5", "$0.5", "config"]  # the [prices] override
        assert pricing["gpt-4o"][-1] == "catalog" and pricing["gpt-4o"][0].startswith("$")

        await pilot.press("4")
        limits = text(app, "#provider-limits")
        assert tabs.active == "limits" and "on an HTTP 400 answer" in limits and "openai-style" in limits
        line = next(x for x in limits.splitlines() if x.strip().startswith("requests"))
        assert line.split()[:4] == ["requests", "60", "41", "32%"]

        await pilot.press("5")
        features = text(app, "#provider-features")
        assert tabs.active == "features"
        for expected in ("streaming", "tools", "structured output", "vision (images)", "response_format"):
            assert expected in features, expected
        assert features.count("yes") == 4

        await pilot.press("6")
        health = text(app, "#provider-health")
        assert tabs.active == "health" and "closed" in health and "gpt-4o-mini" in health
        assert "recent attempts       1" in health  # a 400 the request caused is no provider attempt

        await pilot.press("tab")
        assert tabs.active == "overview"
        await pilot.press("shift+tab")
        assert tabs.active == "health"

        before, loads = model_lists(upstreams.openai), page.loads
        await pilot.press("r")  # a manual refresh asks the provider's model list again (not the cache)
        await until(pilot, lambda: page.loads > loads)
        assert model_lists(upstreams.openai) == before + 1

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ProvidersScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))


def test_page_formatting_degrades_to_unknown_never_crashes() -> None:
    from tui.providers import (ProviderInfo, fmt_price, limit_rows, parse_page, price_rows,
                               pricing_summary)  # fmt: skip

    fallback = ProviderInfo("x", adapter="openai")
    for junk in (None, [], "x", {"overview": 3, "models": {"models": "no"}, "features": [1, None],
                                  "limits": [], "health": "bad", "pricing": {"models": [None, {}]}}):  # fmt: skip
        page = parse_page(junk, fallback)
        assert page.info.id == "x" and page.models == [] and page.limits is None
    assert parse_page(None, fallback).error is not None
    assert [fmt_price(v) for v in (None, 0, 2.5, 0.075, 150, 1250, 0.0004, True)] == [
        "-", "$0", "$2.5", "$0.075", "$150", "$1,250", "$4.0e-04", "-"]
    rows = limit_rows({"buckets": [
        {"name": "input_tokens", "limit": 100, "remaining": 0, "used_pct": 100.0, "reset_at": None},
        {"name": "requests", "limit": 50, "remaining": 5, "used_pct": 90.0},
        {"name": "tokens", "limit": None, "remaining": 7, "used_pct": None}, "junk"]})
    assert [(r[0], r[2], r[3], r[5]) for r in rows] == [("input tokens", "0", "100%", "error"),
                                                        ("requests", "5", "90%", "warning"),
                                                        ("tokens", "7", "-", "")]  # fmt: skip
    page = parse_page({"pricing": {"catalog": "genai-prices 1", "unpriced": ["a", "b", "c", "d"], "models": [
        {"model": "m", "source": "override", "input": 1, "output": 2, "tiered": True}]}}, fallback)
    assert price_rows(page) == [("m", "$1*", "$2", "-", "-", "config")]
    assert pricing_summary(page) == ("USD per million tokens · genai-prices 1 · config = [prices] override · "
                                     "* more for long prompts · no price for 4: a, b, c…")
