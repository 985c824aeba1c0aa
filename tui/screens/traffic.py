"""The default screen: live traffic list with the status line on top and key hints at the bottom.

All UI work happens in one 10 Hz tick that drains the model's change log into the table in a
single batch: bursts of hundreds of events cost one sort and one repaint, and the feed never waits.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.client import ControlClient
from tui.feed import Feed, FeedState, FeedStatus
from tui.model import TrafficModel
from tui.screens.detail import DetailScreen
from tui.widgets.status_bar import StatusBar, StatusView
from tui.widgets.traffic_table import MAX_ROWS, TrafficTable

TICK_S = 0.1
"""UI refresh period: at most 10 batches a second, however fast events arrive."""


class TrafficScreen(Screen[None]):
    """Newest request first; `F` keeps the cursor on the newest row, `Z` freezes the view."""

    BINDINGS = [
        # priority: the focused DataTable binds enter to its own "select" action.
        Binding("enter", "open_detail", "Detail", id="traffic.detail", priority=True,
                tooltip="Open the request under the cursor: attempts, usage, bodies."),
        Binding("F", "follow", "Follow", id="traffic.follow",
                tooltip="Keep the cursor on the newest request; moving the cursor stops it."),
        Binding("Z", "pause", "Pause", id="traffic.pause",
                tooltip="Freeze the list; new requests are counted and shown on resume."),
    ]  # fmt: skip

    def __init__(self, model: TrafficModel, feed: Feed, client: ControlClient) -> None:
        super().__init__()
        self.model = model
        self.feed = feed
        self.client = client
        self.follow = True
        """Cursor pinned to the newest row (htop/mitmproxy `F`)."""
        self.paused = False
        """View frozen; the model keeps collecting and the status shows "+N new" (htop `Z`)."""
        self._empty_text = ""

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield TrafficTable(id="traffic")
        yield Static("", id="empty")
        yield Footer()

    def on_mount(self) -> None:
        self.table = self.query_one(TrafficTable)
        self.status_bar = self.query_one(StatusBar)
        self.empty = self.query_one("#empty", Static)
        self.table.focus()
        self.tick()
        self.set_interval(TICK_S, self.tick, name="traffic-tick")

    def tick(self) -> None:
        """Drain the model into the table (unless paused) and refresh the status line."""
        if not self.paused:
            changes = self.model.drain()
            if changes:
                newest = self.model.newest(MAX_ROWS) if changes.reset else None
                self.table.apply(changes, newest, follow=self.follow)
        status = self.feed.status
        self.status_bar.show(
            StatusView.build(
                status,
                self.model.totals,
                shown=self.table.row_count,
                total=len(self.model),
                follow=self.follow,
                paused=self.paused,
                paused_new=self.model.new_since_drain if self.paused else 0,
            )
        )
        self._show_empty(status)

    def _show_empty(self, status: FeedStatus) -> None:
        """A hint in place of an empty table: how to send traffic, or why nothing can arrive."""
        self.empty.display = self.table.row_count == 0
        if not self.empty.display:
            return
        if status.state is FeedState.CONNECTED:
            base = status.listen or status.url
            text = f"No requests yet. Point a client at {base}/v1 and they appear here."
        else:
            text = status.describe()
        if text != self._empty_text:  # Static.update relayouts; skip it on idle ticks
            self._empty_text = text
            self.empty.update(Content(text))  # plain: error text may contain [brackets]

    # -- actions ----------------------------------------------------------------------------

    def action_open_detail(self) -> None:
        rid = self.table.selected_id()
        if rid is None:
            self.app.bell()
            return
        self.app.push_screen(DetailScreen(rid, self.client, self.model.get(rid)))

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            # Following means seeing the newest: resume a paused view too, then jump to the top.
            self.paused = False
            self.tick()
            self.table.move_cursor(row=0)
            self.table.scroll_home(animate=False)
        else:
            self.tick()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.tick()

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        # Mouse click on the highlighted row (enter is handled by the priority binding).
        event.stop()
        self.action_open_detail()

    @on(DataTable.RowHighlighted)
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        # The user moving off the newest row ends follow mode (mitmproxy, htop behave the same).
        if self.follow and event.cursor_row != 0:
            self.follow = False
            self.tick()
