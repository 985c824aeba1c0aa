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
from textual.widgets import Footer, Input, Static

from tui import filters
from tui.client import ControlClient
from tui.feed import Feed, FeedState, FeedStatus
from tui.model import TrafficModel
from tui.screens.detail import DetailScreen
from tui.view import SORT_COLUMNS, Predicate, narrow
from tui.widgets.filter_bar import FilterBar
from tui.widgets.status_bar import StatusBar, StatusView
from tui.widgets.store_warning import StoreWarning
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
        Binding("slash", "open_filter", "Filter", id="traffic.filter",
                tooltip="Filter with ~p ~m ~c ~e ~s ~fo ~lat ~cost and ! & | ( ); ? lists them."),
        Binding("escape", "clear_filter", "Clear filter", id="traffic.clear_filter", show=False),
        Binding("o", "cycle_sort", "Sort", id="traffic.sort",
                tooltip="Sort by time, latency, ttft, cost, tokens, status, attempts (largest first)."),
        Binding("v", "reverse_sort", "Reverse", id="traffic.reverse", show=False,
                tooltip="Reverse the sort order."),
        Binding("m", "toggle_mark", "Mark", id="traffic.mark",
                tooltip="Mark or unmark the request under the cursor."),
        Binding("M", "marked_only", "Marked only", id="traffic.marked_only", show=False,
                tooltip="Show only marked requests, or everything again."),
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
        self.filter_text = ""
        self.filter: filters.Filter | None = None
        self.marked_only = False
        self._stale = False
        """The filter or marked-only switch changed: rebuild the table from the model."""

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield StoreWarning(id="store-warning")
        yield TrafficTable(id="traffic")
        yield Static("", id="empty")
        bar = FilterBar(id="filter-bar")
        bar.display = False
        yield bar
        yield Footer()

    def on_mount(self) -> None:
        self.table = self.query_one(TrafficTable)
        self.status_bar = self.query_one(StatusBar)
        self.store_warning = self.query_one(StoreWarning)
        self.empty = self.query_one("#empty", Static)
        self.filter_bar = self.query_one(FilterBar)
        self.table.focus()
        self.tick()
        self.set_interval(TICK_S, self.tick, name="traffic-tick")

    @staticmethod
    def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
        """Extra help for `?`: the filter language, generated from the filter classes."""
        return [("Filter expressions (/)", filters.help_entries())]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # `enter` is a priority binding (to beat DataTable's select); in the filter bar it submits.
        if action == "open_detail" and self.filter_bar.display and self.filter_bar.has_focus_within:
            return False
        return True

    def predicate(self) -> Predicate | None:
        """Which model rows the table shows; None for all of them."""
        f, marks = self.filter, self.table.marks
        if self.marked_only:
            return lambda r: r.id in marks and (f is None or f(r))
        return f

    def tick(self) -> None:
        """Drain the model into the table (unless paused) and refresh the status line."""
        pred = self.predicate()
        if self._stale:
            # Everything the log holds is in the rebuild; draining it avoids adding rows twice.
            self._stale = False
            self.model.drain()
            self.table.rebuild(self.model.newest(MAX_ROWS, pred), follow=self.follow)
        elif not self.paused:
            changes = self.model.drain()
            if changes and pred is not None:
                changes = narrow(changes, pred, self.table.shown)
            if changes:
                newest = self.model.newest(MAX_ROWS, pred) if changes.reset else None
                self.table.apply(changes, newest, follow=self.follow)
        status = self.feed.status
        self.store_warning.show(self.feed.store_health)
        self.status_bar.show(
            StatusView.build(
                status,
                self.model.totals,
                shown=self.table.row_count,
                total=len(self.model),
                follow=self.follow,
                paused=self.paused,
                paused_new=self.model.new_since_drain if self.paused else 0,
                filter=self.filter_text,
                sort="" if self.table.sort_column == "time" and not self.table.sort_flipped
                else self.table.sort_label,
                marked=len(self.table.marks),
                marked_only=self.marked_only,
            )
        )
        self._show_empty(status)

    def _show_empty(self, status: FeedStatus) -> None:
        """A hint in place of an empty table: how to send traffic, or why nothing can arrive."""
        self.empty.display = self.table.row_count == 0 and not self.filter_bar.display
        if not self.empty.display:
            return
        if status.state is FeedState.CONNECTED and len(self.model) and (self.filter or self.marked_only):
            what = "marked requests" if self.marked_only and not self.filter else "requests"
            text = f"No {what} match{' ' + self.filter_text if self.filter else ''}. Escape clears the filter."
        elif status.state is FeedState.CONNECTED:
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

    def action_open_filter(self) -> None:
        self.filter_bar.open(self.filter_text)

    def action_clear_filter(self) -> None:
        if self.filter_bar.display:
            self.filter_bar.close()
            self.table.focus()
        if self.filter is not None:
            self.set_filter("")

    def set_filter(self, text: str) -> None:
        """Apply `text` as the filter; raises `FilterError` and keeps the old one if it is bad."""
        new = filters.parse(text)
        self.filter, self.filter_text = new, text.strip() if new is not None else ""
        self._stale = True
        self.tick()

    @on(Input.Submitted, "#filter-input")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            self.set_filter(event.value)
        except filters.FilterError as exc:
            self.filter_bar.show_error(exc)
            return
        self.filter_bar.close()
        self.table.focus()

    @on(FilterBar.Cleared)
    def _filter_cleared(self, event: FilterBar.Cleared) -> None:
        event.stop()
        self.action_clear_filter()

    def action_cycle_sort(self) -> None:
        i = SORT_COLUMNS.index(self.table.sort_column)
        self.table.set_sort(SORT_COLUMNS[(i + 1) % len(SORT_COLUMNS)], self.table.sort_flipped)
        self.tick()

    def action_reverse_sort(self) -> None:
        self.table.set_sort(self.table.sort_column, not self.table.sort_flipped)
        self.tick()

    def action_toggle_mark(self) -> None:
        rid = self.table.selected_id()
        if rid is None:
            self.app.bell()
            return
        marked = self.table.toggle_mark(rid)
        if self.marked_only and not marked:
            self._stale = True
        elif not self.marked_only:
            self.table.move_cursor(row=self.table.cursor_row + 1)  # mitmproxy: mark, then next
        self.tick()

    def action_marked_only(self) -> None:
        self.marked_only = not self.marked_only
        self._stale = True
        self.tick()

    @on(TrafficTable.Selected)
    def _clicked(self, event: TrafficTable.Selected) -> None:
        # Mouse click on the highlighted row (enter is handled by the screen's binding).
        event.stop()
        self.action_open_detail()

    @on(TrafficTable.Highlighted)
    def _moved(self, event: TrafficTable.Highlighted) -> None:
        # The user moving off the newest row ends follow mode (mitmproxy, htop behave the same).
        if self.follow and event.cursor_row != 0:
            self.follow = False
            self.tick()
