"""Keys: which providers have a key in the sidecar's keyring; set, replace or delete one.

Keys go one way only: typed into a masked `Input(password=True)` and sent to `PUT /_sidecar/keys/{id}`.
The sidecar answers with a masked hint (prefix family and length), and nothing here ever renders,
logs or keeps a key: the modal's input is cleared as soon as its value is handed over.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from tui.client import ControlClient, describe_error

REFRESH_S = 30.0
COLUMNS = (("provider", None), ("adapter", 16), ("key", 12), ("hint", 24))


def presence(row: dict[str, Any]) -> tuple[str, str]:
    """(label, style) for the key column: yes / no / unknown (keyring unavailable) / not needed."""
    has = row.get("has_key")
    if has is True:
        return "yes", "$text-success"
    if has is None:
        return "unknown", "$text-warning"
    if not row.get("needs_key", True):
        return "not needed", "dim"
    return "no", "bold $text-error"


class KeysTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="keys.down", show=False),
        Binding("k", "cursor_up", "Up", id="keys.up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="keys-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, width in COLUMNS:
            self.add_column(Text(key), key=key, width=width)

    def show(self, rows: list[dict[str, Any]]) -> None:
        tv = self.app.theme_variables
        selected = self.selected_id()
        self.clear()
        for row in rows:
            label, style = presence(row)
            rich_style = " ".join(tv.get(p[1:], "") if p.startswith("$") else p for p in style.split())
            self.add_row(
                Text(str(row.get("provider", "?")), no_wrap=True, overflow="ellipsis"),
                Text(str(row.get("adapter") or "")),
                Text(label, style=rich_style.strip()),
                Text(str(row.get("hint") or "-"), style="dim"),
                key=str(row.get("provider")),
            )
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected))

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value


class KeyInputScreen(ModalScreen[str | None]):
    """A masked input for one provider's key; dismisses with the key, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="key_input.cancel")]

    def __init__(self, provider: str, replacing: bool) -> None:
        super().__init__()
        self.provider = provider
        self.replacing = replacing

    def compose(self) -> ComposeResult:
        with Vertical(id="key-dialog", classes="dialog"):
            verb = "Replace" if self.replacing else "Set"
            yield Static(f"{verb} the key for {self.provider}", classes="dialog-title")
            yield Input(password=True, placeholder="paste the key (hidden)", id="key-input")
            yield Static(Content.assemble(("enter", "bold"), " stores it in the keyring  ",
                                          ("esc", "bold"), " cancels"), classes="dialog-hint")  # fmt: skip
            yield Static("", id="key-error")

    def on_mount(self) -> None:
        self.query_one("#key-input", Input).focus()

    @on(Input.Submitted, "#key-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = self.query_one("#key-input", Input)
        value = event.value.strip()
        if not value:
            self.query_one("#key-error", Static).update(Content.assemble(("the key is empty", "$text-error")))
            return
        field.value = ""  # nothing keeps the key once it is handed over
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.query_one("#key-input", Input).value = ""
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no; `y` or `enter` confirms, `n` or `esc` cancels."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes", priority=True),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(self.question, classes="dialog-title")
            yield Static(Content.assemble(("y", "bold"), " yes   ", ("n", "bold"), " no"), classes="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class KeysScreen(Screen[None]):
    """Provider keys in the sidecar's keyring: presence and masked hints, never values."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="keys.back"),
        # priority: the focused DataTable binds enter to its own "select" action.
        Binding("enter", "set_key", "Set key", id="keys.set_enter", priority=True, show=False,
                tooltip="Set or replace the key of the provider under the cursor."),
        Binding("s", "set_key", "Set/replace", id="keys.set",
                tooltip="Set or replace the key of the provider under the cursor (masked input)."),
        Binding("d", "delete_key", "Delete", id="keys.delete",
                tooltip="Delete the key of the provider under the cursor from the keyring."),
        Binding("r", "refresh", "Refresh", id="keys.refresh", tooltip="Read the keyring again."),
    ]  # fmt: skip

    def __init__(self, client: ControlClient) -> None:
        super().__init__()
        self.client = client
        self.rows: list[dict[str, Any]] = []
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="keys-status")
        yield KeysTable()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(KeysTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh, name="keys-refresh")

    def action_refresh(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="keys")

    async def _load(self) -> None:
        status = self.query_one("#keys-status", Static)
        try:
            self.rows = await self.client.keys()
        except Exception as exc:
            status.update(Content.assemble((f"could not load keys: {describe_error(exc)}", "$text-error")))
            return
        self.loads += 1
        missing = sum(1 for r in self.rows if r.get("needs_key", True) and r.get("has_key") is False)
        unknown = sum(1 for r in self.rows if r.get("has_key") is None)
        parts: list[str | tuple[str, str]] = [(f"{len(self.rows)} providers", "dim")]
        if missing:
            parts.append((f", {missing} without a key", "$text-warning"))
        if unknown:
            parts.append((", keyring unavailable: presence unknown", "$text-error"))
        status.update(Content.assemble(*parts))
        self.query_one(KeysTable).show(self.rows)

    def _selected(self) -> dict[str, Any] | None:
        pid = self.query_one(KeysTable).selected_id()
        return next((r for r in self.rows if r.get("provider") == pid), None)

    def action_set_key(self) -> None:
        row = self._selected()
        if row is None:
            self.app.bell()
            return
        provider = str(row["provider"])

        def chosen(key: str | None) -> None:
            if key:
                self.run_worker(self._set(provider, key), group="keys-write")

        self.app.push_screen(KeyInputScreen(provider, replacing=row.get("has_key") is True), chosen)

    async def _set(self, provider: str, key: str) -> None:
        try:
            answer = await self.client.set_key(provider, key)
        except Exception as exc:
            self.notify(f"key for {provider} not stored: {describe_error(exc)}", severity="error", markup=False)
            return
        self.notify(f"key for {provider} stored ({answer.get('hint', '')})", markup=False)
        self.action_refresh()

    def action_delete_key(self) -> None:
        row = self._selected()
        if row is None:
            self.app.bell()
            return
        provider = str(row["provider"])

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(provider), group="keys-write")

        self.app.push_screen(ConfirmScreen(f"Delete the key for {provider} from the keyring?"), confirmed)

    async def _delete(self, provider: str) -> None:
        try:
            answer = await self.client.delete_key(provider)
        except Exception as exc:
            self.notify(f"key for {provider} not deleted: {describe_error(exc)}", severity="error", markup=False)
            return
        if answer.get("deleted"):
            self.notify(f"key for {provider} deleted", markup=False)
        else:
            self.notify(f"{provider} had no key to delete", severity="warning", markup=False)
        self.action_refresh()

    @on(DataTable.RowSelected)
    def _clicked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_set_key()

    def action_back(self) -> None:
        self.dismiss()
