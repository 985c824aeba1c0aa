"""The request-log banner: hidden while writable, one line with the numbers during an outage."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tui.widgets.store_warning import StoreWarning, describe

OUTAGE = {"writable": False, "backlog": 12, "dropped": 3, "bodies_dropped": 0,
          "last_error": "database or disk is full", "since": "2026-01-31T10:04:05.120Z"}


def test_describe() -> None:
    assert describe(None) is None and describe({"writable": True, "backlog": 0}) is None
    text = describe(OUTAGE)
    assert text is not None
    assert "since 10:04:05" in text and "database or disk is full" in text
    assert "12 records held in memory" in text and "3 dropped" in text
    assert "dropped" not in describe({**OUTAGE, "dropped": 0})  # type: ignore[operator]


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield StoreWarning(id="store-warning")


async def test_banner_shows_and_hides() -> None:
    app = Host()
    async with app.run_test(size=(120, 5)) as pilot:
        banner = app.query_one(StoreWarning)
        assert not banner.display or not banner.has_class("-shown")
        banner.show(OUTAGE)
        await pilot.pause()
        assert banner.has_class("-shown") and banner.region.height == 1
        assert "12 records held in memory" in str(banner.content)
        banner.show({"writable": True, "backlog": 0})
        await pilot.pause()
        assert not banner.has_class("-shown") and banner.region.height == 0


async def test_traffic_screen_shows_the_banner_from_store_events(sidecar) -> None:  # noqa: ANN001
    """The feed takes `store` events from the sidecar's stream; the traffic screen shows and hides the banner."""
    from tui.app import SidecarApp

    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(120, 30)) as pilot:
        banner = app.screen.query_one(StoreWarning)
        for _ in range(200):
            if sidecar.subscribers == 1:
                break
            await pilot.pause(0.02)
        assert not banner.has_class("-shown")
        sidecar.publish("store", OUTAGE)
        for _ in range(100):
            if banner.has_class("-shown"):
                break
            await pilot.pause(0.02)
        assert "12 records held in memory" in str(banner.content)
        sidecar.publish("store", {**OUTAGE, "writable": True, "backlog": 0})
        for _ in range(100):
            if not banner.has_class("-shown"):
                break
            await pilot.pause(0.02)
        assert not banner.has_class("-shown")
