"""Spend: today / 7 days / 30 days by provider and by model, and a projection for the month.

Budget bars (one per configured cap and period, from `/_sidecar/budgets`) sit above the tables and
are hidden when no budgets are configured or the sidecar predates the endpoint.

Figures come from `/_sidecar/stats?since=...` (the sidecar's store, so they survive TUI and proxy
restarts), fetched on open, every `REFRESH_S` and on `r`. Unknown prices are never shown as $0:
a bucket with only unpriced usage reads "?", and unpriced requests are counted in their own column.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.client import ControlClient, describe_error
from tui.format import fmt_cost, fmt_tokens
from tui.spend import Bucket, Projection, Window, iso, month_start, projection, windows

REFRESH_S = 15.0
COLUMNS = (("name", None), ("requests", 8), ("errors", 6), ("in", 8), ("out", 8), ("cost", 11),
           ("unpriced", 8))  # fmt: skip
Part = str | tuple[str, str]


def cost_text(b: Bucket) -> str:
    return fmt_cost(b.cost_usd)


def summary_line(b: Bucket) -> list[Part]:
    parts: list[Part] = [
        (f"{b.name:<8}", "bold"), (f"{cost_text(b):>11}", "bold"),
        (f"  {b.requests:>6} req", ""), ("   in ", "dim"), fmt_tokens(b.input_tokens),
        ("  out ", "dim"), fmt_tokens(b.output_tokens),
    ]  # fmt: skip
    if b.unpriced:
        parts.append((f"   +{b.unpriced} unpriced", "$text-warning"))
    return parts


def projection_line(p: Projection) -> list[Part]:
    if p.projected is None:
        return [("month    ", "bold"), ("projection unknown: no priced requests", "$text-warning")]
    parts: list[Part] = [
        ("month    ", "bold"), (f"~{fmt_cost(p.projected)}", "bold $text-accent"),
        (" projected", "dim"), ("  =  ", "dim"), fmt_cost(p.month_to_date), (" so far + ", "dim"),
        f"{fmt_cost(p.per_day)}/day", (f" × {p.days_left:.1f} days left", "dim"),
    ]  # fmt: skip
    if p.unpriced:
        parts.append((f"   ({p.unpriced} unpriced not counted)", "$text-warning"))
    return parts


BAR_WIDTH = 16


def _resets(ts: object) -> str:
    try:
        when = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return str(ts)
    return when.astimezone(timezone.utc).strftime("%b %d %H:%M UTC")


def budget_lines(budgets: list[dict[str, object]]) -> list[Part]:
    """`global daily  ██████░░░░  62%  $3.10 of $5.00  resets Nov 25 00:00 UTC`, one line per cap."""
    parts: list[Part] = []
    for b in budgets:
        try:
            limit = float(b["limit_usd"])  # type: ignore[arg-type]
            spent = float(b["spent_usd"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            continue
        share = spent / limit if limit > 0 else 1.0
        filled = min(BAR_WIDTH, round(share * BAR_WIDTH))
        style = "$text-error" if share >= 1 else "$text-warning" if share >= 0.8 else "$text-success"
        name = f"{b.get('scope', '?')} {b.get('period', '')}".strip()
        if parts:
            parts.append("\n")
        parts += [
            (f"{name[:24]:<24} ", "bold"), ("█" * filled, style), ("░" * (BAR_WIDTH - filled), "dim"),
            (f" {share * 100:>4.0f}%", style), ("  ", ""), fmt_cost(spent), (" of ", "dim"), fmt_cost(limit),
            (f"  resets {_resets(b.get('resets'))}", "dim"),
        ]  # fmt: skip
    return parts


class SpendTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="spend.down", show=False),
        Binding("k", "cursor_up", "Up", id="spend.up", show=False),
    ]

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, width in COLUMNS:
            justify = "left" if key == "name" else "right"
            self.add_column(Text(key, justify=justify), key=key, width=width)

    def show(self, buckets: list[Bucket]) -> None:
        tv = self.app.theme_variables
        warn = tv.get("text-warning", tv.get("warning", ""))
        self.clear()
        for b in buckets:
            r = lambda s, style="": Text(s, justify="right", style=style)  # noqa: E731
            self.add_row(
                Text(b.name, no_wrap=True, overflow="ellipsis"),
                r(str(b.requests)), r(str(b.errors) if b.errors else "-"),
                r(fmt_tokens(b.input_tokens)), r(fmt_tokens(b.output_tokens)),
                r(cost_text(b), "dim" if b.cost_usd is None else "bold"),
                r(str(b.unpriced) if b.unpriced else "-", warn if b.unpriced else ""),
                key=b.name,
            )  # fmt: skip


class SpendScreen(Screen[None]):
    """`w` switches the window the two tables show; the summary always shows all three."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="spend.back"),
        Binding("w", "cycle_window", "Window", id="spend.window",
                tooltip="Show today, 7 days or 30 days in the tables."),
        Binding("r", "refresh", "Refresh", id="spend.refresh", tooltip="Fetch the figures again."),
    ]  # fmt: skip

    def __init__(self, client: ControlClient, *, now: datetime | None = None) -> None:
        super().__init__()
        self.client = client
        self.fixed_now = now
        """Tests pin the clock; otherwise every refresh uses the current time."""
        self.windows: list[Window] = []
        self.projection: Projection | None = None
        self.selected = 1
        """Index into `windows` shown in the tables; 7 days by default."""
        self.loads = 0
        self.budgets: list[dict[str, object]] = []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="spend"):
            yield Static("loading…", id="spend-summary")
            yield Static("Budgets", id="budgets-title", classes="section")
            yield Static("", id="budgets")
            yield Static("", id="by-provider-title", classes="section")
            yield SpendTable(id="by-provider")
            yield Static("", id="by-model-title", classes="section")
            yield SpendTable(id="by-model")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#spend").border_title = "Spend (UTC days)"
        self._show_budgets()
        self.query_one("#by-provider", SpendTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh, name="spend-refresh")

    def action_refresh(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="spend")

    async def _load(self) -> None:
        now = self.fixed_now or datetime.now(timezone.utc)
        spans = [*windows(now), ("month", month_start(now))]
        try:
            *answers, self.budgets = await asyncio.gather(
                *(self.client.stats(iso(since)) for _, since in spans), self._budgets()
            )
        except Exception as exc:  # shown, not raised: an offline sidecar is a normal state
            msg = f"could not load spend: {describe_error(exc)}"
            self.query_one("#spend-summary", Static).update(Content.assemble((msg, "$text-error")))
            return
        parsed = [Window.parse(label, since, a) for (label, since), a in zip(spans, answers)]
        self.windows, month = parsed[:3], parsed[3]
        self.projection = projection(now, month.totals, self.windows[1])
        self.loads += 1
        self._show()

    async def _budgets(self) -> list[dict[str, object]]:
        try:
            return await self.client.budgets()
        except Exception:  # no budgets endpoint (older sidecar) or proxy not up: no bars
            return []

    def _show_budgets(self) -> None:
        lines = budget_lines(self.budgets)
        for wid in ("#budgets-title", "#budgets"):
            self.query_one(wid, Static).display = bool(lines)
        if lines:
            self.query_one("#budgets", Static).update(Content.assemble(*lines))

    def _show(self) -> None:
        self._show_budgets()
        parts: list[Part] = []
        for w in self.windows:
            parts += [*summary_line(w.totals), "\n"]
        if self.projection is not None:
            parts += projection_line(self.projection)
        self.query_one("#spend-summary", Static).update(Content.assemble(*parts))
        if not self.windows:
            return
        w = self.windows[self.selected]
        self.query_one("#by-provider-title", Static).update(f"By provider — {w.label}")
        self.query_one("#by-model-title", Static).update(f"By model — {w.label}")
        self.query_one("#by-provider", SpendTable).show(w.by_provider)
        self.query_one("#by-model", SpendTable).show(w.by_model)

    def action_cycle_window(self) -> None:
        self.selected = (self.selected + 1) % 3
        self._show()

    def action_back(self) -> None:
        self.dismiss()
