"""Latency: p50/p95 TTFT and total latency, tokens/s, volume and errors per provider+model over a
window, with a trend sparkline per row and every figure plotted for the row under the cursor.

Figures come from `/_sidecar/latency` (the sidecar's request log, so history survives TUI and proxy
restarts), fetched on open, on a window switch, on `r`, and every `REFRESH_S[window]` while shown.
Columns are sized from the terminal width: at 80 columns the table and a 7-line plot panel both fit.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.client import ControlClient, describe_error
from tui.format import fmt_ms
from tui.latency import (METRICS, REFRESH_S, WINDOWS, Metric, Report, Series, axis, fmt_count, fmt_error_rate,
                         fmt_rate, fmt_span, peak, sparkline)

TICK_S = 1.0
"""How often the screen checks whether its window is due for a refresh (a cheap clock comparison)."""
NUMERIC = (
    ("requests", "req", 5), ("errors", "err", 4), ("ttft_p50", "TTFT\np50", 5), ("ttft_p95", "TTFT\np95", 5),
    ("latency_p50", "total\np50", 5), ("latency_p95", "total\np95", 5), ("tokens_per_s", "tok/s\np50", 5),
)  # fmt: skip
"""(key, two-line header, cells): every figure fits 5 cells (`fmt_ms` gives 850ms, 1.24s, 2m05s)."""
PAD = 2
"""DataTable's cell padding, one cell each side of every column."""
LABEL = 10
"""Label column of the plot panel: `total p95 `."""
PEAK = 7
"""Peak column of the plot panel: ` 21.5s`; 10 + 60 buckets + 7 fit the 78 cells of an 80-column terminal."""
PLOTTED = tuple(next(m for m in METRICS if m.key == k) for k in (
    "requests", "ttft_ms_p50", "ttft_ms_p95", "latency_ms_p50", "latency_ms_p95", "tokens_per_s_p50", "errors"))
"""The plot panel's lines, top to bottom: volume, then latency as a request lives it, speed, errors."""
Part = str | tuple[str, str]


def column_widths(width: int, buckets: int) -> tuple[int, int]:
    """(name, trend) cells for a terminal `width`: the numeric columns are fixed, the rest is shared,
    the trend getting at most one cell per bucket (a sparkline is never stretched) and at least 10."""
    fixed = sum(w + PAD for _, _, w in NUMERIC) + 2 * PAD + 2  # + room for a vertical scrollbar
    spare = max(width - fixed, 0)
    trend = max(10, min(spare - 16, 30, buckets or 30))
    return max(spare - trend, 12), trend


class LatencyTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="latency.down", show=False),
        Binding("k", "cursor_up", "Up", id="latency.up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="latency-table", cursor_type="row", header_height=2, zebra_stripes=True)
        self.widths = (0, 0)
        self.keep: str | None = None
        """The row under the cursor when the columns were rebuilt (that clears the rows too)."""

    def build_columns(self, name_w: int, trend_w: int, metric: Metric) -> None:
        """(Re)create the columns; the trend header names the figure the sparklines plot."""
        self.widths = (name_w, trend_w)
        self.keep = self.selected_key() or self.keep
        self.clear(columns=True)
        self.add_column(Text("provider/model"), key="name", width=name_w)
        for key, label, w in NUMERIC:
            self.add_column(Text(label, justify="right"), key=key, width=w)
        self.add_column(Text(f"trend\n{metric.label}"), key="trend", width=trend_w)

    def show(self, rows: list[Series], metric: Metric, buckets: int) -> None:
        selected = self.selected_key() if self.row_count else self.keep
        self.clear()
        for s in rows:
            r = lambda v, style="": Text(v, justify="right", no_wrap=True, style=style)  # noqa: E731
            trend = sparkline(s.column(metric.key, buckets), self.widths[1], metric.how)
            self.add_row(
                Text(s.name, no_wrap=True, overflow="ellipsis", style="bold" if s.total else ""),
                r(fmt_count(s.requests)), r(fmt_error_rate(s.errors, s.requests), "bold" if s.errors else ""),
                r(fmt_ms(s.ttft_p50)), r(fmt_ms(s.ttft_p95)), r(fmt_ms(s.latency_p50)), r(fmt_ms(s.latency_p95)),
                r(fmt_rate(s.tokens_per_s)), Text(trend, no_wrap=True),
                key=s.key,
            )  # fmt: skip
        keys = [s.key for s in rows]
        if selected in keys:
            self.move_cursor(row=keys.index(selected))

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def plot_cells(width: int, buckets: int) -> int:
    """Sparkline cells for a panel `width`: one per bucket when they fit, else the fewest equal runs
    of buckets that do (uneven runs would make a steady rate look bumpy)."""
    room = max(width - LABEL - PEAK, 10)
    if buckets <= room:
        return buckets
    per_cell = -(-buckets // room)
    return -(-buckets // per_cell)


def plot(s: Series, report: Report, width: int) -> Content:
    """Every figure of one row as a sparkline over the window, its peak on the right, a time axis below."""
    n = report.buckets
    cells = plot_cells(width, n)
    title = f"{s.name} · last {report.window} · {fmt_span(report.bucket_s)} buckets"
    if cells < n:
        title += f", {-(-n // cells)} per cell"
    parts: list[Part] = [(title, "bold $text-primary"), ("  (peak on the right)", "dim"), "\n"]
    for m in PLOTTED:
        values = s.column(m.key, n)
        top = peak(values)
        style = "$text-error" if m.key == "errors" else "$text-accent"
        parts += [(f"{m.label:<{LABEL}}", "dim"), (sparkline(values, cells, m.how), style)]
        parts += [(f" {m.fmt(top) if top else '-':>{PEAK - 1}}", "dim"), "\n"]
    parts.append((" " * LABEL + axis(report.start, report.end, cells), "dim"))
    return Content.assemble(*parts)


class LatencyScreen(Screen[None]):
    """`1`-`4` or `w` pick the window; `m` picks what the trend column plots; the panel below the
    table plots every figure of the row under the cursor."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="latency.back"),
        Binding("w", "cycle_window", "Window", id="latency.window",
                tooltip="Cycle the window: 15 minutes, 1 hour, 6 hours, 24 hours."),
        Binding("1", "window('15m')", "15m", id="latency.window_15m", show=False,
                tooltip="Last 15 minutes in 30 s buckets."),
        Binding("2", "window('1h')", "1h", id="latency.window_1h", show=False,
                tooltip="Last hour in 1 minute buckets."),
        Binding("3", "window('6h')", "6h", id="latency.window_6h", show=False,
                tooltip="Last 6 hours in 10 minute buckets."),
        Binding("4", "window('24h')", "24h", id="latency.window_24h", show=False,
                tooltip="Last 24 hours in 30 minute buckets."),
        Binding("m", "cycle_metric", "Trend", id="latency.metric",
                tooltip="What the trend column plots: total p95/p50, TTFT p95/p50, tokens/s, requests, errors."),
        Binding("r", "refresh", "Refresh", id="latency.refresh", tooltip="Fetch the figures again."),
    ]  # fmt: skip

    def __init__(self, client: ControlClient, *, window: str = "1h") -> None:
        super().__init__()
        self.client = client
        self.window = window
        self.metric = 0
        """Index into `METRICS` of what the trend column plots."""
        self.report: Report | None = None
        self.loads = 0
        self.loaded_at = 0.0
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="latency-status")
        yield LatencyTable()
        yield Static("", id="latency-plot")
        yield Footer()

    def on_mount(self) -> None:
        self._layout(self.app.size.width)
        self.query_one(LatencyTable).focus()
        self.action_refresh()
        self.set_interval(TICK_S, self._tick, name="latency-refresh")

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width)
        self._show()

    def _layout(self, width: int) -> None:
        table = self.query_one(LatencyTable)
        n = self.report.buckets if self.report else 0
        name_w, trend_w = column_widths(width, n)
        if (name_w, trend_w) != table.widths or not table.columns:
            table.build_columns(name_w, trend_w, METRICS[self.metric])

    def _tick(self) -> None:
        if time.monotonic() - self.loaded_at >= REFRESH_S.get(self.window, 5.0):
            self.action_refresh()

    def action_refresh(self) -> None:
        self.loaded_at = time.monotonic()  # due again a full period from now, even if this fails
        self.run_worker(self._load(self.window), exclusive=True, group="latency")

    async def _load(self, window: str) -> None:
        try:
            data = await self.client.get_json("/_sidecar/latency", {"window": window})
        except Exception as exc:  # shown, not raised: an offline sidecar is a normal state
            reason = describe_error(exc)
            if "HTTP 404" in reason:
                reason = "this sidecar has no /_sidecar/latency (an older version?)"
            self.error = f"could not load latency: {reason}"
            self._show_status()
            return
        if window != self.window:
            return  # switched while this was in flight; the new window's load follows
        self.error = None
        self.report = Report.parse(data, window)
        self.loads += 1
        self._layout(self.size.width or self.app.size.width)
        self._show()

    def _show_status(self) -> None:
        status = self.query_one("#latency-status", Static)
        if self.error:
            status.update(Content.assemble((self.error, "$text-error")))
            return
        r = self.report
        if r is None or r.window != self.window:
            status.update(Content.assemble((f"loading last {self.window}…", "dim")))
            return
        t = r.totals
        parts: list[Part] = [(f"last {r.window}", "bold"), (f" · {r.buckets} × {fmt_span(r.bucket_s)}", "dim"),
                             f" · {t.requests:,} requests"]  # fmt: skip
        if t.errors:
            parts.append((f" · {t.errors:,} errors", "$text-error"))
        parts.append((f" · trend: {METRICS[self.metric].label}", "dim"))
        status.update(Content.assemble(*parts))

    def _show(self) -> None:
        self._show_status()
        r = self.report
        if r is None:
            return
        table = self.query_one(LatencyTable)
        table.show(r.rows, METRICS[self.metric], r.buckets)
        self._show_plot()

    def _show_plot(self) -> None:
        panel = self.query_one("#latency-plot", Static)
        r = self.report
        if r is None:
            return
        rows = {s.key: s for s in r.rows}
        selected = rows.get(self.query_one(LatencyTable).selected_key() or "")
        if selected is None:
            msg = f"no requests in the last {r.window}: traffic through the sidecar shows up here"
            panel.update(Content.assemble((msg, "dim")))
            return
        panel.update(plot(selected, r, (self.size.width or self.app.size.width) - 2))

    @on(DataTable.RowHighlighted)
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_plot()

    def action_window(self, window: str) -> None:
        if window not in WINDOWS or window == self.window:
            return
        self.window = window
        self._show_status()
        self.action_refresh()

    def action_cycle_window(self) -> None:
        self.action_window(WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)])

    def action_cycle_metric(self) -> None:
        self.metric = (self.metric + 1) % len(METRICS)
        table = self.query_one(LatencyTable)
        table.build_columns(*table.widths, METRICS[self.metric])
        self._show()

    @staticmethod
    def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
        """Extra help for `?`: what each column means (the sidecar's definitions)."""
        return [("Latency columns", [
            ("TTFT", "time to the first byte of a streamed answer; p50 / p95 over successful streams"),
            ("total", "arrival to last byte, successful requests only (a fast 429 is not a fast answer)"),
            ("tok/s", "median over streams of output_tokens / ((total - TTFT) / 1000)"),
            ("err", "share of requests with no status, a status >= 400, or a stream that broke"),
            ("trend", "one cell per bucket (or the worst of a run of buckets); blank = no data"),
        ])]  # fmt: skip

    def action_back(self) -> None:
        self.dismiss()
