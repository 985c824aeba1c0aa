"""One-line header: connection, rows shown/total, spend, budget left, follow/paused.

A dumb drawer: the traffic screen hands it plain values each tick and it repaints only when the
line actually changed (or the terminal was resized), so a 10 Hz tick costs nothing while idle.
When the terminal is narrow, the right-hand items are dropped lowest priority first (`PRIORITY`),
so PAUSED, rows, spend and budget left survive at 80 columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from tui.feed import BudgetLeft, FeedState, FeedStatus
from tui.format import fmt_cost
from tui.model import Totals


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything the status line shows; compared by value to skip redundant repaints."""

    connection: str
    state: FeedState
    version: str | None
    shown: int
    total: int
    requests: int
    in_flight: int
    errors: int
    cost_usd: float
    unpriced: int
    follow: bool
    paused: bool
    paused_new: int
    filter: str = ""
    """The active filter expression ("" for none)."""
    sort: str = ""
    """"latency ▼" and so on; "" for the default (newest first)."""
    marked: int = 0
    marked_only: bool = False
    proxy_paused: bool = False
    """The sidecar itself is paused (`P`): every generation request gets a 503."""
    budget: BudgetLeft | None = None
    """The tightest configured budget (money left, period, scope); None without budgets."""

    @classmethod
    def build(
        cls,
        status: FeedStatus,
        totals: Totals,
        *,
        shown: int,
        total: int,
        follow: bool,
        paused: bool,
        paused_new: int,
        filter: str = "",
        sort: str = "",
        marked: int = 0,
        marked_only: bool = False,
    ) -> StatusView:
        return cls(
            connection=status.describe(),
            state=status.state,
            version=status.version,
            shown=shown,
            total=total,
            requests=totals.requests,
            in_flight=totals.in_flight,
            errors=totals.errors,
            cost_usd=round(totals.cost_usd, 6),
            unpriced=totals.unpriced,
            follow=follow,
            paused=paused,
            paused_new=paused_new,
            filter=filter,
            sort=sort,
            marked=marked,
            marked_only=marked_only,
            proxy_paused=status.proxy_paused,
            budget=status.budget,
        )


SEP = ("  │  ", "dim")
NARROW_SEP = (" │ ", "dim")
PAUSED_BADGE = (" PAUSED ", "bold reverse $text-error")
MIN_LEFT = 30
"""Cells the left half keeps before right-hand items are squeezed or dropped, while not connected (the
connection text then says what is wrong)."""
MIN_LEFT_CONNECTED = 14
"""The same once connected: "● connected to …" says enough."""
PRIORITY = ("paused", "rows", "spend", "budget", "mode", "errors", "in_flight", "marked", "sort", "unpriced")
"""Right-hand items, most important first; a narrow terminal drops from the end."""
PERIOD_WORDS = {"daily": "today", "monthly": "this month"}
SHORT_PERIODS = {"daily": "/day", "monthly": "/mo"}

Segment = str | tuple[str, str]


