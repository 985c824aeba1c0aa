"""Event log (`E`), toasts, the status bar's budget left and the keymap, driven by the pilot.

Most tests use the fake control API; one runs a real sidecar in front of fake providers, so a real failover
becomes a real notice, a toast, and a row in the event log, and a notice from before the TUI started arrives
through the `/_sidecar/notices` catch-up without toasting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from tui.app import SidecarApp
from tui.feed import BudgetLeft, FeedState, FeedStatus, tightest_budget
from tui.keymap import known_binding_ids, split_keymap
from tui.model import Totals
from tui.notices import Notice, NoticeStore, Toaster
from tui.screens.events import EventsScreen, EventsTable
from tui.screens.help import HelpScreen
from tui.screens.spend import SpendScreen
from tui.screens.traffic import TrafficScreen
from tui.widgets.status_bar import MIN_LEFT_CONNECTED, StatusBar, StatusView

if TYPE_CHECKING:
    from conftest import FakeSidecar

SIZE = (120, 30)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 250) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def notice(nid: str, sec: int, level: str = "warning", kind: str = "log", message: str = "", **over: Any) -> dict:
    return {"id": nid, "ts": f"2025-01-01T10:00:{sec:02d}.000Z", "level": level, "source": "proxy", "kind": kind,
            "message": message or f"message {nid}", "count": 1, **over}


def rows(app: SidecarApp) -> list[str]:
    table = app.screen.query_one(EventsTable)
    return [str(r.key.value) for r in table.ordered_rows]


def toasts(app: SidecarApp) -> list[tuple[str, str, str]]:
    return [(n.title, n.message, n.severity) for n in app._notifications]


def footer_keys(app: SidecarApp) -> dict[str, str]:
    return {k.description: k.key_display for k in app.screen.query(FooterKey)}


# ---- the event log ------------------------------------------------------------------------------------------

async def test_event_log_newest_first_filtered_by_level(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: sidecar.subscribers == 1 and app.feed.status.state is FeedState.CONNECTED)
        sidecar.publish("notice", notice("n1", 1, "info", "breaker", "openai breaker closed: it answers again"))
        sidecar.publish("notice", notice("n2", 2, "error", "budget", "daily budget for global used up [$5.00]"))
        sidecar.publish("notice", notice("n3", 3, "warning", "upstream_error", "openai answered 503: overloaded",
                                         provider="openai"))
        await until(pilot, lambda: len(app.feed.notices) == 3)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen))
        assert rows(app) == ["n3", "n2", "n1"]
        detail = str(app.screen.query_one("#events-detail", Static).content)
        assert "openai answered 503: overloaded" in detail and "warning" in detail
        cells = [str(c) for c in app.screen.query_one(EventsTable).get_row("n3")]
        assert cells[1:3] == ["warning", "proxy/openai"]

        # A merged notice comes again with its count: the row updates in place.
        sidecar.publish("notice", notice("n3", 3, "warning", "upstream_error", "openai answered 503: overloaded",
                                         count=4, last_ts="2025-01-01T10:00:03.900Z"))
        await until(pilot, lambda: str(app.screen.query_one(EventsTable).get_row("n3")[3]) == "4")
        assert rows(app) == ["n3", "n2", "n1"]

        await pilot.press("w")
        await until(pilot, lambda: rows(app) == ["n3", "n2"])
        assert "2 warnings and errors" in str(app.screen.query_one("#events-status", Static).content)
        await pilot.press("e")
        await until(pilot, lambda: rows(app) == ["n2"])
        await pilot.press("e")
        await until(pilot, lambda: rows(app) == ["n3", "n2", "n1"])

        # Live notices keep arriving while it is open; the cursor moves down and the detail follows.
        sidecar.publish("notice", notice("n4", 4, "warning", "missing_key", "no key for provider gemini"))
        await until(pilot, lambda: rows(app)[0] == "n4")
        await pilot.press("j")
        assert "×4 (last 2025-01-01T10:00:03.900Z)" in str(app.screen.query_one("#events-detail", Static).content)
        await pilot.press("j")
        assert "daily budget for global used up [$5.00]" in str(app.screen.query_one("#events-detail", Static).content)
        sidecar.publish("notice", notice("n5", 5, "error", "budget", "monthly budget for global used up"))
        await until(pilot, lambda: rows(app)[0] == "n5")
        assert app.screen.query_one(EventsTable).selected_id() == "n2", "a new notice does not move the cursor"
        await pilot.press("escape")
        assert isinstance(app.screen, TrafficScreen)


async def test_event_log_when_empty_and_malformed_notices(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: sidecar.subscribers == 1)
        sidecar.publish("notice", {"id": "bad", "level": "error"})  # no ts, no message
        await until(pilot, lambda: app.feed.status.skipped == 1)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen))
        assert rows(app) == []
        assert "No notices yet" in str(app.screen.query_one("#events-detail", Static).content)


# ---- toasts -------------------------------------------------------------------------------------------------

def make(kind: str, n: int, message: str = "") -> Notice:
    return Notice.parse(notice(f"t{n}", n, kind=kind, message=message or f"{kind} {n}"))


def test_toaster_throttles_coalesces_and_ranks() -> None:
    now = [100.0]
    toaster = Toaster(gap=2.0, clock=lambda: now[0])
    toaster.offer(make("log", 1))  # not a toasting kind
    toaster.offer(make("breaker", 2))
    assert toaster.due() is None
    toaster.offer(make("failover", 3, "request a: openai 503 → anthropic (down)"))
    first = toaster.due()
    assert first is not None and first.title == "Failover" and first.severity == "warning"
    assert first.message == "request a: openai 503 → anthropic (down)"
    for n in (4, 5):
        toaster.offer(make("failover", n))
    toaster.offer(make("failover", 6, "request f: openai 500 → backup"))
    toaster.offer(make("budget", 7, "daily budget for global is 80% used"))
    now[0] += 1.0
    assert toaster.due() is None, "at most one toast per gap"
    now[0] += 1.0
    budget = toaster.due()
    assert budget is not None and budget.title == "Budget" and budget.message == "daily budget for global is 80% used"
    now[0] += 2.0
    coalesced = toaster.due()
    assert coalesced is not None and coalesced.message == "3 failovers; latest: request f: openai 500 → backup"
    now[0] += 2.0
    assert toaster.due() is None


def test_store_toasts_live_notices_only_and_only_their_growth() -> None:
    store, toaster = NoticeStore(capacity=3), Toaster(gap=0.0)
    store.load([notice("h2", 2, kind="failover"), notice("h1", 1, kind="failover")])
    assert len(store) == 2 and toaster.pump(store) is None, "history never toasts"
    store.apply(notice("h2", 2, kind="failover", count=3))  # the sidecar merged two more into it
    toast = toaster.pump(store)
    assert toast is not None and toast.message.startswith("2 failovers")
    store.apply(notice("n3", 3, kind="missing_key", message="no key for provider gemini"))
    store.apply(notice("n0", 0))
    assert [n.id for n in store.newest()] == ["n3", "h2", "n0"], "capacity keeps the newest arrivals, ts order"
    assert [n.id for n in store.newest("warning")] == ["n3", "h2", "n0"]
    assert [n.id for n in store.newest("error")] == []
    with pytest.raises(ValueError):
        store.apply({"id": "x", "ts": 5, "message": "m"})
    toast = toaster.pump(store)
    assert toast is not None and toast.title == "Missing key"


@pytest.fixture
async def real_sidecar(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A real sidecar: alias `smart` = openai then anthropic (fakes); no key for gemini."""
    from sidecar.app import build_app
    from sidecar.config import config_from_dict
    from sidecar.fake_upstream import FakeUpstream
    from sidecar.keys import MemoryKeyStore
    from sidecar.server import start_server
    from sidecar.store import RequestStore

    keys = {"openai": "sk-tui-test-openai-01", "anthropic": "sk-tui-test-anthropic-02"}
    fakes = {p: FakeUpstream(p, expect_key=keys[p]) for p in keys}
    for fake in fakes.values():
        await fake.start()
    raw = {"providers": {p: {"base_url": f.base_url} for p, f in fakes.items()},
           "models": {"smart": {"targets": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}}}
    config = replace(config_from_dict(raw), data_dir=tmp_path / "data")
    app = build_app(config, keys=MemoryKeyStore(keys), store=RequestStore(config.db_path))
    runner, url = await start_server(app, "127.0.0.1", 0)
    try:
        yield url, fakes
    finally:
        await runner.cleanup()
        for fake in fakes.values():
            await fake.close()


