"""`SidecarApp`: wires the control-API client, the feed and the model to the screens.

The app owns the long-lived pieces (one HTTP session, one feed task, one model) so screens stay
disposable; it talks to the sidecar only over HTTP, never by importing `sidecar`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.client import ControlClient, describe_error
from tui.feed import HISTORY_LIMIT, Feed
from tui.keymap import split_keymap
from tui.model import RING_SIZE, TrafficModel
from tui.notices import Toaster
from tui.screens.events import EventsScreen
from tui.screens.help import HelpScreen, collect
from tui.screens.keys import KeysScreen
from tui.screens.latency import LatencyScreen
from tui.screens.providers import ProvidersScreen
from tui.screens.spend import SpendScreen
from tui.screens.traffic import TrafficScreen


class SidecarApp(App[int]):
    """Live view of one sidecar's traffic, latency and spend.

    Args:
        url: Base URL of a running sidecar, e.g. `http://127.0.0.1:8787`.
        backoff: (first, max) reconnect delay in seconds.
        history_limit: Records loaded on every (re)connect.
        ring_size: Request summaries kept in memory.
        keymap: Binding id → key(s), e.g. `{"app.spend": "S"}` (the config's `[tui] keymap`); `?` lists the ids.
            Unknown ids are reported once in a toast and otherwise ignored.
    """

    CSS_PATH = "app.tcss"
    TITLE = "llm-sidecar"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit the TUI (the sidecar keeps running)."),
        Binding("ctrl+c", "quit", "Quit", id="app.quit_ctrl_c", show=False, priority=True),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Keys of the current screen."),
        Binding("s", "show('spend')", "Spend", id="app.spend",
                tooltip="Spend today, 7 and 30 days by provider and model; month projection."),
        Binding("p", "show('providers')", "Providers", id="app.providers",
                tooltip="Providers: key present, breaker, cool-down, error rate, latency."),
        Binding("l", "show('latency')", "Latency", id="app.latency",
                tooltip="p50/p95 TTFT and total latency, tokens/s per provider and model over 15m-24h."),
        # `K`, not `k`: every table binds `k` to vim's cursor-up.
        Binding("K", "show('keys')", "Keys", id="app.keys",
                tooltip="Provider keys in the keyring: set, replace, delete (values never shown)."),
        Binding("P", "toggle_proxy_pause", "Pause proxy", id="app.pause_proxy",
                tooltip="The sidecar's emergency brake: every generation request gets a 503 until P again."),
        Binding("E", "events", "Events", id="app.events",
                tooltip="Event log: missing keys, failovers, upstream errors, breakers, budget alerts."),
    ]  # fmt: skip

    HEALTH_POLL_S = 5.0
    """How often `/health` is re-read for `paused` (events also report it at once)."""
    TOAST_TICK_S = 0.25
    """How often new notices are offered to the toaster (which itself allows one toast per 2 s)."""

    def __init__(
        self,
        url: str,
        *,
        backoff: tuple[float, float] = (0.5, 10.0),
        history_limit: int = HISTORY_LIMIT,
        ring_size: int = RING_SIZE,
        keymap: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.client = ControlClient(url)
        self.model = TrafficModel(ring_size)
        self.feed = Feed(self.client, self.model, history_limit=history_limit, backoff=backoff)
        self.toaster = Toaster()
        usable, self.keymap_problems = split_keymap(keymap)
        self.set_keymap(usable)

    def get_default_screen(self) -> Screen[None]:
        return TrafficScreen(self.model, self.feed, self.client)

    def on_mount(self) -> None:
        self.run_worker(self.feed.run(), name="feed", group="feed", exclusive=True)
        self.set_interval(self.HEALTH_POLL_S, self._poll_health, name="health-poll")
        self.set_interval(self.TOAST_TICK_S, self._toast, name="toasts")
        if self.keymap_problems:
            self.notify("ignored in the keymap: " + "; ".join(self.keymap_problems), title="Keymap",
                        severity="warning", timeout=10, markup=False)

    def _toast(self) -> None:
        """Failovers, budget alerts and missing keys as toasts, throttled and coalesced by `Toaster`."""
        toast = self.toaster.pump(self.feed.notices)
        if toast is not None:
            self.notify(toast.message, title=toast.title, severity=toast.severity, markup=False)

    def action_events(self) -> None:
        """Open the event log over the traffic list (`escape` goes back to it)."""
        if isinstance(self.screen, EventsScreen):
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.push_screen(EventsScreen(self.feed.notices))

    def _poll_health(self) -> None:
        self.run_worker(self._read_health(), group="health", exclusive=True, exit_on_error=False)

    async def _read_health(self) -> None:
        try:
            self.feed.note_health(await self.client.health())
        except Exception:
            pass  # the feed shows connection trouble; this poll only keeps `paused` current

    def action_toggle_proxy_pause(self) -> None:
        self.run_worker(self._toggle_proxy_pause(), group="pause", exclusive=True, exit_on_error=False)

    async def _toggle_proxy_pause(self) -> None:
        try:
            # Ask first: the sidecar may have been paused or resumed elsewhere (`sidecar pause`).
            current = bool((await self.client.health()).get("paused", False))
            paused = await self.client.set_paused(not current)
        except Exception as exc:
            self.notify(f"could not pause/resume the sidecar: {describe_error(exc)}", severity="error",
                        markup=False)
            return
        self.feed.note_health({"paused": paused})
        if paused:
            self.notify("sidecar PAUSED: every generation request gets a 503 until you press P again",
                        severity="warning", markup=False)
        else:
            self.notify("sidecar resumed: traffic flows again", markup=False)

    async def on_unmount(self) -> None:
        self.workers.cancel_group(self, "feed")
        await self.client.close()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections = getattr(self.screen, "help_sections", lambda: [])()
        self.push_screen(HelpScreen(collect(self.screen), sections))

    def action_show(self, view: str) -> None:
        """Open a top-level view over the traffic list (k9s crumbs: `escape` goes back to it)."""
        screens = {"spend": SpendScreen, "providers": ProvidersScreen, "keys": KeysScreen,
                   "latency": LatencyScreen}
        if isinstance(self.screen, screens[view]):
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.push_screen(screens[view](self.client))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The palette lists every described binding active on `screen`, from the same registry
        the footer and `?` read (mitmproxy's single key registry), plus Textual's own commands."""
        yield from super().get_system_commands(screen)
        seen = {"quit"}  # Textual already offers Quit
        for active in screen.active_bindings.values():
            b = active.binding
            if not active.enabled or not b.description or b.system or b.id is None or b.action in seen:
                continue
            seen.add(b.action)
            help_text = f"{b.tooltip or b.description}  [{self.get_key_display(b)}]"
            yield SystemCommand(b.description, help_text, partial(self.run_action, b.action, active.node))
