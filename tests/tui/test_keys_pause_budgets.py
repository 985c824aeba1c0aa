"""Keys view (`K`), the proxy pause switch (`P`) and Spend's budget bars, driven by the pilot against the
fake control API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.pilot import Pilot
from textual.widgets import Input, Static

from tui.app import SidecarApp
from tui.screens.help import HelpScreen, collect
from tui.screens.keys import ConfirmScreen, KeyInputScreen, KeysScreen, KeysTable
from tui.screens.spend import SpendScreen
from tui.screens.traffic import TrafficScreen
from tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from conftest import FakeSidecar

SIZE = (100, 30)
SECRET = "sk-tui-canary-7f3a9c21e5d04b68"


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 250) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def providers(fake: FakeSidecar) -> None:
    fake.providers = [
        {"id": "anthropic", "adapter": "anthropic", "base_url": "http://a", "needs_key": True, "has_key": False},
        {"id": "ollama", "adapter": "openai", "base_url": "http://o", "needs_key": False, "has_key": None},
        {"id": "openai", "adapter": "openai", "base_url": "http://b", "needs_key": True, "has_key": True},
    ]  # fmt: skip


def cells(app: SidecarApp) -> dict[str, list[str]]:
    table = app.screen.query_one(KeysTable)
    return {str(r.key.value): [str(c) for c in table.get_row(r.key)] for r in table.ordered_rows}


def screen_text(app: SidecarApp) -> str:
    """Everything rendered on screen (all layers), as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def open_keys(pilot: Pilot[Any], app: SidecarApp) -> None:
    await pilot.press("K")
    await until(pilot, lambda: isinstance(app.screen, KeysScreen) and app.screen.loads >= 1)


async def test_keys_view_set_replace_delete(sidecar: FakeSidecar) -> None:
    providers(sidecar)
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await open_keys(pilot, app)
        rows = cells(app)
        assert rows["openai"][2] == "yes" and rows["openai"][3] == "sk-…(27 chars)"
        assert rows["anthropic"][2] == "no" and rows["anthropic"][3] == "-"
        assert rows["ollama"][2] == "not needed"
        assert "1 without a key" in str(app.screen.query_one("#keys-status", Static).content)

        # Set: the cursor starts on anthropic; enter opens the masked input.
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, KeyInputScreen))
        field = app.screen.query_one("#key-input", Input)
        assert field.password
        await pilot.press(*SECRET)
        assert SECRET not in screen_text(app), "the key must never be rendered"
        assert "•" in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen) and cells(app)["anthropic"][2] == "yes")
        assert sidecar.keys is not None and sidecar.keys["anthropic"] == SECRET
        assert cells(app)["anthropic"][3] == f"sk-…({len(SECRET)} chars)"
        assert field.value == "", "the modal keeps nothing once the key is handed over"
        assert SECRET not in screen_text(app)

        # Replace with `s`; an empty submit is refused in place, escape cancels without a write.
        writes = len(sidecar.key_writes)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, KeyInputScreen))
        assert "Replace the key for anthropic" in screen_text(app)
        await pilot.press("enter")
        assert isinstance(app.screen, KeyInputScreen) and "empty" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen))
        assert len(sidecar.key_writes) == writes
        await pilot.press("s", *"sk-second-key-0123456789", "enter")
        await until(pilot, lambda: cells(app)["anthropic"][3] == "sk-…(24 chars)")
        assert sidecar.keys["anthropic"] == "sk-second-key-0123456789"

        # Delete: `n` keeps it, `y` deletes it.
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Delete the key for anthropic" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen))
        assert "anthropic" in sidecar.keys
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen) and cells(app)["anthropic"][2] == "no")
        assert "anthropic" not in sidecar.keys
        assert sidecar.key_writes[-1] == ("DELETE", "anthropic")

        # j/k still move the cursor here; escape goes back to the traffic list.
        await pilot.press("j")
        assert app.screen.query_one(KeysTable).selected_id() == "ollama"
        await pilot.press("k")
        assert app.screen.query_one(KeysTable).selected_id() == "anthropic"
        await pilot.press("escape")
        assert isinstance(app.screen, TrafficScreen)


