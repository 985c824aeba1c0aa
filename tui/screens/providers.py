"""Providers: one row per provider (configuration from `/health`, live health from `/stats`); `enter` opens
the provider's tabbed page (`tui.screens.provider_page`). Refreshed every `REFRESH_S` while shown and on `r`.

`/stats` is asked with `since` = now, so the store aggregates nothing: only `providers_health`
is wanted here, and it is live state in the proxy, not history.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.client import ControlClient, describe_error
from tui.format import fmt_ms
from tui.providers import ProviderInfo, fmt_breaker, fmt_rate, fmt_ttft, fmt_until, join
from tui.screens.provider_page import ProviderPageScreen
from tui.spend import iso

REFRESH_S = 5.0
COLUMNS = (
    ("provider", "provider", None), ("adapter", "adapter", 10), ("key", "key", 10),
    ("breaker", "breaker", 9), ("cooldown", "cool-down", 9), ("errors", "err", 4),
    ("p50", "p50", 7), ("p95", "p95", 7), ("ttft", "ttft ewma", 15),
)  # fmt: skip
LEVEL_VARS = {"success": "text-success", "warning": "text-warning", "error": "text-error",
              "muted": "text-muted"}  # fmt: skip


class ProvidersTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="providers.down", show=False),
        Binding("k", "cursor_up", "Up", id="providers.up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="providers-table", cursor_type="row")

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            justify = "right" if key in ("errors", "p50", "p95", "ttft") else "left"
            self.add_column(Text(label, justify=justify), key=key, width=width)

    def show(self, rows: list[ProviderInfo]) -> None:
        tv = self.app.theme_variables
        colour = {k: tv.get(v, "") for k, v in LEVEL_VARS.items()}
        selected = None
        if self.row_count:
            selected = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        self.clear()
        for p in rows:
            r = lambda s: Text(s, justify="right", no_wrap=True)  # noqa: E731
            key_style = {"yes": colour["success"], "no": colour["error"]}.get(p.key_state, colour["muted"])
            breaker = Text(fmt_breaker(p), style=colour[p.breaker_level], no_wrap=True)
            if p.breaker == "open":
                breaker.stylize("bold")
            self.add_row(
                Text(p.id, no_wrap=True, overflow="ellipsis"),
                Text(p.adapter or "?", no_wrap=True), Text(p.key_state, style=key_style),
                breaker, Text(fmt_until(p.cooldown_until), style=colour["warning"] if p.cooldown_until else ""),
                r(fmt_rate(p.error_rate)), r(fmt_ms(p.latency_ms_p50)), r(fmt_ms(p.latency_ms_p95)),
                r(fmt_ttft(p)),
                key=p.id,
            )  # fmt: skip
        if selected is not None and selected in {p.id for p in rows}:
            self.move_cursor(row=self.get_row_index(selected))

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


async def load(client: ControlClient) -> list[ProviderInfo]:
    health, stats = await asyncio.gather(
        client.health(), client.stats(iso(datetime.now(timezone.utc)))
    )
    return join(health, stats)


class ProvidersScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="providers.back"),
        Binding("enter", "open", "Detail", id="providers.detail", priority=True,
                tooltip="Open the provider's page: overview, models, pricing, limits, features, health."),
        Binding("r", "refresh", "Refresh", id="providers.refresh"),
    ]  # fmt: skip

    def __init__(self, client: ControlClient) -> None:
        super().__init__()
        self.client = client
        self.rows: list[ProviderInfo] = []
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="providers-status")
        yield ProvidersTable()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProvidersTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh, name="providers-refresh")

    def action_refresh(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="providers")

    async def _load(self) -> None:
        status = self.query_one("#providers-status", Static)
        try:
            self.rows = await load(self.client)
        except Exception as exc:
            status.update(Content.assemble((f"could not load: {describe_error(exc)}", "$text-error")))
            return
        self.loads += 1
        unhealthy = sum(1 for p in self.rows if p.breaker_level in ("warning", "error"))
        text = f"{len(self.rows)} providers" + (f", {unhealthy} not healthy" if unhealthy else "")
        status.update(Content.assemble((text, "dim")))
        self.query_one(ProvidersTable).show(self.rows)

    def action_open(self) -> None:
        rid = self.query_one(ProvidersTable).selected_id()
        info = next((p for p in self.rows if p.id == rid), None)
        if info is None:
            self.app.bell()
            return
        self.app.push_screen(ProviderPageScreen(info, self.client))

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_back(self) -> None:
        self.dismiss()