async def post(url: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    async with aiohttp.ClientSession() as http, http.post(url + "/v1/chat/completions", data=orjson.dumps(body)) as r:
        await r.read()
        return r.status


async def test_real_failover_toasts_and_earlier_notices_catch_up(real_sidecar: tuple[str, dict[str, Any]]) -> None:
    url, fakes = real_sidecar
    assert await post(url, "gemini/gemini-2.5-flash") == 401  # a missing-key notice before the TUI exists
    app = SidecarApp(url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: any(n.kind == "missing_key" for n in app.feed.notices.newest()))
        await pilot.pause(0.3)  # a toast tick or more
        assert not toasts(app), "notices from before the TUI started never toast"

        fakes["openai"].fail_next(503)
        assert await post(url, "smart") == 200
        await until(pilot, lambda: any(t[0] == "Failover" for t in toasts(app)))
        [(_, message, severity)] = [t for t in toasts(app) if t[0] == "Failover"]
        assert "openai 503 → anthropic" in message and severity == "warning"

        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen))
        kinds = [n.kind for n in app.screen.shown]
        assert kinds[0] == "failover" and "missing_key" in kinds and "upstream_error" in kinds


# ---- status bar ---------------------------------------------------------------------------------------------

async def test_status_bar_shows_budget_left(sidecar: FakeSidecar) -> None:
    sidecar.budgets = [
        {"scope": "global", "period": "daily", "limit_usd": 5.0, "spent_usd": 1.0, "remaining_usd": 4.0,
         "resets": "2025-01-02T00:00:00Z"},
        {"scope": "provider openai", "period": "monthly", "limit_usd": 10.0, "spent_usd": 9.5, "remaining_usd": 0.5,
         "resets": "2025-02-01T00:00:00Z"},
    ]  # fmt: skip
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "left $0.50/mo (openai)" in bar.text)
        assert "rows 2/2" in bar.text and "spend $0.0012" in bar.text, bar.text


