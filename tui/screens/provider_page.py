"""One provider's page, as model-catalog sites show providers: six tabs over `GET /_sidecar/providers/{id}`.

Overview (adapter, base URL, key present), Models (the provider's own list), Pricing (catalog or override, per
meter), Limits (the latest rate-limit headers), Features (what the sidecar's codec can send) and Health
(breaker, error rate, latency). `1`-`6` or `tab`/`shift+tab` switch tabs and focus the tab's content, so `j`/`k`
scroll it at once. Refreshed every `REFRESH_S` while shown; `r` also re-fetches the model list.

Talking to an older sidecar without the endpoint, the page still shows Overview and Health from `/health` and
`/stats`, and says why the other tabs are empty.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from tui.client import ControlClient, describe_error
from tui.providers import (ProviderInfo, ProviderPage, feature_rows, health_rows, join, limit_rows,
                           limits_summary, model_rows, overview_rows, parse_page, price_rows, pricing_summary,
                           retry_after_text, ttft_rows)  # fmt: skip
from tui.spend import iso

REFRESH_S = 5.0
TABS = ("overview", "models", "pricing", "limits", "features", "health")
LEVEL_VARS = {"success": "text-success", "warning": "text-warning", "error": "text-error", "muted": "text-muted"}
LABEL_W = 21
Colours = dict[str, str]
"""Level name (success, warning, error, muted) → the current theme's colour."""


