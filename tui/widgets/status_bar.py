"""One-line header: connection, rows shown/total, spend, follow/paused.

A dumb drawer: the traffic screen hands it plain values each tick and it repaints only when the
line actually changed, so a 10 Hz tick costs nothing while idle.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from tui.feed import FeedState, FeedStatus
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
        )


SEP = ("  │  ", "dim")


class StatusBar(Horizontal):
    """Docked at the top of the traffic screen (styles in app.tcss). Connection text on the left
    may be cut with an ellipsis; counts and follow/paused on the right always stay visible."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: StatusView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="status-left")
        yield Static("", id="status-right")

    @property
    def text(self) -> str:
        """The plain text shown, left then right (for tests and debugging)."""
        left, right = self.query(Static)
        return f"{left.content}  {right.content}"

    def show(self, view: StatusView) -> None:
        if view == self._view:
            return
        self._view = view
        left, right = self.render_view(view)
        self.query_one("#status-left", Static).update(left)
        self.query_one("#status-right", Static).update(right)

    @staticmethod
    def render_view(v: StatusView) -> tuple[Content, Content]:
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
        right: list[str | tuple[str, str]] = []
        if v.proxy_paused:
            # On the right, which is never cut: the one thing that must not be missed.
            right += [(" PAUSED ", "bold reverse $text-error"), (" P resumes", "$text-error"), SEP]
        right += [("rows ", "dim"), f"{v.shown}/{v.total}"]
        if v.sort:
            right += [SEP, ("sort ", "dim"), v.sort]
        if v.marked or v.marked_only:
            label = f"{v.marked} marked" + (" (only)" if v.marked_only else "")
            right += [SEP, (label, "$text-accent")]
        right += [SEP, ("spend ", "dim"), (fmt_cost(v.cost_usd), "bold")]
        if v.unpriced:
            right.append((f" +{v.unpriced} unpriced", "$text-warning"))
        if v.in_flight:
            right += [SEP, (f"{v.in_flight} in flight", "$text-primary")]
        if v.errors:
            right += [SEP, (f"{v.errors} err", "$text-error")]
        right.append(SEP)
        if v.paused:
            right.append((f" paused +{v.paused_new} new ", "reverse $text-warning"))
        elif v.follow:
            right.append(("follow", "$text-success"))
        else:
            right.append(("live", "dim"))
        return Content.assemble(*left), Content.assemble(*right)