async def test_keys_view_keyring_unavailable(sidecar: FakeSidecar) -> None:
    providers(sidecar)
    sidecar.keys = None
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await open_keys(pilot, app)
        assert cells(app)["openai"][2] == "unknown"
        assert "keyring unavailable" in str(app.screen.query_one("#keys-status", Static).content)
        await pilot.press("s", *SECRET, "enter")
        await until(pilot, lambda: any("the keyring is locked" in n.message for n in app._notifications))
        assert all(SECRET not in n.message for n in app._notifications)
        assert SECRET not in screen_text(app)


async def test_keys_bindings_have_ids_and_show_in_help(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=SIZE) as pilot:
        await open_keys(pilot, app)
        ids = {a.binding.id for a in app.screen.active_bindings.values()}
        assert {"keys.set", "keys.set_enter", "keys.delete", "keys.refresh", "keys.back", "app.keys",
                "app.pause_proxy"} <= ids  # fmt: skip
        footer = screen_text(app).splitlines()[-1]
        assert "s Set/replace" in footer and "d Delete" in footer
        keys_screen = app.screen
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = {(e.key, e.description, e.binding_id) for e in collect(keys_screen)}
        assert {("s", "Set/replace", "keys.set"), ("d", "Delete", "keys.delete"), ("K", "Keys", "app.keys"),
                ("P", "Pause proxy", "app.pause_proxy")} <= listed  # fmt: skip


async def test_pause_key_toggles_the_sidecar_and_the_status_bar_shows_it(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "connected to" in bar.text)
        assert "PAUSED" not in bar.text
        await pilot.press("P")
        await until(pilot, lambda: sidecar.paused and "PAUSED" in bar.text)
        assert "PAUSED" in screen_text(app), "visible at 80 columns"
        await pilot.press("P")
        await until(pilot, lambda: not sidecar.paused and "PAUSED" not in bar.text)

        # Paused elsewhere (`sidecar pause`, no event seen): the periodic /health read catches it.
        sidecar.paused = True
        await app._read_health()
        await until(pilot, lambda: "PAUSED" in bar.text)
        # And the event alone is enough too.
        sidecar.publish("resumed", {"ts": "x"})
        await until(pilot, lambda: "PAUSED" not in bar.text)
        # P asks the sidecar first, so it resumes a sidecar that is really paused.
        sidecar.paused = True
        await pilot.press("P")
        await until(pilot, lambda: not sidecar.paused)


BUDGETS = [
    {"scope": "global", "period": "daily", "limit_usd": 5.0, "spent_usd": 1.25, "remaining_usd": 3.75,
     "resets": "2025-01-02T00:00:00Z"},
    {"scope": "provider openai", "period": "monthly", "limit_usd": 20.0, "spent_usd": 19.0,
     "remaining_usd": 1.0, "resets": "2025-02-01T00:00:00Z"},
]  # fmt: skip


async def test_spend_budget_bars(sidecar: FakeSidecar) -> None:
    sidecar.budgets = BUDGETS
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SpendScreen) and app.screen.loads >= 1)
        bars = app.screen.query_one("#budgets", Static)
        assert bars.display and app.screen.query_one("#budgets-title", Static).display
        text = str(bars.content).splitlines()
        assert text[0].startswith("global daily") and "25%" in text[0] and "$1.25" in text[0]
        assert "of $5.00" in text[0] and "resets Jan 02 00:00 UTC" in text[0]
        assert "█" * 4 + "░" * 12 in text[0]
        assert text[1].startswith("provider openai monthly") and "95%" in text[1] and "$19.00 of $20.00" in text[1]
        assert "global daily" in screen_text(app)


async def test_spend_without_budgets_hides_the_bars(sidecar: FakeSidecar) -> None:
    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SpendScreen) and app.screen.loads >= 1)
        assert not app.screen.query_one("#budgets", Static).display
        assert not app.screen.query_one("#budgets-title", Static).display
        assert "Budgets" not in screen_text(app)