def _grid(rows: list[tuple[str, RenderableType]]) -> Table:
    """Label and value columns; a long value wraps under itself, not under the label (Content cannot indent)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=LABEL_W, style="dim", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def _value(value: str, level: str, colours: Colours) -> Text:
    return Text(value, style=colours.get(level, "") if level else "")


def _note(text: str, level: str, colours: Colours) -> Text:
    return Text(text, style=colours.get(level, "dim"))


def overview_content(page: ProviderPage, colours: Colours) -> RenderableType:
    grid = _grid([(label, _value(value, level, colours)) for label, value, level in overview_rows(page)])
    if not page.error:
        return grid
    warning = f"\nprovider page unavailable ({page.error}); showing /health and /stats only"
    return Group(grid, _note(warning, "warning", colours))


def health_content(p: ProviderInfo, colours: Colours) -> RenderableType:
    rows: list[tuple[str, RenderableType]] = [
        (label, _value(value, level, colours)) for label, value, level in health_rows(p)]
    ttft = ttft_rows(p)
    rows += [("", ""), ("TTFT (EWMA) by model", "" if ttft else Text("nothing measured yet", style="dim"))]
    parts: list[RenderableType] = [_grid(rows)]
    if ttft:  # model names are longer than the label column
        models = Table.grid(padding=(0, 2))
        models.add_column(overflow="fold")
        models.add_column(justify="right", no_wrap=True)
        for model, ms in ttft:
            models.add_row(f"  {model}", ms)
        parts.append(models)
    if p.breaker is None:
        parts.append(Text("\nno request has reached this provider since the sidecar started", style="dim"))
    return Group(*parts)


def limits_content(page: ProviderPage, colours: Colours) -> RenderableType:
    if page.error:
        return _note("not available: " + page.error, "warning", colours)
    parts: list[RenderableType] = [Text(limits_summary(page.limits) + "\n", style="dim")]
    rows = limit_rows(page.limits)
    if rows:
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        for name, right in (("quota", False), ("limit", True), ("remaining", True), ("used", True),
                            ("resets", False)):  # fmt: skip
            table.add_column(name, justify="right" if right else "left", no_wrap=True)
        for name, limit, remaining, used, resets, level in rows:
            table.add_row(name, limit, _value(remaining, level, colours), used, resets)
        parts.append(table)
    if retry := retry_after_text(page.limits):
        parts.append(_grid([("", ""), ("retry after", _value(retry, "warning", colours))]))
    return Group(*parts)


def features_content(page: ProviderPage, colours: Colours) -> RenderableType:
    if page.error:
        return _note("not available: " + page.error, "warning", colours)
    rows: list[tuple[str, RenderableType]] = []
    for name, value, level, detail in feature_rows(page):
        cell = _value(value, level, colours)
        if detail:
            cell.append("\n" + detail + "\n", style="dim")
        rows.append((name, cell))
    return _grid(rows) if rows else Text("the sidecar reported no features", style="dim")


class PageTable(DataTable[Text]):
    """A table that is rebuilt only when its rows change, so the periodic refresh keeps the cursor."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="provider.table_down", show=False),
        Binding("k", "cursor_up", "Up", id="provider.table_up", show=False),
    ]

    def __init__(self, columns: list[tuple[str, str, int | None, bool]], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = columns
        self._shown: list[tuple[str, ...]] | None = None

    def on_mount(self) -> None:
        for key, label, width, right in self._columns:
            self.add_column(Text(label, justify="right" if right else "left"), key=key, width=width)

    def show(self, rows: list[tuple[str, ...]]) -> None:
        if rows == self._shown:
            return
        self._shown = rows
        self.clear()
        keys: set[str] = set()
        for row in rows:
            if row[0] in keys:
                continue  # a list naming a model twice would make the table refuse the second row
            keys.add(row[0])
            cells = [Text(v, justify="right" if c[3] else "left", no_wrap=True, overflow="ellipsis")
                     for v, c in zip(row, self._columns)]
            self.add_row(*cells, key=row[0])


MODEL_COLUMNS = [("model", "model", 36, False), ("name", "name", 22, False), ("created", "created", 10, False)]
PRICE_COLUMNS = [("model", "model", 26, False), ("input", "input", 8, True), ("output", "output", 7, True),
                 ("cache_read", "c.read", 7, True), ("cache_write", "c.write", 7, True),
                 ("source", "source", 7, False)]  # fmt: skip


class ProviderPageScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="provider.back"),
        Binding("q", "back", "Back", id="provider.back_q", show=False),
        Binding("r", "refresh", "Refresh", id="provider.refresh",
                tooltip="Read the page again, model list included (it is otherwise cached for a minute)."),
        Binding("tab", "cycle(1)", "Next tab", id="provider.next_tab"),
        Binding("shift+tab", "cycle(-1)", "Previous tab", id="provider.prev_tab", show=False),
        *(Binding(str(i), f"tab('{name}')", name.capitalize(), id=f"provider.{name}", show=False)
          for i, name in enumerate(TABS, 1)),
    ]  # fmt: skip

    def __init__(self, info: ProviderInfo, client: ControlClient) -> None:
        super().__init__()
        self.page = ProviderPage(info)
        self.client = client
        self.loads = 0
        """Completed loads, so tests can wait for data rather than for time."""
        self._in_flight = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="provider"):
            with TabbedContent(id="provider-tabs", initial="overview"):
                for i, name in enumerate(TABS, 1):
                    with TabPane(f"{i} {name.capitalize()}", id=name):
                        if name == "models":
                            yield Static("", id="models-status", classes="page-note")
                            yield PageTable(MODEL_COLUMNS, id="models-table")
                        elif name == "pricing":
                            yield Static("", id="pricing-status", classes="page-note")
                            yield PageTable(PRICE_COLUMNS, id="pricing-table")
                        else:
                            with VerticalScroll(id=f"{name}-scroll", classes="page-scroll"):
                                yield Static("", id=f"provider-{name}")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#provider").border_title = f"Provider {self.page.info.id}"
        self._render_page()
        self._focus_tab("overview")
        self._reload(refresh=False)
        self.set_interval(REFRESH_S, lambda: self._reload(refresh=False), name="provider-refresh")

    # ------------------------------------------------------------------------------------------- actions

    def action_refresh(self) -> None:
        self._reload(refresh=True)

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name
        self._focus_tab(name)

    def action_cycle(self, step: int) -> None:
        active = self.query_one(TabbedContent).active or TABS[0]
        self.action_tab(TABS[(TABS.index(active) + step) % len(TABS)])

    def action_back(self) -> None:
        self.dismiss()

    def _focus_tab(self, name: str) -> None:
        target: Widget = self.query_one(f"#{name}-table" if name in ("models", "pricing") else f"#{name}-scroll")
        target.focus()

    # ------------------------------------------------------------------------------------------- data

    def _reload(self, *, refresh: bool) -> None:
        if self._in_flight and not refresh:
            return  # the timer must not cancel a slower load in flight (a manual refresh may replace one)
        self.run_worker(self._load(refresh), exclusive=True, group="provider-page")

    async def _load(self, refresh: bool) -> None:
        self._in_flight += 1  # a count: a cancelled load's `finally` may run after its replacement started
        try:
            await self._fetch(refresh)
        finally:
            self._in_flight -= 1

    async def _fetch(self, refresh: bool) -> None:
        pid = self.page.info.id
        try:
            data = await self.client.get_json(f"/_sidecar/providers/{pid}", {"refresh": "1"} if refresh else None)
            self.page = parse_page(data, self.page.info)
        except Exception as exc:
            info = self.page.info
            try:  # an older sidecar: Overview and Health still come from /health and /stats
                health, stats = await asyncio.gather(
                    self.client.health(), self.client.stats(iso(datetime.now(timezone.utc))))
                info = next((p for p in join(health, stats) if p.id == pid), info)
            except Exception:
                pass  # keep showing what we had
            self.page = ProviderPage(info, error=describe_error(exc))
        self.loads += 1
        self._render_page()

    def _render_page(self) -> None:
        page = self.page
        tv = self.app.theme_variables
        colours = {level: tv.get(var, "") for level, var in LEVEL_VARS.items()}
        box = self.query_one("#provider")
        box.border_subtitle = (f"page unavailable: {page.error}" if page.error
                               else f"updated {datetime.now().strftime('%H:%M:%S')}") if self.loads else "loading…"
        self.query_one("#provider-overview", Static).update(overview_content(page, colours))
        self.query_one("#provider-health", Static).update(health_content(page.info, colours))
        loading = _note("loading…", "muted", colours)
        self.query_one("#provider-limits", Static).update(limits_content(page, colours) if self.loads else loading)
        self.query_one("#provider-features", Static).update(features_content(page, colours) if self.loads else loading)
        if not self.loads:
            models_note = loading
        elif page.error:
            models_note = _note(f"not available: {page.error}", "warning", colours)
        elif page.models_error:
            models_note = _note(f"the provider's model list failed: {page.models_error}", "error", colours)
        else:
            models_note = _note(f"{len(page.models)} models from the provider's own list", "muted", colours)
        self.query_one("#models-status", Static).update(models_note)
        self.query_one("#models-table", PageTable).show(model_rows(page))
        pricing_note = pricing_summary(page)
        if page.models_error and not page.error:
            pricing_note += " · the catalog's models (the provider's list is unavailable)"
        if page.error:
            pricing_note = f"not available: {page.error}"
        self.query_one("#pricing-status", Static).update(_note(pricing_note, "muted", colours) if self.loads
                                                          else loading)
        self.query_one("#pricing-table", PageTable).show(price_rows(page))
