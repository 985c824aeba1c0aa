"""The `/` filter bar: an Input for a filter expression and one line for a parse error.

The bar only edits and reports; the traffic screen parses on submit and decides what to show, so
a bad expression leaves the filter in force untouched (the error appears under the input).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Static

from tui.filters import FilterError

PLACEHOLDER = "~e | ~p openai & ~lat >2s    (enter applies, escape clears, ? lists filters)"


class FilterBar(Vertical):
    """Hidden until opened; docked above the footer (styles in app.tcss)."""

    BINDINGS = [
        Binding("escape", "clear", "Clear filter", id="filter.clear",
                tooltip="Clear the filter and close the bar."),
    ]  # fmt: skip

    class Cleared(Message):
        """The user asked for no filter at all."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder=PLACEHOLDER, id="filter-input", select_on_focus=False)
        yield Static("", id="filter-error")

    @property
    def input(self) -> Input:
        return self.query_one("#filter-input", Input)

    @property
    def error_text(self) -> str:
        return str(self.query_one("#filter-error", Static).content)

    def open(self, text: str) -> None:
        self.display = True
        self.show_error(None)
        self.input.value = text
        self.input.cursor_position = len(text)
        self.input.focus()

    def close(self) -> None:
        self.display = False

    def show_error(self, error: FilterError | None) -> None:
        static = self.query_one("#filter-error", Static)
        static.display = error is not None
        if error is None:
            static.update("")
            return
        # The Input has a 1-cell border and 1-cell padding: the caret lines up under the column.
        static.update(
            Content.assemble((" " * (error.pos + 2) + "^ ", "bold $text-error"), (error.message, "$text-error"))
        )

    def action_clear(self) -> None:
        self.post_message(self.Cleared())