class StatusBar(Horizontal):
    """Docked at the top of the traffic screen (styles in app.tcss). Connection text on the left
    may be cut with an ellipsis; counts and follow/paused on the right always stay visible."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: StatusView | None = None
        self._width = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="status-left")
        yield Static("", id="status-right")

    @property
    def text(self) -> str:
        """The plain text shown, left then right (for tests and debugging)."""
        left, right = self.query(Static)
        return f"{left.content}  {right.content}"

    def show(self, view: StatusView) -> None:
        width = self.size.width
        if view == self._view and width == self._width:
            return
        self._view, self._width = view, width
        left, right = self.render_view(view, width or None)
        self.query_one("#status-left", Static).update(left)
        self.query_one("#status-right", Static).update(right)

    def on_resize(self, event: events.Resize) -> None:
        if self._view is not None:
            self.show(self._view)

    @staticmethod
    def render_view(v: StatusView, width: int | None = None) -> tuple[Content, Content]:
        """Left (filter, connection) and right (counts, spend, budget, mode) halves; with `width`, right-hand
        items are first squeezed (narrow separators, short budget) then dropped by `PRIORITY` until enough
        cells remain for the left (`MIN_LEFT`, `MIN_LEFT_CONNECTED`)."""
        if v.state is FeedState.CONNECTED:
            conn: tuple[str, str] = ("● " + v.connection, "$text-success")
        else:
            conn = ("○ " + v.connection, "bold $text-warning")
        left: list[str | tuple[str, str]] = []
        if v.filter:
            # First, so a narrow terminal cuts the connection text, not the filter in force.
            left += [("filter ", "dim"), (v.filter, "bold $text-accent"), SEP]
        left.append(conn)
        if v.version and v.state is FeedState.CONNECTED:
            left.append((f" v{v.version}", "dim"))
        # (name, segments, joined to the previous item with a separator?) in display order.
        items: list[tuple[str, list[Segment], bool]] = []
        if v.proxy_paused:
            # On the right, which is never cut: the one thing that must not be missed.
            items.append(("paused", [PAUSED_BADGE, (" P resumes", "$text-error")], True))
        items.append(("rows", [("rows ", "dim"), f"{v.shown}/{v.total}"], True))
        if v.sort:
            items.append(("sort", [("sort ", "dim"), v.sort], True))
        if v.marked or v.marked_only:
            label = f"{v.marked} marked" + (" (only)" if v.marked_only else "")
            items.append(("marked", [(label, "$text-accent")], True))
        items.append(("spend", [("spend ", "dim"), (fmt_cost(v.cost_usd), "bold")], True))
        if v.unpriced:
            items.append(("unpriced", [(f" +{v.unpriced} unpriced", "$text-warning")], False))
        if v.budget is not None:
            items.append(("budget", _budget(v.budget, short=False), True))
        if v.in_flight:
            items.append(("in_flight", [(f"{v.in_flight} in flight", "$text-primary")], True))
        if v.errors:
            items.append(("errors", [(f"{v.errors} err", "$text-error")], True))
        if v.paused:
            items.append(("mode", [(f" paused +{v.paused_new} new ", "reverse $text-warning")], True))
        elif v.follow:
            items.append(("mode", [("follow", "$text-success")], True))
        else:
            items.append(("mode", [("live", "dim")], True))
        sep = SEP
        if width is not None:
            # The bar's padding and the right half's padding-left, then what the left keeps.
            room = width - 2 - 2 - (MIN_LEFT_CONNECTED if v.state is FeedState.CONNECTED else MIN_LEFT)
            if _cells(items, sep) > room:
                sep = NARROW_SEP
                short = {"paused": [PAUSED_BADGE]}
                if v.budget is not None:
                    short["budget"] = _budget(v.budget, short=True)
                items = [(n, short.get(n, s), j) for n, s, j in items]
            for name in reversed(PRIORITY):
                if _cells(items, sep) <= room:
                    break
                items = [item for item in items if item[0] != name]
        right: list[Segment] = []
        for _name, segments, separated in items:
            if separated and right:
                right.append(sep)
            right += segments
        return Content.assemble(*left), Content.assemble(*right)


def _budget(b: BudgetLeft, *, short: bool) -> list[Segment]:
    """`left $1.23 today` (short: `left $1.23/day`), with the scope when it is not the global cap; warning
    under 20 % left, error when nothing is."""
    if b.remaining_usd <= 0:
        style = "bold reverse $text-error"
    elif b.limit_usd > 0 and b.remaining_usd / b.limit_usd < 0.2:
        style = "bold $text-warning"
    else:
        style = "bold"
    period = SHORT_PERIODS.get(b.period, "") if short else " " + PERIOD_WORDS.get(b.period, b.period)
    money = f"${b.remaining_usd:,.2f}" if b.remaining_usd >= 0.01 else fmt_cost(max(b.remaining_usd, 0.0))
    out: list[Segment] = [("left ", "dim"), (money, style), (period, "dim")]
    if b.scope and b.scope != "global":
        out.append((f" ({b.scope.split(' ', 1)[-1]})", "dim"))
    return out


def _cells(items: list[tuple[str, list[Segment], bool]], sep: tuple[str, str]) -> int:
    n = 0
    for i, (_name, segments, separated) in enumerate(items):
        n += len(sep[0]) if separated and i else 0
        n += sum(len(s if isinstance(s, str) else s[0]) for s in segments)
    return n
