"""The traffic list: a Line-API scroll view that draws only the rows on screen.

Textual's DataTable measures and re-lays-out every row on changes: at 5k rows each batch of new
requests cost 0.3–0.7 s of event loop (bench/tui_keypress.py), and the proxy shares that loop in
`sidecar up`. Here the rows live in two sorted lists (keys and ids, ascending; shown descending)
kept by bisection, and `render_line` builds the few visible lines from them, cached per row, so a
batch costs O(changed rows · log n) plus one repaint of ~40 lines, whatever the history size.
(mitmproxy's list walker and Toolong's `render_line` + LRU cache are the same idea; style.md A.3.)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from rich.segment import Segment
from rich.errors import StyleSyntaxError
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui import format as fmt
from tui.model import Changes
from tui.row import RequestRow
from tui.view import sort_key

MAX_ROWS = 10_000
"""Rows kept in the widget: the whole default ring. Drawing cost does not grow with it."""

# (key, label, width); None = the flexible route column, which takes what the others leave.
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("time", "time", 8),
    ("route", "format→provider/model", None),
    ("status", "status", 6),
    ("attempts", "try", 4),
    ("ttft", "ttft", 7),
    ("latency", "latency", 8),
    ("tokens_in", "in", 7),
    ("tokens_out", "out", 7),
    ("cost", "cost", 10),
    ("stream", "", 3),
)
_RIGHT = {"ttft", "latency", "tokens_in", "tokens_out", "cost", "attempts"}
DROP_ORDER = ("stream", "tokens_in", "attempts", "ttft")
"""Columns given up, in this order, when the terminal is too narrow for the route to get `ROUTE_MIN`.
Without the attempts column a failed-over request shows `↻` beside its status instead."""
ROUTE_MIN = 24

SORT_HEADERS = {"time": ("time",), "latency": ("latency",), "ttft": ("ttft",), "cost": ("cost",),
                "tokens": ("tokens_in", "tokens_out"), "status": ("status",), "attempts": ("attempts",)}  # fmt: skip
"""Which column headers carry the sort arrow for each sort column of `tui.view.SORT_COLUMNS`."""


class TrafficTable(ScrollView, can_focus=True):
    """Rows keyed by request id, newest (or largest) first; the cursor is a row index."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", id="traffic.up", show=False),
        Binding("down,j", "cursor_down", "Down", id="traffic.down", show=False),
        Binding("pageup", "page_up_rows", "Page up", id="traffic.page_up", show=False),
        Binding("pagedown", "page_down_rows", "Page down", id="traffic.page_down", show=False),
        Binding("home,g", "first_row", "Newest", id="traffic.top", show=False),
        Binding("end,G", "last_row", "Oldest", id="traffic.bottom", show=False),
    ]

    COMPONENT_CLASSES = {"traffic-table--header", "traffic-table--cursor"}
    DEFAULT_CSS = """
    TrafficTable { height: 1fr; background: $surface; }
    TrafficTable > .traffic-table--header { text-style: bold; color: $text-accent; background: $panel; }
    TrafficTable > .traffic-table--cursor { background: $block-cursor-blurred-background; }
    TrafficTable:focus > .traffic-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
    }
    """

    cursor_row: reactive[int] = reactive(0, always_update=False, repaint=False)

    class Highlighted(Message):
        """The cursor moved to `cursor_row` (by key, mouse or code)."""

        def __init__(self, cursor_row: int) -> None:
            super().__init__()
            self.cursor_row = cursor_row

    class Selected(Message):
        """The row under the cursor was clicked: open it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: dict[str, RequestRow] = {}
        """The model rows currently in the widget, by id."""
        self.marks: set[str] = set()
        """Ids of marked requests (mitmproxy `m`); drawn with a marker before the route."""
        self.sort_column = "time"
        self.sort_flipped = False
        self._keys: list[tuple[Any, ...]] = []
        """Sort keys, ascending; display order is the reverse."""
        self._ids: list[str] = []
        """Request ids in the order of `_keys`."""
        self._key_of: dict[str, tuple[Any, ...]] = {}
        self._lines: LRUCache[tuple[str, int, bool], Strip] = LRUCache(1024)
        self._colors: dict[str, Style] = {}

    # -- public surface the screen uses -----------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._ids)

    @property
    def rows(self) -> dict[str, RequestRow]:
        return self.shown

    @property
    def ordered_ids(self) -> list[str]:
        """Ids top to bottom, as drawn."""
        return self._ids[::-1]

    def id_at(self, index: int) -> str | None:
        n = len(self._ids)
        return self._ids[n - 1 - index] if 0 <= index < n else None

    def index_of(self, rid: str) -> int:
        """Display index of `rid` (KeyError if not shown)."""
        return len(self._ids) - 1 - self._position(rid)

    def selected_id(self) -> str | None:
        """The request id under the cursor, if any."""
        return self.id_at(self.cursor_row)

    def header_labels(self) -> list[str]:
        return [self._label(key, label) for key, label, _ in COLUMNS]

    def cell_text(self, rid: str, column: str) -> str:
        """What `column` shows for `rid` (for tests and copy actions)."""
        return self._cells(self.shown[rid])[column][0]

    @property
    def sort_label(self) -> str:
        return f"{self.sort_column} {'▲' if self.sort_flipped else '▼'}"

    def set_sort(self, column: str, flipped: bool) -> None:
        """Order rows by `column` (see `tui.view.sort_key`), keeping the selected request selected."""
        anchor = self.selected_id()
        self.sort_column, self.sort_flipped = column, flipped
        self._reindex(list(self.shown.values()))
        if anchor is not None:
            self.move_cursor(row=self.index_of(anchor))
        self.refresh()

    def toggle_mark(self, rid: str) -> bool:
        """Mark or unmark `rid`; returns whether it is marked now."""
        marked = rid not in self.marks
        (self.marks.add if marked else self.marks.discard)(rid)
        self._invalidate(rid)
        return marked

    def apply(self, changes: Changes, newest: list[RequestRow] | None, *, follow: bool) -> None:
        """Apply one drained batch. `newest` (model.newest(MAX_ROWS)) is only needed on reset."""
        if changes.reset:
            self.rebuild(newest or [], follow=follow)
            return
        anchor, old_index = self.selected_id(), self.cursor_row
        for rid in changes.removed:
            if rid in self.shown:
                self._remove(rid)
        for row in changes.updated:
            if row.id in self.shown:
                self._remove(row.id)
                self._insert(row)
        for row in changes.added:
            if row.id in self.shown:
                self._remove(row.id)
            self._insert(row)
        while len(self.shown) > MAX_ROWS:
            oldest = min(self.shown.values(), key=lambda r: r.order)
            self._remove(oldest.id)
        self._changed(follow, anchor, old_index)

    def rebuild(self, rows: list[RequestRow], *, follow: bool) -> None:
        """Replace everything with `rows` (newest first, at most MAX_ROWS; shown in sort order)."""
        anchor = self.selected_id()
        self._reindex(rows[:MAX_ROWS])
        self._changed(follow, anchor, None)

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        self.cursor_row = max(0, min(row, len(self._ids) - 1))
        if scroll:
            self._scroll_to_cursor()

    # -- bookkeeping --------------------------------------------------------------------------------

    def _reindex(self, rows: list[RequestRow]) -> None:
        column, flipped = self.sort_column, self.sort_flipped
        keyed = sorted(((sort_key(r, column, flipped), r) for r in rows), key=lambda kr: kr[0])
        self._keys = [k for k, _ in keyed]
        self._ids = [r.id for _, r in keyed]
        self._key_of = {r.id: k for k, r in keyed}
        self.shown = {r.id: r for _, r in keyed}
        self._lines.clear()

    def _position(self, rid: str) -> int:
        return bisect_left(self._keys, self._key_of[rid])

    def _insert(self, row: RequestRow) -> None:
        key = sort_key(row, self.sort_column, self.sort_flipped)
        pos = bisect_left(self._keys, key)
        self._keys.insert(pos, key)
        self._ids.insert(pos, row.id)
        self._key_of[row.id] = key
        self.shown[row.id] = row
        self._invalidate(row.id)

    def _remove(self, rid: str) -> None:
        pos = self._position(rid)
        del self._keys[pos], self._ids[pos], self._key_of[rid], self.shown[rid]
        self._invalidate(rid)

    def _invalidate(self, rid: str) -> None:
        for selected in (False, True):
            self._lines.discard((rid, self._width, selected))
        self.refresh()

    def _changed(self, follow: bool, anchor: str | None, old_index: int | None) -> None:
        """Follow mode pins the cursor to the newest row; otherwise keep the same request under
        the cursor *and* on the same screen line, so rows arriving above don't yank the view."""
        self.virtual_size = Size(self._width, len(self._ids) + 1)
        if follow or anchor is None or anchor not in self.shown:
            if follow:
                self.cursor_row = 0
                self.scroll_to(y=0, animate=False, immediate=True)
            elif self.cursor_row >= len(self._ids):
                self.move_cursor(row=len(self._ids) - 1)
            self.refresh()
            return
        new_index = self.index_of(anchor)
        if old_index is not None and new_index != old_index:
            self.scroll_to(y=self.scroll_y + (new_index - old_index), animate=False, immediate=True)
        self.move_cursor(row=new_index, scroll=old_index is None)
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._load_colors()
        self.watch(self.app, "theme", self._on_theme, init=False)

    def on_focus(self) -> None:
        self._lines.clear()  # the cursor row's colour depends on focus
        self.refresh()

    def on_blur(self) -> None:
        self._lines.clear()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self._width, len(self._ids) + 1)
        self._lines.clear()

    def _load_colors(self) -> None:
        tv = self.app.theme_variables

        def colour(name: str) -> Style:
            value = tv.get(f"text-{name}", tv.get(name, ""))
            try:
                return Style.parse(value) if value else Style()
            except StyleSyntaxError:  # a theme may use values such as "auto 60%"
                return Style()

        self._colors = {k: colour(k) for k in ("success", "warning", "error", "primary", "accent")}

    def _on_theme(self) -> None:
        self._load_colors()
        self._lines.clear()
        self.refresh()

    def watch_cursor_row(self, old: int, new: int) -> None:
        for index in (old, new):
            rid = self.id_at(index)
            if rid is not None:
                self._invalidate(rid)
        self.post_message(self.Highlighted(new))

    @property
    def _width(self) -> int:
        """Cells a line may use: the widget minus its vertical scrollbar, once rows overflow."""
        return self.scrollable_content_region.width

    def _layout(self, width: int) -> list[tuple[str, str, int]]:
        """Columns that fit `width` with their widths; the route takes the rest."""
        dropped: set[str] = set()
        fixed = [c for c in COLUMNS if c[2] is not None]
        for name in DROP_ORDER:
            used = sum(w + 1 for k, _, w in fixed if k not in dropped)  # type: ignore[operator]
            if width - used >= ROUTE_MIN:
                break
            dropped.add(name)
        used = sum(w + 1 for k, _, w in fixed if k not in dropped)  # type: ignore[operator]
        route = max(8, width - used - 1)
        return [(k, label, route if w is None else w) for k, label, w in COLUMNS if k not in dropped]

    def _label(self, key: str, label: str) -> str:
        if key in SORT_HEADERS[self.sort_column]:
            label += "▲" if self.sort_flipped else "▼"
        return label

    def _cells(self, row: RequestRow) -> dict[str, tuple[str, Style]]:
        level = fmt.status_level(row)
        status_style = self._colors.get(level, Style())
        if level == "error":
            status_style += Style(bold=True)
        attempts = fmt.fmt_attempts(row)
        dim = Style(dim=True)

        def timing(ms: float | None) -> tuple[str, Style]:
            return (fmt.PENDING, dim) if row.pending else (fmt.fmt_ms(ms), Style())

        route = fmt.fmt_route(row)
        return {
            "time": (fmt.fmt_time(row), Style()),
            "route": (("● " + route) if row.id in self.marks else route,
                      self._colors["accent"] if row.id in self.marks else Style()),
            "status": (fmt.fmt_status(row), status_style),
            "attempts": (attempts, self._colors["warning"] if "↻" in attempts else Style()),
            "ttft": timing(row.ttft_ms),
            "latency": timing(row.latency_ms),
            "tokens_in": (fmt.fmt_tokens_in(row), Style()),
            "tokens_out": (fmt.fmt_tokens_out(row), Style()),
            "cost": (fmt.row_cost(row), dim if row.cost_usd is None else Style()),
            "stream": ("sse" if row.stream else "", dim),
        }

    @staticmethod
    def _fit(text: str, width: int, right: bool) -> str:
        if len(text) > width:
            return text[: max(width - 1, 0)] + "…" if width > 1 else text[:width]
        return text.rjust(width) if right else text.ljust(width)

    def _line(self, segments: Iterator[tuple[str, Style]], width: int, base: Style) -> Strip:
        strip = Strip([Segment(text, base + style) for text, style in segments])
        return strip.extend_cell_length(width, base).crop(0, width)

    def render_line(self, y: int) -> Strip:
        width = self._width
        layout = self._layout(width)
        if y == 0:
            header = self.get_component_rich_style("traffic-table--header")
            return self._line(((" " + self._fit(self._label(k, label), w, k in _RIGHT), Style())
                               for k, label, w in layout), width, header)
        index = self.scroll_offset.y + y - 1
        rid = self.id_at(index)
        if rid is None:
            return Strip.blank(width, self.rich_style)
        selected = index == self.cursor_row
        cache_key = (rid, width, selected)
        cached = self._lines.get(cache_key)
        if cached is not None:
            return cached
        base = self.rich_style
        if selected:
            base += self.get_component_rich_style("traffic-table--cursor")
        cells = self._cells(self.shown[rid])
        if "↻" in cells["attempts"][0] and not any(k == "attempts" for k, _, _ in layout):
            cells["status"] = (cells["status"][0] + "↻", cells["status"][1] + self._colors["warning"])
        strip = self._line(((" " + self._fit(cells[k][0], w, k in _RIGHT), cells[k][1]) for k, _, w in layout),
                           width, base)
        self._lines[cache_key] = strip
        return strip

    # -- movement -----------------------------------------------------------------------------------

    def _page(self) -> int:
        return max(1, self.size.height - 2)

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.size.height - 1)
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up_rows(self) -> None:
        self.move_cursor(row=self.cursor_row - self._page())

    def action_page_down_rows(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page())

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=len(self._ids) - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            return
        index = self.scroll_offset.y + event.y - 1
        if self.id_at(index) is None:
            return
        if index == self.cursor_row:
            self.post_message(self.Selected())
        else:
            self.move_cursor(row=index)