def test_status_bar_drops_low_priority_items_when_narrow() -> None:
    status = FeedStatus(FeedState.CONNECTED, "http://127.0.0.1:8787", proxy_paused=True,
                        budget=BudgetLeft(4.0, 5.0, "daily", "global"))
    totals = Totals(requests=120, in_flight=3, errors=7, cost_usd=1.25, unpriced=2)
    view = StatusView.build(status, totals, shown=100, total=120, follow=True, paused=False, paused_new=0,
                            sort="latency ▼", marked=2)
    wide = "".join(str(c) for c in StatusBar.render_view(view, 200))
    for item in ("PAUSED", "rows 100/120", "sort latency ▼", "2 marked", "spend $1.25", "+2 unpriced",
                 "left $4.00 today", "3 in flight", "7 err", "follow"):
        assert item in wide
    _, right = StatusBar.render_view(view, 80)
    narrow = str(right)
    for kept in ("PAUSED", "rows 100/120", "spend $1.25", "left $4.00/day"):
        assert kept in narrow
    for dropped in ("sort", "marked", "unpriced"):
        assert dropped not in narrow
    assert len(narrow) <= 80 - 4 - MIN_LEFT_CONNECTED


def test_tightest_budget_is_the_least_left() -> None:
    entries = [
        {"scope": "global", "period": "monthly", "limit_usd": 50.0, "remaining_usd": 3.0},
        {"scope": "global", "period": "daily", "limit_usd": 5.0, "remaining_usd": 3.0},
        {"scope": "client x", "period": "daily", "limit_usd": "?", "remaining_usd": 0.0},  # malformed: skipped
    ]
    assert tightest_budget(entries) == BudgetLeft(3.0, 5.0, "daily", "global")
    assert tightest_budget([]) is None


# ---- keymap -------------------------------------------------------------------------------------------------

def test_split_keymap_reports_unknown_ids_and_bad_keys() -> None:
    assert {"app.spend", "app.events", "events.warnings", "traffic.follow"} <= known_binding_ids()
    good, problems = split_keymap({"app.spend": "S", "app.events": "ctrl+e, E", "app.nope": "x", "app.keys": ""})
    assert good == {"app.spend": "S", "app.events": "ctrl+e,E"}
    assert problems == ["app.nope (no such binding)", 'app.keys (keys must be a string such as "S" or "ctrl+s,S")']


async def test_keymap_remaps_spend_and_reports_unknown_ids(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1), keymap={"app.spend": "S", "app.spned": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: any(t[0] == "Keymap" for t in toasts(app)))
        [(_, message, severity)] = [t for t in toasts(app) if t[0] == "Keymap"]
        assert "app.spned (no such binding)" in message and severity == "warning"
        await until(pilot, lambda: bool(footer_keys(app)))
        assert footer_keys(app).get("Spend") == "S", footer_keys(app)

        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, TrafficScreen), "the old key no longer opens Spend"
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SpendScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        spend = [e for e in app.screen.entries if e.binding_id == "app.spend"]
        assert [e.key for e in spend] == ["S"]
