"""The traffic list: a DataTable fed in batches from `TrafficModel.drain()`, newest row first.

Kept behind three methods (`apply`, `rebuild`, `selected_id`) so a Line-API ScrollView can
replace the DataTable later if profiling demands it (style.md A.3).
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist

from tui import format as fmt
from tui.model import Changes
from tui.row import RequestRow
from tui.view import sort_key

MAX_ROWS = 5_000
"""Rows kept in the widget. DataTable measures rows on the event loop: ~1 s first paint at 10k
rows on 2 slow cores (testing-recipes §3), so the table shows the newest 5k of the 10k ring."""
SLACK = 1_000
"""Trim only once this many rows over the cap. `remove_row` is O(n) per call (~3 ms at 5.5k rows),
a rebuild of 5k rows ~0.7 s (cell measuring), so rebuild in one go, rarely: <1 ms per new row."""
MAX_PATCH_REMOVALS = 20
"""More evictions than this in one batch are cheaper as a rebuild than as O(n) removals."""

# (key, label, width); None = auto width (the route column, which varies the most).
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("time", "time", 8),
    ("route", "format→provider/model", None),
    ("status", "status", 6),
    ("attempts", "try", 4),
    ("ttft", "ttft", 7),
    ("latency", "latency", 8),
    ("tokens_in", "in", 7),
    ("tokens_out", "out", 7),
    ("cost", "cost", 11),
    ("stream", "", 3),
)
_RIGHT = {"ttft", "latency", "tokens_in", "tokens_out", "cost", "attempts"}


class _RowText(Text):
    """The time cell, carrying its `RequestRow` so `DataTable.sort` (which only sees cell values,
    not row keys) can order rows by any field of the row, exactly, even within one second."""

    __slots__ = ("row",)

    def __init__(self, text: str, row: RequestRow) -> None:
        super().__init__(text, no_wrap=True, end="")
        self.row = row


SORT_HEADERS = {"time": ("time",), "latency": ("latency",), "ttft": ("ttft",), "cost": ("cost",),
                "tokens": ("tokens_in", "tokens_out")}  # fmt: skip
"""Which column headers carry the sort arrow for each sort column of `tui.view.SORT_COLUMNS`."""


class TrafficTable(DataTable[Text]):
    """Rows keyed by request id; pending rows are patched in place with `update_cell`."""

    BINDINGS = [
        # vi-style aliases next to DataTable's own arrows/pgup/pgdn/home/end (mitmproxy, k9s).
        Binding("j", "cursor_down", "Down", id="traffic.down", show=False),
        Binding("k", "cursor_up", "Up", id="traffic.up", show=False),
        Binding("g", "scroll_top", "Newest", id="traffic.top", show=False),
        Binding("G", "scroll_bottom", "Oldest", id="traffic.bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.shown: dict[str, RequestRow] = {}
        """The model rows currently in the widget, by id (also used to recolour on theme change)."""
        self.marks: set[str] = set()
        """Ids of marked requests (mitmproxy `m`); drawn with a marker before the route."""
        self.sort_column = "time"
        self.sort_flipped = False
        self._colors: dict[str, str] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(self._header(key, label), key=key, width=width)
        self._load_colors()
        self.watch(self.app, "theme", self._on_theme, init=False)

    def _header(self, key: str, label: str) -> Text:
        active = key in SORT_HEADERS[self.sort_column]
        if active:
            label += "▲" if self.sort_flipped else "▼"
        return Text(label, justify="right" if key in _RIGHT else "left", style="bold" if active else "")

    def set_sort(self, column: str, flipped: bool) -> None:
        """Order rows by `column` (see `tui.view.sort_key`) and put the arrow on its header."""
        self.sort_column, self.sort_flipped = column, flipped
        for key, label, _ in COLUMNS:
            self.columns[ColumnKey(key)].label = self._header(key, label)
        self._clear_caches()
        anchor = self.selected_id()
        self._sort()
        if anchor is not None:
            self.move_cursor(row=self.get_row_index(anchor))
        self.refresh()

    @property
    def sort_label(self) -> str:
        return f"{self.sort_column} {'▲' if self.sort_flipped else '▼'}"

    def _sort(self) -> None:
        column, flipped = self.sort_column, self.sort_flipped
        self.sort("time", key=lambda cell: sort_key(cell.row, column, flipped), reverse=True)

    def toggle_mark(self, rid: str) -> bool:
        """Mark or unmark `rid`; returns whether it is marked now."""
        marked = rid not in self.marks
        (self.marks.add if marked else self.marks.discard)(rid)
        if rid in self.shown:
            self._patch(self.shown[rid])
        return marked

    def _load_colors(self) -> None:
        tv = self.app.theme_variables
        self._colors = {
            "success": tv.get("text-success", tv.get("success", "")),
            "warning": tv.get("text-warning", tv.get("warning", "")),
            "error": tv.get("text-error", tv.get("error", "")),
            "pending": tv.get("text-primary", tv.get("primary", "")),
            "mark": tv.get("text-accent", tv.get("accent", "")),
        }

    def _on_theme(self) -> None:
        # Cells are Rich Text with resolved colours, so a theme switch has to re-render them.
        self._load_colors()
        for row in self.shown.values():
            self._patch(row)

    def cells(self, row: RequestRow) -> list[Text]:
        """One Text per column, in COLUMNS order."""
        level = fmt.status_level(row)
        status = Text(fmt.fmt_status(row), style=self._colors.get(level, ""), no_wrap=True)
        if level == "error":
            status.stylize("bold")
        attempts = fmt.fmt_attempts(row)

        def right(s: str, style: str = "") -> Text:
            return Text(s, style=style, justify="right", no_wrap=True, end="")

        def timing(ms: float | None) -> Text:
            return right(fmt.PENDING, "dim") if row.pending else right(fmt.fmt_ms(ms))

        return [
            _RowText(fmt.fmt_time(row), row),
            self._route(row),
            status,
            right(attempts, self._colors["warning"] if "↻" in attempts else ""),
            timing(row.ttft_ms),
            timing(row.latency_ms),
            right(fmt.fmt_tokens_in(row)),
            right(fmt.fmt_tokens_out(row)),
            right(fmt.row_cost(row), "dim" if row.cost_usd is None else ""),
            Text("sse" if row.stream else "", style="dim", no_wrap=True, end=""),
        ]

    def _route(self, row: RequestRow) -> Text:
        route = Text(fmt.fmt_route(row), no_wrap=True, overflow="ellipsis", end="")
        if row.id in self.marks:
            mark = ("● ", f"bold {self._colors['mark']}")
            route = Text.assemble(mark, route, no_wrap=True, overflow="ellipsis", end="")
        return route

    def selected_id(self) -> str | None:
        """The request id under the cursor, if any."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except RowDoesNotExist:
            return None
        return key.value

    def apply(self, changes: Changes, newest: list[RequestRow] | None, *, follow: bool) -> None:
        """Apply one drained batch. `newest` (model.newest(MAX_ROWS)) is only needed on reset."""
        if changes.reset:
            self.rebuild(newest or [], follow=follow)
            return
        removed = [rid for rid in changes.removed if rid in self.shown]
        if len(removed) > MAX_PATCH_REMOVALS or len(changes.added) > MAX_ROWS:
            for rid in removed:
                del self.shown[rid]
            for row in changes.added:
                self.shown[row.id] = row
            self._rebuild_from_shown(follow)
            return
        anchor = self.selected_id()
        old_index = self.cursor_row
        for rid in removed:
            self.remove_row(rid)
            del self.shown[rid]
        for row in changes.updated:
            if row.id in self.shown:
                self._patch(row)
        if changes.added:
            for row in changes.added:
                self.shown[row.id] = row
                self.add_row(*self.cells(row), key=row.id)
            if len(self.shown) > MAX_ROWS + SLACK:
                self._rebuild_from_shown(follow, anchor=anchor)
                return
            self._sort()
            self._restore_cursor(follow, anchor, old_index)

    def rebuild(self, rows: list[RequestRow], *, follow: bool) -> None:
        """Replace everything with `rows` (newest first, at most MAX_ROWS; shown in sort order)."""
        anchor = self.selected_id()
        self.shown = {row.id: row for row in rows[:MAX_ROWS]}
        self._fill(follow, anchor)

    def _rebuild_from_shown(self, follow: bool, anchor: str | None = None) -> None:
        anchor = anchor or self.selected_id()
        rows = sorted(self.shown.values(), key=lambda r: r.order, reverse=True)[:MAX_ROWS]
        self.shown = {row.id: row for row in rows}
        self._fill(follow, anchor)

    def _fill(self, follow: bool, anchor: str | None) -> None:
        self.clear()
        column, flipped = self.sort_column, self.sort_flipped
        for row in sorted(self.shown.values(), key=lambda r: sort_key(r, column, flipped), reverse=True):
            self.add_row(*self.cells(row), key=row.id)
        self._restore_cursor(follow, anchor, None)

    def _patch(self, row: RequestRow) -> None:
        for (key, _, width), cell in zip(COLUMNS[1:], self.cells(row)[1:]):
            self.update_cell(row.id, key, cell, update_width=width is None)

    def _restore_cursor(self, follow: bool, anchor: str | None, old_index: int | None) -> None:
        """Follow mode pins the cursor to the newest row; otherwise keep the same request under
        the cursor *and* on the same screen line, so rows arriving above don't yank the view."""
        if follow or anchor is None or anchor not in self.shown:
            if follow:
                self.move_cursor(row=0)
                self.call_after_refresh(self.scroll_home, animate=False)
            return
        new_index = self.get_row_index(anchor)
        if new_index != self.cursor_row or old_index is None:
            self.move_cursor(row=new_index, scroll=old_index is None)
        if old_index is not None and new_index != old_index:
            # After the refresh: the new rows only count toward the virtual height once measured.
            y = self.scroll_y + (new_index - old_index)
            self.call_after_refresh(self.scroll_to, y=y, animate=False)
