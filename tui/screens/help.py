"""`?` help: generated from the live bindings of the screen it was opened over.

Nothing here lists keys by hand, so a remapped key (`App.set_keymap` by binding id) or a new
action shows up in help automatically, as mitmproxy's help reads its one key registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class HelpEntry:
    group: str
    key: str
    description: str
    binding_id: str | None


def _group(node: object, binding: Binding, screen: Screen[object]) -> str:
    if isinstance(node, App):
        return "Global"
    if node is screen:
        # Textual's own screen keys (tab focus, copy) carry no id and apply everywhere.
        if binding.id is None:
            return "Global"
        return type(screen).__name__.removesuffix("Screen") or "Screen"
    return "Navigation"


def collect(screen: Screen[object]) -> list[HelpEntry]:
    """Entries for every active binding of `screen` (focused widget, screen, app), grouped in that
    order of specificity; disabled actions and undescribed system keys are left out."""
    app = screen.app
    entries: list[HelpEntry] = []
    seen: set[tuple[str, str]] = set()
    for active in screen.active_bindings.values():
        b: Binding = active.binding
        if not active.enabled or not b.description or b.system:
            continue
        entry = HelpEntry(_group(active.node, b, screen), app.get_key_display(b), b.description, b.id)
        if (entry.group, entry.key) not in seen:
            seen.add((entry.group, entry.key))
            entries.append(entry)
    order = {name: i for i, name in enumerate(["Navigation", "Global"])}
    entries.sort(key=lambda e: order.get(e.group, -1))  # stable: screen keys first, then the rest
    return entries


Section = tuple[str, list[tuple[str, str]]]
"""(title, [(syntax, explanation)]): extra help a screen offers, e.g. the filter language."""


def render(entries: list[HelpEntry], sections: list[Section] | None = None) -> Content:
    width = max((len(e.key) for e in entries), default=4) + 2
    parts: list[str | tuple[str, str]] = []
    group = None
    for e in entries:
        if e.group != group:
            group = e.group
            parts += ["\n" if parts else "", (group, "bold $text-primary"), "\n"]
        parts += [(f"  {e.key:<{width}}", "bold $text-accent"), e.description]
        if e.binding_id:
            parts.append((f"  {e.binding_id}", "dim"))
        parts.append("\n")
    for title, rows in sections or []:
        parts += ["\n", (title, "bold $text-primary"), "\n"]
        w = max((len(k) for k, _ in rows), default=4) + 2
        for syntax, text in rows:
            parts += [(f"  {syntax:<{w}}", "bold $text-accent"), text, "\n"]
    parts.append(("\nescape, q or ? closes this help", "dim"))
    return Content.assemble(*parts)


class HelpScreen(ModalScreen[None]):
    """Modal key list; the ids shown are what a future `[keymap]` config table will use."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("q", "close", "Close", id="help.close_q", show=False),
        Binding("question_mark", "close", "Close", id="help.close_help", show=False),
    ]

    def __init__(self, entries: list[HelpEntry], sections: list[Section] | None = None) -> None:
        super().__init__()
        self.entries = entries
        self.sections = sections or []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(render(self.entries, self.sections), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Keys"
        self.query_one("#help").focus()

    def action_close(self) -> None:
        self.dismiss()
