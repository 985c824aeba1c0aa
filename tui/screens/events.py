"""Event log (`E`): the sidecar's own notices — missing keys, failovers, upstream errors, breakers, budget
alerts, pause/resume — newest first, coloured by level, with the highlighted one's full text underneath.

It draws from the app's `NoticeStore` (fed by the live stream and the `/_sidecar/notices` catch-up), so it
opens instantly and shows what happened before it was opened. A 4 Hz tick redraws the newest `MAX_ROWS`
matching notices only when the store's version or the level filter changed.
"""

from __future__ import annotations

from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.notices import Notice, NoticeStore

TICK_S = 0.25
MAX_ROWS = 250
"""Newest matching notices drawn: a DataTable rebuild costs ~0.1-0.2 ms a row, and the level filters reach
further back when needed."""
MAX_CELL = 160
"""Characters of a message shown in its row; the panel below shows all of it."""
LEVEL_VARS = {"critical": "text-error", "error": "text-error", "warning": "text-warning", "info": "text-primary"}
"""Theme variables per level; a level not listed (debug) is drawn dim."""
FILTERS = {"debug": "all levels", "warning": "warnings and errors", "error": "errors only"}
EMPTY = ("No notices yet. Missing keys, failovers, upstream errors, breakers and budget alerts "
         "appear here as the sidecar meets them.")


class EventsTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="events.down", show=False),
        Binding("k", "cursor_up", "Up", id="events.up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="events-table", cursor_type="row")

    def on_mount(self) -> None:
        for key, label in (("time", "time"), ("level", "level"), ("source", "source"), ("count", "×"),
                           ("message", "message")):
            self.add_column(Text(label, justify="right" if key == "count" else "left"), key=key)

    def show(self, notices: list[Notice]) -> None:
        """Redraw with `notices` (newest first), keeping the cursor on the notice it was on, or on the
        newest when it was at the top."""
        selected = self.selected_id() if self.cursor_row > 0 else None
        colours = {level: _colour(self.app.theme_variables, var) for level, var in LEVEL_VARS.items()}
        self.clear()
        for n in notices:
            colour = colours.get(n.level, "dim" if n.level == "debug" else colours["warning"])
            message = n.message if len(n.message) <= MAX_CELL else n.message[: MAX_CELL - 1] + "…"
            self.add_row(
                Text(n.local_time(), style="dim"),
                Text(n.level, style=f"bold {colour}" if n.rank >= 3 else colour),
                Text(n.source + (f"/{n.provider}" if n.provider else ""), no_wrap=True),
                Text(f"{n.count}" if n.count > 1 else "", justify="right"),
                Text(message.replace("\n", " "), no_wrap=True),
                key=n.id,
            )
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def _colour(theme: dict[str, str], var: str) -> str:
    """A theme colour Rich can parse; some themes define text colours as "auto 60%", which only Textual reads."""
    value = theme.get(var, "")
    try:
        Style.parse(value)
    except StyleSyntaxError:
        return ""
    return value


class EventsScreen(Screen[None]):
    """Newest first; `w` keeps warnings and errors, `e` errors only, `escape` goes back."""

    DEFAULT_CSS = """
    #events-status { height: 1; padding: 0 1; background: $panel; }
    #events-table { height: 1fr; background: $background; }
    #events-detail { height: auto; max-height: 8; padding: 0 1; background: $surface; color: $text; }
    """

    BINDINGS = [
        Binding("escape", "back", "Back", id="events.back"),
        Binding("w", "level('warning')", "Warnings+", id="events.warnings",
                tooltip="Show warnings and errors only; again for every level."),
        Binding("e", "level('error')", "Errors", id="events.errors",
                tooltip="Show errors only; again for every level."),
    ]  # fmt: skip

    def __init__(self, store: NoticeStore) -> None:
        super().__init__()
        self.store = store
        self.min_level = "debug"
        self._drawn: tuple[int, str] | None = None
        self.shown: list[Notice] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="events-status")
        yield EventsTable()
        yield Static("", id="events-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(EventsTable).focus()
        self.refresh_log()
        self.set_interval(TICK_S, self.refresh_log, name="events-tick")

    def refresh_log(self) -> None:
        """Redraw if the store or the filter changed since the last draw."""
        key = (self.store.version, self.min_level)
        if key == self._drawn:
            return
        self._drawn = key
        matching = self.store.newest(self.min_level)
        self.shown = matching[:MAX_ROWS]
        table = self.query_one(EventsTable)
        table.show(self.shown)
        total = len(self.store)
        parts: list[str | tuple[str, str]] = [(f"{total} notice{'s' if total != 1 else ''}", "bold")]
        if self.min_level != "debug":
            parts += [("  │  ", "dim"), (f"{len(matching)} {FILTERS[self.min_level]}", "$text-accent")]
        if len(matching) > len(self.shown):
            parts += [("  │  ", "dim"), (f"showing the newest {len(self.shown)}", "dim")]
        parts.append(("  │  newest first", "dim"))
        self.query_one("#events-status", Static).update(Content.assemble(*parts))
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#events-detail", Static)
        rid = self.query_one(EventsTable).selected_id()
        notice = next((n for n in self.shown if n.id == rid), None)
        if notice is None:
            text = EMPTY if not len(self.store) else f"No notices at {FILTERS[self.min_level]}; press it again."
            detail.update(Content(text))
            return
        head = f"{notice.ts}  {notice.level}  {notice.source}  {notice.kind}"
        if notice.count > 1:
            head += f"  ×{notice.count}" + (f" (last {notice.last_ts})" if notice.last_ts else "")
        detail.update(Content.assemble((head, "dim"), "\n", notice.message))  # plain: messages may hold [brackets]

    def action_level(self, level: str) -> None:
        self.min_level = "debug" if self.min_level == level else level
        self.refresh_log()

    def action_back(self) -> None:
        self.dismiss()

    @on(DataTable.RowHighlighted)
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()
